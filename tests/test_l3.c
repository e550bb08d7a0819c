/* The L3 API on a synthetic model file: backend selection, batch vs alone, tree step vs
 * linear sequences, accepting a path, sampling, errors that leave the cache consistent. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "synth_model.h"

static char path[64];
static gllm_backend *b;
static gllm_model *m;
static gllm_generator *g;
static gllm_kv_cache *kv;

static void setup(void) {
    model_file f;
    build(&f, "llama", GLLM_DTYPE_F32);
    snprintf(path, sizeof path, "/tmp/gllm_l3_%d.gguf", (int)getpid());
    cr_assert_eq(save(&f, path), 0, "%s", path);
    cr_assert_eq(gllm_backend_open("cpu", &b), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_model_open(path, &m), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_generator_upload(b, m, 64, &g), GLLM_OK);
    cr_assert_eq(gllm_kv_cache_alloc(g, 32, 16, GLLM_DTYPE_F32, &kv), GLLM_OK, "%s", gllm_last_error());
}

static void teardown(void) {
    gllm_kv_cache_free(kv);
    gllm_generator_free(g);
    gllm_model_close(m);
    gllm_backend_close(b);
    unlink(path);
}

TestSuite(l3, .init = setup, .fini = teardown);

static void rows_of(gllm_logits *l, float *out, size_t want_rows) {
    size_t rows, vocab;
    cr_assert_eq(gllm_logits_shape(l, &rows, &vocab), GLLM_OK);
    cr_assert_eq(rows, want_rows);
    cr_assert_eq(vocab, VOCAB);
    cr_assert_eq(gllm_logits_read(l, out, rows * vocab), GLLM_OK);
}

static void close_enough(const float *a, const float *b2, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        cr_assert(fabsf(a[i] - b2[i]) <= 1e-4f * (1 + fabsf(b2[i])), "%s: [%zu] %.7g vs %.7g", what, i, a[i], b2[i]);
}

Test(l3, backend_selection) {
    gllm_backend *x;
    cr_assert_eq(gllm_backend_open("cuda:99", &x), GLLM_E_UNSUPPORTED, "a forced backend that cannot start is an error");
    cr_assert_eq(gllm_backend_open("tpu", &x), GLLM_E_INVALID_ARGUMENT);
    setenv("GLLM_DEVICE", "cuda:99", 1);
    cr_assert_eq(gllm_backend_open("cpu", &x), GLLM_E_UNSUPPORTED, "GLLM_DEVICE overrides the name");
    unsetenv("GLLM_DEVICE");
    gllm_backend_info bi;
    cr_assert_eq(gllm_backend_get_info(b, &bi), GLLM_OK);
    cr_assert_str_eq(bi.backend, "cpu");
    gllm_model_info mi;
    cr_assert_eq(gllm_model_get_info(m, &mi), GLLM_OK);
    cr_assert_eq(mi.vocab, VOCAB);
    int32_t ids[4];
    size_t n;
    cr_assert_eq(gllm_model_tokenize(m, "hi", 2, 0, ids, 4, &n), GLLM_E_UNSUPPORTED, "the synthetic file has no vocabulary");
    cr_assert(strstr(gllm_last_error(), "no_vocab"), "the reason the tokenizer did not load: %s", gllm_last_error());
}

/* a batch is one forward over all its items' rows (each matmul over 14 rows here, alone over
 * 5, 2 and 7; then 3 decode rows): each item's logits equal its sequence run alone up to the
 * summation order */
Test(l3, batch_matches_each_alone) {
    const int32_t a[5] = {1, 2, 3, 4, 5}, c[2] = {9, 8}, d[7] = {3, 3, 3, 7, 1, 0, 2};
    int s[3], t[3];
    for (int i = 0; i < 3; i++) gllm_seq_open(kv, 64, &s[i]), gllm_seq_open(kv, 64, &t[i]);
    const gllm_batch_item items[3] = {{s[0], a, 5}, {s[1], c, 2}, {s[2], d, 7}};
    gllm_logits *l;
    float batch[3 * 40], alone[40];
    cr_assert_eq(gllm_batch_forward(g, kv, items, 3, &l), GLLM_OK, "%s", gllm_last_error());
    rows_of(l, batch, 3);
    const int32_t *toks[3] = {a, c, d};
    const size_t ns[3] = {5, 2, 7};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(gllm_generator_forward(g, kv, t[i], toks[i], ns[i], NULL, &l), GLLM_OK);
        rows_of(l, alone, 1);
        char what[32];
        snprintf(what, sizeof what, "sequence %d, batch vs alone", i);
        close_enough(batch + i * VOCAB, alone, VOCAB, what);
    }
    /* then a decode step of the three (3 rows: the gemv over several rows), prefixes 5, 2 and 7 */
    const int32_t next[3] = {6, 10, 4};
    const gllm_batch_item step[3] = {{s[0], &next[0], 1}, {s[1], &next[1], 1}, {s[2], &next[2], 1}};
    cr_assert_eq(gllm_batch_forward(g, kv, step, 3, &l), GLLM_OK, "%s", gllm_last_error());
    rows_of(l, batch, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(gllm_generator_forward(g, kv, t[i], &next[i], 1, NULL, &l), GLLM_OK);
        rows_of(l, alone, 1);
        char what[40];
        snprintf(what, sizeof what, "sequence %d, decode batch vs alone", i);
        close_enough(batch + i * VOCAB, alone, VOCAB, what);
    }
    const gllm_batch_item twice[2] = {{s[0], a, 1}, {s[0], c, 1}};
    cr_assert_eq(gllm_batch_forward(g, kv, twice, 2, &l), GLLM_E_INVALID_ARGUMENT, "a sequence twice in a batch");
    const int32_t bad[1] = {VOCAB};
    const gllm_batch_item late_error[2] = {{s[0], a, 1}, {s[1], bad, 1}};
    size_t before, after;
    gllm_seq_length(kv, s[0], &before);
    cr_assert_eq(gllm_batch_forward(g, kv, late_error, 2, &l), GLLM_E_INVALID_ARGUMENT, "a token outside the vocabulary");
    gllm_seq_length(kv, s[0], &after);
    cr_assert_eq(after, before, "a refused batch runs no item");
}

