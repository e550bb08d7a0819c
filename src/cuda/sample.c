#include "cuda/sample.h"
#include <stdlib.h>
#include <string.h>
#include "core/error.h"

gllm_status gllm_cuda_sampler_init(gllm_cuda *c, gllm_cuda_sampler *s, size_t vocab, size_t max_rows, size_t max_history) {
    memset(s, 0, sizeof *s);
    if (!c || !vocab || vocab > INT32_MAX || !max_rows || max_rows > (size_t)INT32_MAX / 2 || max_history > INT32_MAX / 2)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "CUDA sampler: vocabulary of %zu, %zu rows, history of %zu", vocab,
                         max_rows, max_history);
    s->vocab = vocab, s->max_rows = max_rows, s->hist_cap = max_history, s->stale = 1;
    const size_t h = max_history ? max_history : 1;
    s->known = malloc(h * sizeof(int32_t));
    s->delta_host = malloc(2 * h * sizeof(int32_t));
    gllm_status st = s->known && s->delta_host
                         ? GLLM_OK
                         : gllm_fail(GLLM_E_OUT_OF_MEMORY, "CUDA sampler: no memory for a history of %zu", max_history);
    if (st == GLLM_OK) st = gllm_cuda_alloc(c, max_rows * vocab * sizeof(float), &s->probs);
    if (st == GLLM_OK) st = gllm_cuda_alloc(c, max_rows * vocab * sizeof(int32_t), &s->cand);
    if (st == GLLM_OK) st = gllm_cuda_alloc(c, vocab * sizeof(int32_t), &s->counts);
    if (st == GLLM_OK) st = gllm_cuda_alloc(c, 2 * h * sizeof(int32_t), &s->delta);
    if (st == GLLM_OK) st = gllm_cuda_alloc(c, max_rows * sizeof(int32_t), &s->out);
    if (st != GLLM_OK) gllm_cuda_sampler_free(c, s);
    return st;
}

void gllm_cuda_sampler_free(gllm_cuda *c, gllm_cuda_sampler *s) {
    gllm_cuda_free(c, s->probs), gllm_cuda_free(c, s->cand), gllm_cuda_free(c, s->counts), gllm_cuda_free(c, s->delta);
    gllm_cuda_free(c, s->out);
    free(s->known), free(s->delta_host);
    memset(s, 0, sizeof *s);
}

/* s->counts made to count `history`, moving only the tokens where it differs from the history
 * counted before: a grown history (sharing its start), or a window slid by up to SLIDE tokens
 * (the counted one less its first few starts it). Either way, for a history grown by the last
 * sampled token, 4 bytes. Its new tokens are checked first; the error names the one the CPU
 * sampler meets first. */
