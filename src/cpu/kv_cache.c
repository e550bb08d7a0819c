#include "cpu/kv_cache.h"
#include <stdlib.h>
#include <string.h>
#include "core/dispatch.h"
#include "core/error.h"

gllm_status gllm_kv_pool_layout(gllm_kv_pool *p, gllm_dtype dtype, size_t n_layers, size_t n_kv_heads,
                              size_t head_dim, size_t page_size, size_t n_pages) {
    memset(p, 0, sizeof *p);
    if (dtype != GLLM_DTYPE_F32 && dtype != GLLM_DTYPE_F16 && dtype != GLLM_DTYPE_BF16)
        return gllm_fail(GLLM_E_UNSUPPORTED, "KV cache dtype %s: f32, f16 or bf16 only",
                         gllm_dtype_name(dtype) ? gllm_dtype_name(dtype) : "(unknown)");
    if (page_size < 16 || (page_size & (page_size - 1)))
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "KV page size %zu: a power of two >= 16", page_size);
    if (!n_layers || !n_kv_heads || !head_dim || !n_pages)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "KV cache: layers, heads, head_dim and pages must be > 0");
    if (n_pages > INT32_MAX) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "KV cache: %zu pages, at most %d", n_pages, INT32_MAX);
    if (head_dim > GLLM_KV_MAX_HEAD_DIM)
        return gllm_fail(GLLM_E_UNSUPPORTED, "KV cache: head_dim %zu, at most %d (the attention kernels')", head_dim,
                         GLLM_KV_MAX_HEAD_DIM);
    p->dtype = dtype, p->n_layers = n_layers, p->n_kv_heads = n_kv_heads, p->head_dim = head_dim;
    p->page_size = page_size, p->n_pages = n_pages;
    while (((size_t)1 << p->page_shift) < page_size) p->page_shift++;
    p->esize = dtype == GLLM_DTYPE_F32 ? 4 : 2;
    size_t page_bytes, layer_pages, bytes;
    if (__builtin_mul_overflow(page_size, n_kv_heads * head_dim, &p->page_elems) ||
        __builtin_mul_overflow(p->page_elems, p->esize, &page_bytes) || __builtin_mul_overflow(n_layers, n_pages, &layer_pages) ||
        __builtin_mul_overflow(layer_pages, page_bytes, &bytes) || bytes > SIZE_MAX / 4)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "KV cache: %zu pages of %zu tokens overflow the address space", n_pages, page_size);
    if (!(p->free_list = malloc(n_pages * sizeof(int32_t)))) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "KV cache: no memory for %zu pages", n_pages);
    for (size_t i = 0; i < n_pages; i++) p->free_list[i] = (int32_t)(n_pages - 1 - i);
    p->n_free = n_pages;
    return GLLM_OK;
}

gllm_status gllm_kv_pool_init(gllm_kv_pool *p, gllm_dtype dtype, size_t n_layers, size_t n_kv_heads,
                              size_t head_dim, size_t page_size, size_t n_pages) {
    gllm_status s = gllm_kv_pool_layout(p, dtype, n_layers, n_kv_heads, head_dim, page_size, n_pages);
    if (s != GLLM_OK) return s;
    const size_t bytes = (n_layers * n_pages * p->page_elems * p->esize + 4095) / 4096 * 4096;
    if (posix_memalign(&p->k, 4096, bytes) || posix_memalign(&p->v, 4096, bytes)) {
        gllm_kv_pool_free(p);
        return gllm_fail(GLLM_E_OUT_OF_MEMORY, "KV cache: no memory for %zu pages", n_pages);
    }
    memset(p->k, 0, bytes), memset(p->v, 0, bytes);
    return GLLM_OK;
}

void gllm_kv_pool_free(gllm_kv_pool *p) {
    free(p->k), free(p->v), free(p->free_list);
    memset(p, 0, sizeof *p);
}

gllm_status gllm_kv_seq_init(gllm_kv_seq *s, const gllm_kv_pool *p, size_t max_tokens) {
    memset(s, 0, sizeof *s);
    s->cap_tokens = max_tokens, s->cap_pages = max_tokens / p->page_size + (max_tokens % p->page_size != 0);
    if (!s->cap_pages || !(s->table = calloc(s->cap_pages, sizeof(int32_t))))
        return gllm_fail(GLLM_E_OUT_OF_MEMORY, "KV sequence: no block table for %zu tokens", max_tokens);
    return GLLM_OK;
}

