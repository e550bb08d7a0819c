/* Reference implementations: the test oracles. Hand-written, obviously
 * correct, slow; independent of templates/ (never the generated scalar code). */
#ifndef GLLM_REF_H
#define GLLM_REF_H
#include <stddef.h>
#include <stdint.h>
#include "gllm_dtype.h"

/* one row of k values of dtype t -> double */
void gllm_ref_dequantize(gllm_dtype t, const void *row, double *out, size_t k);
/* Y[m][n] = X[m][k] . W[n][k]^T (+ bias), in double; W rows dequantised by the above */
void gllm_ref_matmul(gllm_dtype t, const void *w, size_t w_row_bytes, const float *x, const float *bias,
                     double *y, size_t m, size_t n, size_t k);
/* x rounded as the CPU's int8 matmul path rounds activations (per 32 values: d = max|x|/127,
 * x = d * round(x / d)), k a multiple of 32 */
void gllm_ref_round_int8(const float *x, double *xq, size_t k);
/* sum_k |W[j][k]| |X[i][k]|: the scale tolerances are relative to */
void gllm_ref_matmul_abs(gllm_dtype t, const void *w, size_t w_row_bytes, const float *x, double *y, size_t m,
                         size_t n, size_t k);
/* row operators (see ref_ops.c) */
void gllm_ref_rmsnorm(const float *x, const float *w, double *y, size_t n, double eps);
void gllm_ref_layernorm(const float *x, const float *w, const float *b, double *y, size_t n, double eps);
double gllm_ref_silu(double g);
double gllm_ref_gelu(double x);
void gllm_ref_softmax(const float *x, double *y, size_t n);
size_t gllm_ref_argmax(const float *x, size_t n);
void gllm_ref_l2norm(const float *x, double *y, size_t n);
size_t gllm_ref_mean_rows(const float *x, const uint8_t *mask, size_t rows, size_t n, double *y);
/* angle[i]: the rotation of pair i (rot/2 of them) */
void gllm_ref_rope(const float *x, double *y, size_t nh, size_t hd, size_t rot, const double *angle, int neox);
#endif
