#include <math.h>
#include <stdlib.h>
#include "ref/ref.h"

static void run(gllm_dtype t, const void *w, size_t w_row_bytes, const float *x, const float *bias, double *y,
                size_t m, size_t n, size_t k, int absolute) {
    double *row = malloc(k * sizeof(double));
    for (size_t j = 0; j < n; j++) {
        gllm_ref_dequantize(t, (const char *)w + j * w_row_bytes, row, k);
        for (size_t i = 0; i < m; i++) {
            double s = 0.0;
            for (size_t q = 0; q < k; q++)
                s += absolute ? fabs(row[q] * x[i * k + q]) : row[q] * (double)x[i * k + q];
            y[i * n + j] = s + (bias && !absolute ? bias[j] : 0.0);
        }
    }
    free(row);
}

void gllm_ref_matmul(gllm_dtype t, const void *w, size_t w_row_bytes, const float *x, const float *bias,
                     double *y, size_t m, size_t n, size_t k) {
    run(t, w, w_row_bytes, x, bias, y, m, n, k, 0);
}

void gllm_ref_matmul_abs(gllm_dtype t, const void *w, size_t w_row_bytes, const float *x, double *y, size_t m,
                         size_t n, size_t k) {
    run(t, w, w_row_bytes, x, NULL, y, m, n, k, 1);
}

void gllm_ref_round_int8(const float *x, double *xq, size_t k) {
    for (size_t b = 0; b < k; b += 32) {
        float amax = 0;
        for (size_t i = b; i < b + 32; i++) amax = fmaxf(amax, fabsf(x[i]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        for (size_t i = b; i < b + 32; i++) xq[i] = (double)d * (double)lrintf(x[i] * id);
    }
}
