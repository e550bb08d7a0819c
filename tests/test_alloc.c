/* Nothing is allocated in the generation loop: every malloc-family call of the process is
 * counted (the test links with --wrap), and decode steps plus sampling after a warm-up make none.
 * A caller thread's workspace goes when the thread does: frees are counted too. The GPT-2
 * BPE tokenizer's allocations do not grow with the number of pieces in the text. And a forward
 * whose allocation fails, any of them, says so and leaves the cache as it was. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "synth_model.h"
#include "text/tokenizer.h"

static atomic_long calls, frees, fail_at = -1; /* fail_at: the call that fails (out of memory), -1 none */
void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
static int fails(void) { return atomic_fetch_add(&calls, 1) == atomic_load(&fail_at); }
void *__wrap_malloc(size_t n) { return fails() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t a, size_t b) { return fails() ? NULL : __real_calloc(a, b); }
void *__wrap_realloc(void *p, size_t n) { return fails() ? NULL : __real_realloc(p, n); }
int __wrap_posix_memalign(void **p, size_t a, size_t n) { return fails() ? 12 /* ENOMEM */ : __real_posix_memalign(p, a, n); }
void __real_free(void *p);
void __wrap_free(void *p) {
    if (p) atomic_fetch_add(&frees, 1);
    __real_free(p);
}

Test(alloc, decode_loop_allocates_nothing) {
    model_file f;
    build(&f, "llama", GLLM_DTYPE_Q4_1);
    char path[64];
    snprintf(path, sizeof path, "/tmp/gllm_alloc_%d.gguf", (int)getpid());
    cr_assert_eq(save(&f, path), 0, "%s", path);
    gllm_backend *b;
    gllm_model *m;
    gllm_generator *g;
    gllm_kv_cache *kv;
    int seq;
    cr_assert_eq(gllm_backend_open("cpu", &b), GLLM_OK);
    cr_assert_eq(gllm_model_open(path, &m), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_generator_upload(b, m, 32, &g), GLLM_OK);
    cr_assert_eq(gllm_kv_cache_alloc(g, 8, 16, GLLM_DTYPE_F16, &kv), GLLM_OK);
    cr_assert_eq(gllm_seq_open(kv, 96, &seq), GLLM_OK);
    const int32_t prompt[6] = {1, 2, 3, 4, 5, 6};
    gllm_logits *l;
    const gllm_sampling cfg = {.temperature = 0.8f, .top_k = 20, .top_p = 0.9f, .repetition_penalty = 1.1f, .seed = 1};
    int32_t hist[64] = {1, 2, 3, 4, 5, 6}, tok;
    cr_assert_eq(gllm_generator_forward(g, kv, seq, prompt, 6, NULL, &l), GLLM_OK);
    cr_assert_eq(gllm_sample(g, l, &cfg, hist, 6, 0, &tok), GLLM_OK);
    cr_assert_eq(gllm_generator_forward(g, kv, seq, &tok, 1, NULL, &l), GLLM_OK); /* warm-up of the decode shape */
    const long before = atomic_load(&calls);
    cr_assert(before > 0, "the counting wraps see the set-up allocations");
    for (int step = 1; step <= 20; step++) {
        cr_assert_eq(gllm_sample(g, l, &cfg, hist, (size_t)(6 + step), (uint64_t)step, &tok), GLLM_OK);
        hist[6 + step] = tok;
        cr_assert_eq(gllm_generator_forward(g, kv, seq, &tok, 1, NULL, &l), GLLM_OK, "%s", gllm_last_error());
    }
    const long made = atomic_load(&calls) - before;
    cr_assert_eq(made, 0, "%ld allocations in 20 decode steps", made);
    gllm_kv_cache_free(kv), gllm_generator_free(g), gllm_model_close(m), gllm_backend_close(b);
    unlink(path);
}

typedef struct {
    gllm_generator *g;
    gllm_kv_cache *kv;
    int seq;
    gllm_status st;
} thread_job;

static void *forward_job(void *arg) {
    thread_job *j = arg;
    const int32_t toks[4] = {3, 1, 4, 1};
    gllm_logits *l;
    j->st = gllm_generator_forward(j->g, j->kv, j->seq, toks, 4, NULL, &l);
    return NULL;
}

/* a forward from a short-lived thread: what the thread allocated (its workspace) is freed when it exits */
Test(alloc, caller_thread_workspace_freed_at_exit) {
    model_file f;
    build(&f, "llama", GLLM_DTYPE_Q8_0);
    char path[64];
    snprintf(path, sizeof path, "/tmp/gllm_alloc_t_%d.gguf", (int)getpid());
    cr_assert_eq(save(&f, path), 0, "%s", path);
    gllm_backend *b;
    gllm_model *m;
    thread_job j = {0};
    cr_assert_eq(gllm_backend_open("cpu", &b), GLLM_OK);
    cr_assert_eq(gllm_model_open(path, &m), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_generator_upload(b, m, 32, &j.g), GLLM_OK);
    cr_assert_eq(gllm_kv_cache_alloc(j.g, 8, 16, GLLM_DTYPE_F16, &j.kv), GLLM_OK);
    for (int t = 0; t < 3; t++) {
        cr_assert_eq(gllm_seq_open(j.kv, 16, &j.seq), GLLM_OK);
        const long live = atomic_load(&calls) - atomic_load(&frees);
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, forward_job, &j), 0);
        pthread_join(th, NULL);
        cr_assert_eq(j.st, GLLM_OK);
        const long left = atomic_load(&calls) - atomic_load(&frees) - live;
        cr_assert_eq(left, 0, "thread %d left %ld allocations behind", t, left);
        gllm_seq_close(j.kv, j.seq);
    }
    gllm_kv_cache_free(j.kv), gllm_generator_free(j.g), gllm_model_close(m), gllm_backend_close(b);
    unlink(path);
}