/* a tree step: every node's logits equal those of the linear sequence prefix + its path */
Test(l3, tree_step_equals_linear_paths) {
    const int32_t prefix[4] = {1, 5, 7, 2};
    /* tree:       0
     *           /   \
     *          1     2
     *         / \     \
     *        3   4     5          */
    const int32_t tok[6] = {11, 12, 13, 14, 15, 16}, parent[6] = {-1, 0, 0, 1, 1, 2};
    int32_t pos[6];
    for (int i = 0; i < 6; i++) pos[i] = 4 + (parent[i] < 0 ? 0 : pos[parent[i]] - 4 + 1);
    int s;
    gllm_seq_open(kv, 64, &s);
    gllm_logits *l;
    cr_assert_eq(gllm_generator_forward(g, kv, s, prefix, 4, NULL, &l), GLLM_OK);
    const gllm_topology topo = {parent, pos};
    float tree[6 * 40], lin[40];
    cr_assert_eq(gllm_generator_forward(g, kv, s, tok, 6, &topo, &l), GLLM_OK, "%s", gllm_last_error());
    rows_of(l, tree, 6);
    { /* without positions: each token's depth in the tree past the prefix, the same rows */
        int u;
        gllm_seq_open(kv, 64, &u);
        cr_assert_eq(gllm_generator_forward(g, kv, u, prefix, 4, NULL, &l), GLLM_OK);
        const gllm_topology implied = {parent, NULL};
        float rows[6 * 40];
        cr_assert_eq(gllm_generator_forward(g, kv, u, tok, 6, &implied, &l), GLLM_OK, "%s", gllm_last_error());
        rows_of(l, rows, 6);
        close_enough(rows, tree, 6 * VOCAB, "a tree step without positions");
        gllm_seq_close(kv, u);
    }
    for (int node = 0; node < 6; node++) {
        int32_t path[8], n = 0;
        for (int x = node; x >= 0; x = parent[x]) path[n++] = tok[x];
        int32_t seq[12];
        memcpy(seq, prefix, sizeof prefix);
        for (int i = 0; i < n; i++) seq[4 + i] = path[n - 1 - i];
        int t;
        gllm_seq_open(kv, 64, &t);
        cr_assert_eq(gllm_generator_forward(g, kv, t, seq, (size_t)(4 + n), NULL, &l), GLLM_OK);
        rows_of(l, lin, 1);
        char what[32];
        snprintf(what, sizeof what, "tree node %d", node);
        close_enough(tree + node * VOCAB, lin, VOCAB, what);
        gllm_seq_close(kv, t);
    }
    /* accept the path 0 -> 2 -> 5, then decode one more token: as the linear sequence would */
    const uint32_t accept[3] = {0, 2, 5};
    cr_assert_eq(gllm_seq_accept(kv, s, 4, accept, 3), GLLM_OK, "%s", gllm_last_error());
    size_t len;
    gllm_seq_length(kv, s, &len);
    cr_assert_eq(len, 7u);
    const int32_t next = 3;
    cr_assert_eq(gllm_generator_forward(g, kv, s, &next, 1, NULL, &l), GLLM_OK);
    float after[40];
    rows_of(l, after, 1);
    const int32_t linear[8] = {1, 5, 7, 2, 11, 13, 16, 3};
    int t;
    gllm_seq_open(kv, 64, &t);
    cr_assert_eq(gllm_generator_forward(g, kv, t, linear, 8, NULL, &l), GLLM_OK);
    rows_of(l, lin, 1);
    close_enough(after, lin, VOCAB, "decode after accepting a path");
}

/* a tree step past a page boundary, then a short path accepted: the pages of the dropped
 * tokens go back to the pool, another sequence takes them, and both decode as their linear
 * sequences would */
Test(l3, accept_gives_back_the_dropped_pages) {
    int32_t prefix[10], chain[20], parent[20], pos[20];
    for (int i = 0; i < 10; i++) prefix[i] = (int32_t)((i * 3 + 1) % VOCAB);
    for (int i = 0; i < 20; i++) chain[i] = (int32_t)((i * 7 + 2) % VOCAB), parent[i] = i - 1, pos[i] = 10 + i;
    int s, t;
    gllm_seq_open(kv, 64, &s);
    gllm_logits *l;
    float before, after;
    cr_assert_eq(gllm_generator_forward(g, kv, s, prefix, 10, NULL, &l), GLLM_OK);
    const gllm_topology topo = {parent, pos};
    cr_assert_eq(gllm_generator_forward(g, kv, s, chain, 20, &topo, &l), GLLM_OK, "%s", gllm_last_error());
    gllm_memory_pressure(kv, &before);
    cr_assert_float_eq(before, 2.0f / 32, 1e-6, "30 tokens: two pages of 16");
    const uint32_t path[3] = {0, 1, 2};
    cr_assert_eq(gllm_seq_accept(kv, s, 10, path, 3), GLLM_OK, "%s", gllm_last_error());
    gllm_memory_pressure(kv, &after);
    cr_assert_float_eq(after, 1.0f / 32, 1e-6, "13 tokens kept: the second page is free again");
    gllm_seq_open(kv, 64, &t);
    cr_assert_eq(gllm_generator_forward(g, kv, t, chain, 20, NULL, &l), GLLM_OK, "another sequence takes the page");
    const int32_t next = 5;
    float got[40], want[40];
    cr_assert_eq(gllm_generator_forward(g, kv, s, &next, 1, NULL, &l), GLLM_OK);
    rows_of(l, got, 1);
    int32_t linear[14];
    memcpy(linear, prefix, sizeof prefix), memcpy(linear + 10, chain, 3 * sizeof(int32_t)), linear[13] = next;
    int u;
    gllm_seq_open(kv, 64, &u);
    cr_assert_eq(gllm_generator_forward(g, kv, u, linear, 14, NULL, &l), GLLM_OK);
    rows_of(l, want, 1);
    close_enough(got, want, VOCAB, "decode after the pages went back");
}

/* a tree step holds at most 256 tokens on every backend (CUDA keeps a token's ancestors as a
 * 256-bit row): 257 are refused, taking no pages; 256 run, their last row as the linear chain's.
 * A forward past the generator's rows runs in steps of them. */
