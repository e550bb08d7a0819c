/* Sampling one token from a logits row (CPU backend).
 *
 * Order (as Hugging Face transformers): repetition / frequency / presence
 * penalties over the token history, temperature, softmax, top-k, top-p (over
 * what top-k kept), min-p (relative to the most likely token), then one draw.
 * temperature <= 0 is greedy (the first of the largest logits). The draw comes
 * from a counter-based generator: the same (seed, step) gives the same token.
 * Selection never sorts the vocabulary: a histogram of the probabilities over
 * 2048 monotone buckets finds the few candidates to sort. */
#ifndef GLLM_CPU_SAMPLE_H
#define GLLM_CPU_SAMPLE_H
#include <stddef.h>
#include <stdint.h>
#include "gllm_kernels.h"

/* gllm_sampling: the public configuration (gllm_kernels.h) */

typedef struct {
    size_t vocab;
    float *probs;      /* vocab */
    int32_t *cand;     /* vocab */
    int32_t *hist;     /* a sorted copy of the history */
    size_t hist_cap;
} gllm_sampler;

gllm_status gllm_sampler_init(gllm_sampler *s, size_t vocab, size_t max_history);
void gllm_sampler_free(gllm_sampler *s);

/* a uniform double in [0, 1) from (seed, step) */
double gllm_rng_uniform(uint64_t seed, uint64_t step);

/* NaN in logits, every logit -inf, or a token id in the history outside the vocabulary -> error */
gllm_status gllm_sample_row(gllm_sampler *s, const float *logits, const gllm_sampling *cfg,
                            const int32_t *history, size_t n_history, uint64_t step, int32_t *out);
#endif
