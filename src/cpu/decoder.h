/* The CPU backend's decoder (src/model/llama.h): the model's plan (src/plan) run on the host
 * through the generated kernel table, its KV cache paged in host memory. */
#ifndef GLLM_CPU_DECODER_H
#define GLLM_CPU_DECODER_H
#include "cpu/plan_run.h"
#include "model/llama.h"

/* n tokens of one sequence; their K/V enter the cache at slots s->len .. (reserved by the
 * caller). pos: their positions (NULL: s->len + i); parent: a tree step (parent[i] < i, or -1),
 * NULL for a causal continuation. logits: the last token's row (all = 0) or every row (all = 1).
 * plan: the model's (NULL), or a copy of it (gllm_cpu_plan_tile). */
gllm_status gllm_cpu_forward(const gllm_llama *m, const gllm_plan *plan, const gllm_kv_pool *p, gllm_kv_seq *s,
                             const int32_t *tokens, size_t n, const int32_t *pos, const int32_t *parent, int all,
                             float *logits);
/* a batch: one step of each of n_seqs distinct sequences (seqs[b].n tokens, causal), their rows
 * through every matmul at once; logits: the last row of each sequence (all = 0), or every row */
gllm_status gllm_cpu_forward_seqs(const gllm_llama *m, const gllm_plan *plan, const gllm_kv_pool *p, const gllm_plan_seq *seqs,
                                  size_t n_seqs, const int32_t *pos, const int32_t *parent, int all, float *logits);
/* the final norm and the output projection: logits[n][vocab] from hidden states x[n][dim] */
gllm_status gllm_cpu_head(const gllm_llama *m, const float *x, size_t n, float *logits);
/* one layer's attention (ffn = 0: x += attn(norm(x)), causal over positions 0 .. n-1 with a
 * cache of its own) or feed-forward (ffn = 1: x += ffn(norm(x))) sub-block, in place */
gllm_status gllm_cpu_block(const gllm_llama *m, size_t layer, int ffn, float *x, size_t n);
#endif