Test(l3, tree_steps_hold_256_tokens_and_long_forwards_run_in_steps) {
    const size_t ctx = CTX;
    CTX = 400;
    model_file f;
    build(&f, "llama", GLLM_DTYPE_F32);
    CTX = ctx;
    char big[64];
    snprintf(big, sizeof big, "/tmp/gllm_l3_ctx400_%d.gguf", (int)getpid());
    cr_assert_eq(save(&f, big), 0);
    gllm_model *m2;
    gllm_generator *g2;
    gllm_kv_cache *kv2;
    cr_assert_eq(gllm_model_open(big, &m2), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_generator_upload(b, m2, 300, &g2), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_kv_cache_alloc(g2, 64, 16, GLLM_DTYPE_F32, &kv2), GLLM_OK, "%s", gllm_last_error());
    static int32_t tok[257], parent[257], pos[257];
    for (int i = 0; i < 257; i++) tok[i] = (int32_t)((i * 7 + 3) % VOCAB), parent[i] = i - 1, pos[i] = i;
    const gllm_topology topo = {parent, pos};
    int s, t;
    gllm_seq_open(kv2, 400, &s), gllm_seq_open(kv2, 400, &t);
    gllm_logits *l;
    float free0, after;
    gllm_memory_pressure(kv2, &free0);
    cr_assert_eq(gllm_generator_forward(g2, kv2, s, tok, 257, &topo, &l), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "256"), "%s", gllm_last_error());
    gllm_memory_pressure(kv2, &after);
    cr_assert_eq(after, free0, "a refused tree takes no pages");
    cr_assert_eq(gllm_generator_forward(g2, kv2, s, tok, 256, &topo, &l), GLLM_OK, "%s", gllm_last_error());
    static float rows[256 * 40], lin[40];
    cr_assert_eq(gllm_logits_read(l, rows, 256 * VOCAB), GLLM_OK);
    cr_assert_eq(gllm_generator_forward(g2, kv2, t, tok, 256, NULL, &l), GLLM_OK);
    rows_of(l, lin, 1);
    close_enough(rows + 255 * VOCAB, lin, VOCAB, "the 256th token of a chain tree");
    /* 300 tokens through a generator of 256 rows: two steps, the logits of one; explicit
     * positions follow their tokens into the second step */
    gllm_generator *small;
    gllm_kv_cache *kv3;
    cr_assert_eq(gllm_generator_upload(b, m2, 64, &small), GLLM_OK);
    cr_assert_eq(gllm_kv_cache_alloc(small, 40, 16, GLLM_DTYPE_F32, &kv3), GLLM_OK);
    static int32_t long_ids[300], long_pos[300];
    for (int i = 0; i < 300; i++) long_ids[i] = (int32_t)((i * 11 + 5) % VOCAB), long_pos[i] = i;
    int u, w;
    gllm_seq_open(kv2, 400, &u), gllm_seq_open(kv3, 400, &w);
    float whole[40], parts[40];
    cr_assert_eq(gllm_generator_forward(g2, kv2, u, long_ids, 300, NULL, &l), GLLM_OK, "%s", gllm_last_error());
    rows_of(l, whole, 1);
    const gllm_topology positions = {NULL, long_pos};
    cr_assert_eq(gllm_generator_forward(small, kv3, w, long_ids, 300, &positions, &l), GLLM_OK, "%s", gllm_last_error());
    rows_of(l, parts, 1);
    close_enough(parts, whole, VOCAB, "300 tokens in steps of 256 rows");
    size_t len;
    gllm_seq_length(kv3, w, &len);
    cr_assert_eq(len, 300u);
    gllm_kv_cache_free(kv3), gllm_generator_free(small);
    gllm_kv_cache_free(kv2), gllm_generator_free(g2), gllm_model_close(m2);
    unlink(big);
}

Test(l3, sampling_through_the_api) {
    int s;
    gllm_seq_open(kv, 64, &s);
    const int32_t p[3] = {4, 8, 15};
    gllm_logits *l;
    cr_assert_eq(gllm_generator_forward(g, kv, s, p, 3, NULL, &l), GLLM_OK);
    float row[40];
    rows_of(l, row, 1);
    int best = 0;
    for (int v = 1; v < (int)VOCAB; v++) best = row[v] > row[best] ? v : best;
    const gllm_sampling greedy = {.temperature = 0, .top_p = 1, .repetition_penalty = 1};
    int32_t id;
    cr_assert_eq(gllm_sample(g, l, &greedy, p, 3, 0, &id), GLLM_OK);
    cr_assert_eq(id, best);
    const gllm_sampling warm = {.temperature = 0.8f, .top_k = 10, .top_p = 0.9f, .repetition_penalty = 1.1f, .seed = 5};
    int32_t a1, a2;
    gllm_sample(g, l, &warm, p, 3, 17, &a1), gllm_sample(g, l, &warm, p, 3, 17, &a2);
    cr_assert_eq(a1, a2, "(seed, step) reproduces the draw");
    /* very cold is greedy: logits over 1e-38 overflow a float (x / T - max / T was inf - inf), and
     * 1 / 1e-40 is inf; knobs that are not numbers are refused (NaN drew uniformly) */
    for (int i = 0; i < 2; i++) {
        const gllm_sampling cold = {.temperature = i ? 1e-40f : 1e-38f, .top_p = 1, .repetition_penalty = 1, .seed = 3};
        for (uint64_t st = 0; st < 8; st++) {
            cr_assert_eq(gllm_sample(g, l, &cold, p, 3, st, &id), GLLM_OK, "%s", gllm_last_error());
            cr_assert_eq(id, best, "temperature %g, draw %d: %d, not the best %d", cold.temperature, (int)st, id, best);
        }
    }
    for (int i = 0; i < 2; i++) { /* top_p 0 or below keeps the best token (it returned an id past the vocabulary) */
        const gllm_sampling none = {.temperature = 0.8f, .top_p = i ? -1.0f : 0.0f, .repetition_penalty = 1, .seed = 9};
        cr_assert_eq(gllm_sample(g, l, &none, p, 3, 1, &id), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(id, best, "top_p %g: %d", none.top_p, id);
    }
    gllm_sampling bad = greedy;
    bad.temperature = NAN;
    cr_assert_eq(gllm_sample(g, l, &bad, p, 3, 0, &id), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "temperature"), "%s", gllm_last_error());
    bad = greedy, bad.repetition_penalty = NAN;
    cr_assert_eq(gllm_sample(g, l, &bad, p, 3, 0, &id), GLLM_E_INVALID_ARGUMENT);
    bad = greedy, bad.top_p = INFINITY;
    cr_assert_eq(gllm_sample(g, l, &bad, p, 3, 0, &id), GLLM_E_INVALID_ARGUMENT, "top_p inf");
    /* the history is the penalties': with all off (a repetition penalty of 1 or <= 0) it is not
     * read, so ids outside the vocabulary and a history past the 65536 the penalties count pass
     * (a penalty of 0 checked the ids, and any call the length); with one on, both are refused */
    enum { LONG = 65537 };
    int32_t *hist = calloc(LONG, sizeof *hist);
    hist[0] = -1;
    for (int i = 0; i < 2; i++) {
        gllm_sampling off = greedy;
        off.repetition_penalty = i ? 0.0f : -2.0f;
        cr_assert_eq(gllm_sample(g, l, &off, hist, 1, 0, &id), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(id, best);
        cr_assert_eq(gllm_sample(g, l, &off, hist, LONG, 0, &id), GLLM_OK, "%s", gllm_last_error());
    }
    gllm_sampling on = greedy;
    on.presence_penalty = 0.5f;
    cr_assert_eq(gllm_sample(g, l, &on, hist, 1, 0, &id), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "outside the vocabulary"), "%s", gllm_last_error());
    hist[0] = 0;
    cr_assert_eq(gllm_sample(g, l, &on, hist, LONG, 0, &id), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "65536"), "%s", gllm_last_error());
    free(hist);
}

