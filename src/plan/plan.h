/* The operator builder: a model records its forward once as a plan (kernel calls over
 * named workspace buffers); a backend runs the plan each step (src/cpu/plan_run.h,
 * src/cuda/model.h).
 * Model code never names a backend; backends never know model architectures. */
#ifndef GLLM_PLAN_H
#define GLLM_PLAN_H
#include <stddef.h>
#include <stdint.h>
#include "cpu/fused.h"

/* per-token activation buffers of a plan; each holds width[b] floats per token */
enum { BUF_X, BUF_H, BUF_Q, BUF_A, BUF_F, BUF_COUNT };

typedef enum {
    STEP_EMBED,    /* x = rows tokens of the table */
    STEP_RMSNORM,  /* out = rmsnorm(in) * w, per token */
    STEP_QKV_ROPE, /* out = rope(q(in)); K, V -> the cache */
    STEP_ATTN,     /* out = attention(in) over the cache */
    STEP_MATMUL,   /* out = in . W^T (+ b) */
    STEP_ADD,      /* out += in */
    STEP_FFN_UP,   /* out = act(in . Wg^T) * (in . Wu^T) */
    STEP_HEAD,     /* logits = in . W^T for the rows asked for */
} gllm_step_kind;

typedef struct {
    gllm_step_kind kind;
    size_t layer;  /* the cache layer (QKV_ROPE, ATTN) */
    int in, out;   /* buffers */
    gllm_dtype dtype;
    const void *w, *w2; /* weights (MATMUL, EMBED, HEAD; FFN_UP: gate and up) */
    int tiled;          /* w (and w2) in the tiled layout (gllm_cpu_plan_tile) */
    const float *b;     /* bias, or the RMSNORM weight */
    size_t n, k;        /* output and input width (MATMUL, FFN_UP, EMBED: vocab and dim; QKV_ROPE: K and V rows) */
    gllm_ffn_kind ffn;
    gllm_qkv_weights qkv;
} gllm_step;

typedef struct {
    gllm_step *steps;
    size_t n_steps, cap;
    size_t width[BUF_COUNT];
    float eps;                       /* RMSNORM */
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

#endif
