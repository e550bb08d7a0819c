/* Sampling on the GPU against the CPU sampler (the oracle): greedy exactly; sampled ids the
 * same in at least 99% of draws (softmax sums differ by ulps) and every one allowed by the
 * CPU's rules; the same errors. Skipped, saying why, without a GPU. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cpu/sample.h"
#include "cuda/sample.h"

#define VOCAB 49157
#define ROWS 7
#define DRAWS 200 /* per row and configuration; an eighth on the CUDA emulator, which runs a block's threads one by one */

static uint64_t rng_state;
static double rng_unit(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull, z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double)((z ^ (z >> 31)) >> 11) * (1.0 / 9007199254740992.0);
}
static float rng_normal(void) { return (float)(sqrt(-2.0 * log(1.0 - rng_unit())) * cos(6.283185307179586 * rng_unit())); }

/* rows of different shapes: spread, peaked, ties, -inf entries, flat (boundary buckets over
 * the shared-memory sort's capacity), a few equal maxima */
static void make_logits(float *l) {
    rng_state = 12345;
    for (int r = 0; r < ROWS; r++) {
        float *x = l + (size_t)r * VOCAB;
        for (int i = 0; i < VOCAB; i++) {
            const float z = rng_normal();
            switch (r) {
            case 0: x[i] = 3.0f * z; break;
            case 1: x[i] = 12.0f * z; break;
            case 2: x[i] = roundf(2.0f * z) * 0.5f; break; /* many ties, the maximum tied too */
            case 3: x[i] = rng_unit() < 0.3 ? -INFINITY : 2.0f * z; break;
            case 4: x[i] = 0.05f * z; break;            /* nearly flat */
            case 5: x[i] = 1.0f; break;                 /* flat: every token ties */
            default: x[i] = i % 1000 == 7 ? 9.0f : z;   /* 50 equal maxima */
            }
        }
    }
}

static gllm_cuda gpu;
static gllm_cuda_sampler gs;
static gllm_sampler cs;
static float *logits;
static CUdeviceptr dlogits;
static int draws;

static void open_gpu(void) {
    if (gllm_cuda_open(&gpu, 0) != GLLM_OK) cr_skip_test("no GPU: %s", gllm_last_error());
    cr_assert_eq(gllm_cuda_enter(&gpu), GLLM_OK, "%s", gllm_last_error());
    draws = strstr(gpu.name, "emulator") ? DRAWS / 8 : DRAWS;
    cr_assert_eq(gllm_cuda_sampler_init(&gpu, &gs, VOCAB, ROWS, 64), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_sampler_init(&cs, VOCAB, 64), GLLM_OK);
    logits = malloc((size_t)ROWS * VOCAB * sizeof(float));
    make_logits(logits);
    cr_assert_eq(gllm_cuda_alloc(&gpu, (size_t)ROWS * VOCAB * sizeof(float), &dlogits), GLLM_OK);
    cr_assert_eq(gllm_cuda_upload(&gpu, dlogits, logits, (size_t)ROWS * VOCAB * sizeof(float)), GLLM_OK);
    cr_assert_eq(gllm_cuda_sync(&gpu), GLLM_OK);
}

static void close_gpu(void) {
    gllm_cuda_free(&gpu, dlogits);
    gllm_cuda_sampler_free(&gpu, &gs);
    gllm_sampler_free(&cs);
    free(logits);
    gllm_cuda_leave(&gpu);
    gllm_cuda_close(&gpu);
}