Test(l3, errors_leave_the_cache_consistent) {
    int s;
    gllm_seq_open(kv, 1000, &s);
    gllm_logits *l;
    const int32_t ok[3] = {1, 2, 3}, bad[2] = {1, 40};
    cr_assert_eq(gllm_generator_forward(g, kv, s, ok, 3, NULL, &l), GLLM_OK);
    cr_assert_eq(gllm_generator_forward(g, kv, s, bad, 2, NULL, &l), GLLM_E_INVALID_ARGUMENT, "token id >= vocab");
    size_t len;
    gllm_seq_length(kv, s, &len);
    cr_assert_eq(len, 3u, "a failed forward adds nothing");
    int32_t many[64];
    for (int i = 0; i < 64; i++) many[i] = i % 40;
    for (int i = 0; i < 1; i++) cr_assert_eq(gllm_generator_forward(g, kv, s, many, 64, NULL, &l), GLLM_OK);
    cr_assert_eq(gllm_generator_forward(g, kv, s, many, 40, NULL, &l), GLLM_E_INVALID_ARGUMENT, "past the context of 96");
    gllm_seq_length(kv, s, &len);
    cr_assert_eq(len, 67u);
    /* a full pool: 32 pages of 16 */
    int big[8], opened = 0;
    gllm_status st = GLLM_OK;
    for (int i = 0; i < 8 && st == GLLM_OK; i++) {
        gllm_seq_open(kv, 96, &big[i]), opened++;
        st = gllm_generator_forward(g, kv, big[i], many, 64, NULL, &l);
    }
    cr_assert_eq(st, GLLM_E_OUT_OF_MEMORY, "the KV pool runs full");
    cr_assert(strstr(gllm_last_error(), "full"), "%s", gllm_last_error());
    gllm_seq_length(kv, big[opened - 1], &len);
    cr_assert_eq(len, 0u);
    cr_assert_eq(gllm_generator_forward(g, kv, 200, ok, 1, NULL, &l), GLLM_E_INVALID_ARGUMENT, "no such sequence");
}

/* refused calls take no pages: a batch whose later item is bad or does not fit, a forward with
 * a position outside the context; sizes that would overflow a buffer are refused */
Test(l3, refused_calls_take_no_pages) {
    int a, c;
    gllm_seq_open(kv, 96, &a), gllm_seq_open(kv, 96, &c);
    float before, after;
    gllm_memory_pressure(kv, &before);
    gllm_logits *l;
    const int32_t ok[3] = {1, 2, 3}, bad[1] = {VOCAB};
    const gllm_batch_item late_bad[2] = {{a, ok, 3}, {c, bad, 1}};
    cr_assert_eq(gllm_batch_forward(g, kv, late_bad, 2, &l), GLLM_E_INVALID_ARGUMENT);
    const int32_t position[3] = {0, 1, (int32_t)CTX};
    const gllm_topology topo = {NULL, position};
    cr_assert_eq(gllm_generator_forward(g, kv, a, ok, 3, &topo, &l), GLLM_E_INVALID_ARGUMENT, "a position past the context");
    const int32_t parent[3] = {-1, 1, 0}, fine[3] = {0, 1, 1};
    const gllm_topology loop = {parent, fine};
    cr_assert_eq(gllm_generator_forward(g, kv, a, ok, 3, &loop, &l), GLLM_E_INVALID_ARGUMENT, "a token its own parent");
    cr_assert(strstr(gllm_last_error(), "parent"), "%s", gllm_last_error());
    int small;
    gllm_seq_open(kv, 20, &small);
    int32_t twenty_one[21] = {0};
    cr_assert_eq(gllm_generator_forward(g, kv, small, twenty_one, 21, NULL, &l), GLLM_E_INVALID_ARGUMENT, "past its max_tokens of 20");
    cr_assert_eq(gllm_generator_forward(g, kv, small, twenty_one, 20, NULL, &l), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_seq_close(kv, small), GLLM_OK);
    gllm_memory_pressure(kv, &after);
    cr_assert_eq(after, before, "refused calls left pages taken: %g -> %g", before, after);
    int32_t many[90];
    for (int i = 0; i < 90; i++) many[i] = i % (int)VOCAB;
    int fill[2];
    for (int f = 0; f < 2; f++) { /* 12 of 32 pages */
        gllm_seq_open(kv, 96, &fill[f]);
        for (int i = 0; i < 6; i++) cr_assert_eq(gllm_generator_forward(g, kv, fill[f], many, 16, NULL, &l), GLLM_OK);
    }
    int big[4];
    for (int i = 0; i < 4; i++) gllm_seq_open(kv, 96, &big[i]);
    const gllm_batch_item too_many[4] = {{big[0], many, 90}, {big[1], many, 90}, {big[2], many, 90}, {big[3], many, 90}};
    gllm_memory_pressure(kv, &before);
    cr_assert_eq(gllm_batch_forward(g, kv, too_many, 4, &l), GLLM_E_OUT_OF_MEMORY, "24 pages wanted, 20 free");
    gllm_memory_pressure(kv, &after);
    cr_assert_eq(after, before, "a batch the pool cannot hold took pages: %g -> %g", before, after);
    cr_assert_eq(gllm_batch_forward(g, kv, too_many, 3, &l), GLLM_OK, "%s", gllm_last_error());
    gllm_generator *huge;
    cr_assert_eq(gllm_generator_upload(b, m, (size_t)1 << 56, &huge), GLLM_E_INVALID_ARGUMENT, "a row count whose logits overflow");
    gllm_kv_cache *wide;
    cr_assert_eq(gllm_kv_cache_alloc(g, 1, (size_t)1 << 60, GLLM_DTYPE_F32, &wide), GLLM_E_INVALID_ARGUMENT, "a page that overflows");
    float x[64];
    cr_assert_eq(gllm_head_block(g, x, (size_t)1 << 62, x), GLLM_E_INVALID_ARGUMENT, "a block of more rows than the context");
}

