#include "model/rope.h"
#include <math.h>

/* YaRN: the pair index at which a rotation turns `turns` times over the original context */
static double yarn_pair(const gllm_rope_cfg *c, size_t rot, double turns) {
    return (double)rot * log(c->yarn_orig_ctx / (turns * 6.283185307179586)) / (2.0 * log((double)c->base));
}

void gllm_rope_freqs(const gllm_rope_cfg *c, size_t rot, float *inv_freq) {
    double lo = 0, hi = 0; /* YaRN's ramp: pairs below lo kept, above hi interpolated */
    if (c->yarn_factor > 0) {
        lo = fmax(0.0, floor(yarn_pair(c, rot, c->yarn_beta_fast)));
        hi = fmin((double)rot - 1, ceil(yarn_pair(c, rot, c->yarn_beta_slow)));
    }
    for (size_t i = 0; i < rot / 2; i++) {
        double f = pow((double)c->base, -2.0 * (double)i / (double)rot);
        if (c->factors) f /= c->factors[i];
        if (c->yarn_factor > 0) {
            const double kept = (1.0 - fmin(1.0, fmax(0.0, ((double)i - lo) / fmax(0.001, hi - lo)))) * c->yarn_ext_factor;
            f *= kept + (1.0 - kept) / c->yarn_factor;
        } else if (c->linear > 0 && c->linear != 1.0f) {
            f /= c->linear;
        }
        inv_freq[i] = (float)f;
    }
}

double gllm_rope_mscale(const gllm_rope_cfg *c) {
    const double yarn = c->yarn_factor > 0 && c->yarn_ext_factor != 0 ? 1.0 + 0.1 * log((double)c->yarn_factor) : 1.0;
    return (c->attn_factor > 0 ? c->attn_factor : 1.0) * yarn;
}

void gllm_rope_cos_sin(const float *inv_freq, size_t rot, int64_t pos, float *cs) {
    for (size_t i = 0; i < rot / 2; i++) {
        const double a = (double)pos * inv_freq[i]; /* double: positions up to 2^24 and beyond stay exact */
        cs[i] = (float)cos(a);
        cs[rot / 2 + i] = (float)sin(a);
    }
}
