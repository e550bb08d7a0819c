/* Paged KV cache + attention driver: against softmax(QK^T)V in double for causal,
 * no-mask and tree steps; paged vs contiguous; bad input. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/dispatch.h"
#include "cpu/attention.h"
#include "ref/ref.h"

static uint64_t state;
static float uni(void) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(state >> 40) / 16777216.0f * 2.0f - 1.0f;
}

typedef struct {
    gllm_kv_pool pool;
    gllm_kv_seq seq, other;
} cache;

/* a pool whose pages interleave with another sequence's when `paged`, sequential otherwise */
static void make_cache(cache *c, gllm_dtype dt, size_t kvh, size_t hd, size_t tokens, int paged) {
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    const size_t pages = 2 * (tokens / 16 + 2);
    cr_assert_eq(gllm_kv_pool_init(&c->pool, dt, 2, kvh, hd, 16, pages), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_kv_seq_init(&c->seq, &c->pool, tokens), GLLM_OK);
    cr_assert_eq(gllm_kv_seq_init(&c->other, &c->pool, tokens), GLLM_OK);
    for (size_t t = 16; t <= tokens + 15; t += 16) {
        cr_assert_eq(gllm_kv_reserve(&c->pool, &c->seq, t < tokens ? t : tokens), GLLM_OK, "%s", gllm_last_error());
        if (paged) cr_assert_eq(gllm_kv_reserve(&c->pool, &c->other, t < tokens ? t : tokens), GLLM_OK);
    }
}

static void free_cache(cache *c) {
    gllm_kv_seq_release(&c->pool, &c->seq);
    gllm_kv_seq_release(&c->pool, &c->other);
    gllm_kv_pool_free(&c->pool);
}

/* K/V of every slot, written from the same random floats; returns the values as stored (dequantised) */
static void fill(cache *c, size_t tokens, size_t layer, double *kd, double *vd, uint64_t seed) {
    const size_t kvh = c->pool.n_kv_heads, hd = c->pool.head_dim;
    float *k = malloc(kvh * hd * 4), *v = malloc(kvh * hd * 4);
    void *tmp = malloc(hd * 4);
    state = seed;
    for (size_t t = 0; t < tokens; t++) {
        for (size_t i = 0; i < kvh * hd; i++) k[i] = uni(), v[i] = uni();
        cr_assert_eq(gllm_kv_write(&c->pool, &c->seq, layer, t, k, v), GLLM_OK);
        for (size_t h = 0; h < kvh; h++) { /* what the cache holds, as the reference reads it */
            gllm_kernels()->quantize[c->pool.dtype](k + h * hd, tmp, hd);
            gllm_ref_dequantize(c->pool.dtype, tmp, kd + (t * kvh + h) * hd, hd);
            gllm_kernels()->quantize[c->pool.dtype](v + h * hd, tmp, hd);
            gllm_ref_dequantize(c->pool.dtype, tmp, vd + (t * kvh + h) * hd, hd);
        }
    }
    free(k), free(v), free(tmp);
}

/* naive: token i, head h attends the slots vis(i, t) */
static void reference(const double *kd, const double *vd, const float *q, size_t n_tok, size_t n_heads, size_t kvh,
                      size_t hd, size_t n_prefix, gllm_mask_kind mask, const int32_t *parent, float scale, double *out) {
    const size_t g = n_heads / kvh, total = n_prefix + n_tok;
    double *s = malloc(total * 8);
    for (size_t i = 0; i < n_tok; i++)
        for (size_t h = 0; h < n_heads; h++) {
            double mx = -INFINITY, den = 0;
            for (size_t t = 0; t < total; t++) {
                int vis = mask == GLLM_MASK_NONE ? 1 : mask == GLLM_MASK_CAUSAL ? t <= n_prefix + i : t < n_prefix;
                if (mask == GLLM_MASK_TREE && t >= n_prefix)
                    for (int32_t a = (int32_t)i; a >= 0; a = parent[a]) vis |= (size_t)a == t - n_prefix;
                s[t] = -INFINITY;
                if (!vis) continue;
                double d = 0;
                for (size_t x = 0; x < hd; x++) d += q[(i * n_heads + h) * hd + x] * kd[(t * kvh + h / g) * hd + x];
                s[t] = d * scale, mx = fmax(mx, s[t]);
            }
            double *o = out + (i * n_heads + h) * hd;
            memset(o, 0, hd * 8);
            for (size_t t = 0; t < total; t++) {
                if (s[t] == -INFINITY) continue;
                const double p = exp(s[t] - mx);
                den += p;
                for (size_t x = 0; x < hd; x++) o[x] += p * vd[(t * kvh + h / g) * hd + x];
            }
            for (size_t x = 0; x < hd; x++) o[x] /= den;
        }
    free(s);
}