/* scheduling: pressure, page states, swap out / in bit-exact, hot pages refused */
Test(l3, swap_and_page_states) {
    const int32_t p1[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    int a, c, twin;
    gllm_seq_open(kv, 64, &a), gllm_seq_open(kv, 64, &c), gllm_seq_open(kv, 64, &twin);
    gllm_logits *l;
    float pr0, pr1, pr2;
    gllm_memory_pressure(kv, &pr0);
    cr_assert_eq(gllm_generator_forward(g, kv, a, p1, 20, NULL, &l), GLLM_OK);   /* 2 pages */
    cr_assert_eq(gllm_generator_forward(g, kv, twin, p1, 20, NULL, &l), GLLM_OK);
    cr_assert_eq(gllm_generator_forward(g, kv, c, p1, 5, NULL, &l), GLLM_OK);    /* c is warm */
    gllm_memory_pressure(kv, &pr1);
    cr_assert_float_eq(pr1 - pr0, 5.0f / 32.0f, 1e-6f);
    gllm_page_info info[64];
    size_t n;
    cr_assert_eq(gllm_page_states(kv, info, 64, &n), GLLM_OK);
    cr_assert_eq(n, 32u);
    int warm = 0, active = 0;
    for (size_t i = 0; i < n; i++) warm += info[i].state == GLLM_PAGE_WARM, active += info[i].state == GLLM_PAGE_ACTIVE;
    cr_assert_eq(warm, 1);
    cr_assert_eq(active, 4);
    cr_assert_eq(gllm_swap_out_pages(kv, c), GLLM_E_INVALID_ARGUMENT, "a warm sequence is refused");
    cr_assert_eq(gllm_seq_protect(kv, a, 1), GLLM_OK);
    cr_assert_eq(gllm_swap_out_pages(kv, a), GLLM_E_INVALID_ARGUMENT, "a protected sequence is refused");
    cr_assert(strstr(gllm_last_error(), "protected"));
    cr_assert_eq(gllm_seq_protect(kv, a, 0), GLLM_OK);
    cr_assert_eq(gllm_swap_out_pages(kv, a), GLLM_OK, "%s", gllm_last_error());
    gllm_memory_pressure(kv, &pr2);
    cr_assert_float_eq(pr1 - pr2, 2.0f / 32.0f, 1e-6f);
    cr_assert_eq(gllm_page_states(kv, info, 64, &n), GLLM_OK);
    cr_assert_eq(n, 34u, "32 pool pages and 2 swapped");
    cr_assert_eq(info[33].state, GLLM_PAGE_SWAPPED);
    const int32_t next = 21;
    cr_assert_eq(gllm_generator_forward(g, kv, a, &next, 1, NULL, &l), GLLM_E_INVALID_ARGUMENT, "a swapped sequence cannot run");
    /* other pages are taken meanwhile, so a swaps back into different pages */
    int d;
    gllm_seq_open(kv, 64, &d);
    cr_assert_eq(gllm_generator_forward(g, kv, d, p1, 20, NULL, &l), GLLM_OK);
    cr_assert_eq(gllm_seq_protect(kv, a, 1), GLLM_OK);
    cr_assert_eq(gllm_swap_in_pages(kv, a), GLLM_OK, "a protected sequence swaps in: %s", gllm_last_error());
    cr_assert_eq(gllm_seq_protect(kv, a, 0), GLLM_OK);
    float x[40], y[40];
    cr_assert_eq(gllm_generator_forward(g, kv, a, &next, 1, NULL, &l), GLLM_OK);
    rows_of(l, x, 1);
    cr_assert_eq(gllm_generator_forward(g, kv, twin, &next, 1, NULL, &l), GLLM_OK);
    rows_of(l, y, 1);
    cr_assert(memcmp(x, y, sizeof x) == 0, "after a swap round trip the sequence computes the same bits");
}

/* the L2 blocks chained over every layer give the L3 forward's logits */
Test(l3, blocks_match_the_forward) {
    const int32_t t[9] = {3, 1, 4, 1, 5, 9, 2, 6, 5};
    int s;
    gllm_seq_open(kv, 64, &s);
    gllm_logits *l;
    cr_assert_eq(gllm_generator_forward(g, kv, s, t, 9, NULL, &l), GLLM_OK);
    float want[40], x[9 * 64], y[9 * 64], got[9 * 40];
    rows_of(l, want, 1);
    cr_assert_eq(gllm_embed_block(g, t, 9, x), GLLM_OK);
    for (size_t layer = 0; layer < LAYERS; layer++) {
        cr_assert_eq(gllm_attention_block(g, layer, x, 9, y), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(gllm_ffn_block(g, layer, y, 9, x), GLLM_OK);
    }
    cr_assert_eq(gllm_head_block(g, x, 9, got), GLLM_OK);
    close_enough(got + 8 * VOCAB, want, VOCAB, "L2 blocks vs L3 forward");
    cr_assert_eq(gllm_attention_block(g, LAYERS, x, 9, y), GLLM_E_INVALID_ARGUMENT, "no such layer");
}

/* on the CPU, handles may be freed in any order (each keeps what it needs; ASan checks) */
/* the backend and the model closed first, the generator before its cache: what is still held
 * keeps working (ASan in CI: nothing freed twice, nothing leaked) */
Test(l3, free_in_any_order) {
    gllm_backend *b2;
    gllm_model *m2;
    gllm_generator *g2;
    gllm_kv_cache *kv2;
    cr_assert_eq(gllm_backend_open("cpu", &b2), GLLM_OK);
    cr_assert_eq(gllm_model_open(path, &m2), GLLM_OK);
    cr_assert_eq(gllm_generator_upload(b2, m2, 16, &g2), GLLM_OK);
    cr_assert_eq(gllm_kv_cache_alloc(g2, 4, 16, GLLM_DTYPE_F16, &kv2), GLLM_OK);
    gllm_backend_close(b2);
    gllm_model_close(m2);
    int seq;
    const int32_t tok[3] = {1, 2, 3};
    gllm_logits *l;
    cr_assert_eq(gllm_seq_open(kv2, 16, &seq), GLLM_OK);
    cr_assert_eq(gllm_generator_forward(g2, kv2, seq, tok, 3, NULL, &l), GLLM_OK, "%s", gllm_last_error());
    gllm_generator_free(g2);
    cr_assert_eq(gllm_seq_open(kv2, 16, &seq), GLLM_OK, "the cache still works");
    gllm_kv_cache_free(kv2);
}

/* ---- threads: calls on one device take turns ------------------------------------------------ */

enum { WORKERS = 3, STEPS = 12 };

/* each worker's sequence: a prompt, then one token a step (fixed, so the cache's contents do
 * not depend on how the threads interleave) */
static int32_t token_of(int w, int step) { return (int32_t)((7 * w + 3 * step + 1) % (int)VOCAB); }

typedef struct {
    int w, seq;
    gllm_status st;
} worker_job;

static void *worker_forwards(void *arg) {
    worker_job *j = arg;
    int32_t prompt[5];
    for (int i = 0; i < 5; i++) prompt[i] = token_of(j->w, 100 + i);
    gllm_logits *l;
    j->st = gllm_generator_forward(g, kv, j->seq, prompt, 5, NULL, &l);
    for (int s = 0; s < STEPS && j->st == GLLM_OK; s++) {
        const int32_t t = token_of(j->w, s);
        j->st = gllm_generator_forward(g, kv, j->seq, &t, 1, NULL, &l);
    }
    return NULL;
}

/* while the workers run: the scheduler's calls (pressure, page states, sequences opened and closed) */
static void *watcher(void *arg) {
    gllm_status *st = arg;
    gllm_page_info info[64];
    for (int i = 0; i < 200 && *st == GLLM_OK; i++) {
        float p;
        size_t n;
        int s;
        if ((*st = gllm_memory_pressure(kv, &p)) != GLLM_OK || (*st = gllm_page_states(kv, info, 64, &n)) != GLLM_OK) break;
        if ((*st = gllm_seq_open(kv, 16, &s)) == GLLM_OK) *st = gllm_seq_close(kv, s);
    }
    return NULL;
}

/* threads sharing one generator and cache, each with its own sequence, and a scheduler thread:
 * every sequence ends as it does when the same forwards run one thread at a time */
Test(l3, threads_take_turns_on_a_generator) {
    worker_job jobs[WORKERS];
    int alone[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        jobs[w] = (worker_job){w, -1, GLLM_OK};
        cr_assert_eq(gllm_seq_open(kv, 64, &jobs[w].seq), GLLM_OK);
        cr_assert_eq(gllm_seq_open(kv, 64, &alone[w]), GLLM_OK);
    }
    pthread_t th[WORKERS + 1];
    gllm_status watched = GLLM_OK;
    cr_assert_eq(pthread_create(&th[WORKERS], NULL, watcher, &watched), 0);
    for (int w = 0; w < WORKERS; w++) cr_assert_eq(pthread_create(&th[w], NULL, worker_forwards, &jobs[w]), 0);
    for (int w = 0; w <= WORKERS; w++) pthread_join(th[w], NULL);
    cr_assert_eq(watched, GLLM_OK, "%s", gllm_last_error());
    for (int w = 0; w < WORKERS; w++) {
        cr_assert_eq(jobs[w].st, GLLM_OK, "worker %d", w);
        worker_job one = {w, alone[w], GLLM_OK};
        worker_forwards(&one);
        cr_assert_eq(one.st, GLLM_OK);
        const int32_t last = 5;
        gllm_logits *l;
        float x[64], y[64];
        cr_assert_eq(gllm_generator_forward(g, kv, jobs[w].seq, &last, 1, NULL, &l), GLLM_OK);
        rows_of(l, x, 1);
        cr_assert_eq(gllm_generator_forward(g, kv, alone[w], &last, 1, NULL, &l), GLLM_OK);
        rows_of(l, y, 1);
        cr_assert(memcmp(x, y, VOCAB * sizeof *x) == 0, "worker %d: its sequence differs from the one run alone", w);
    }
}

typedef struct {
    int seq;
    gllm_logits *l;
    float *row;
    gllm_status st;
} other_job;

/* another thread's tree step of 8 tokens on its own sequence */
static void *tree_of_8(void *arg) {
    other_job *j = arg;
    const int32_t tok[8] = {3, 4, 5, 6, 7, 8, 9, 10}, parent[8] = {-1, 0, 1, 2, 3, 4, 5, 6};
    const gllm_topology topo = {parent, NULL};
    j->st = gllm_generator_forward(g, kv, j->seq, tok, 8, &topo, &j->l);
    return NULL;
}

/* a thread that made no forward (a pipeline's sampler): it reads the latest logits */
static void *read_row(void *arg) {
    other_job *j = arg;
    j->st = gllm_logits_read(j->l, j->row, VOCAB);
    return NULL;
}

/* A thread's logits that another thread's forward (8 rows) overwrote are refused, never read or
 * sampled into the buffers sized for its own row (they were written past: 8 ids into 1) */
Test(l3, logits_overwritten_by_another_thread_refused) {
    int mine, theirs;
    cr_assert_eq(gllm_seq_open(kv, 64, &mine), GLLM_OK);
    cr_assert_eq(gllm_seq_open(kv, 64, &theirs), GLLM_OK);
    const int32_t t = 5;
    gllm_logits *l;
    cr_assert_eq(gllm_generator_forward(g, kv, mine, &t, 1, NULL, &l), GLLM_OK);
    other_job o = {theirs, NULL, NULL, GLLM_OK};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, tree_of_8, &o), 0);
    pthread_join(th, NULL);
    cr_assert_eq(o.st, GLLM_OK, "%s", gllm_status_string(o.st));
    float row[64], other[64];
    cr_assert(VOCAB <= 64);
    cr_assert_eq(gllm_logits_read(l, row, VOCAB), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "another thread"), "%s", gllm_last_error());
    size_t rows = 9, vocab;
    cr_assert_eq(gllm_logits_shape(l, &rows, &vocab), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(rows, 0);
    int32_t ids[8];
    for (int i = 0; i < 8; i++) ids[i] = -7;
    const gllm_sampling greedy = {.temperature = 0, .top_p = 1, .repetition_penalty = 1};
    cr_assert_eq(gllm_sample(g, l, &greedy, NULL, 0, 0, ids), GLLM_E_INVALID_ARGUMENT);
    for (int i = 0; i < 8; i++) cr_assert_eq(ids[i], -7, "id %d written", i);
    /* this thread's next forward: its own again; a thread with none of its own reads them too */
    cr_assert_eq(gllm_generator_forward(g, kv, mine, &t, 1, NULL, &l), GLLM_OK);
    cr_assert_eq(gllm_logits_read(l, row, VOCAB), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_sample(g, l, &greedy, NULL, 0, 0, ids), GLLM_OK);
    cr_assert_eq(ids[1], -7);
    other_job r = {0, l, other, GLLM_OK};
    cr_assert_eq(pthread_create(&th, NULL, read_row, &r), 0);
    pthread_join(th, NULL);
    cr_assert_eq(r.st, GLLM_OK);
    cr_assert(memcmp(row, other, VOCAB * sizeof *row) == 0);
}

