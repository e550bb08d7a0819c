/* Fused projections of the transformer layers (CPU backend). */
#ifndef GLLM_CPU_FUSED_H
#define GLLM_CPU_FUSED_H
#include "cpu/kv_cache.h"

typedef enum {
    GLLM_FFN_SILU_GLU, /* y = silu(x Wg^T + bg) * (x Wu^T + bu)   (SwiGLU, Llama) */
    GLLM_FFN_GELU_GLU, /* y = gelu(x Wg^T + bg) * (x Wu^T + bu)   (GeGLU) */
    GLLM_FFN_GELU,     /* y = gelu(x Wg^T + bg)                   (BERT; w_up unused) */
} gllm_ffn_kind;

/* y[m][n] from x[m][k], computed 64 columns at a time in one pool pass: a chunk's
 * gate and up tiles stay in the thread's buffer and the activation is applied
 * before the chunk is stored (no m x n intermediates). */
gllm_status gllm_cpu_ffn_up(gllm_ffn_kind kind, gllm_dtype t, int tiled, const void *w_gate, const float *b_gate,
                            const void *w_up, const float *b_up, const float *x, float *y, size_t m, size_t n,
                            size_t k);

/* Q, K, V projection weights of one layer: separated matrices, or row ranges of one
 * fused [q | k | v] matrix (gllm_qkv_fused): either way three independent matmuls. */
typedef struct {
    gllm_dtype dtype;
    int tiled; /* the three in the tiled layout (gllm_cpu_tile) */
    const void *wq, *wk, *wv;
    const float *bq, *bk, *bv; /* optional (Qwen2) */
    const float *q_norm, *k_norm; /* optional per-head RMSNorm weights (Qwen3 QK-norm), head_dim each */
    float norm_eps;
} gllm_qkv_weights;

void gllm_qkv_fused(gllm_qkv_weights *w, gllm_dtype t, const void *wqkv, const float *bqkv, size_t n_heads,
                    size_t n_kv_heads, size_t head_dim, size_t k);

/* Q, K, V projections of x[m][k] in one pool pass (int8 dtypes quantise x once):
 * q[m][nq], k[m][nkv], v[m][nkv]; the norms of w are not applied here. */
gllm_status gllm_cpu_qkv(const gllm_qkv_weights *w, const float *x, size_t m, size_t k, size_t nq, size_t nkv,
                         float *q, float *kout, float *v);

/* For n_tok tokens x[n_tok][k]: Q, K, V projections, QK-norm (if given), RoPE on Q and K
 * (inv_freq: rot/2 frequencies, positions per token), and the write of K and V into the
 * cache at slots[i] (append or the scatter a tree step needs). q_out: [n_tok][n_heads][head_dim]. */
/* the second half of gllm_cpu_qkv_rope, for projections made already (a batch of sequences
 * projects all its rows at once): QK-norm and RoPE on q[rows][n_heads][head_dim] and
 * k[rows][n_kv_heads][head_dim] in place, then k and v into the cache at slots[i], all rows in
 * one set of tasks: sequence b's rows row0[b] .. row0[b + 1] - 1 (row0[0] = 0) into s[b].
 * cs: the rows' cos/sin (rot each, as gllm_rope_cos_sin writes them for pos[i]: the same for
 * every layer), or NULL to compute them here. */
gllm_status gllm_cpu_rope_kv(const gllm_qkv_weights *w, float *q, float *k, float *v, size_t n_heads, const float *inv_freq,
                             size_t rot, int neox, const int32_t *pos, const float *cs, const gllm_kv_pool *p,
                             const gllm_kv_seq *const *s, const size_t *row0, size_t n_seqs, size_t layer,
                             const uint32_t *slots);
gllm_status gllm_cpu_qkv_rope(const gllm_qkv_weights *w, const float *x, size_t n_tok, size_t k, size_t n_heads,
                              const float *inv_freq, size_t rot, int neox, const int32_t *pos,
                              const gllm_kv_pool *p, const gllm_kv_seq *s, size_t layer, const uint32_t *slots,
                              float *q_out);
#endif