void gllm_kv_unreserve(gllm_kv_pool *p, gllm_kv_seq *s, size_t n_pages) {
    for (; s->n_pages > n_pages; s->n_pages--) p->free_list[p->n_free++] = s->table[s->n_pages - 1];
}

static size_t pages_for(const gllm_kv_pool *p, size_t n_slots) { return n_slots / p->page_size + (n_slots % p->page_size != 0); }

void gllm_kv_trim(gllm_kv_pool *p, gllm_kv_seq *s) { gllm_kv_unreserve(p, s, pages_for(p, s->len)); }

static void return_pages(gllm_kv_pool *p, gllm_kv_seq *s) { gllm_kv_unreserve(p, s, 0); }

void gllm_kv_seq_release(gllm_kv_pool *p, gllm_kv_seq *s) {
    return_pages(p, s);
    free(s->table);
    memset(s, 0, sizeof *s);
}

/* the sequence's first need pages backed (within its table) */
static gllm_status reserve_pages(gllm_kv_pool *p, gllm_kv_seq *s, size_t need) {
    if (need > s->n_pages && need - s->n_pages > p->n_free)
        return gllm_fail(GLLM_E_OUT_OF_MEMORY, "KV cache full: %zu more pages needed, %zu free",
                         need - s->n_pages, p->n_free);
    while (s->n_pages < need) s->table[s->n_pages++] = p->free_list[--p->n_free];
    return GLLM_OK;
}

gllm_status gllm_kv_reserve(gllm_kv_pool *p, gllm_kv_seq *s, size_t n_slots) {
    if (n_slots > s->cap_tokens)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "KV sequence: %zu tokens exceed its capacity of %zu", n_slots, s->cap_tokens);
    return reserve_pages(p, s, pages_for(p, n_slots));
}

size_t gllm_kv_swap_bytes(const gllm_kv_pool *p, size_t n_pages) { return n_pages * 2 * p->n_layers * p->page_elems * p->esize; }

static gllm_status swap_copy(const gllm_kv_pool *p, const gllm_kv_seq *s, char *host, int out, gllm_kv_copy_fn copy,
                             void *ctx) {
    const size_t half = p->page_elems * p->esize, pitch = p->n_pages * half;
    for (size_t i = 0; i < s->n_pages; i++)
        for (int v = 0; v < 2; v++) { /* page i in layer l is pitch bytes after layer l - 1's */
            const size_t off = (size_t)s->table[i] * half;
            char *h = host + (i * p->n_layers * 2 + (size_t)v) * half;
            if (copy) {
                const gllm_status st = copy(ctx, v, off, pitch, h, 2 * half, half, p->n_layers, out);
                if (st != GLLM_OK) return st;
                continue;
            }
            for (size_t l = 0; l < p->n_layers; l++) {
                char *page = (char *)(v ? p->v : p->k) + off + l * pitch, *hl = h + l * 2 * half;
                out ? memcpy(hl, page, half) : memcpy(page, hl, half);
            }
        }
    return GLLM_OK;
}

gllm_status gllm_kv_swap_out(gllm_kv_pool *p, gllm_kv_seq *s, void *host, gllm_kv_copy_fn copy, void *ctx) {
    const gllm_status st = swap_copy(p, s, host, 1, copy, ctx);
    if (st == GLLM_OK) return_pages(p, s);
    return st;
}

gllm_status gllm_kv_swap_in(gllm_kv_pool *p, gllm_kv_seq *s, const void *host, size_t n_pages, gllm_kv_copy_fn copy,
                            void *ctx) {
    gllm_status st = n_pages <= s->cap_pages ? reserve_pages(p, s, n_pages)
                                             : gllm_fail(GLLM_E_INTERNAL, "KV swap-in: %zu pages, the table holds %zu", n_pages, s->cap_pages);
    if (st == GLLM_OK && (st = swap_copy(p, s, (char *)host, 0, copy, ctx)) != GLLM_OK) return_pages(p, s);
    return st;
}

