/* Sampling: distributions (chi-square over seeded draws), determinism, edge cases. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cpu/sample.h"

static gllm_sampler sampler;
static void setup(void) { cr_assert_eq(gllm_sampler_init(&sampler, 8, 16), GLLM_OK); }
static void teardown(void) { gllm_sampler_free(&sampler); }

static const float logits[8] = {2.0f, 1.0f, 0.5f, 3.0f, -1.0f, 0.0f, 2.5f, -INFINITY};

/* expected probabilities after temperature, top-k, top-p, min-p (as the header orders them) */
static void expected(const gllm_sampling *c, double *q) {
    double p[8], mx = -INFINITY, z = 0;
    for (int i = 0; i < 8; i++) mx = fmax(mx, logits[i] / c->temperature);
    for (int i = 0; i < 8; i++) z += p[i] = exp(logits[i] / c->temperature - mx);
    int order[8];
    for (int i = 0; i < 8; i++) p[i] /= z, order[i] = i;
    for (int i = 0; i < 8; i++) /* descending by probability */
        for (int j = i + 1; j < 8; j++)
            if (p[order[j]] > p[order[i]]) { int t = order[i]; order[i] = order[j], order[j] = t; }
    int keep = 8;
    while (keep > 0 && p[order[keep - 1]] == 0) keep--;
    if (c->top_k > 0 && c->top_k < keep) keep = c->top_k;
    if (c->top_p < 1) {
        double tot = 0, acc = 0;
        for (int i = 0; i < keep; i++) tot += p[order[i]];
        int k = 0;
        while (k < keep) { acc += p[order[k++]]; if (acc >= c->top_p * tot) break; }
        keep = k;
    }
    while (keep > 1 && p[order[keep - 1]] < c->min_p * p[order[0]]) keep--;
    double tot = 0;
    memset(q, 0, 8 * sizeof(double));
    for (int i = 0; i < keep; i++) tot += p[order[i]];
    for (int i = 0; i < keep; i++) q[order[i]] = p[order[i]] / tot;
}

static void chi_square(gllm_sampling c) {
    enum { N = 40000 };
    double q[8], x2 = 0;
    int hist[8] = {0}, df = -1;
    expected(&c, q);
    for (uint64_t step = 0; step < N; step++) {
        int32_t t;
        cr_assert_eq(gllm_sample_row(&sampler, logits, &c, NULL, 0, step, &t), GLLM_OK, "%s", gllm_last_error());
        cr_assert(t >= 0 && t < 8);
        hist[t]++;
    }
    for (int i = 0; i < 8; i++) {
        if (q[i] == 0) {
            cr_assert_eq(hist[i], 0, "token %d drawn %d times but filtered out", i, hist[i]);
            continue;
        }
        df++;
        x2 += (hist[i] - N * q[i]) * (hist[i] - N * q[i]) / (N * q[i]);
    }
    static const double crit[] = {10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32}; /* p = 0.001 */
    if (df > 0) cr_assert(x2 < crit[df - 1], "chi-square %.2f with %d degrees of freedom", x2, df);
}

TestSuite(sample, .init = setup, .fini = teardown);

Test(sample, temperature) { chi_square((gllm_sampling){.temperature = 0.7f, .top_p = 1, .repetition_penalty = 1, .seed = 1}); }
Test(sample, top_k) { chi_square((gllm_sampling){.temperature = 1.3f, .top_k = 3, .top_p = 1, .repetition_penalty = 1, .seed = 2}); }
Test(sample, top_p) { chi_square((gllm_sampling){.temperature = 1.0f, .top_p = 0.8f, .repetition_penalty = 1, .seed = 3}); }
Test(sample, min_p) { chi_square((gllm_sampling){.temperature = 1.0f, .top_p = 1, .min_p = 0.2f, .repetition_penalty = 1, .seed = 4}); }
Test(sample, all_filters) {
    chi_square((gllm_sampling){.temperature = 0.9f, .top_k = 5, .top_p = 0.9f, .min_p = 0.05f, .repetition_penalty = 1, .seed = 5});
}

