/* Llama-family decoder (Llama, SmolLM, Qwen2 with QKV bias, Qwen3 with QK-norm):
 * the model description read from GGUF metadata and tensors (weights stay in the
 * mapping), and its forward recorded as a plan, which the backends run (src/cpu/decoder.c,
 * src/cuda/model.c). */
#ifndef GLLM_MODEL_LLAMA_H
#define GLLM_MODEL_LLAMA_H
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

/* the reference forward in double (src/ref/ref_llama.c, test oracle of the backends' forwards): logits[n][vocab], all
 * positions; int8: the activations of block-quantised matrices rounded as the CPU's int8 path
 * rounds them (0: kept, as the CUDA backend keeps them) */
void gllm_ref_llama(const gllm_llama *m, const int32_t *tokens, size_t n, int int8, double *logits);
#endif
