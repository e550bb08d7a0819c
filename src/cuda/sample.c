#include "cuda/sample.h"
#include <stdlib.h>
#include <string.h>
#include "core/error.h"

gllm_status gllm_cuda_sampler_init(gllm_cuda *c, gllm_cuda_sampler *s, size_t vocab, size_t max_rows, size_t max_history) {
    memset(s, 0, sizeof *s);
    if (!c || !vocab || vocab > INT32_MAX || !max_rows || max_rows > (size_t)INT32_MAX / 2 || max_history > INT32_MAX)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "CUDA sampler: vocabulary of %zu, %zu rows, history of %zu", vocab,
                         max_rows, max_history);
    s->vocab = vocab, s->max_rows = max_rows, s->hist_cap = max_history;
    const size_t h = max_history ? max_history : 1;
    s->hist_ids_host = malloc(h * sizeof(int32_t));
    s->hist_counts_host = malloc(h * sizeof(int32_t));
    gllm_status st = s->hist_ids_host && s->hist_counts_host
                         ? GLLM_OK
                         : gllm_fail(GLLM_E_OUT_OF_MEMORY, "CUDA sampler: no memory for a history of %zu", max_history);
    if (st == GLLM_OK) st = gllm_cuda_alloc(c, max_rows * vocab * sizeof(float), &s->probs);
    if (st == GLLM_OK) st = gllm_cuda_alloc(c, max_rows * vocab * sizeof(int32_t), &s->cand);
    if (st == GLLM_OK) st = gllm_cuda_alloc(c, h * sizeof(int32_t), &s->hist_ids);
    if (st == GLLM_OK) st = gllm_cuda_alloc(c, h * sizeof(int32_t), &s->hist_counts);
    if (st == GLLM_OK) st = gllm_cuda_alloc(c, max_rows * sizeof(int32_t), &s->out);
    if (st != GLLM_OK) gllm_cuda_sampler_free(c, s);
    return st;
}

void gllm_cuda_sampler_free(gllm_cuda *c, gllm_cuda_sampler *s) {
    gllm_cuda_free(c, s->probs), gllm_cuda_free(c, s->cand), gllm_cuda_free(c, s->hist_ids), gllm_cuda_free(c, s->hist_counts), gllm_cuda_free(c, s->out);
    free(s->hist_ids_host), free(s->hist_counts_host);
    memset(s, 0, sizeof *s);
}

static int cmp_i32(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
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
    /* penalties: the distinct history tokens with their counts (sorted, so in the CPU's order) */
    int nd = 0;
    if (n_history && (cfg->repetition_penalty != 1.0f || cfg->frequency_penalty != 0.0f || cfg->presence_penalty != 0.0f)) {
        int32_t *ids = s->hist_ids_host, *counts = s->hist_counts_host;
        memcpy(ids, history, n_history * sizeof(int32_t));
        qsort(ids, n_history, sizeof(int32_t), cmp_i32);
        for (size_t i = 0; i < n_history;) {
            const int32_t t = ids[i];
            int32_t n = 0;
            while (i < n_history && ids[i] == t) i++, n++;
            if (t < 0 || (size_t)t >= s->vocab)
                return gllm_fail(GLLM_E_INVALID_ARGUMENT, "sample: history token %d outside the vocabulary of %zu", t, s->vocab);
            ids[nd] = t, counts[nd++] = n; /* nd <= i: compacting in place */
        }
    }
    CUfunction f;
    gllm_status st = gllm_cuda_kernel(c, "gllm_sample_cuda", &f);
    if (st == GLLM_OK) st = gllm_cuda_upload(c, s->hist_ids, s->hist_ids_host, (size_t)nd * sizeof(int32_t));
    if (st == GLLM_OK) st = gllm_cuda_upload(c, s->hist_counts, s->hist_counts_host, (size_t)nd * sizeof(int32_t));
    if (st != GLLM_OK) return st;
    int n = (int)s->vocab, top_k = cfg->top_k;
    float temperature = cfg->temperature, top_p = cfg->top_p, min_p = cfg->min_p, rep = cfg->repetition_penalty,
          freq = cfg->frequency_penalty, pres = cfg->presence_penalty;
    double u = gllm_rng_uniform(cfg->seed, step);
    void *args[] = {&logits, &s->probs, &s->cand, &n, &s->hist_ids, &s->hist_counts, &nd, &temperature, &top_k, &top_p,
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