Test(sample, deterministic_per_seed_and_step) {
    const gllm_sampling c = {.temperature = 1.0f, .top_p = 1, .repetition_penalty = 1, .seed = 42};
    int32_t a[64], b[64];
    int differ = 0;
    for (uint64_t s = 0; s < 64; s++) {
        gllm_sample_row(&sampler, logits, &c, NULL, 0, s, &a[s]);
        gllm_sample_row(&sampler, logits, &c, NULL, 0, s, &b[s]);
        cr_assert_eq(a[s], b[s]);
        differ |= s && a[s] != a[0];
    }
    cr_assert(differ, "draws do not change with the step");
}

Test(sample, edge_cases) {
    int32_t t;
    gllm_sampling c = {.temperature = 0, .top_p = 1, .repetition_penalty = 1};
    cr_assert_eq(gllm_sample_row(&sampler, logits, &c, NULL, 0, 0, &t), GLLM_OK);
    cr_assert_eq(t, 3, "greedy");
    c.temperature = 1, c.top_k = 1;
    cr_assert_eq(gllm_sample_row(&sampler, logits, &c, NULL, 0, 7, &t), GLLM_OK);
    cr_assert_eq(t, 3, "k = 1");
    c.top_k = 0, c.top_p = 1e-9f;
    for (uint64_t s = 0; s < 50; s++) {
        gllm_sample_row(&sampler, logits, &c, NULL, 0, s, &t);
        cr_assert_eq(t, 3, "p -> 0 keeps the most likely token");
    }
    const float equal[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    c.top_p = 1, c.top_k = 2;
    int seen[8] = {0};
    for (uint64_t s = 0; s < 400; s++) gllm_sample_row(&sampler, equal, &c, NULL, 0, s, &t), seen[t]++;
    cr_assert(seen[0] > 150 && seen[1] > 150 && seen[0] + seen[1] == 400, "ties keep the lowest ids: %d %d", seen[0], seen[1]);
    c.top_k = 0;
    for (uint64_t s = 0; s < 500; s++) {
        gllm_sample_row(&sampler, logits, &c, NULL, 0, s, &t);
        cr_assert_neq(t, 7, "a -inf logit is never drawn");
    }
    float bad[8];
    memcpy(bad, logits, sizeof bad);
    bad[2] = NAN;
    cr_assert_eq(gllm_sample_row(&sampler, bad, &c, NULL, 0, 0, &t), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "NaN"));
    for (int i = 0; i < 8; i++) bad[i] = -INFINITY;
    cr_assert_eq(gllm_sample_row(&sampler, bad, &c, NULL, 0, 0, &t), GLLM_E_INVALID_ARGUMENT);
    const int32_t out_of_range[1] = {8};
    c.repetition_penalty = 1.1f;
    cr_assert_eq(gllm_sample_row(&sampler, logits, &c, out_of_range, 1, 0, &t), GLLM_E_INVALID_ARGUMENT);
    const int32_t long_history[17] = {0};
    cr_assert_eq(gllm_sample_row(&sampler, logits, &c, long_history, 17, 0, &t), GLLM_E_INVALID_ARGUMENT);
    c.repetition_penalty = 1.0f, c.min_p = 1.5f;
    cr_assert_eq(gllm_sample_row(&sampler, logits, &c, NULL, 0, 0, &t), GLLM_E_INVALID_ARGUMENT, "min_p above 1 keeps nothing");
    c.min_p = 1.0f;
    cr_assert_eq(gllm_sample_row(&sampler, logits, &c, NULL, 0, 0, &t), GLLM_OK);
    cr_assert_eq(t, 3, "min_p 1: only the most likely token");
}