typedef struct {
    gllm_embedder *e;
    const int32_t *const *seqs;
    const size_t *lens;
    size_t n;
    float *out;
    gllm_status st;
} embed_job;

static void *worker_embeds(void *arg) {
    embed_job *j = arg;
    for (int r = 0; r < 4 && j->st == GLLM_OK; r++) j->st = gllm_embedding_forward(j->e, j->seqs, j->lens, j->n, 1, j->out);
    return NULL;
}

/* the f32 value of GGUF key `key` in the image set to v (the key's string, its type, the value) */
static void patch_f32(model_file *f, const char *key, float v) {
    const size_t n = strlen(key);
    for (size_t i = 0; i + n + 8 <= f->len; i++)
        if (!memcmp(f->img + i, key, n)) {
            memcpy(f->img + i + n + 4, &v, 4);
            return;
        }
    cr_assert(0, "no key %s", key);
}

/* a normalisation epsilon that is NaN, negative, 0 or infinite: the file is refused (it gave NaN or
 * zero logits and embeddings) */
Test(l3, bad_epsilon_refused) {
    const float bad[] = {NAN, -1.0f, 0.0f, INFINITY};
    char path[64];
    for (int i = 0; i < 4; i++) {
        model_file f;
        build(&f, "llama", GLLM_DTYPE_F32);
        patch_f32(&f, "llama.attention.layer_norm_rms_epsilon", bad[i]);
        snprintf(path, sizeof path, "/tmp/gllm_l3_eps_%d.gguf", (int)getpid());
        cr_assert_eq(save(&f, path), 0); /* and drops f */
        gllm_model *m2 = NULL;
        cr_assert_eq(gllm_model_open(path, &m2), GLLM_E_INVALID_ARGUMENT, "llama epsilon %g accepted", bad[i]);
        cr_assert(strstr(gllm_last_error(), "epsilon"), "%s", gllm_last_error());
        build_bert(&f, GLLM_DTYPE_F32, GLLM_DTYPE_F32, 0);
        patch_f32(&f, "bert.attention.layer_norm_epsilon", bad[i]);
        cr_assert_eq(save(&f, path), 0);
        gllm_embedder *e = NULL;
        cr_assert_eq(gllm_embedding_upload(b, path, &e), GLLM_E_INVALID_ARGUMENT, "BERT epsilon %g accepted", bad[i]);
        unlink(path);
    }
}