static void run_case(gllm_dtype dt, size_t kvh, size_t g, size_t hd, size_t n_prefix, size_t n_tok,
                     gllm_mask_kind mask, uint64_t seed) {
    const size_t n_heads = kvh * g, total = n_prefix + n_tok;
    int32_t *parent = malloc(n_tok * 4);
    state = seed ^ 0x77;
    for (size_t i = 0; i < n_tok; i++) parent[i] = i == 0 ? -1 : (int32_t)((state = state * 6364136223846793005ull + 1) >> 33) % (int32_t)i;
    float *q = malloc(n_tok * n_heads * hd * 4), *o = malloc(n_tok * n_heads * hd * 4), *oc = malloc(n_tok * n_heads * hd * 4);
    for (size_t i = 0; i < n_tok * n_heads * hd; i++) q[i] = uni();
    double *kd = malloc(total * kvh * hd * 8), *vd = malloc(total * kvh * hd * 8), *ref = malloc(n_tok * n_heads * hd * 8);
    const float scale = 1.0f / sqrtf((float)hd);
    cache paged, contig;
    make_cache(&paged, dt, kvh, hd, total, 1);
    make_cache(&contig, dt, kvh, hd, total, 0);
    fill(&paged, total, 1, kd, vd, seed);
    fill(&contig, total, 1, kd, vd, seed);
    cr_assert_eq(gllm_cpu_attention(&paged.pool, &paged.seq, 1, q, n_tok, n_heads, n_prefix, mask, parent, scale, o),
                 GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_cpu_attention(&contig.pool, &contig.seq, 1, q, n_tok, n_heads, n_prefix, mask, parent, scale, oc),
                 GLLM_OK, "%s", gllm_last_error());
    cr_assert(memcmp(o, oc, n_tok * n_heads * hd * 4) == 0, "paged and contiguous KV differ");
    reference(kd, vd, q, n_tok, n_heads, kvh, hd, n_prefix, mask, parent, scale, ref);
    for (size_t x = 0; x < n_tok * n_heads * hd; x++)
        cr_assert(fabs(o[x] - ref[x]) < 3e-5, "%s mask %d hd %zu prefix %zu n %zu: out[%zu]=%.7g, reference %.7g",
                  gllm_dtype_name(dt), mask, hd, n_prefix, n_tok, x, o[x], ref[x]);
    free_cache(&paged), free_cache(&contig);
    free(parent), free(q), free(o), free(oc), free(kd), free(vd), free(ref);
}

Test(attention, causal_prefill) {
    run_case(GLLM_DTYPE_F32, 2, 4, 64, 0, 37, GLLM_MASK_CAUSAL, 1);
    run_case(GLLM_DTYPE_F16, 1, 3, 80, 5, 21, GLLM_MASK_CAUSAL, 2);
    /* groups over 32 query heads a KV head, up to the limit: on AMX a token block of 16 tokens
     * holds 16 x 48 rows (their key counts overflowed a buffer sized for 8 tokens) */
    run_case(GLLM_DTYPE_BF16, 1, 48, 16, 3, 16, GLLM_MASK_CAUSAL, 6);
    run_case(GLLM_DTYPE_F16, 1, 64, 16, 0, 17, GLLM_MASK_CAUSAL, 7);
}
Test(attention, decode_long_context_split) { /* 600 keys: three 256-key chunks combined */
    run_case(GLLM_DTYPE_F16, 2, 4, 128, 599, 1, GLLM_MASK_CAUSAL, 3);
    run_case(GLLM_DTYPE_BF16, 2, 2, 96, 300, 1, GLLM_MASK_CAUSAL, 4);
}
#include <sys/wait.h>
#include <unistd.h>
/* a step's attention with GLLM_NUM_THREADS=threads, in a child process (the pool's size is set
 * once a process), its output sent through fd */
