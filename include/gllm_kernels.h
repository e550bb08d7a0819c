/* gllm-kernels: the compute backend of an LLM inference stack (public C11 API).
 *
 * Every call returns a gllm_status; on failure gllm_last_error() describes it
 * (per thread, valid until the thread's next failing call). The library
 * initialises itself on first use; gllm_init() does it explicitly and reports
 * a bad GLLM_ISA / GLLM_NUM_THREADS setting. */
#ifndef GLLM_KERNELS_H
#define GLLM_KERNELS_H
#include <stddef.h>
#include "gllm_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define GLLM_API __attribute__((visibility("default")))
#else
#define GLLM_API
#endif

typedef enum gllm_status {
    GLLM_OK = 0,
    GLLM_E_INVALID_ARGUMENT, /* NULL, zero or inconsistent sizes, overlapping buffers */
    GLLM_E_UNSUPPORTED,      /* unknown dtype, ISA not available on this CPU */
    GLLM_E_OUT_OF_MEMORY,
    GLLM_E_INTERNAL,
} gllm_status;

GLLM_API const char *gllm_last_error(void);
GLLM_API const char *gllm_status_string(gllm_status s);

/* Library set-up (idempotent): detects the ISA (cpuid + xgetbv / getauxval),
 * honours GLLM_ISA=scalar|avx2|avx512|neon (a cap; one the CPU lacks is an
 * error), GLLM_NUM_THREADS (default: online cores) and GLLM_VERBOSE=1. */
GLLM_API gllm_status gllm_init(void);
GLLM_API const char *gllm_isa_name(void);      /* ISA in use, NULL before a successful init */
GLLM_API const char *gllm_isa_detected(void);  /* best ISA the CPU supports */
GLLM_API int gllm_num_threads(void);

/* Weight formats. Block formats hold 32 weights per block; a row of k
 * weights takes gllm_row_size(dtype, k) bytes (k a multiple of the block). */
GLLM_API const char *gllm_dtype_name(gllm_dtype t); /* NULL for an unknown dtype */
GLLM_API gllm_status gllm_dtype_from_name(const char *name, gllm_dtype *out);
GLLM_API size_t gllm_dtype_block_size(gllm_dtype t); /* 0 for an unknown dtype */
GLLM_API gllm_status gllm_row_size(gllm_dtype t, size_t k, size_t *bytes);

/* The name of the kernel the dispatch table holds for op ("gemv", "gemm",
 * "quantize", "dequantize") and dtype; NULL if there is none. */
GLLM_API const char *gllm_kernel_name(const char *op, gllm_dtype t);

/* Y[m][n] = X[m][k] . W[n][k]^T (+ bias[n]). W: n rows of dtype wtype (row
 * size gllm_row_size); X, Y, bias: f32, row-major, dense. m = 1 takes the
 * gemv (decode) kernel, m > 1 the gemm (prefill) kernel. Y must not overlap
 * W, X or bias. Multithreaded; results do not depend on the thread count. */
GLLM_API gllm_status gllm_matmul(gllm_dtype wtype, const void *w, const float *x, const float *bias,
                                 float *y, size_t m, size_t n, size_t k);

/* rows x k values, f32 <-> dtype (k a multiple of the block size). */
GLLM_API gllm_status gllm_quantize(gllm_dtype t, const float *x, void *y, size_t rows, size_t k);
GLLM_API gllm_status gllm_dequantize(gllm_dtype t, const void *x, float *y, size_t rows, size_t k);

#ifdef __cplusplus
}
#endif
#endif