/* a synthetic BERT file (head: a cross-encoder's) at path[64] */
static void write_bert(int head, char *path) {
    model_file f;
    build_bert(&f, GLLM_DTYPE_F32, GLLM_DTYPE_F32, head);
    snprintf(path, 64, "/tmp/gllm_l3_bert%d_%d.gguf", head, (int)getpid());
    cr_assert_eq(save(&f, path), 0, "%s", path);
}

/* BERT files refused with what is wrong in them: a tokenizer that names no [CLS] and [SEP] (a
 * BPE's; its texts became id -1, which only the forward refused), a width the heads do not
 * divide (the message said "hidden 0 over 0 heads") */
Test(l3, bert_files_refused_with_their_faults) {
    char bert[64];
    BERT_TOKENIZER = "gpt2";
    write_bert(0, bert);
    BERT_TOKENIZER = "bert";
    gllm_embedder *e = NULL;
    cr_assert_eq(gllm_embedding_upload(b, bert, &e), GLLM_E_UNSUPPORTED);
    cr_assert(strstr(gllm_last_error(), "[CLS]"), "%s", gllm_last_error());
    unlink(bert);
    const size_t nh = NH;
    NH = 7;
    write_bert(0, bert);
    NH = nh;
    cr_assert_eq(gllm_embedding_upload(b, bert, &e), GLLM_E_UNSUPPORTED);
    char want[64];
    snprintf(want, sizeof want, "hidden %zu over 7 heads", DIM);
    cr_assert(strstr(gllm_last_error(), want), "%s", gllm_last_error());
    unlink(bert);
}

/* threads sharing one embedder (a server's request threads): each gets the vectors of its own
 * sequences, bit for bit those of a call made alone */
