/* Matmul on the pool (CPU backend), below the public API's validation. */
#ifndef GLLM_CPU_MATMUL_H
#define GLLM_CPU_MATMUL_H
#include "gllm_kernels.h"
#include "kernels.h"

/* Y[m][n] = X[m][k] . W[n][k]^T (+ bias): act_quant (block formats), then column ranges on the pool */
gllm_status gllm_cpu_matmul(gllm_dtype t, const void *w, const float *x, const float *bias, float *y, size_t m,
                            size_t n, size_t k);
/* X quantised for the block formats' int8 path into xq (m rows of k/32 blocks), rows on the pool */
void gllm_cpu_act_quant(const float *x, size_t m, size_t k, gllm_q8x *xq);
/* the kernel computing column ranges of one matmul: gemv for m = 1, gemm otherwise */
gllm_matmul_fn gllm_cpu_matmul_kernel(gllm_dtype t, size_t m);
/* column ranges per task: one range per thread for gemm (panels packed once), smaller for gemv */
size_t gllm_cpu_matmul_chunk(size_t m, size_t n, size_t k);
#endif