static void attention_with(const char *threads, int fd) {
    setenv("GLLM_NUM_THREADS", threads, 1);
    const size_t kvh = 3, g = 3, hd = 64, n_prefix = 300, n_tok = 24, total = n_prefix + n_tok;
    double *kd = malloc(total * kvh * hd * 8), *vd = malloc(total * kvh * hd * 8);
    float *q = malloc(n_tok * kvh * g * hd * 4), *o = malloc(n_tok * kvh * g * hd * 4);
    cache c;
    make_cache(&c, GLLM_DTYPE_F16, kvh, hd, total, 1);
    fill(&c, total, 0, kd, vd, 9);
    for (size_t i = 0; i < n_tok * kvh * g * hd; i++) q[i] = uni();
    const int ok = gllm_cpu_attention(&c.pool, &c.seq, 0, q, n_tok, kvh * g, n_prefix, GLLM_MASK_CAUSAL, NULL, 0.125f, o) ==
                   GLLM_OK;
    const size_t bytes = n_tok * kvh * g * hd * 4;
    _exit(ok && write(fd, o, bytes) == (ssize_t)bytes ? 0 : 1);
}

/* the thread count leaves results as they are: how a step's keys split into chunks depends on
 * its shape, never on the pool (24 queries over 300 keys took one pass on 1 thread, chunks on 8) */
Test(attention, thread_count_does_not_change_results) {
    const size_t bytes = 24 * 9 * 64 * 4;
    char *out[2] = {malloc(bytes), malloc(bytes)};
    const char *threads[2] = {"1", "8"};
    for (int r = 0; r < 2; r++) {
        int fd[2];
        cr_assert_eq(pipe(fd), 0);
        const pid_t pid = fork();
        cr_assert(pid >= 0);
        if (!pid) close(fd[0]), attention_with(threads[r], fd[1]);
        close(fd[1]);
        size_t got = 0;
        for (ssize_t n; got < bytes && (n = read(fd[0], out[r] + got, bytes - got)) > 0;) got += (size_t)n;
        close(fd[0]);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(got == bytes && WIFEXITED(status) && !WEXITSTATUS(status), "the child with %s threads failed", threads[r]);
    }
    cr_assert(memcmp(out[0], out[1], bytes) == 0, "1 and 8 threads give other results");
    free(out[0]), free(out[1]);
}

Test(attention, no_mask_encoder) { run_case(GLLM_DTYPE_F32, 3, 1, 64, 0, 23, GLLM_MASK_NONE, 5); }
Test(attention, tree_steps) {
    for (size_t n = 1; n <= 64; n = n * 2 + 1) run_case(GLLM_DTYPE_F16, 2, 2, 64, 50, n, GLLM_MASK_TREE, 6 + n);
}

/* sequences of a batch in one call (decode over 600 and 20 keys, a prefill, a short step): each
 * bit for bit its result alone */