#define SLIDE 16
static gllm_status count_history(gllm_cuda *c, gllm_cuda_sampler *s, const int32_t *history, size_t n) {
    if (s->stale) { /* counts unknown (new, or a failed update): start from none */
        gllm_status st = gllm_cuda_check(c, c->drv.cuMemsetD32Async(s->counts, 0, s->vocab, c->stream), "clearing token counts");
        if (st != GLLM_OK) return st;
        s->stale = 0, s->n_known = 0;
    }
    /* the update: counts less known[sub0, sub1), plus history[add0, n) */
    size_t p = 0; /* grown: the common start kept */
    while (p < n && p < s->n_known && history[p] == s->known[p]) p++;
    size_t sub0 = p, sub1 = s->n_known, add0 = p;
    for (size_t d = 1; d <= SLIDE && d <= s->n_known; d++) { /* slid by d */
        const size_t m = s->n_known - d;
        if (m <= n && d + (n - m) < (sub1 - sub0) + (n - add0) && !memcmp(s->known + d, history, m * sizeof(int32_t)))
            sub0 = 0, sub1 = d, add0 = m;
    }
    int64_t neg = 0, big = INT64_MAX; /* the CPU meets the distinct tokens in ascending order */
    for (size_t i = add0; i < n; i++) {
        const int64_t t = history[i];
        if (t < neg) neg = t;
        else if (t >= (int64_t)s->vocab && t < big) big = t;
    }
    if (neg < 0 || big != INT64_MAX)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "sample: history token %lld outside the vocabulary of %zu",
                         (long long)(neg < 0 ? neg : big), s->vocab);
    const size_t n_sub = sub1 - sub0, n_delta = n_sub + (n - add0);
    if (!n_delta) return GLLM_OK;
    memcpy(s->delta_host, s->known + sub0, n_sub * sizeof(int32_t));
    memcpy(s->delta_host + n_sub, history + add0, (n - add0) * sizeof(int32_t));
    s->stale = 1; /* until the update is enqueued whole */
    CUfunction f;
    gllm_status st = gllm_cuda_kernel(c, "gllm_count_tokens_cuda", &f);
    if (st == GLLM_OK) st = gllm_cuda_upload(c, s->delta, s->delta_host, n_delta * sizeof(int32_t));
    int sub = (int)n_sub, all = (int)n_delta;
    void *args[] = {&s->delta, &sub, &all, &s->counts};
    if (st == GLLM_OK) st = gllm_cuda_launch(c, f, (unsigned)((n_delta + 255) / 256), 1, 1, 256, 0, args);
    if (st != GLLM_OK) return st;
    memcpy(s->known, history, n * sizeof(int32_t));
    s->n_known = n, s->stale = 0;
    return GLLM_OK;
}

gllm_status gllm_cuda_sample(gllm_cuda *c, gllm_cuda_sampler *s, CUdeviceptr logits, size_t rows, const gllm_sampling *cfg,
                             const int32_t *history, size_t n_history, uint64_t step, int32_t *out_ids) {
    if (!c || !s || !logits || !cfg || !out_ids || (n_history && !history))
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "sample: NULL argument");
    if (rows > s->max_rows)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "sample: %zu rows, CUDA sampler sized for %zu", rows, s->max_rows);
    if (n_history > s->hist_cap)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "sample: history of %zu tokens, sampler sized for %zu", n_history,
                         s->hist_cap);
    if (!(cfg->min_p <= 1.0f)) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "sample: min_p %g above 1 keeps no token", cfg->min_p);
    if (!rows) return GLLM_OK;
    CUdeviceptr counts = 0; /* none: no penalty applies */
    gllm_status st = GLLM_OK;
    if (n_history && (cfg->repetition_penalty != 1.0f || cfg->frequency_penalty != 0.0f || cfg->presence_penalty != 0.0f)) {
        if ((st = count_history(c, s, history, n_history)) != GLLM_OK) return st;
        counts = s->counts;
    }
    CUfunction f;
    if ((st = gllm_cuda_kernel(c, "gllm_sample_cuda", &f)) != GLLM_OK) return st;
    int n = (int)s->vocab, top_k = cfg->top_k;
    float temperature = cfg->temperature, top_p = cfg->top_p, min_p = cfg->min_p, rep = cfg->repetition_penalty,
          freq = cfg->frequency_penalty, pres = cfg->presence_penalty;
    double u = gllm_rng_uniform(cfg->seed, step);
    void *args[] = {&logits, &s->probs, &s->cand, &n, &counts, &temperature, &top_k, &top_p,
                    &min_p, &rep, &freq, &pres, &u, &s->out};
    st = gllm_cuda_launch(c, f, (unsigned)rows, 1, 1, 1024, 0, args);
    if (st == GLLM_OK) st = gllm_cuda_download(c, out_ids, s->out, rows * sizeof(int32_t));
    if (st != GLLM_OK) return st;
    for (size_t r = 0; r < rows; r++) /* the first failing row, as the CPU meets them */
        if (out_ids[r] < 0)
            return gllm_fail(GLLM_E_INVALID_ARGUMENT, out_ids[r] == -1 ? "sample: row %zu has a NaN logit"
                                                                       : "sample: every logit of row %zu is -inf", r);
    return GLLM_OK;
}
