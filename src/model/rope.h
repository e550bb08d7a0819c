/* RoPE policy: rotation frequencies (base, linear scaling, per-pair factors, YaRN) and the
 * per-token cos/sin table the rope kernels apply (positions need not be contiguous). */
#ifndef GLLM_MODEL_ROPE_H
#define GLLM_MODEL_ROPE_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    float base;           /* theta, e.g. 10000 or 500000 */
    float linear;         /* linear scaling factor (positions / factor); 1 = none */
    const float *factors; /* [rot/2] divisors of each pair's frequency (GGUF rope_freqs.weight, the
                             form Llama 3.1+ scaling takes in GGUF); NULL = none */
    /* YaRN (none when yarn_factor is 0): pairs that turn fewer than beta_slow times over the
     * original context are interpolated (frequency / factor), those turning more than beta_fast
     * times kept, a linear ramp between; ext_factor scales the ramp and adds (1 + 0.1 ln factor)
     * to the rotation's magnitude */
    float yarn_factor, yarn_orig_ctx, yarn_beta_fast, yarn_beta_slow, yarn_ext_factor;
    float attn_factor; /* the rotation's magnitude under any scaling (0: unset, 1) */
} gllm_rope_cfg;

/* inv_freq[i] = base^(-2i/rot) / factors[i], then / linear or YaRN's, for the rot/2 rotated pairs */
void gllm_rope_freqs(const gllm_rope_cfg *c, size_t rot, float *inv_freq);
/* the rotation's magnitude, attn_factor and YaRN's (cos and sin times it: q.k times its square) */
double gllm_rope_mscale(const gllm_rope_cfg *c);
/* cs[0 .. rot/2) = cos(pos * inv_freq), cs[rot/2 .. rot) = sin(...) */
void gllm_rope_cos_sin(const float *inv_freq, size_t rot, int64_t pos, float *cs);
#endif