Test(attention, sequences_batched) {
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    const size_t kvh = 2, g = 3, hd = 64, nh = kvh * g, prefix[4] = {599, 20, 0, 300}, n_tok[4] = {1, 1, 37, 3};
    gllm_kv_pool pool;
    gllm_kv_seq seq[4];
    cr_assert_eq(gllm_kv_pool_init(&pool, GLLM_DTYPE_F16, 1, kvh, hd, 16, 128), GLLM_OK, "%s", gllm_last_error());
    float *kv = malloc(kvh * hd * 4), *q[4], *alone[4], *batched[4];
    gllm_attn_seq att[4];
    state = 11;
    for (int b = 0; b < 4; b++) {
        const size_t total = prefix[b] + n_tok[b], rows = n_tok[b] * nh * hd;
        cr_assert_eq(gllm_kv_seq_init(&seq[b], &pool, total), GLLM_OK);
        cr_assert_eq(gllm_kv_reserve(&pool, &seq[b], total), GLLM_OK, "%s", gllm_last_error());
        for (size_t t = 0; t < total; t++) {
            for (size_t i = 0; i < kvh * hd; i++) kv[i] = uni();
            cr_assert_eq(gllm_kv_write(&pool, &seq[b], 0, t, kv, kv), GLLM_OK);
        }
        q[b] = malloc(rows * 4), alone[b] = malloc(rows * 4), batched[b] = malloc(rows * 4);
        for (size_t i = 0; i < rows; i++) q[b][i] = 4 * uni();
        cr_assert_eq(gllm_cpu_attention(&pool, &seq[b], 0, q[b], n_tok[b], nh, prefix[b], GLLM_MASK_CAUSAL, NULL, 0.125f, alone[b]),
                     GLLM_OK, "%s", gllm_last_error());
        att[b] = (gllm_attn_seq){&seq[b], q[b], n_tok[b], prefix[b], batched[b]};
    }
    cr_assert_eq(gllm_cpu_attention_seqs(&pool, 0, nh, GLLM_MASK_CAUSAL, NULL, 0.125f, att, 4), GLLM_OK, "%s", gllm_last_error());
    for (int b = 0; b < 4; b++)
        cr_assert(memcmp(alone[b], batched[b], n_tok[b] * nh * hd * 4) == 0, "sequence %d: batched differs from alone", b);
    const int32_t parent[1] = {-1};
    cr_assert_eq(gllm_cpu_attention_seqs(&pool, 0, nh, GLLM_MASK_TREE, parent, 0.125f, att, 2), GLLM_E_INVALID_ARGUMENT,
                 "a tree of two sequences");
    att[2].n_prefix = 1000; /* past its reserved slots: the call refused, nothing run */
    cr_assert_eq(gllm_cpu_attention_seqs(&pool, 0, nh, GLLM_MASK_CAUSAL, NULL, 0.125f, att, 4), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "reserved"));
    for (int b = 0; b < 4; b++) free(q[b]), free(alone[b]), free(batched[b]), gllm_kv_seq_release(&pool, &seq[b]);
    free(kv);
    gllm_kv_pool_free(&pool);
}

Test(attention, bad_input) {
    cache c;
    make_cache(&c, GLLM_DTYPE_F32, 1, 72, 32, 0); /* head dim 72: not a multiple of 16 */
    float q[72 * 3], o[72 * 3];
    memset(q, 0, sizeof q);
    cr_assert_eq(gllm_cpu_attention(&c.pool, &c.seq, 0, q, 1, 1, 0, GLLM_MASK_CAUSAL, NULL, 1, o), GLLM_E_UNSUPPORTED);
    free_cache(&c);
    make_cache(&c, GLLM_DTYPE_F32, 1, 64, 32, 0);
    cr_assert_eq(gllm_cpu_attention(&c.pool, &c.seq, 0, q, 1, 1, 40, GLLM_MASK_CAUSAL, NULL, 1, o),
                 GLLM_E_INVALID_ARGUMENT, "a position past the reserved slots");
    cr_assert(strstr(gllm_last_error(), "reserved"));
    const int32_t bad_parent[2] = {-1, 1};
    cr_assert_eq(gllm_cpu_attention(&c.pool, &c.seq, 0, q, 2, 1, 0, GLLM_MASK_TREE, bad_parent, 1, o),
                 GLLM_E_INVALID_ARGUMENT, "a parent that is not earlier");
    cr_assert(strstr(gllm_last_error(), "parent"));
    c.seq.table[0] = (int32_t)c.pool.n_pages + 5; /* a block table pointing past the pool */
    cr_assert_eq(gllm_cpu_attention(&c.pool, &c.seq, 0, q, 1, 1, 0, GLLM_MASK_CAUSAL, NULL, 1, o), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "outside"));
    c.seq.table[0] = 0;
    cr_assert_eq(gllm_cpu_attention(&c.pool, &c.seq, 0, q, 1, 3, 0, GLLM_MASK_CAUSAL, NULL, 1, o), GLLM_OK);
    free_cache(&c);
}

