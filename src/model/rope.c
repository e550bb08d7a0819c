#include "model/rope.h"
#include <math.h>

void gllm_rope_freqs(const gllm_rope_cfg *c, size_t rot, float *inv_freq) {
    const double two_pi = 6.283185307179586;
    for (size_t i = 0; i < rot / 2; i++) {
        double f = pow((double)c->base, -2.0 * (double)i / (double)rot);
        if (c->l3_factor > 0) { /* Llama 3: keep high frequencies, divide low ones, blend between */
            const double wavelen = two_pi / f, lo = c->l3_orig_ctx / c->l3_low_freq,
                         hi = c->l3_orig_ctx / c->l3_high_freq;
            if (wavelen > lo) {
                f /= c->l3_factor;
            } else if (wavelen >= hi) {
                const double smooth = (c->l3_orig_ctx / wavelen - c->l3_low_freq) / (c->l3_high_freq - c->l3_low_freq);
                f = (1.0 - smooth) * f / c->l3_factor + smooth * f;
            }
        }
        if (c->linear > 0 && c->linear != 1.0f) f /= c->linear;
        inv_freq[i] = (float)f;
    }
}

void gllm_rope_cos_sin(const float *inv_freq, size_t rot, int64_t pos, float *cs) {
    for (size_t i = 0; i < rot / 2; i++) {
        const double a = (double)pos * inv_freq[i]; /* double: positions up to 2^24 and beyond stay exact */
        cs[i] = (float)cos(a);
        cs[rot / 2 + i] = (float)sin(a);
    }
}
