/* Matmul on the pool (CPU backend), below the public API's validation. */
#ifndef GLLM_CPU_MATMUL_H
#define GLLM_CPU_MATMUL_H
#include "gllm_kernels.h"
#include "kernels.h"

/* Y[m][n] = X[m][k] . W[n][k]^T (+ bias): act_quant (block formats), then column ranges on the pool;
 * tiled: W in the tiled layout (src/core/kernel_abi.h, gllm_cpu_tile) */
gllm_status gllm_cpu_matmul(gllm_dtype t, int tiled, const void *w, const float *x, const float *bias, float *y, size_t m,
                            size_t n, size_t k);
/* X quantised for the block formats' int8 path into xq (m rows of k/32 blocks), rows on the pool */
void gllm_cpu_act_quant(const float *x, size_t m, size_t k, gllm_q8x *xq);
/* Up to this many activation rows (a batched decode step), gemv reads the weights once for all
 * of them and beats the gemm, whose panel packing costs as much as a few rows' products. */
#define GLLM_GEMV_MAX_ROWS 8
/* the kernel computing column ranges of one matmul: gemv for up to GLLM_GEMV_MAX_ROWS rows (tiled
 * weights: gemv_tiled for one row), gemm otherwise */
gllm_matmul_fn gllm_cpu_matmul_kernel(gllm_dtype t, size_t m, int tiled);
/* Tiled weights: whether this ISA reads t tiled (it has a gemv_tiled for t) and n rows fit
 * whole tiles; gllm_cpu_tile writes W (n rows of k) tiled into dst (as many bytes). */
int gllm_cpu_tileable(gllm_dtype t, size_t n);
void gllm_cpu_tile(gllm_dtype t, const void *w, void *dst, size_t n, size_t k);
/* column ranges per task: one range per thread for gemm (panels packed once), smaller for gemv */
size_t gllm_cpu_matmul_chunk(size_t m, size_t n, size_t k);
#endif