Test(kv_cache, pool_full_and_limits) {
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    gllm_kv_pool p;
    gllm_kv_seq a, b;
    cr_assert_eq(gllm_kv_pool_init(&p, GLLM_DTYPE_F16, 1, 1, 16, 24, 4), GLLM_E_INVALID_ARGUMENT, "page size 24");
    cr_assert_eq(gllm_kv_pool_init(&p, GLLM_DTYPE_Q4_0, 1, 1, 16, 16, 4), GLLM_E_UNSUPPORTED);
    cr_assert_eq(gllm_kv_pool_init(&p, GLLM_DTYPE_F16, 1, 1, 272, 16, 4), GLLM_E_UNSUPPORTED, "head_dim 272");
    cr_assert(strstr(gllm_last_error(), "head_dim 272"), "%s", gllm_last_error());
    cr_assert_eq(gllm_kv_pool_init(&p, GLLM_DTYPE_F16, 1, 1, 16, 16, (size_t)1 << 31), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "2147483648 pages, at most 2147483647"), "%s", gllm_last_error());
    cr_assert_eq(gllm_kv_pool_init(&p, GLLM_DTYPE_F16, 1, 1, 16, 16, 4), GLLM_OK);
    cr_assert_eq(gllm_kv_seq_init(&a, &p, 64), GLLM_OK);
    cr_assert_eq(gllm_kv_seq_init(&b, &p, 64), GLLM_OK);
    cr_assert_eq(gllm_kv_reserve(&p, &a, 48), GLLM_OK);
    cr_assert_eq(gllm_kv_reserve(&p, &b, 32), GLLM_E_OUT_OF_MEMORY, "only one page left");
    cr_assert(strstr(gllm_last_error(), "full"));
    cr_assert_eq(b.n_pages, 0u, "a failed reservation takes nothing");
    cr_assert_eq(gllm_kv_reserve(&p, &a, 65), GLLM_E_INVALID_ARGUMENT, "past the sequence's capacity");
    float k[16] = {0}, v[16] = {0};
    cr_assert_eq(gllm_kv_write(&p, &a, 0, 48, k, v), GLLM_E_INVALID_ARGUMENT, "slot not reserved");
    gllm_kv_seq_release(&p, &a);
    cr_assert_eq(p.n_free, 4u);
    cr_assert_eq(gllm_kv_reserve(&p, &b, 64), GLLM_OK);
    gllm_kv_seq_release(&p, &b);
    gllm_kv_pool_free(&p);
}

/* accepting a tree path: the accepted slots move to contiguous positions, bit-exact */
Test(kv_cache, compact_accepted_path) {
    cache c;
    const size_t hd = 32, total = 70;
    make_cache(&c, GLLM_DTYPE_BF16, 2, hd, total, 1);
    double *kd = malloc(total * 2 * hd * 8), *vd = malloc(total * 2 * hd * 8);
    fill(&c, total, 0, kd, vd, 9);
    const uint32_t from[] = {0, 3, 4, 9}; /* step tokens at slots 60.. : keep 60, 63, 64, 69 */
    cr_assert_eq(gllm_kv_compact(&c.pool, &c.seq, 60, from, 4), GLLM_OK);
    cr_assert_eq(c.seq.len, 64u);
    gllm_attn_args a = {0};
    double got[32];
    for (size_t h = 0; h < 2; h++) {
        gllm_kv_view(&c.pool, &c.seq, 0, h, &a);
        for (size_t i = 0; i < 4; i++) {
            const size_t slot = 60 + i;
            const char *k = (const char *)a.k + ((size_t)a.pages[slot >> a.page_shift] * a.page_elems + a.head_offset +
                                                 (slot & 15)) * 2;
            for (size_t x = 0; x < hd; x++) gllm_ref_dequantize(GLLM_DTYPE_BF16, k + x * 16 * 2, got + x, 1); /* dim-major */
            for (size_t x = 0; x < hd; x++) cr_assert_eq(got[x], kd[((60 + from[i]) * 2 + h) * hd + x]);
        }
    }
    const uint32_t bad[] = {2, 1};
    cr_assert_eq(gllm_kv_compact(&c.pool, &c.seq, 60, bad, 2), GLLM_E_INVALID_ARGUMENT);
    free(kd), free(vd);
    free_cache(&c);
}
