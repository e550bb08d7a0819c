#include "cpu/attention.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/dispatch.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "core/workspace.h"

#define CHUNK 256   /* keys per work item, where a token block's keys are split */
#define ENOUGH_ITEMS 64 /* (token block, KV head) items that need no split: 4 a thread up to 16 */
#define MAX_GROUP 64
#define TB 8        /* query tokens per work item: they share each key block's loads */
#define TB_TILES 16 /* the same on AMX tiles (attn_tiles): rows a multiple of 16 */
_Static_assert(TB_TILES >= TB, "a token block holds at most TB_TILES tokens");

typedef struct {
    const gllm_kv_pool *p;
    const gllm_kv_seq *s;
    size_t layer, n_tok, n_heads, n_prefix, group, stride, n_items;
    gllm_mask_kind mask;
    const float *q;
    float scale;
    const uint8_t *bits; /* TREE: per token, its ancestors among the step's slots */
    size_t tb;           /* tokens per block */
    size_t chunk;        /* keys per item */
    size_t *first;       /* first item of token block b: [first[b], first[b + 1]) per KV head */
    float *part;         /* per item: group * head_dim o, group m, group l */
    float *out;
    gllm_attn_fn fn;
    int single;          /* every token block has one chunk: attn_task writes out, no merge */
} attn_job;

static size_t visible_end(const attn_job *j, size_t i) {
    return j->mask == GLLM_MASK_NONE ? j->n_prefix + j->n_tok : j->n_prefix + i + 1;
}

static void attn_task(void *ctx, size_t item, void *scratch) {
    const attn_job *j = ctx;
    const size_t per_head = j->n_items / j->p->n_kv_heads, kvh = item / per_head, rest = item % per_head;
    size_t b = 0;
    while (j->first[b + 1] <= rest) b++;
    const size_t i0 = b * j->tb, nt = j->n_tok - i0 < j->tb ? j->n_tok - i0 : j->tb;
    const size_t g = j->group, hd = j->p->head_dim, rows = nt * g;
    const size_t t0 = (rest - j->first[b]) * j->chunk, end = visible_end(j, i0 + nt - 1);
    const size_t t1 = t0 + j->chunk < end ? t0 + j->chunk : end;
    /* the block's query rows, contiguous: token-major, then the group's heads */
    float *q = scratch;
    uint8_t *bits = (uint8_t *)(q + rows * hd);
    uint32_t nc[TB_TILES * MAX_GROUP]; /* tb <= TB_TILES: the tiles' blocks of 16 tokens, a group's rows each */
    for (size_t t = 0; t < nt; t++)
        for (size_t r = 0; r < g; r++) {
            memcpy(q + (t * g + r) * hd, j->q + ((i0 + t) * j->n_heads + kvh * g + r) * hd, hd * sizeof(float));
            nc[t * g + r] = (uint32_t)(j->mask == GLLM_MASK_TREE ? j->n_prefix : visible_end(j, i0 + t));
            if (j->bits) memcpy(bits + (t * g + r) * j->stride, j->bits + (i0 + t) * j->stride, j->stride);
        }
    gllm_attn_args a = {.q = q, .rows = rows, .scale = j->scale, .n_contig = nc,
                        .work = (char *)scratch + GLLM_SCRATCH_BYTES - GLLM_ATTN_WORK};
    gllm_kv_view(j->p, j->s, j->layer, kvh, &a);
    if (j->bits) a.bits = bits, a.bits_start = j->n_prefix, a.bits_len = j->n_tok, a.bits_stride = j->stride;
    float *o = j->part + item * j->tb * g * (hd + 2);
    j->fn(&a, t0, t1, o, o + rows * hd, o + rows * hd + rows);
    if (!j->single) return;
    /* the block's only chunk: its rows are final, written as merge_task would (same arithmetic) */
    for (size_t row = 0; row < rows; row++) {
        float *dst = j->out + ((i0 + row / g) * j->n_heads + kvh * g + row % g) * hd;
        const float l = o[rows * hd + rows + row];
        const int seen = o[rows * hd + row] != -INFINITY; /* the row saw a key */
        const float inv = seen && l > 0 ? 1.0f / l : 0.0f;
        for (size_t x = 0; x < hd; x++) dst[x] = seen ? (0.0f + o[row * hd + x]) * inv : 0.0f;
    }
}