Test(l3, threads_share_an_embedder) {
    char bert[64];
    write_bert(0, bert);
    gllm_embedder *e;
    cr_assert_eq(gllm_embedding_upload(b, bert, &e), GLLM_OK, "%s", gllm_last_error());
    const size_t dim = gllm_embedding_dim(e);
    static int32_t ids[WORKERS][2][24];
    const int32_t *seqs[WORKERS][2];
    size_t lens[WORKERS][2];
    for (int w = 0; w < WORKERS; w++)
        for (int i = 0; i < 2; i++) {
            lens[w][i] = 5 + 7 * w + 3 * i;
            for (size_t t = 0; t < lens[w][i]; t++) ids[w][i][t] = 4 + (int32_t)((w * 13 + i * 5 + t * 3) % (VOCAB - 4));
            ids[w][i][0] = 2, ids[w][i][lens[w][i] - 1] = 3, seqs[w][i] = ids[w][i];
        }
    float *got = calloc(WORKERS * 2 * dim, sizeof *got), *want = calloc(WORKERS * 2 * dim, sizeof *want);
    embed_job jobs[WORKERS];
    pthread_t th[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        jobs[w] = (embed_job){e, seqs[w], lens[w], 2, got + w * 2 * dim, GLLM_OK};
        cr_assert_eq(pthread_create(&th[w], NULL, worker_embeds, &jobs[w]), 0);
    }
    for (int w = 0; w < WORKERS; w++) pthread_join(th[w], NULL);
    for (int w = 0; w < WORKERS; w++) {
        cr_assert_eq(jobs[w].st, GLLM_OK, "worker %d: %s", w, gllm_status_string(jobs[w].st));
        cr_assert_eq(gllm_embedding_forward(e, seqs[w], lens[w], 2, 1, want + w * 2 * dim), GLLM_OK);
    }
    cr_assert(memcmp(got, want, WORKERS * 2 * dim * sizeof *got) == 0, "vectors made concurrently differ from those made alone");
    free(got), free(want);
    gllm_embedder_free(e);
    unlink(bert);
}

/* a pair's ids: the count a retry needs when they do not fit, and a query holding [SEP]
 * refused (the types of the document start after the first one) */
Test(l3, rerank_tokenize) {
    char bert[64];
    write_bert(1, bert);
    gllm_reranker *r;
    cr_assert_eq(gllm_reranker_upload(b, bert, &r), GLLM_OK, "%s", gllm_last_error());
    int32_t ids[64];
    size_t n, need;
    cr_assert_eq(gllm_rerank_tokenize(r, "w4 w5 w6 w7 w8 w9", "w10 w11", ids, 64, &n), GLLM_OK, "%s", gllm_last_error());
    cr_assert(ids[0] == 2 && ids[n - 1] == 3, "[CLS] ... [SEP]");
    for (size_t cap = 3; cap < n; cap++) { /* the query or the document past the room: the whole pair's count */
        cr_assert_neq(gllm_rerank_tokenize(r, "w4 w5 w6 w7 w8 w9", "w10 w11", ids, cap, &need), GLLM_OK);
        cr_assert_eq(need, n, "cap %zu: %zu needed, %zu said", cap, n, need);
    }
    cr_assert_eq(gllm_rerank_tokenize(r, "w4 [SEP] w5", "w6", ids, 64, &n), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "[SEP]"), "%s", gllm_last_error());
    cr_assert_eq(gllm_rerank_tokenize(r, "w4", "w5 [SEP] w6", ids, 64, &n), GLLM_OK, "one in the document is its own: %s", gllm_last_error());
    gllm_reranker_free(r);
    unlink(bert);
}

/* "w4 w5 ..." of n words: ids 4, 5, ... (the synthetic vocabulary's words), wrapping past VOCAB */
static char *words(size_t n, size_t first) {
    char *t = calloc(n * 4 + 1, 1);
    for (size_t i = 0; i < n; i++) sprintf(t + strlen(t), "w%zu ", 4 + (first + i) % (VOCAB - 4));
    return t;
}

static int32_t word_id(size_t i) { return (int32_t)(4 + i % (VOCAB - 4)); }

/* texts past the model's 96 positions are cut as Hugging Face cuts them: a text's end; a pair
 * "longest_first" (93 ids of room: 10 + 200 words keep the 10 and 83 of the 200; 60 + 70 keep
 * 46 + 47, the longer the odd one; 70 + 60 keep 47 + 46) */
Test(l3, long_texts_are_cut_as_hugging_face_cuts_them) {
    char bert[64];
    write_bert(1, bert);
    gllm_reranker *r;
    gllm_embedder *e;
    cr_assert_eq(gllm_reranker_upload(b, bert, &r), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_embedding_upload(b, bert, &e), GLLM_OK, "%s", gllm_last_error());
    static int32_t ids[512];
    size_t n;
    char *text = words(150, 0);
    cr_assert_eq(gllm_embedding_tokenize(e, text, strlen(text), ids, 512, &n), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(n, 96u, "[CLS], 94 words, [SEP]");
    cr_assert(ids[0] == 2 && ids[95] == 3 && ids[1] == word_id(0) && ids[94] == word_id(93), "%d %d %d %d", ids[0], ids[95], ids[1], ids[94]);
    cr_assert_eq(gllm_embedding_tokenize(e, text, strlen(text), ids, 95, &n), GLLM_E_INVALID_ARGUMENT, "room for 95 of 96");
    cr_assert_eq(n, 96u);
    float v[64];
    const int32_t *seq = ids;
    cr_assert_eq(gllm_embedding_tokenize(e, text, strlen(text), ids, 512, &n), GLLM_OK);
    cr_assert_eq(gllm_embedding_forward(e, &seq, &n, 1, 1, v), GLLM_OK, "the cut text fits the positions: %s", gllm_last_error());
    free(text);
    const size_t cases[3][4] = {{10, 200, 10, 83}, {60, 70, 46, 47}, {70, 60, 47, 46}}; /* words in, words kept */
    for (int c = 0; c < 3; c++) {
        char *q = words(cases[c][0], 0), *d = words(cases[c][1], 7);
        cr_assert_eq(gllm_rerank_tokenize(r, q, d, ids, 512, &n), GLLM_OK, "%s", gllm_last_error());
        const size_t a = cases[c][2], k = cases[c][3];
        cr_assert_eq(n, a + k + 3, "case %d: %zu ids", c, n);
        cr_assert(ids[0] == 2 && ids[a + 1] == 3 && ids[n - 1] == 3, "case %d: [CLS] q [SEP] d [SEP]", c);
        for (size_t i = 0; i < a; i++) cr_assert_eq(ids[1 + i], word_id(i), "case %d: query word %zu", c, i);
        for (size_t i = 0; i < k; i++) cr_assert_eq(ids[a + 2 + i], word_id(7 + i), "case %d: document word %zu", c, i);
        float score;
        seq = ids;
        cr_assert_eq(gllm_rerank_forward(r, &seq, &n, 1, &score), GLLM_OK, "%s", gllm_last_error());
        free(q), free(d);
    }
    gllm_reranker_free(r), gllm_embedder_free(e);
    unlink(bert);
}
