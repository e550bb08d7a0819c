/* Reference row operators in double: the oracles of the norm, eltwise, reduce (with the pooling mean) and rope kernels. */
#include <math.h>
#include "ref/ref.h"

void gllm_ref_rmsnorm(const float *x, const float *w, double *y, size_t n, double eps) {
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const double s = 1.0 / sqrt(ss / (double)n + eps);
    for (size_t i = 0; i < n; i++) y[i] = x[i] * s * (w ? w[i] : 1.0);
}

void gllm_ref_layernorm(const float *x, const float *w, const float *b, double *y, size_t n, double eps) {
    double mean = 0, var = 0;
    for (size_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    const double r = 1.0 / sqrt(var / (double)n + eps);
    for (size_t i = 0; i < n; i++) y[i] = (x[i] - mean) * r * (w ? w[i] : 1.0) + (b ? b[i] : 0.0);
}

double gllm_ref_silu(double g) { return g / (1.0 + exp(-g)); }
double gllm_ref_gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

void gllm_ref_softmax(const float *x, double *y, size_t n) {
    double m = -INFINITY, s = 0;
    for (size_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    for (size_t i = 0; i < n; i++) s += y[i] = exp(x[i] - m);
    for (size_t i = 0; i < n; i++) y[i] /= s;
}

size_t gllm_ref_argmax(const float *x, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

void gllm_ref_l2norm(const float *x, double *y, size_t n) {
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const double s = ss > 0 ? 1.0 / sqrt(ss) : 1.0;
    for (size_t i = 0; i < n; i++) y[i] = x[i] * s;
}

size_t gllm_ref_mean_rows(const float *x, const uint8_t *mask, size_t rows, size_t n, double *y) {
    size_t used = 0;
    for (size_t i = 0; i < n; i++) y[i] = 0;
    for (size_t r = 0; r < rows; r++)
        if (!mask || mask[r]) {
            for (size_t i = 0; i < n; i++) y[i] += x[r * n + i];
            used++;
        }
    for (size_t i = 0; used && i < n; i++) y[i] /= (double)used;
    return used;
}

void gllm_ref_rope(const float *x, double *y, size_t nh, size_t hd, size_t rot, const double *angle, int neox) {
    for (size_t h = 0; h < nh; h++) {
        const float *xh = x + h * hd;
        double *yh = y + h * hd;
        for (size_t i = 0; i < hd; i++) yh[i] = xh[i];
        for (size_t i = 0; i < rot / 2; i++) {
            const size_t p = neox ? i : 2 * i, q = neox ? i + rot / 2 : 2 * i + 1;
            const double c = cos(angle[i]), s = sin(angle[i]);
            yh[p] = xh[p] * c - xh[q] * s;
            yh[q] = xh[p] * s + xh[q] * c;
        }
    }
}