Test(sample, penalties) {
    int32_t t;
    gllm_sampling c = {.temperature = 0, .top_p = 1, .repetition_penalty = 2.0f};
    const int32_t h3[] = {3};
    cr_assert_eq(gllm_sample_row(&sampler, logits, &c, h3, 1, 0, &t), GLLM_OK);
    cr_assert_eq(t, 6, "3.0 / 2 = 1.5 falls below 2.5");
    c.repetition_penalty = 1, c.frequency_penalty = 0.3f;
    const int32_t h33[] = {3, 3, 6};
    cr_assert_eq(gllm_sample_row(&sampler, logits, &c, h33, 3, 0, &t), GLLM_OK);
    cr_assert_eq(t, 3, "token 3: 3.0 - 2 x 0.3 = 2.4 stays above token 6: 2.5 - 0.3 = 2.2");
    c.frequency_penalty = 0, c.presence_penalty = 1.0f;
    cr_assert_eq(gllm_sample_row(&sampler, logits, &c, h3, 1, 0, &t), GLLM_OK);
    cr_assert_eq(t, 6, "token 3 drops to 2.0, below token 6 at 2.5");
}

/* a penalty that takes a logit past the float range (1e-39 divides 3.0 to +inf): that token, every
 * draw (the softmax of an inf would be NaN: draws anywhere) */
Test(sample, penalty_past_the_float_range) {
    const int32_t h[] = {3, 3};
    gllm_sampling c = {.temperature = 1, .top_p = 1, .repetition_penalty = 1e-39f};
    for (uint64_t step = 0; step < 16; step++) {
        int32_t t;
        cr_assert_eq(gllm_sample_row(&sampler, logits, &c, h, 2, step, &t), GLLM_OK);
        cr_assert_eq(t, 3, "draw %d: token %d", (int)step, t);
    }
    c.repetition_penalty = 1, c.frequency_penalty = -3e38f, c.top_k = 5;
    int32_t t;
    cr_assert_eq(gllm_sample_row(&sampler, logits, &c, h, 2, 7, &t), GLLM_OK);
    cr_assert_eq(t, 3, "3.0 + 2 x 3e38 is +inf: token 3");
}

static const float *ref_p;
static int by_prob_desc(const void *a, const void *b) {
    const int x = *(const int *)a, y = *(const int *)b;
    if (ref_p[x] != ref_p[y]) return ref_p[x] > ref_p[y] ? -1 : 1;
    return (x > y) - (x < y);
}

/* 256k vocabulary: every draw lies in the top-k / top-p set a full sort gives */
Test(sample_large, draws_stay_in_the_exact_sets) {
    const size_t n = 262144;
    gllm_sampler s;
    cr_assert_eq(gllm_sampler_init(&s, n, 0), GLLM_OK);
    float *l = malloc(n * 4), *p = malloc(n * 4);
    int *order = malloc(n * sizeof(int));
    uint64_t st = 99;
    for (size_t i = 0; i < n; i++) st = st * 6364136223846793005ull + 1, l[i] = (float)((st >> 40) % 1000) / 50.0f;
    double mx = -INFINITY, z = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, l[i]);
    for (size_t i = 0; i < n; i++) z += p[i] = (float)exp(l[i] - mx);
    for (size_t i = 0; i < n; i++) p[i] = (float)(p[i] / z), order[i] = (int)i;
    ref_p = p;
    qsort(order, n, sizeof(int), by_prob_desc);
    char *in_k = calloc(n, 1), *in_p = calloc(n, 1);
    for (int i = 0; i < 100; i++) in_k[order[i]] = 1;
    double acc = 0;
    for (size_t i = 0; i < n && acc < 0.5; i++) acc += p[order[i]], in_p[order[i]] = 1;
    const gllm_sampling ck = {.temperature = 1, .top_k = 100, .top_p = 1, .repetition_penalty = 1, .seed = 7};
    const gllm_sampling cp = {.temperature = 1, .top_p = 0.5f, .repetition_penalty = 1, .seed = 8};
    for (uint64_t step = 0; step < 200; step++) {
        int32_t t;
        cr_assert_eq(gllm_sample_row(&s, l, &ck, NULL, 0, step, &t), GLLM_OK);
        cr_assert(in_k[t], "top-k drew token %d outside the exact top 100", t);
        cr_assert_eq(gllm_sample_row(&s, l, &cp, NULL, 0, step, &t), GLLM_OK);
        cr_assert(in_p[t], "top-p drew token %d outside the exact top-p set", t);
    }
    free(l), free(p), free(order), free(in_k), free(in_p);
    gllm_sampler_free(&s);
}