/* task = one (KV head, token): its group's rows combined from the token block's chunks, in order */
static void merge_task(void *ctx, size_t task, void *scratch) {
    (void)scratch;
    const attn_job *j = ctx;
    const size_t kvh = task / j->n_tok, i = task % j->n_tok, g = j->group, hd = j->p->head_dim;
    const size_t per_head = j->n_items / j->p->n_kv_heads, b = i / j->tb;
    const size_t nt = j->n_tok - b * j->tb < j->tb ? j->n_tok - b * j->tb : j->tb, rows = nt * g;
    for (size_t r = 0; r < g; r++) {
        const size_t row = (i - b * j->tb) * g + r;
        float *dst = j->out + (i * j->n_heads + kvh * g + r) * hd;
        float m = -INFINITY, l = 0.0f;
        memset(dst, 0, hd * sizeof(float));
        for (size_t it = j->first[b]; it < j->first[b + 1]; it++) {
            const float *o = j->part + (kvh * per_head + it) * j->tb * g * (hd + 2);
            const float mc = o[rows * hd + row], lc = o[rows * hd + rows + row];
            if (mc == -INFINITY) continue;
            const float mn = mc > m ? mc : m, a = m == -INFINITY ? 0.0f : expf(m - mn), e = expf(mc - mn);
            for (size_t x = 0; x < hd; x++) dst[x] = dst[x] * a + o[row * hd + x] * e;
            l = l * a + lc * e, m = mn;
        }
        const float inv = l > 0 ? 1.0f / l : 0.0f;
        for (size_t x = 0; x < hd; x++) dst[x] *= inv;
    }
}

/* one sequence's job: its arguments checked, its token blocks, items and buffers (from the
 * calling thread's workspace) */
static gllm_status attn_setup(attn_job *j, const gllm_kv_pool *p, size_t layer, size_t n_heads, gllm_mask_kind mask,
                              const int32_t *parent, float scale, const gllm_attn_seq *q) {
    const gllm_kv_seq *s = q->s;
    const size_t hd = p->head_dim, n_tok = q->n_tok, n_prefix = q->n_prefix;
    if (!s || !q->q || !q->out || !n_tok) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "attention: NULL or empty input");
    if (n_prefix + n_tok > s->n_pages * p->page_size)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "attention: positions up to %zu, only %zu slots reserved",
                         n_prefix + n_tok - 1, s->n_pages * p->page_size);
    for (size_t i = 0; i < s->n_pages; i++)
        if (s->table[i] < 0 || (size_t)s->table[i] >= p->n_pages)
            return gllm_fail(GLLM_E_INVALID_ARGUMENT, "attention: block table entry %zu = %d outside the %zu-page pool",
                             i, s->table[i], p->n_pages);
    *j = (attn_job){.p = p, .s = s, .layer = layer, .n_tok = n_tok, .n_heads = n_heads, .n_prefix = n_prefix,
                    .group = n_heads / p->n_kv_heads, .mask = mask, .q = q->q, .scale = scale, .out = q->out,
                    .fn = gllm_kernels()->attn[p->dtype], .stride = (n_tok + 7) / 8};
    /* AMX tiles where the query rows fill a tile (prefill; decode of a group this large) */
    const int tiles = gllm_kernels()->attn_tiles[p->dtype] && n_tok * j->group >= 16;
    if (tiles) j->fn = gllm_kernels()->attn_tiles[p->dtype];
    if (mask == GLLM_MASK_TREE) {
        uint8_t *bits = gllm_ws_alloc(n_tok * j->stride);
        if (!bits) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "attention: no memory for the tree mask");
        memset(bits, 0, n_tok * j->stride);
        for (size_t i = 0; i < n_tok; i++) {
            if (parent[i] >= (int32_t)i || parent[i] < -1)
                return gllm_fail(GLLM_E_INVALID_ARGUMENT, "attention: token %zu has parent %d (must be -1 or < %zu)", i,
                                 parent[i], i);
            uint8_t *b = bits + i * j->stride;
            b[i / 8] |= (uint8_t)(1u << (i % 8));
            if (parent[i] >= 0) /* ancestors of the parent (already complete), and the parent */
                for (size_t x = 0; x < j->stride; x++) b[x] |= bits[(size_t)parent[i] * j->stride + x];
        }
        j->bits = bits;
    }
    /* token blocks: as many tokens as fit the per-thread scratch (query rows + their masks; the
     * tiles' buffers at its end) */
    const size_t row_bytes = j->group * (hd * sizeof(float) + (j->bits ? j->stride : 0));
    const size_t room = GLLM_SCRATCH_BYTES - (tiles ? GLLM_ATTN_WORK : 0);
    j->tb = tiles ? TB_TILES : TB;
    while (j->tb > 1 && j->tb * row_bytes > room) j->tb /= 2;
    if (j->tb * row_bytes > room) return gllm_fail(GLLM_E_UNSUPPORTED, "attention: a tree of %zu tokens is too large for one step", n_tok);
    const size_t n_blocks = (n_tok + j->tb - 1) / j->tb;
    /* keys split into chunks (flash-decoding) where the token blocks are too few to keep the
     * threads busy; else each block's keys in one item, and no merge. Decided per sequence, so
     * that a sequence's attention does not depend on the others of a batch, and by the step's
     * shape alone, never the pool's size, so that results do not depend on the thread count
     * (it was 4 items a thread: 24 queries over 300 keys took one pass alone, chunks with 2) */
    j->chunk = n_blocks * p->n_kv_heads >= ENOUGH_ITEMS ? (n_prefix + n_tok + CHUNK - 1) / CHUNK * CHUNK : CHUNK;
    if (!(j->first = gllm_ws_alloc((n_blocks + 1) * sizeof(size_t))))
        return gllm_fail(GLLM_E_OUT_OF_MEMORY, "attention: no memory for %zu token blocks", n_blocks);
    size_t items = 0;
    for (size_t b = 0; b < n_blocks; b++) {
        const size_t last = (b + 1) * j->tb < n_tok ? (b + 1) * j->tb - 1 : n_tok - 1;
        j->first[b] = items, items += (visible_end(j, last) + j->chunk - 1) / j->chunk;
    }
    j->first[n_blocks] = items;
    j->n_items = items * p->n_kv_heads;
    if (!(j->part = gllm_ws_alloc(j->n_items * j->tb * j->group * (hd + 2) * sizeof(float))))
        return gllm_fail(GLLM_E_OUT_OF_MEMORY, "attention: no memory for %zu partial results", j->n_items);
    j->single = items == n_blocks; /* decode over a short context: one pool pass */
    return GLLM_OK;
}

