/* The CPU backend's plan runner (src/plan/plan.h on the host): the steps through the generated
 * kernel table, their buffers in the workspace; and the tiled copy of a plan's weights. */
#ifndef GLLM_CPU_PLAN_RUN_H
#define GLLM_CPU_PLAN_RUN_H
#include "cpu/kv_cache.h"
#include "plan/plan.h"

/* A copy of plan p whose projection weights (MATMUL, FFN_UP, QKV_ROPE, HEAD; not the
 * embedding table, which EMBED reads by rows, even when the head shares it) are copied tiled
 * into *arena (one allocation), where this ISA has a tiled gemv for them (gllm_cpu_tileable):
 * the decode path then streams each weight tile in order. Weights inside a file mapping
 * [file, file + file_size) (file may be NULL) give their pages back once tiled, so the process
 * holds each weight once. The copy shares p's layer table and owns its steps;
 * gllm_cpu_plan_tile_free releases both. */
gllm_status gllm_cpu_plan_tile(const gllm_plan *p, const void *file, size_t file_size, gllm_plan *out, void **arena);
void gllm_cpu_plan_tile_free(gllm_plan *out, void *arena);

/* One sequence's rows of a plan run (the rows of a run are its sequences' tokens, one
 * sequence after another). */
typedef struct {
    gllm_kv_seq *s;        /* its cache, the tokens going to slots s->len .. (NULL: no attention
                              steps); SELF_ATTN: an empty sequence of the pool to stage K/V in */
    const int32_t *tokens; /* its ids (NULL: the run starts from x_in) */
    const int32_t *types;  /* EMBED_NORM: its tokens' types (NULL: all 0) */
    size_t n;              /* its tokens */
} gllm_plan_seq;

enum {
    GLLM_RUN_ALL = 1,       /* HEAD: every row's logits, not each sequence's last */
    GLLM_RUN_NORMALIZE = 2, /* POOL: rows L2-normalised */
};

/* Run steps [first, last) of a plan over the rows of n_seqs sequences: the row-wise steps
 * (matmuls, norms) over all rows at once, so a batch of decode steps reads each weight once;
 * RoPE, the KV writes and attention per sequence. pos (NULL: s->len + i) and parent (NULL:
 * causal) are for one sequence only. x_in: the BUF_X contents when the plan does not start
 * with an embedding (L2 blocks), else NULL; out: the last step's output (HEAD: the logits,
 * every row or the last of each sequence; else its buffer's rows, one per sequence after a
 * POOL), or NULL; flags: GLLM_RUN_*. */
gllm_status gllm_cpu_plan_run(const gllm_plan *p, size_t first, size_t last, const gllm_kv_pool *pool,
                              const gllm_plan_seq *seqs, size_t n_seqs, const int32_t *pos, const int32_t *parent,
                              const float *x_in, int flags, float *out);
#endif
