/* RoPE policy: rotation frequencies (base, linear and Llama-3 scaling) and the
 * per-token cos/sin table the rope kernels apply (positions need not be contiguous). */
#ifndef GLLM_MODEL_ROPE_H
#define GLLM_MODEL_ROPE_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    float base;         /* theta, e.g. 10000 or 500000 */
    float linear;       /* linear scaling factor (positions / factor); 1 = none */
    float l3_factor;    /* Llama-3 scaling; 0 = none */
    float l3_low_freq;  /* low_freq_factor, e.g. 1 */
    float l3_high_freq; /* high_freq_factor, e.g. 4 */
    float l3_orig_ctx;  /* original_max_position_embeddings, e.g. 8192 */
} gllm_rope_cfg;

/* inv_freq[i] for the rot/2 rotated pairs */
void gllm_rope_freqs(const gllm_rope_cfg *c, size_t rot, float *inv_freq);
/* cs[0 .. rot/2) = cos(pos * inv_freq), cs[rot/2 .. rot) = sin(...) */
void gllm_rope_cos_sin(const float *inv_freq, size_t rot, int64_t pos, float *cs);
#endif
