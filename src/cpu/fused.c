#include "cpu/fused.h"
#include <stdlib.h>
#include <string.h>
#include "core/dispatch.h"
#include "core/dtype_traits.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "core/workspace.h"
#include "cpu/matmul.h"
#include "model/rope.h"

/* columns per task of a gemm, or of a gemv of more than 32 rows (its gate and up outputs stay
 * m x 64 a thread: AVX2 prefill of 512 tokens through the gemv 667-680 -> 637-645 ms); a gemv's
 * of fewer rows are a matmul's ranges */
#define FFN_CHUNK 64

typedef struct {
    gllm_ffn_kind kind;
    gllm_matmul_fn fn;
    gllm_matmul_args gate, up; /* w, bias and n set per chunk */
    size_t row_bytes, n, chunk;
    float *y, *tiles;          /* tiles: per thread, 2 x m x chunk */
} ffn_job;

static void ffn_task(void *ctx, size_t task, void *scratch) {
    const ffn_job *j = ctx;
    const size_t j0 = task * j->chunk, nc = j->n - j0 < j->chunk ? j->n - j0 : j->chunk, m = j->gate.m;
    float *tg = j->tiles + (size_t)gllm_pool_thread() * 2 * m * j->chunk, *tu = tg + m * j->chunk;
    gllm_matmul_args g = j->gate;
    g.w = (const char *)g.w + j0 * j->row_bytes, g.bias = g.bias ? g.bias + j0 : NULL, g.n = nc, g.y = tg, g.ldy = nc;
    j->fn(&g, 0, nc, scratch);
    const gllm_kernel_table *kt = gllm_kernels();
    if (j->kind != GLLM_FFN_GELU) {
        gllm_matmul_args u = j->up;
        u.w = (const char *)u.w + j0 * j->row_bytes, u.bias = u.bias ? u.bias + j0 : NULL, u.n = nc, u.y = tu, u.ldy = nc;
        j->fn(&u, 0, nc, scratch);
    }
    for (size_t i = 0; i < m; i++) {
        float *dst = j->y + i * j->n + j0, *gi = tg + i * nc, *ui = tu + i * nc;
        if (j->kind == GLLM_FFN_SILU_GLU) kt->silu_mul(gi, ui, dst, nc);
        else if (j->kind == GLLM_FFN_GELU) kt->gelu(gi, dst, nc);
        else kt->gelu(gi, gi, nc), kt->mul(gi, ui, dst, nc);
    }
}

typedef struct {
    float *y;
    size_t m, n, rows; /* rows per task */
} gelu_job;

static void gelu_task(void *ctx, size_t task, void *scratch) {
    (void)scratch;
    const gelu_job *j = ctx;
    for (size_t r = task * j->rows; r < (task + 1) * j->rows && r < j->m; r++) gllm_kernels()->gelu(j->y + r * j->n, j->y + r * j->n, j->n);
}

gllm_status gllm_cpu_ffn_up(gllm_ffn_kind kind, gllm_dtype t, int tiled, const void *w_gate, const float *b_gate,
                            const void *w_up, const float *b_up, const float *x, float *y, size_t m, size_t n,
                            size_t k) {
    gllm_status st = gllm_ensure_init();
    if (st != GLLM_OK) return st;
    if (!w_gate || !x || !y || (kind != GLLM_FFN_GELU && !w_up) || !m || !n || !k)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "ffn: NULL or empty input");
    if ((unsigned)t >= GLLM_DTYPE_COUNT || k % (size_t)gllm_dtype_traits_table[t].block)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "ffn: dtype %d with k=%zu", (int)t, k);
    if (kind == GLLM_FFN_GELU && m > gllm_cpu_gemv_rows(t)) { /* no gate: the matmul, then GELU in place */
        if ((st = gllm_cpu_matmul(t, tiled, w_gate, x, b_gate, y, m, n, k)) != GLLM_OK) return st;
        gelu_job g = {y, m, n, (m + 63) / 64}; /* 64 tasks */
        gllm_pool_run((m + g.rows - 1) / g.rows, gelu_task, &g);
        return GLLM_OK;
    }
    ffn_job j = {.kind = kind, .fn = gllm_cpu_matmul_kernel(t, m, tiled), .row_bytes = gllm_row_bytes(t, k), .n = n, .y = y,
                 .chunk = m > gllm_cpu_gemv_rows(t) || m > 32 ? FFN_CHUNK : gllm_cpu_matmul_split(t, m, n, k).chunk};
    j.gate = (gllm_matmul_args){.w = w_gate, .w_row_bytes = j.row_bytes, .x = x, .ldx = k, .bias = b_gate, .m = m, .k = k,
                                .tiled = tiled};
    const size_t mark = gllm_ws_mark();
    j.tiles = gllm_ws_alloc((size_t)gllm_pool_threads() * 2 * m * j.chunk * sizeof(float));
    if (!j.tiles) {
        gllm_ws_release(mark);
        return gllm_fail(GLLM_E_OUT_OF_MEMORY, "ffn: no memory for %zu rows", m);
    }
    if ((st = gllm_cpu_matmul_prepare(t, x, m, k, &j.gate)) != GLLM_OK) return gllm_ws_release(mark), st;
    j.up = j.gate; /* X prepared once, for both projections */
    j.up.w = w_up, j.up.bias = b_up;
    gllm_pool_run((n + j.chunk - 1) / j.chunk, ffn_task, &j);
    gllm_ws_release(mark);
    return GLLM_OK;
}

