/* Llama-family decoder (Llama, SmolLM, Qwen2 with QKV bias, Qwen3 with QK-norm):
 * the model description read from GGUF metadata and tensors (weights stay in the
 * mapping), and its forward on the CPU backend. */
#ifndef GLLM_MODEL_LLAMA_H
#define GLLM_MODEL_LLAMA_H
#include "cpu/kv_cache.h"
#include "format/gguf.h"
#include "model/rope.h"
#include "plan/plan.h"

typedef struct {
    const gllm_gguf_tensor *attn_norm, *wq, *wk, *wv, *bq, *bk, *bv, *q_norm, *k_norm, *wo;
    const gllm_gguf_tensor *ffn_norm, *w_gate, *w_up, *w_down;
} gllm_llama_layer;

typedef struct {
    size_t n_layers, dim, n_heads, n_kv_heads, head_dim, ffn, vocab, ctx, rot;
    int neox; /* RoPE pairs (i, i + rot/2): the Qwen families; Llama GGUFs pair (2i, 2i + 1) */
    float eps;
    gllm_rope_cfg rope;      /* its factors, if any: rope_factors */
    float rope_factors[256];
    float inv_freq[256];
    const gllm_gguf_tensor *tok_embd, *out_norm, *output; /* output == tok_embd when tied */
    gllm_llama_layer *layers;
    gllm_plan plan; /* the forward, recorded at load */
} gllm_llama;

/* reads hyper-parameters (llama.*, qwen2.*, qwen3.* keys) and checks every tensor's shape and type */
gllm_status gllm_llama_load(const gllm_gguf *g, gllm_llama *m);
void gllm_llama_free(gllm_llama *m);

/* n tokens of one sequence; their K/V enter the cache at slots s->len .. (reserved by the
 * caller). pos: their positions (NULL: s->len + i); parent: a tree step (parent[i] < i, or -1),
 * NULL for a causal continuation. logits: the last token's row (all = 0) or every row (all = 1). */
gllm_status gllm_llama_forward(const gllm_llama *m, const gllm_kv_pool *p, gllm_kv_seq *s, const int32_t *tokens,
                               size_t n, const int32_t *pos, const int32_t *parent, int all, float *logits);
/* the same through a copy of the model's plan (gllm_cpu_plan_tile) */
gllm_status gllm_llama_forward_plan(const gllm_llama *m, const gllm_plan *plan, const gllm_kv_pool *p, gllm_kv_seq *s,
                                    const int32_t *tokens, size_t n, const int32_t *pos, const int32_t *parent, int all,
                                    float *logits);
/* a batch: one step of each of n_seqs distinct sequences (seqs[b].n tokens, causal), their rows
 * through every matmul at once; logits: the last row of each sequence (all = 0), or every row */
gllm_status gllm_llama_forward_seqs(const gllm_llama *m, const gllm_plan *plan, const gllm_kv_pool *p, const gllm_plan_seq *seqs,
                                    size_t n_seqs, const int32_t *pos, const int32_t *parent, int all, float *logits);
/* the final norm and the output projection: logits[n][vocab] from hidden states x[n][dim] */
gllm_status gllm_llama_head(const gllm_llama *m, const float *x, size_t n, float *logits);
/* one layer's attention (ffn = 0: x += attn(norm(x)), causal over positions 0 .. n-1 with a
 * cache of its own) or feed-forward (ffn = 1: x += ffn(norm(x))) sub-block, in place */
gllm_status gllm_llama_block(const gllm_llama *m, size_t layer, int ffn, float *x, size_t n);

/* the reference forward in double (src/ref/ref_llama.c, test oracle): logits[n][vocab], all
 * positions; int8: the activations of block-quantised matrices rounded as the CPU's int8 path
 * rounds them (0: kept, as the CUDA backend keeps them) */
void gllm_ref_llama(const gllm_llama *m, const int32_t *tokens, size_t n, int int8, double *logits);
#endif