static int cmp_desc(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* the CPU's probabilities sorted descending and their prefix masses: rank and mass above a token */
typedef struct {
    float *sorted;
    double *prefix; /* prefix[i]: mass of sorted[0..i) */
} ranked;

static size_t count_above(const ranked *rk, float p) { /* tokens clearly more likely than p */
    size_t lo = 0, hi = VOCAB;
    const float t = p * (1.0f + 1e-5f);
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (rk->sorted[mid] > t) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* g is allowed by the CPU's rules for cfg over probabilities p */
static void check_allowed(const gllm_sampling *cfg, const float *p, const ranked *rk, int32_t g, int row) {
    cr_assert(g >= 0 && g < VOCAB, "row %d: id %d", row, g);
    cr_assert(p[g] > 0, "row %d: token %d has no probability", row, g);
    const size_t above = count_above(rk, p[g]);
    if (cfg->min_p > 0) cr_assert(p[g] >= cfg->min_p * rk->sorted[0] * (1 - 1e-5f), "row %d: token %d under min-p", row, g);
    if (cfg->top_k > 0) cr_assert(above < (size_t)cfg->top_k, "row %d: token %d ranks %zu, top-k %d", row, g, above, cfg->top_k);
    if (cfg->top_p < 1) {
        const size_t k = cfg->top_k > 0 && (size_t)cfg->top_k < VOCAB ? (size_t)cfg->top_k : VOCAB;
        cr_assert(rk->prefix[above] < cfg->top_p * rk->prefix[k] + 1e-5, "row %d: token %d beyond top-p (%g above)", row, g,
                  rk->prefix[above]);
    }
}

static void compare(gllm_sampling cfg, const int32_t *history, size_t n_history) {
    const int greedy = cfg.temperature <= 0 || cfg.top_k == 1;
    ranked rk[ROWS];
    float *probs = malloc((size_t)ROWS * VOCAB * sizeof(float));
    for (int r = 0; r < ROWS; r++) rk[r].sorted = NULL;
    int mismatches = 0;
    const uint64_t seed0 = cfg.seed;
    for (int d = 0; d < draws; d++) {
        int32_t gpu_ids[ROWS];
        const uint64_t step = 3 * (uint64_t)d + 1;
        cfg.seed = seed0 + (uint64_t)d * 0x1000193u;
        cr_assert_eq(gllm_cuda_sample(&gpu, &gs, dlogits, ROWS, &cfg, history, n_history, step, gpu_ids), GLLM_OK, "%s",
                     gllm_last_error());
        for (int r = 0; r < ROWS; r++) {
            int32_t cpu_id;
            cr_assert_eq(gllm_sample_row(&cs, logits + (size_t)r * VOCAB, &cfg, history, n_history, step, &cpu_id), GLLM_OK);
            if (greedy) {
                cr_assert_eq(gpu_ids[r], cpu_id, "greedy row %d: GPU %d, CPU %d", r, gpu_ids[r], cpu_id);
                continue;
            }
            if (!rk[r].sorted) { /* the CPU's probabilities: the same for every draw */
                float *p = probs + (size_t)r * VOCAB;
                memcpy(p, cs.probs, VOCAB * sizeof(float));
                rk[r].sorted = malloc(VOCAB * sizeof(float));
                rk[r].prefix = malloc((VOCAB + 1) * sizeof(double));
                memcpy(rk[r].sorted, p, VOCAB * sizeof(float));
                qsort(rk[r].sorted, VOCAB, sizeof(float), cmp_desc);
                rk[r].prefix[0] = 0;
                for (int i = 0; i < VOCAB; i++) rk[r].prefix[i + 1] = rk[r].prefix[i] + (rk[r].sorted[i] > 0 ? rk[r].sorted[i] : 0);
            }
            mismatches += gpu_ids[r] != cpu_id;
            check_allowed(&cfg, probs + (size_t)r * VOCAB, &rk[r], gpu_ids[r], r);
        }
    }
    if (!greedy) cr_log_info("T=%g k=%d p=%g min_p=%g: %d of %d draws differ from the CPU", cfg.temperature, cfg.top_k,
                             cfg.top_p, cfg.min_p, mismatches, draws * ROWS);
    cr_assert(mismatches * 100 <= draws * ROWS, "%d of %d draws differ from the CPU", mismatches, draws * ROWS);
    for (int r = 0; r < ROWS; r++)
        if (rk[r].sorted) free(rk[r].sorted), free(rk[r].prefix);
    free(probs);
}

static gllm_sampling cfg_of(float temperature, int top_k, float top_p, float min_p, uint64_t seed) {
    return (gllm_sampling){.temperature = temperature, .top_k = top_k, .top_p = top_p, .min_p = min_p,
                           .repetition_penalty = 1.0f, .seed = seed};
}
static gllm_sampling penalised(gllm_sampling c, float rep, float freq, float pres) {
    c.repetition_penalty = rep, c.frequency_penalty = freq, c.presence_penalty = pres;
    return c;
}

TestSuite(cuda_sample, .init = open_gpu, .fini = close_gpu);

Test(cuda_sample, greedy) {
    compare(cfg_of(0.0f, 0, 1.0f, 0.0f, 0), NULL, 0);
    compare(cfg_of(0.8f, 1, 1.0f, 0.0f, 0), NULL, 0);
}
Test(cuda_sample, temperature) { compare(cfg_of(0.7f, 0, 1.0f, 0.0f, 1), NULL, 0); }
Test(cuda_sample, top_k) {
    compare(cfg_of(1.0f, 40, 1.0f, 0.0f, 2), NULL, 0);
    compare(cfg_of(1.0f, 5000, 1.0f, 0.0f, 3), NULL, 0); /* over the shared-memory sort's capacity */
}
Test(cuda_sample, top_p) {
    compare(cfg_of(1.0f, 0, 0.9f, 0.0f, 4), NULL, 0);
    compare(cfg_of(0.5f, 0, 0.5f, 0.0f, 5), NULL, 0);
}
Test(cuda_sample, min_p) { compare(cfg_of(1.0f, 0, 1.0f, 0.05f, 6), NULL, 0); }
Test(cuda_sample, combined) {
    compare(cfg_of(0.9f, 40, 0.9f, 0.05f, 7), NULL, 0);
    compare(cfg_of(1.2f, 3000, 0.95f, 0.01f, 8), NULL, 0);
}
Test(cuda_sample, penalties) {
    int32_t h[48];
    for (int i = 0; i < 48; i++) h[i] = (int32_t)((i * 7919u) % 97u * 503u % VOCAB); /* repeats */
    compare(penalised(cfg_of(1.0f, 0, 1.0f, 0.0f, 9), 1.3f, 0.4f, 0.6f), h, 48);
    compare(penalised(cfg_of(0.0f, 0, 1.0f, 0.0f, 0), 1.3f, 0.4f, 0.6f), h, 48);
    compare(penalised(cfg_of(1.0f, 50, 0.9f, 0.0f, 10), 0.8f, -0.3f, 0.0f), h, 48);
}

/* a penalty past the float range (a positive logit / 1e-39 = +inf): every row where the token's
 * logit is positive draws it, as the CPU does (an inf in the softmax would draw anywhere) */
Test(cuda_sample, penalty_past_the_float_range) {
    int32_t t = 0;
    for (int i = 1; i < VOCAB; i++) t = logits[i] > logits[t] ? i : t; /* row 0's likeliest */
    const gllm_sampling cfg = penalised(cfg_of(1.0f, 0, 1.0f, 0.0f, 11), 1e-39f, 0.0f, 0.0f);
    for (uint64_t step = 0; step < 4; step++) {
        int32_t ids[ROWS];
        cr_assert_eq(gllm_cuda_sample(&gpu, &gs, dlogits, ROWS, &cfg, &t, 1, step, ids), GLLM_OK, "%s", gllm_last_error());
        for (int r = 0; r < ROWS; r++)
            if (logits[(size_t)r * VOCAB + t] > 0) cr_assert_eq(ids[r], t, "step %d, row %d: token %d", (int)step, r, ids[r]);
    }
}

/* the counts kept on the device follow the history from call to call: grown by a token, the
 * same, shorter, different, empty, a call refused, grown again, a window sliding. Greedy with strong penalties
 * on row 0's likeliest tokens, so every count changes the answer */
Test(cuda_sample, history_changes) {
    int32_t top[12]; /* row 0's likeliest tokens, best first */
    for (int k = 0; k < 12; k++) {
        int best = -1;
        for (int i = 0; i < VOCAB; i++) {
            int taken = 0;
            for (int j = 0; j < k; j++) taken |= top[j] == i;
            if (!taken && (best < 0 || logits[i] > logits[best])) best = i;
        }
        top[k] = best;
    }
    int32_t h[40];
    rng_state = 99;
    for (int i = 0; i < 40; i++) h[i] = top[(int)(rng_unit() * 12)];
    int32_t other[40];
    for (int i = 0; i < 40; i++) other[i] = top[(i * 5 + 3) % 12];
    const int32_t bad[3] = {top[0], VOCAB + 3, top[1]};
    const struct { const int32_t *h; size_t n; } calls[] = {
        {h, 1}, {h, 2}, {h, 3}, {h, 3}, {h, 20}, {h, 21}, {h, 7}, {other, 40}, {other, 12}, {h, 0}, {bad, 3}, {h, 40},
        {other, 1}, {h, 40}, {h, 16}, {h + 1, 16}, {h + 2, 16}, {h + 5, 16}, {h + 6, 20}, {h + 4, 8}, /* a window sliding */
        {h + 24, 16}, {h + 30, 10},
    };
    const gllm_sampling cfg = penalised(cfg_of(0.0f, 0, 1.0f, 0.0f, 0), 1.5f, 0.9f, 0.3f);
    for (size_t c = 0; c < sizeof calls / sizeof calls[0]; c++) {
        int32_t gpu_ids[ROWS], cpu_id;
        const gllm_status want = calls[c].h == bad ? GLLM_E_INVALID_ARGUMENT : GLLM_OK;
        cr_assert_eq(gllm_cuda_sample(&gpu, &gs, dlogits, ROWS, &cfg, calls[c].h, calls[c].n, c, gpu_ids), want,
                     "call %zu: %s", c, gllm_last_error());
        if (want != GLLM_OK) continue;
        for (int r = 0; r < ROWS; r++) {
            cr_assert_eq(gllm_sample_row(&cs, logits + (size_t)r * VOCAB, &cfg, calls[c].h, calls[c].n, c, &cpu_id), GLLM_OK);
            cr_assert_eq(gpu_ids[r], cpu_id, "call %zu (%zu tokens), row %d: GPU %d, CPU %d", c, calls[c].n, r, gpu_ids[r],
                         cpu_id);
        }
    }
}

Test(cuda_sample, reproducible) {
    const gllm_sampling cfg = cfg_of(1.0f, 0, 0.9f, 0.0f, 11);
    int32_t a[ROWS], b[ROWS];
    for (uint64_t step = 0; step < 20; step++) {
        cr_assert_eq(gllm_cuda_sample(&gpu, &gs, dlogits, ROWS, &cfg, NULL, 0, step, a), GLLM_OK);
        cr_assert_eq(gllm_cuda_sample(&gpu, &gs, dlogits, ROWS, &cfg, NULL, 0, step, b), GLLM_OK);
        cr_assert_arr_eq(a, b, sizeof a);
    }
}

Test(cuda_sample, errors) {
    const gllm_sampling cfg = cfg_of(1.0f, 0, 1.0f, 0.0f, 12);
    int32_t ids[ROWS];
    float *bad = malloc(2 * VOCAB * sizeof(float));
    CUdeviceptr dbad;
    cr_assert_eq(gllm_cuda_alloc(&gpu, 2 * VOCAB * sizeof(float), &dbad), GLLM_OK);
    memcpy(bad, logits, 2 * VOCAB * sizeof(float));
    bad[VOCAB + 777] = NAN; /* row 1 */
    gllm_cuda_upload(&gpu, dbad, bad, 2 * VOCAB * sizeof(float));
    cr_assert_eq(gllm_cuda_sample(&gpu, &gs, dbad, 2, &cfg, NULL, 0, 0, ids), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "row 1") && strstr(gllm_last_error(), "NaN"), "%s", gllm_last_error());
    cr_assert_eq(gllm_sample_row(&cs, bad + VOCAB, &cfg, NULL, 0, 0, ids), GLLM_E_INVALID_ARGUMENT);
    for (int i = 0; i < VOCAB; i++) bad[i] = -INFINITY; /* row 0 */
    gllm_cuda_upload(&gpu, dbad, bad, 2 * VOCAB * sizeof(float));
    cr_assert_eq(gllm_cuda_sample(&gpu, &gs, dbad, 2, &cfg, NULL, 0, 0, ids), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "-inf"), "%s", gllm_last_error());
    cr_assert_eq(gllm_sample_row(&cs, bad, &cfg, NULL, 0, 0, ids), GLLM_E_INVALID_ARGUMENT);
    const gllm_sampling greedy = cfg_of(0.0f, 0, 1.0f, 0.0f, 0);
    cr_assert_eq(gllm_cuda_sample(&gpu, &gs, dbad, 1, &greedy, NULL, 0, 0, ids), GLLM_E_INVALID_ARGUMENT, "-inf even when greedy");
    gllm_cuda_sync(&gpu);
    gllm_cuda_free(&gpu, dbad);
    free(bad);

    const gllm_sampling minp = cfg_of(1.0f, 0, 1.0f, 1.5f, 0);
    cr_assert_eq(gllm_cuda_sample(&gpu, &gs, dlogits, 1, &minp, NULL, 0, 0, ids), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_sample_row(&cs, logits, &minp, NULL, 0, 0, ids), GLLM_E_INVALID_ARGUMENT);
    const gllm_sampling pen = penalised(cfg_of(1.0f, 0, 1.0f, 0.0f, 0), 1.2f, 0.0f, 0.0f);
    const int32_t out_of_range[3] = {5, VOCAB, 9}, negative[2] = {-1, 3};
    cr_assert_eq(gllm_cuda_sample(&gpu, &gs, dlogits, 1, &pen, out_of_range, 3, 0, ids), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "outside the vocabulary"), "%s", gllm_last_error());
    cr_assert_eq(gllm_sample_row(&cs, logits, &pen, out_of_range, 3, 0, ids), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_cuda_sample(&gpu, &gs, dlogits, 1, &pen, negative, 2, 0, ids), GLLM_E_INVALID_ARGUMENT);
    int32_t long_history[65] = {0};
    cr_assert_eq(gllm_cuda_sample(&gpu, &gs, dlogits, 1, &cfg, long_history, 65, 0, ids), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_cuda_sample(&gpu, &gs, dlogits, ROWS + 1, &cfg, NULL, 0, 0, ids), GLLM_E_INVALID_ARGUMENT);
    /* and the sampler still works afterwards */
    cr_assert_eq(gllm_cuda_sample(&gpu, &gs, dlogits, ROWS, &cfg, NULL, 0, 0, ids), GLLM_OK, "%s", gllm_last_error());
}