/* the sequences' jobs as one set of tasks: task t is job b's t - at[b], at[b] <= t < at[b + 1] */
typedef struct {
    attn_job *jobs;
    size_t *at;
    size_t n;
} attn_batch;

static void batch_attn_task(void *ctx, size_t task, void *scratch) {
    const attn_batch *c = ctx;
    const size_t b = gllm_part_of(c->at, c->n, task);
    attn_task(&c->jobs[b], task - c->at[b], scratch);
}

static void batch_merge_task(void *ctx, size_t task, void *scratch) {
    const attn_batch *c = ctx;
    const size_t b = gllm_part_of(c->at, c->n, task);
    merge_task(&c->jobs[b], task - c->at[b], scratch);
}

gllm_status gllm_cpu_attention_seqs(const gllm_kv_pool *p, size_t layer, size_t n_heads, gllm_mask_kind mask,
                                    const int32_t *parent, float scale, const gllm_attn_seq *seqs, size_t n) {
    gllm_status st = gllm_ensure_init();
    if (st != GLLM_OK) return st;
    if (!p || !seqs || !n) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "attention: NULL or empty input");
    const size_t hd = p->head_dim;
    if (hd % 16 || hd > 256)
        return gllm_fail(GLLM_E_UNSUPPORTED, "attention: head dim %zu (supported: multiples of 16 up to 256)", hd);
    if (!n_heads || n_heads % p->n_kv_heads || n_heads / p->n_kv_heads > MAX_GROUP)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "attention: %zu query heads over %zu KV heads", n_heads,
                         p->n_kv_heads);
    if (gllm_kv_layer(p, layer) >= p->n_layers) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "attention: layer %zu not in the cache", layer);
    if (mask == GLLM_MASK_TREE && (!parent || n > 1))
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "attention: a tree mask %s", parent ? "for more than one sequence" : "without parents");
    const size_t mark = gllm_ws_mark();
    attn_batch c = {.jobs = gllm_ws_alloc(n * sizeof(attn_job)), .at = gllm_ws_alloc((n + 1) * sizeof(size_t)), .n = n};
    size_t *merge_at = gllm_ws_alloc((n + 1) * sizeof(size_t));
    if (!c.jobs || !c.at || !merge_at) st = gllm_fail(GLLM_E_OUT_OF_MEMORY, "attention: no memory for %zu sequences", n);
    for (size_t b = 0; b < n && st == GLLM_OK; b++) st = attn_setup(&c.jobs[b], p, layer, n_heads, mask, parent, scale, &seqs[b]);
    if (st != GLLM_OK) return gllm_ws_release(mark), st;
    c.at[0] = merge_at[0] = 0;
    for (size_t b = 0; b < n; b++) {
        c.at[b + 1] = c.at[b] + c.jobs[b].n_items;
        merge_at[b + 1] = merge_at[b] + (c.jobs[b].single ? 0 : p->n_kv_heads * c.jobs[b].n_tok); /* merge_task: (KV head, token) */
    }
    gllm_pool_run(c.at[n], batch_attn_task, &c);
    if (merge_at[n]) {
        c.at = merge_at;
        gllm_pool_run(merge_at[n], batch_merge_task, &c);
    }
    gllm_ws_release(mark);
    return GLLM_OK;
}

gllm_status gllm_cpu_attention(const gllm_kv_pool *p, const gllm_kv_seq *s, size_t layer, const float *q,
                               size_t n_tok, size_t n_heads, size_t n_prefix, gllm_mask_kind mask,
                               const int32_t *parent, float scale, float *out) {
    const gllm_attn_seq one = {.s = s, .q = q, .n_tok = n_tok, .n_prefix = n_prefix, .out = out};
    return gllm_cpu_attention_seqs(p, layer, n_heads, mask, parent, scale, &one, 1);
}
