/* Attention of one step of a sequence over its paged KV cache (CPU backend). */
#ifndef GLLM_CPU_ATTENTION_H
#define GLLM_CPU_ATTENTION_H
#include "cpu/kv_cache.h"

typedef enum {
    GLLM_MASK_CAUSAL, /* token i sees slots [0, n_prefix + i] */
    GLLM_MASK_NONE,   /* every token sees [0, n_prefix + n_tok): encoders (padding = a shorter sequence) */
    GLLM_MASK_TREE,   /* token i sees [0, n_prefix), its ancestors in the step and itself */
} gllm_mask_kind;

/* The step's K/V are already in slots [n_prefix, n_prefix + n_tok) of layer `layer`.
 * q, out: [n_tok][n_heads][head_dim] f32; n_heads a multiple of the pool's KV heads (GQA).
 * parent (TREE only): parent[i] < i, or -1 for a child of the prefix.
 * Where a sequence's token blocks give the pool fewer than 4 items a thread (decode), its keys
 * are split into fixed 256-key chunks across threads and combined in a fixed order; else each
 * block sees its keys whole. The choice is the sequence's own, so a batch leaves its results
 * as they are alone; the thread count can move them in the last bits. */
gllm_status gllm_cpu_attention(const gllm_kv_pool *p, const gllm_kv_seq *s, size_t layer, const float *q,
                               size_t n_tok, size_t n_heads, size_t n_prefix, gllm_mask_kind mask,
                               const int32_t *parent, float scale, float *out);

/* the same for several sequences' steps (a batch) in one set of tasks: each sequence's
 * results as gllm_cpu_attention's alone; TREE takes one sequence */
typedef struct {
    const gllm_kv_seq *s;
    const float *q;
    size_t n_tok, n_prefix;
    float *out;
} gllm_attn_seq;
gllm_status gllm_cpu_attention_seqs(const gllm_kv_pool *p, size_t layer, size_t n_heads, gllm_mask_kind mask,
                                    const int32_t *parent, float scale, const gllm_attn_seq *seqs, size_t n);
#endif