void gllm_qkv_fused(gllm_qkv_weights *w, gllm_dtype t, const void *wqkv, const float *bqkv, size_t n_heads,
                    size_t n_kv_heads, size_t head_dim, size_t k) {
    const size_t row = gllm_row_bytes(t, k), nq = n_heads * head_dim, nk = n_kv_heads * head_dim;
    memset(w, 0, sizeof *w);
    w->dtype = t;
    w->wq = wqkv, w->wk = (const char *)wqkv + nq * row, w->wv = (const char *)wqkv + (nq + nk) * row;
    if (bqkv) w->bq = bqkv, w->bk = bqkv + nq, w->bv = bqkv + nq + nk;
}

/* the three projections as one set of tasks on the pool */
typedef struct {
    gllm_matmul_fn fn;
    gllm_matmul_args mm[3];
    gllm_mm_split split[3];
} qkv_job;

static void qkv_task(void *ctx, size_t task, void *scratch) {
    const qkv_job *j = ctx;
    int w = 0;
    while (task >= j->split[w].tasks) task -= j->split[w++].tasks;
    gllm_cpu_matmul_part(j->fn, &j->mm[w], &j->split[w], task, scratch);
}

gllm_status gllm_cpu_qkv(const gllm_qkv_weights *w, const float *x, size_t m, size_t k, size_t nq, size_t nkv,
                         float *q, float *kout, float *v) {
    const gllm_dtype t = w->dtype;
    const size_t mark = gllm_ws_mark();
    /* what the three projections share, X prepared once */
    gllm_matmul_args xa = {.w_row_bytes = gllm_row_bytes(t, k), .x = x, .ldx = k, .m = m, .k = k, .tiled = w->tiled};
    const gllm_status st = gllm_cpu_matmul_prepare(t, x, m, k, &xa);
    if (st != GLLM_OK) return gllm_ws_release(mark), st;
    qkv_job j = {.fn = gllm_cpu_matmul_kernel(t, m, w->tiled)};
    const void *ws[3] = {w->wq, w->wk, w->wv};
    const float *bs[3] = {w->bq, w->bk, w->bv};
    float *ys[3] = {q, kout, v};
    const size_t ns[3] = {nq, nkv, nkv};
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        j.mm[i] = xa;
        j.mm[i].w = ws[i], j.mm[i].bias = bs[i], j.mm[i].y = ys[i], j.mm[i].ldy = j.mm[i].n = ns[i];
        j.split[i] = gllm_cpu_matmul_split(t, m, ns[i], k);
        total += j.split[i].tasks;
    }
    gllm_pool_run(total, qkv_task, &j);
    gllm_ws_release(mark);
    return GLLM_OK;
}

typedef struct {
    const gllm_qkv_weights *w;
    size_t n_heads, nkv, hd, rot;
    int neox;
    const float *inv_freq;
    const int32_t *pos;
    const float *cs; /* the tokens' cos/sin, or NULL */
    float *q, *k, *v;
    const gllm_kv_pool *p;
    const gllm_kv_seq *const *s; /* sequence b: rows row0[b] .. row0[b + 1] - 1 */
    const size_t *row0;
    size_t n_seqs, layer;
    const uint32_t *slots;
} rope_job;

static void rope_task(void *ctx, size_t i, void *scratch) {
    (void)scratch;
    rope_job *j = ctx;
    const gllm_kernel_table *kt = gllm_kernels();
    float *q = j->q + i * j->n_heads * j->hd, *k = j->k + i * j->nkv * j->hd, own[512];
    for (size_t h = 0; j->w->q_norm && h < j->n_heads; h++)
        kt->rmsnorm(q + h * j->hd, j->w->q_norm, q + h * j->hd, j->hd, j->w->norm_eps);
    for (size_t h = 0; j->w->k_norm && h < j->nkv; h++)
        kt->rmsnorm(k + h * j->hd, j->w->k_norm, k + h * j->hd, j->hd, j->w->norm_eps);
    const float *cs = j->cs ? j->cs + i * j->rot : own;
    if (!j->cs) gllm_rope_cos_sin(j->inv_freq, j->rot, j->pos[i], own);
    kt->rope(q, j->n_heads, j->hd, j->rot, cs, j->neox);
    kt->rope(k, j->nkv, j->hd, j->rot, cs, j->neox);
    (void)gllm_kv_write(j->p, j->s[gllm_part_of(j->row0, j->n_seqs, i)], j->layer, j->slots[i], k, j->v + i * j->nkv * j->hd); /* layer and slots checked up front */
}

