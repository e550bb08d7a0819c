#include "model/rope.h"
#include <math.h>

void gllm_rope_freqs(const gllm_rope_cfg *c, size_t rot, float *inv_freq) {
    for (size_t i = 0; i < rot / 2; i++) {
        double f = pow((double)c->base, -2.0 * (double)i / (double)rot);
        if (c->factors) f /= c->factors[i];
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
