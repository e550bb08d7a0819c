#include "cpu/sample.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/dispatch.h"
#include "core/error.h"

#define BUCKETS 2048

gllm_status gllm_sampler_init(gllm_sampler *s, size_t vocab, size_t max_history) {
    memset(s, 0, sizeof *s);
    if (!vocab || vocab > INT32_MAX) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "sampler: vocabulary of %zu", vocab);
    s->vocab = vocab, s->hist_cap = max_history;
    s->probs = malloc(vocab * sizeof(float));
    s->cand = malloc(vocab * sizeof(int32_t));
    s->hist = malloc((max_history ? max_history : 1) * sizeof(int32_t));
    if (!s->probs || !s->cand || !s->hist) {
        gllm_sampler_free(s);
        return gllm_fail(GLLM_E_OUT_OF_MEMORY, "sampler: no memory for a %zu-token vocabulary", vocab);
    }
    return GLLM_OK;
}

void gllm_sampler_free(gllm_sampler *s) {
    free(s->probs), free(s->cand), free(s->hist);
    memset(s, 0, sizeof *s);
}

double gllm_rng_uniform(uint64_t seed, uint64_t step) {
    uint64_t z = seed ^ (step * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull);
    for (int round = 0; round < 2; round++) { /* two splitmix64 finalisers */
        z += 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
    }
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static int cmp_i32(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static _Thread_local const float *sort_probs;
static int cmp_desc(const void *a, const void *b) { /* by probability, then by id */
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    const float px = sort_probs[x], py = sort_probs[y];
    if (px != py) return px > py ? -1 : 1;
    return (x > y) - (x < y);
}

/* monotone bucket of a probability in [0, 1]: exponent and 3 mantissa bits */
static inline unsigned bucket(float p) {
    uint32_t u;
    memcpy(&u, &p, 4);
    return u >> 20 < BUCKETS ? u >> 20 : BUCKETS - 1;
}

gllm_status gllm_sample_row(gllm_sampler *s, const float *logits, const gllm_sampling *cfg,
                            const int32_t *history, size_t n_history, uint64_t step, int32_t *out) {
    gllm_status st = gllm_ensure_init();
    if (st != GLLM_OK) return st;
    if (!s || !logits || !cfg || !out || (n_history && !history))
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "sample: NULL argument");
    if (n_history > s->hist_cap)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "sample: history of %zu tokens, sampler sized for %zu", n_history,
                         s->hist_cap);
    if (!(cfg->min_p <= 1.0f)) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "sample: min_p %g above 1 keeps no token", cfg->min_p);
    const size_t n = s->vocab;
    const gllm_kernel_table *kt = gllm_kernels();
    float *p = s->probs;
    for (size_t i = 0; i < n; i++)
        if (isnan(logits[i])) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "sample: logit %zu is NaN", i);
    memcpy(p, logits, n * sizeof(float));
    /* penalties: each distinct history token once, with its count */
    if (n_history && (cfg->repetition_penalty != 1.0f || cfg->frequency_penalty != 0.0f || cfg->presence_penalty != 0.0f)) {
        memcpy(s->hist, history, n_history * sizeof(int32_t));
        qsort(s->hist, n_history, sizeof(int32_t), cmp_i32);
        for (size_t i = 0; i < n_history;) {
            const int32_t t = s->hist[i];
            size_t c = 0;
            while (i < n_history && s->hist[i] == t) i++, c++;
            if (t < 0 || (size_t)t >= n)
                return gllm_fail(GLLM_E_INVALID_ARGUMENT, "sample: history token %d outside the vocabulary of %zu", t, n);
            float l = p[t];
            if (cfg->repetition_penalty > 0 && cfg->repetition_penalty != 1.0f)
                l = l > 0 ? l / cfg->repetition_penalty : l * cfg->repetition_penalty;
            p[t] = l - cfg->frequency_penalty * (float)c - cfg->presence_penalty;
        }
    }
    const size_t best = kt->argmax(p, n);
    if (p[best] == -INFINITY) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "sample: every logit is -inf");
    if (p[best] == INFINITY) /* a logit past the float range (or a penalty put it there): the largest float, so that */
        for (size_t i = 0; i < n; i++) p[i] = p[i] < FLT_MAX ? p[i] : FLT_MAX; /* the softmax gives it the mass, not NaN */
    if (cfg->temperature <= 0.0f || cfg->top_k == 1) {
        *out = (int32_t)best;
        return GLLM_OK;
    }
    if (cfg->temperature != 1.0f) { /* (x - max) / T: at most 0, so a cold T cannot overflow to inf - inf */
        const float inv = 1.0f / cfg->temperature, mx = p[best];
        for (size_t i = 0; i < n; i++) p[i] = (p[i] - mx) * inv;
    }
    kt->softmax(p, p, n);
    const double u = gllm_rng_uniform(cfg->seed, step);
    const float pmin = cfg->min_p > 0 ? cfg->min_p * p[best] : 0.0f;
    size_t nc = 0;
    if (cfg->top_k <= 0 && cfg->top_p >= 1.0f) { /* no ranking needed: the survivors in id order */
        for (size_t i = 0; i < n; i++)
            if (p[i] > 0 && p[i] >= pmin) s->cand[nc++] = (int32_t)i;
    } else {
        /* The buckets above the boundary bucket are kept whole (their order does not matter
         * for the draw); only the boundary bucket is sorted, to cut it exactly. */
        static _Thread_local uint32_t count[BUCKETS];
        static _Thread_local double mass[BUCKETS];
        memset(count, 0, sizeof count), memset(mass, 0, sizeof mass);
        for (size_t i = 0; i < n; i++)
            if (p[i] > 0) count[bucket(p[i])]++, mass[bucket(p[i])] += p[i];
        double total = 0;
        for (int b = 0; b < BUCKETS; b++) total += mass[b];
        const size_t k = cfg->top_k > 0 ? (size_t)cfg->top_k : n;
        const double want = cfg->top_k > 0 ? 2.0 * total : cfg->top_p * total;
        size_t above = 0;
        double mass_above = 0;
        int b = BUCKETS - 1;
        for (; b > 0; b--) {
            if (above + count[b] >= k || mass_above + mass[b] >= want) break;
            above += count[b], mass_above += mass[b];
        }
        size_t nb = 0; /* the boundary bucket's tokens go after the kept ones */
        for (size_t i = 0; i < n; i++) {
            if (!(p[i] > 0)) continue;
            const int bi = (int)bucket(p[i]);
            if (bi > b) s->cand[nc++] = (int32_t)i;
            else if (bi == b) s->cand[n - 1 - nb++] = (int32_t)i;
        }
        int32_t *edge = s->cand + n - nb;
        sort_probs = p;
        qsort(edge, nb, sizeof(int32_t), cmp_desc);
        if (cfg->top_k > 0) { /* top-k: complete the set from the boundary, rank it, then top-p */
            for (size_t i = 0; i < nb && nc < k; i++) s->cand[nc++] = edge[i];
            qsort(s->cand, nc, sizeof(int32_t), cmp_desc);
            if (cfg->top_p < 1.0f) {
                double tot = 0, acc = 0;
                for (size_t i = 0; i < nc; i++) tot += p[s->cand[i]];
                size_t keep = 0;
                while (keep < nc) {
                    acc += p[s->cand[keep++]];
                    if (acc >= cfg->top_p * tot) break;
                }
                nc = keep;
            }
        } else { /* top-p: the boundary's most likely tokens until the mass is reached */
            double acc = mass_above;
            for (size_t i = 0; i < nb && (nc == 0 || acc < want); i++) acc += p[edge[i]], s->cand[nc++] = edge[i];
        }
        size_t kept = 0; /* min-p: the most likely token always passes */
        for (size_t i = 0; i < nc; i++)
            if (p[s->cand[i]] >= pmin) s->cand[kept++] = s->cand[i];
        nc = kept;
    }
    double tot = 0, acc = 0;
    for (size_t i = 0; i < nc; i++) tot += p[s->cand[i]];
    for (size_t i = 0; i < nc; i++)
        if ((acc += p[s->cand[i]]) > u * tot) {
            *out = s->cand[i];
            return GLLM_OK;
        }
    *out = s->cand[nc ? nc - 1 : 0];
    return GLLM_OK;
}