/* the arguments of a RoPE + KV write pass, before anything is written */
static gllm_status rope_kv_check(const float *inv_freq, const int32_t *pos, const gllm_kv_pool *p, const gllm_kv_seq *const *s,
                                 const size_t *row0, size_t n_seqs, const uint32_t *slots, size_t n_heads, size_t rot,
                                 size_t layer) {
    if (!inv_freq || !pos || !p || !s || !row0 || !n_seqs || !slots || row0[0] || !row0[n_seqs])
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "qkv_rope: NULL or empty input");
    const size_t hd = p->head_dim, nkv = p->n_kv_heads;
    if (!n_heads || n_heads % nkv) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "qkv_rope: %zu heads over %zu KV heads", n_heads, nkv);
    if (rot > hd || rot % 2 || rot > 512) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "qkv_rope: rotary dims %zu of %zu", rot, hd);
    if (gllm_kv_layer(p, layer) >= p->n_layers) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "qkv_rope: layer %zu not in the cache", layer);
    for (size_t b = 0; b < n_seqs; b++) {
        if (!s[b] || row0[b + 1] < row0[b]) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "qkv_rope: sequence %zu: none, or rows out of order", b);
        for (size_t i = row0[b]; i < row0[b + 1]; i++)
            if (pos[i] < 0 || slots[i] >= s[b]->n_pages * p->page_size)
                return gllm_fail(GLLM_E_INVALID_ARGUMENT, "qkv_rope: token %zu: position %d, slot %u (%zu reserved)", i,
                                 pos[i], slots[i], s[b]->n_pages * p->page_size);
    }
    return GLLM_OK;
}

gllm_status gllm_cpu_rope_kv(const gllm_qkv_weights *w, float *q, float *k, float *v, size_t n_heads, const float *inv_freq,
                             size_t rot, int neox, const int32_t *pos, const float *cs, const gllm_kv_pool *p,
                             const gllm_kv_seq *const *s, const size_t *row0, size_t n_seqs, size_t layer,
                             const uint32_t *slots) {
    gllm_status st = gllm_ensure_init();
    if (st == GLLM_OK && (!w || !q || !k || !v)) st = gllm_fail(GLLM_E_INVALID_ARGUMENT, "rope_kv: NULL input");
    if (st == GLLM_OK) st = rope_kv_check(inv_freq, pos, p, s, row0, n_seqs, slots, n_heads, rot, layer);
    if (st != GLLM_OK) return st;
    rope_job r = {.w = w, .n_heads = n_heads, .nkv = p->n_kv_heads, .hd = p->head_dim, .rot = rot, .neox = neox, .inv_freq = inv_freq,
                  .pos = pos, .cs = cs, .q = q, .k = k, .v = v, .p = p, .s = s, .row0 = row0, .n_seqs = n_seqs, .layer = layer, .slots = slots};
    gllm_pool_run(row0[n_seqs], rope_task, &r);
    return GLLM_OK;
}

gllm_status gllm_cpu_qkv_rope(const gllm_qkv_weights *w, const float *x, size_t n_tok, size_t k, size_t n_heads,
                              const float *inv_freq, size_t rot, int neox, const int32_t *pos,
                              const gllm_kv_pool *p, const gllm_kv_seq *s, size_t layer, const uint32_t *slots,
                              float *q_out) {
    gllm_status st = gllm_ensure_init();
    if (st != GLLM_OK) return st;
    if (!w || !x || !q_out) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "qkv_rope: NULL or empty input");
    const size_t row0[2] = {0, n_tok};
    if ((st = rope_kv_check(inv_freq, pos, p, &s, row0, 1, slots, n_heads, rot, layer)) != GLLM_OK) return st;
    const size_t hd = p->head_dim, nkv = p->n_kv_heads, t = w->dtype;
    if ((unsigned)t >= GLLM_DTYPE_COUNT || k % (size_t)gllm_dtype_traits_table[t].block)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "qkv_rope: dtype %d with k=%zu", (int)t, k);
    const size_t mark = gllm_ws_mark();
    float *kv = gllm_ws_alloc(2 * n_tok * nkv * hd * sizeof(float));
    if (!kv) {
        gllm_ws_release(mark);
        return gllm_fail(GLLM_E_OUT_OF_MEMORY, "qkv_rope: no memory for %zu tokens", n_tok);
    }
    if ((st = gllm_cpu_qkv(w, x, n_tok, k, n_heads * hd, nkv * hd, q_out, kv, kv + n_tok * nkv * hd)) == GLLM_OK)
        st = gllm_cpu_rope_kv(w, q_out, kv, kv + n_tok * nkv * hd, n_heads, inv_freq, rot, neox, pos, NULL, p, &s, row0, 1, layer, slots);
    gllm_ws_release(mark);
    return st;
}
