/* Sampling on the GPU: one id per row of device logits, the CPU sampler's algorithm and
 * results (src/cpu/sample.h) in one kernel launch (gllm_sample_cuda, a block per row).
 * The distinct history tokens and their counts are found here, on the host, and the draw
 * gllm_rng_uniform(seed, step) too; everything else runs on the device. */
#ifndef GLLM_CUDA_SAMPLE_H
#define GLLM_CUDA_SAMPLE_H
#include "cpu/sample.h"
#include "cuda/runtime.h"

typedef struct {
    size_t vocab, max_rows, hist_cap;
    CUdeviceptr probs, cand;                        /* device scratch: [max_rows][vocab] floats, ints */
    CUdeviceptr hist_ids, hist_counts, out;         /* device: hist_cap, hist_cap, max_rows ints */
    int32_t *hist_ids_host, *hist_counts_host;      /* host staging for the distinct history */
} gllm_cuda_sampler;

/* the context is current (gllm_cuda_enter); every buffer is allocated here, none per call */
gllm_status gllm_cuda_sampler_init(gllm_cuda *c, gllm_cuda_sampler *s, size_t vocab, size_t max_rows, size_t max_history);
void gllm_cuda_sampler_free(gllm_cuda *c, gllm_cuda_sampler *s);

/* one id per row of device logits [rows][vocab] into out_ids (host); the same checks and
 * errors as gllm_sample_row: min_p above 1, a history longer than max_history, a history token
 * outside the vocabulary (when a penalty applies), a NaN logit, every logit -inf (the first
 * failing row is named). The same (cfg, history, step) gives every row the same draw. */
gllm_status gllm_cuda_sample(gllm_cuda *c, gllm_cuda_sampler *s, CUdeviceptr logits, size_t rows, const gllm_sampling *cfg,
                             const int32_t *history, size_t n_history, uint64_t step, int32_t *out_ids);
#endif
