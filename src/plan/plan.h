/* The operator builder: a model records its forward once as a plan (kernel calls over
 * named workspace buffers); a backend runs the plan each step (src/cpu/plan_run.h; on CUDA
 * src/cuda/model.h with a KV cache, src/cuda/encoder.h without).
 * Model code never names a backend; backends never know model architectures. */
#ifndef GLLM_PLAN_H
#define GLLM_PLAN_H
#include <stddef.h>
#include <stdint.h>
#include "cpu/embed.h"
#include "cpu/fused.h"

/* per-token activation buffers of a plan; each holds width[b] floats per token (K and V: the
 * step's keys and values where attention reads no cache) */
enum { BUF_X, BUF_H, BUF_Q, BUF_A, BUF_F, BUF_K, BUF_V, BUF_COUNT };
enum { GLLM_MAX_TREE = 256 }; /* tokens of a tree step, on every backend (CUDA: a token's ancestors are a bit row) */

typedef enum {
    STEP_EMBED,    /* x = rows tokens of the table */
    STEP_RMSNORM,  /* out = rmsnorm(in) * w, per token */
    STEP_QKV_ROPE, /* out = rope(q(in)); K, V -> the cache */
    STEP_ATTN,     /* out = attention(in) over the cache */
    STEP_MATMUL,   /* out = in . W^T (+ b) */
    STEP_ADD,      /* out += in */
    STEP_FFN_UP,   /* out = act(in . Wg^T) * (in . Wu^T) */
    STEP_HEAD,     /* logits = in . W^T for the rows asked for */
    /* encoders: attention within each sequence, no cache */
    STEP_EMBED_NORM,    /* out = layernorm(out + w[position] + w2[type]) * b + b2, per token (f32 tables) */
    STEP_QKV,           /* out = in . Wq^T + bq; BUF_K, BUF_V likewise */
    STEP_SELF_ATTN,     /* out = attention(in; BUF_K, BUF_V), every token of its sequence seeing all of it */
    STEP_ADD_LAYERNORM, /* out = layernorm(out + in) * b + b2 */
    STEP_POOL,          /* out row s = the pooled rows of sequence s (L2-normalised when the run asks);
                           the steps after it run on one row per sequence */
    STEP_TANH,          /* out = tanh(in) */
} gllm_step_kind;

typedef struct {
    gllm_step_kind kind;
    size_t layer;  /* the cache layer (QKV_ROPE, ATTN) */
    int in, out;   /* buffers */
    gllm_dtype dtype;
    const void *w, *w2; /* weights (MATMUL, EMBED, HEAD; FFN_UP: gate and up) */
    int tiled;          /* w (and w2) in the tiled layout (gllm_cpu_plan_tile) */
    const float *b;     /* bias (MATMUL, FFN_UP: of w), or a norm's weight */
    const float *b2;    /* a LayerNorm's bias */
    size_t n, k;        /* output and input width (MATMUL, FFN_UP, EMBED: vocab and dim; QKV_ROPE: K and V rows) */
    gllm_ffn_kind ffn;
    gllm_qkv_weights qkv; /* QKV_ROPE, QKV */
    gllm_pooling pool;
} gllm_step;

typedef struct {
    gllm_step *steps;
    size_t n_steps, cap;
    size_t width[BUF_COUNT];
    float eps;                       /* RMSNORM, LayerNorm */
    size_t n_heads, rot;             /* attention, RoPE */
    int neox;
    const float *inv_freq;
    float scale;
    size_t vocab;
    size_t (*layer_steps)[2];        /* per layer: its first step and the first after its attention */
    size_t n_layers;
} gllm_plan;

gllm_status gllm_plan_add(gllm_plan *p, gllm_step s);
void gllm_plan_free(gllm_plan *p);
/* the floats of each row step t writes */
size_t gllm_plan_out_width(const gllm_plan *p, const gllm_step *t);

#endif