/* allocations of one tokenisation */
static long tokenize_calls(const gllm_tokenizer *t, const char *text, int32_t *ids, size_t cap, size_t *n) {
    const long before = atomic_load(&calls);
    cr_assert_eq(gllm_tokenize(t, text, strlen(text), 0, ids, cap, n), GLLM_OK, "%s", gllm_last_error());
    return atomic_load(&calls) - before;
}

Test(alloc, bpe_tokenizer_allocations_do_not_grow_with_the_text) {
    char path[512];
    snprintf(path, sizeof path, "%s/tests/data/tokenizers/ggml-vocab-gpt-2.gguf", GLLM_SOURCE_DIR);
    gllm_gguf g;
    cr_assert_eq(gllm_gguf_open(path, &g), GLLM_OK, "%s", gllm_last_error());
    gllm_tokenizer *t;
    cr_assert_eq(gllm_tokenizer_load(&g, &t), GLLM_OK, "%s", gllm_last_error());
    gllm_gguf_close(&g);
    static char text[8192];
    static int32_t ids[8192];
    size_t n1, n200;
    const long one = tokenize_calls(t, " hello", ids, 8192, &n1);
    for (int i = 0; i < 200; i++) strcat(text, i % 2 ? " hello" : " world!");
    const long many = tokenize_calls(t, text, ids, 8192, &n200);
    cr_assert_gt(n200, 100 * n1, "200 words: %zu ids", n200);
    cr_assert_leq(many, one + 2, "one word: %ld allocations, 200 words: %ld", one, many);
    gllm_tokenizer_free(t);
}

/* every allocation of a generator's life failing in turn (its upload, its cache, a sequence, a
 * first tree forward with its workspace and the tree's mask): out of memory, said where, the
 * sequence as it was, nothing leaked (LeakSanitizer in CI); then it runs, as on a generator that
 * never failed */
static gllm_status life(gllm_backend *b, gllm_model *m, float *logits, size_t *len) {
    const int32_t tok[6] = {5, 9, 2, 7, 1, 3}, parent[6] = {-1, 0, 0, 1, 2, 4}, pos[6] = {0, 1, 1, 2, 2, 3};
    const gllm_topology topo = {parent, pos};
    gllm_generator *g = NULL;
    gllm_kv_cache *kv = NULL;
    gllm_logits *l;
    int seq;
    *len = 0;
    gllm_status st = gllm_generator_upload(b, m, 32, &g);
    if (st == GLLM_OK) st = gllm_kv_cache_alloc(g, 8, 16, GLLM_DTYPE_F32, &kv);
    if (st == GLLM_OK) st = gllm_seq_open(kv, 64, &seq);
    if (st == GLLM_OK) {
        st = gllm_generator_forward(g, kv, seq, tok, 6, &topo, &l);
        gllm_seq_length(kv, seq, len);
        if (st == GLLM_OK) st = gllm_logits_read(l, logits, 6 * VOCAB);
    }
    gllm_kv_cache_free(kv), gllm_generator_free(g);
    return st;
}

Test(alloc, generators_survive_each_allocation_failing) {
    model_file f;
    build(&f, "llama", GLLM_DTYPE_F32);
    char path[64];
    snprintf(path, sizeof path, "/tmp/gllm_alloc_oom_%d.gguf", (int)getpid());
    cr_assert_eq(save(&f, path), 0, "%s", path);
    gllm_backend *b;
    gllm_model *m;
    cr_assert_eq(gllm_backend_open("cpu", &b), GLLM_OK);
    cr_assert_eq(gllm_model_open(path, &m), GLLM_OK, "%s", gllm_last_error());
    static float got[6 * 64], want[6 * 64];
    gllm_status st = GLLM_E_OUT_OF_MEMORY;
    long k = 0;
    for (; st != GLLM_OK; k++) {
        size_t len;
        atomic_store(&fail_at, atomic_load(&calls) + k);
        st = life(b, m, got, &len);
        atomic_store(&fail_at, -1);
        cr_assert(st == GLLM_OK || st == GLLM_E_OUT_OF_MEMORY, "allocation %ld failing: %s", k, gllm_status_string(st));
        cr_assert(st == GLLM_OK ? len == 6 : len == 0, "allocation %ld failing: length %zu", k, len);
        cr_assert(st == GLLM_OK || strlen(gllm_last_error()) > 0, "allocation %ld failing: no message", k);
    }
    cr_assert_gt(k, 3, "the set-up allocates, so failures were met (%ld)", k);
    size_t len;
    cr_assert_eq(life(b, m, want, &len), GLLM_OK);
    cr_assert(!memcmp(got, want, 6 * VOCAB * sizeof(float)), "after the failures, the forward as on a generator that never failed");
    gllm_model_close(m), gllm_backend_close(b);
    unlink(path);
}
