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
