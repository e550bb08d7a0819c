/* The operator builder: a model records its forward once as a plan (kernel calls over
 * named workspace buffers); a backend runs the plan each step (src/cpu/plan_run.c).
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

/* A copy of plan p whose projection weights (MATMUL, FFN_UP, QKV_ROPE, HEAD; not the
 * embedding table, which EMBED reads by rows, even when the head shares it) are copied tiled into *arena (one allocation), where this ISA has a tiled gemv
 * for them (gllm_cpu_tileable): the decode path then streams each weight tile in order. Weights
 * inside a file mapping [file, file + file_size) (file may be NULL) give their pages back
 * once tiled, so the process holds each weight once. The copy shares p's layer table and
 * owns its steps; gllm_cpu_plan_tile_free releases both. */
gllm_status gllm_cpu_plan_tile(const gllm_plan *p, const void *file, size_t file_size, gllm_plan *out, void **arena);
void gllm_cpu_plan_tile_free(gllm_plan *out, void *arena);

/* One sequence's rows of a plan run (the rows of a run are its sequences' tokens, one
 * sequence after another). */
typedef struct {
    gllm_kv_seq *s;        /* its cache, the tokens going to slots s->len .. (NULL: no attention steps) */
    const int32_t *tokens; /* its ids (NULL: the run starts from x_in) */
    size_t n;              /* its tokens */
} gllm_plan_seq;

/* Run steps [first, last) of a plan over the rows of n_seqs sequences: the row-wise steps
 * (matmuls, norms) over all rows at once, so a batch of decode steps reads each weight once;
 * RoPE, the KV writes and attention per sequence. pos (NULL: s->len + i) and parent (NULL:
 * causal) are for one sequence only. x_in: the BUF_X contents when the plan does not start
 * with an embedding (L2 blocks), else NULL; x_out: where BUF_X goes at the end (or NULL);
 * logits: the HEAD rows, every row (all) or the last of each sequence. */
gllm_status gllm_cpu_plan_run(const gllm_plan *p, size_t first, size_t last, const gllm_kv_pool *pool,
                              const gllm_plan_seq *seqs, size_t n_seqs, const int32_t *pos, const int32_t *parent,
                              const float *x_in, float *x_out, int all, float *logits);
#endif