/* V (token-major): the slot's head_dim values of head h; K (dim-major): its first value,
 * the next ones page_size elements apart; layer: the pool's index */
static char *slot_ptr(const gllm_kv_pool *p, void *base, const gllm_kv_seq *s, size_t layer, size_t head,
                      size_t slot, int dim_major) {
    const size_t page = (size_t)s->table[slot >> p->page_shift], in = slot & (p->page_size - 1);
    const size_t e = (layer * p->n_pages + page) * p->page_elems + head * p->page_size * p->head_dim +
                     (dim_major ? in : in * p->head_dim);
    return (char *)base + e * p->esize;
}

gllm_status gllm_kv_write(const gllm_kv_pool *p, const gllm_kv_seq *s, size_t layer, size_t slot, const float *k,
                          const float *v) {
    const size_t l = gllm_kv_layer(p, layer);
    if (l >= p->n_layers || slot >= s->n_pages * p->page_size)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "KV write: layer %zu slot %zu outside the reserved cache", layer,
                         slot);
    const gllm_quantize_fn q = gllm_kernels()->quantize[p->dtype];
    const size_t stride = p->page_size * p->esize;
    for (size_t h = 0; h < p->n_kv_heads; h++) {
        /* K: the head's row converted in one call, then spread a value per dim (a call per
         * value cost 5 % of a SmolLM2 prefill) */
        _Alignas(64) char row[GLLM_KV_MAX_HEAD_DIM * 4];
        q(k + h * p->head_dim, row, p->head_dim);
        char *kd = slot_ptr(p, p->k, s, l, h, slot, 1);
        if (p->esize == 2)
            for (size_t i = 0; i < p->head_dim; i++) memcpy(kd + i * stride, row + 2 * i, 2);
        else
            for (size_t i = 0; i < p->head_dim; i++) memcpy(kd + i * stride, row + 4 * i, 4);
        q(v + h * p->head_dim, slot_ptr(p, p->v, s, l, h, slot, 0), p->head_dim);
    }
    return GLLM_OK;
}

gllm_status gllm_kv_compact_check(const gllm_kv_pool *p, const gllm_kv_seq *s, size_t base, const uint32_t *from, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((i && from[i] <= from[i - 1]) || from[i] < i || base + from[i] >= s->n_pages * p->page_size)
            return gllm_fail(GLLM_E_INVALID_ARGUMENT, "KV compact: accepted slots must increase and lie in the cache");
    return GLLM_OK;
}

gllm_status gllm_kv_compact(const gllm_kv_pool *p, gllm_kv_seq *s, size_t base, const uint32_t *from, size_t n) {
    const gllm_status st = gllm_kv_compact_check(p, s, base, from, n);
    if (st != GLLM_OK) return st;
    const size_t row = p->head_dim * p->esize, stride = p->page_size * p->esize;
    for (size_t l = 0; l < p->n_layers; l++)
        for (size_t i = 0; i < n; i++)
            if (from[i] != i)
                for (size_t h = 0; h < p->n_kv_heads; h++) {
                    char *kd = slot_ptr(p, p->k, s, l, h, base + i, 1), *ks = slot_ptr(p, p->k, s, l, h, base + from[i], 1);
                    for (size_t x = 0; x < p->head_dim; x++) memcpy(kd + x * stride, ks + x * stride, p->esize);
                    memcpy(slot_ptr(p, p->v, s, l, h, base + i, 0), slot_ptr(p, p->v, s, l, h, base + from[i], 0), row);
                }
    s->len = base + n;
    return GLLM_OK;
}

void gllm_kv_view(const gllm_kv_pool *p, const gllm_kv_seq *s, size_t layer, size_t kv_head, gllm_attn_args *a) {
    const size_t layer_off = gllm_kv_layer(p, layer) * p->n_pages * p->page_elems * p->esize; /* layer: checked by the caller */
    a->k = (const char *)p->k + layer_off;
    a->v = (const char *)p->v + layer_off;
    a->hd = p->head_dim;
    a->page_elems = p->page_elems;
    a->head_offset = kv_head * p->page_size * p->head_dim;
    a->page_shift = p->page_shift;
    a->pages = s->table;
}
