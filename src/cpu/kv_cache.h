/* Paged KV cache of the CPU backend.
 *
 * One pool of n_pages pages per layer for K and one for V; a page holds
 * page_size tokens of every KV head in the cache dtype (f32, f16 or bf16):
 * V pages [kv_head][slot][head_dim], K pages dim-major [kv_head][head_dim][slot]
 * (the attention kernels take one key per vector lane). A sequence owns a block table: logical page i
 * of the sequence is pool page table[i]. Everything is allocated at init;
 * reserving pages for a sequence takes them from the pool's free list. */
#ifndef GLLM_CPU_KV_CACHE_H
#define GLLM_CPU_KV_CACHE_H
#include <stddef.h>
#include <stdint.h>
#include "gllm_kernels.h"
#include "kernels.h"

#define GLLM_KV_MAX_HEAD_DIM 256 /* the attention kernels take head dims up to 256 */

typedef struct {
    gllm_dtype dtype;
    size_t n_layers, n_kv_heads, head_dim, page_size, n_pages;
    size_t first_layer; /* the model layers held: [first_layer, first_layer + n_layers) (0 at init) */
    unsigned page_shift;
    size_t page_elems; /* page_size * n_kv_heads * head_dim */
    size_t esize;      /* bytes per element */
    void *k, *v;       /* [n_layers][n_pages][page_elems] */
    int32_t *free_list;
    size_t n_free;
} gllm_kv_pool;

typedef struct {
    int32_t *table; /* pool pages, in logical order */
    size_t n_pages, cap_pages, cap_tokens; /* cap_tokens: its max_tokens (cap_pages rounds it up) */
    size_t len;     /* tokens whose K/V are valid, slots [0, len) */
} gllm_kv_seq;

gllm_status gllm_kv_pool_init(gllm_kv_pool *p, gllm_dtype dtype, size_t n_layers, size_t n_kv_heads,
                              size_t head_dim, size_t page_size, size_t n_pages);
/* the bookkeeping alone (pages, free list; k = v = NULL): a device holds the pages */
gllm_status gllm_kv_pool_layout(gllm_kv_pool *p, gllm_dtype dtype, size_t n_layers, size_t n_kv_heads,
                                size_t head_dim, size_t page_size, size_t n_pages);
void gllm_kv_pool_free(gllm_kv_pool *p);

/* a sequence able to hold up to max_tokens (its block table is allocated here, pages are not) */
gllm_status gllm_kv_seq_init(gllm_kv_seq *s, const gllm_kv_pool *p, size_t max_tokens);
void gllm_kv_seq_release(gllm_kv_pool *p, gllm_kv_seq *s); /* pages back to the pool, table freed */
/* make slots [0, n_slots) backed by pages; fails (cache unchanged) when the pool or the table is full */
gllm_status gllm_kv_reserve(gllm_kv_pool *p, gllm_kv_seq *s, size_t n_slots);
/* pages past the sequence's first n_pages back to the pool (a reservation undone) */
void gllm_kv_unreserve(gllm_kv_pool *p, gllm_kv_seq *s, size_t n_pages);
/* the pages past its len back to the pool (the dropped tokens of an accepted tree step) */
void gllm_kv_trim(gllm_kv_pool *p, gllm_kv_seq *s);

/* swap: a sequence's pages out to a host image of gllm_kv_swap_bytes (its pool pages freed,
 * len kept), and back into whatever pages are free, bit-exact. The image holds logical page i,
 * then layer, then K before V. copy moves one page's part in every layer: `rows` parts of
 * `bytes`, the first at byte offset off of the K (v = 0) or V pages and each next pitch bytes
 * further, to or from host (each next host_pitch further), to the host when out; NULL: the
 * pool's own pages, by memcpy. */
typedef gllm_status (*gllm_kv_copy_fn)(void *ctx, int v, size_t off, size_t pitch, void *host, size_t host_pitch, size_t bytes,
                                       size_t rows, int out);
size_t gllm_kv_swap_bytes(const gllm_kv_pool *p, size_t n_pages);
gllm_status gllm_kv_swap_out(gllm_kv_pool *p, gllm_kv_seq *s, void *host, gllm_kv_copy_fn copy, void *ctx);
gllm_status gllm_kv_swap_in(gllm_kv_pool *p, gllm_kv_seq *s, const void *host, size_t n_pages, gllm_kv_copy_fn copy,
                            void *ctx);

/* write one token's K and V (n_kv_heads x head_dim f32 each) at a reserved slot:
 * append is slot == len, a tree step scatters to the slots its topology gives */
gllm_status gllm_kv_write(const gllm_kv_pool *p, const gllm_kv_seq *s, size_t layer, size_t slot, const float *k,
                          const float *v);
/* the slots gllm_kv_compact would move are valid: increasing, from[i] >= i, in the sequence's pages */
gllm_status gllm_kv_compact_check(const gllm_kv_pool *p, const gllm_kv_seq *s, size_t base, const uint32_t *from, size_t n);
/* keep an accepted path of a tree step: slot base + from[i] moves to base + i for i < n
 * (from strictly increasing), in every layer; len becomes base + n */
gllm_status gllm_kv_compact(const gllm_kv_pool *p, gllm_kv_seq *s, size_t base, const uint32_t *from, size_t n);

/* the pool's index of model layer `layer`, or n_layers when it does not hold that layer */
static inline size_t gllm_kv_layer(const gllm_kv_pool *p, size_t layer) {
    return layer >= p->first_layer && layer - p->first_layer < p->n_layers ? layer - p->first_layer : p->n_layers;
}

/* the kernel view of one layer and KV head of a sequence */
void gllm_kv_view(const gllm_kv_pool *p, const gllm_kv_seq *s, size_t layer, size_t kv_head, gllm_attn_args *a);
#endif
