/* Sampling on the GPU: one id per row of device logits, the CPU sampler's algorithm and
 * results (src/cpu/sample.h) in one kernel launch (gllm_sample_cuda, a block per row).
 * The history's token counts stay on the device between calls, each call moving only the
 * tokens where its history differs from the last one's (grown, or a window slid); the draw gllm_rng_uniform(seed, step)
 * is made on the host; everything else runs on the device. */
#ifndef GLLM_CUDA_SAMPLE_H
#define GLLM_CUDA_SAMPLE_H
#include "cpu/sample.h"
#include "cuda/runtime.h"

typedef struct {
    size_t vocab, max_rows, hist_cap;
    CUdeviceptr probs, cand;  /* device scratch: [max_rows][vocab] floats, ints */
    CUdeviceptr counts;       /* device: [vocab] ints, how often each token occurs in known */
    CUdeviceptr delta, out;   /* device: 2 hist_cap ints (tokens whose counts change), max_rows ints */
    int32_t *known;           /* host: the history counted, n_known tokens (hist_cap) */
    int32_t *delta_host;      /* host staging for delta */
    size_t n_known;
    int stale;                /* counts unknown: cleared before the next use */
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
