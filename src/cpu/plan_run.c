/* The CPU backend's plan runner: steps in order, each on the pool through the dispatched
 * kernels; buffers from the thread's workspace (nothing allocated in steady state). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "core/dispatch.h"
#include "core/dtype_traits.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "core/workspace.h"
#include "cpu/attention.h"
#include "cpu/embed.h"
#include "cpu/matmul.h"
#include "format/mapfile.h"
#include "cpu/plan_run.h"
#include "model/rope.h"

/* a row-wise step (a norm, a residual add) over its rows: on the pool in tasks of whole rows,
 * about 16K elements each, so that a decode step's few rows stay on the calling thread */
typedef struct {
    const gllm_step *t;
    const float *in;
    float *out;
    size_t rows, per;
    float eps;
} rows_job;

static void rows_task(void *ctx, size_t task, void *scratch) {
    (void)scratch;
    const rows_job *j = ctx;
    const gllm_kernel_table *kt = gllm_kernels();
    const gllm_step *t = j->t;
    for (size_t r = task * j->per; r < j->rows && r < (task + 1) * j->per; r++) {
        const float *in = j->in + r * t->k;
        float *out = j->out + r * t->k;
        if (t->kind == STEP_RMSNORM) kt->rmsnorm(in, t->b, out, t->k, j->eps);
        else kt->add(out, in, out, t->k); /* STEP_ADD, STEP_ADD_LAYERNORM */
        if (t->kind == STEP_ADD_LAYERNORM) kt->layernorm(out, t->b, t->b2, out, t->k, j->eps);
    }
}

static void run_rows(const gllm_step *t, const float *in, float *out, size_t rows, float eps) {
    rows_job j = {.t = t, .in = in, .out = out, .rows = rows, .per = (16384 + t->k - 1) / t->k, .eps = eps};
    gllm_pool_run((rows + j.per - 1) / j.per, rows_task, &j);
}

/* RoPE's cos/sin of every row's position, once for all layers: rows on the pool */
typedef struct {
    const gllm_plan *p;
    const int32_t *pos;
    float *cs;
    size_t n;
} cs_job;

static void cs_task(void *ctx, size_t task, void *scratch) {
    (void)scratch;
    const cs_job *j = ctx;
    for (size_t r = task * 64; r < j->n && r < (task + 1) * 64; r++)
        gllm_rope_cos_sin(j->p->inv_freq, j->p->rot, j->pos[r], j->cs + r * j->p->rot);
}

gllm_status gllm_cpu_plan_run(const gllm_plan *p, size_t first, size_t last, const gllm_kv_pool *pool,
                              const gllm_plan_seq *seqs, size_t n_seqs, const int32_t *position, const int32_t *parent,
                              const float *x_in, int flags, float *result) {
    gllm_status st = gllm_ensure_init();
    if (st != GLLM_OK) return st;
    if (!seqs || !n_seqs || (n_seqs > 1 && (position || parent)))
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "plan: %zu sequences%s", n_seqs, n_seqs ? " with positions or a tree" : "");
    const gllm_kernel_table *kt = gllm_kernels();
    const size_t mark = gllm_ws_mark();
    const int all = flags & GLLM_RUN_ALL;
    size_t n = 0;
    for (size_t b = 0; b < n_seqs; b++) n += seqs[b].n;
    size_t rows = n; /* the rows of the row-wise steps: every token's, one per sequence after a POOL */
    const size_t head_rows = all ? n : n_seqs;
    float *buf[BUF_COUNT], *head_x = all ? NULL : gllm_ws_alloc(n_seqs * p->width[BUF_H] * sizeof(float));
    int32_t *pos = gllm_ws_alloc(n * 4);
    uint32_t *slots = gllm_ws_alloc(n * 4);
    size_t *row0 = gllm_ws_alloc((n_seqs + 1) * sizeof(size_t)); /* sequence b: rows row0[b] .. row0[b + 1] - 1 */
    gllm_attn_seq *att = gllm_ws_alloc(n_seqs * sizeof *att);
    const gllm_kv_seq **kvs = gllm_ws_alloc(n_seqs * sizeof *kvs);
    int ok = pos && slots && row0 && att && kvs && (all || head_x);
    for (int b = 0; b < BUF_COUNT; b++) ok &= (buf[b] = gllm_ws_alloc(n * p->width[b] * sizeof(float))) != NULL;
    if (!ok) {
        gllm_ws_release(mark);
        return gllm_fail(GLLM_E_OUT_OF_MEMORY, "plan: no memory for %zu tokens", n);
    }
    row0[0] = 0;
    for (size_t b = 0; b < n_seqs; b++) {
        const size_t prefix = seqs[b].s ? seqs[b].s->len : 0;
        row0[b + 1] = row0[b] + seqs[b].n, kvs[b] = seqs[b].s;
        for (size_t i = 0, r = row0[b]; i < seqs[b].n; i++, r++)
            pos[r] = position ? position[i] : (int32_t)(prefix + i), slots[r] = (uint32_t)(prefix + i);
    }
    if (x_in) memcpy(buf[BUF_X], x_in, n * p->width[BUF_X] * sizeof(float));
    float *cs = NULL;
    for (size_t i = first; i < last && !cs; i++)
        if (p->steps[i].kind == STEP_QKV_ROPE) {
            cs_job c = {.p = p, .pos = pos, .n = n, .cs = cs = gllm_ws_alloc(n * p->rot * sizeof(float))};
            if (!cs) {
                gllm_ws_release(mark);
                return gllm_fail(GLLM_E_OUT_OF_MEMORY, "plan: no memory for RoPE's cos/sin of %zu tokens", n);
            }
            gllm_pool_run((n + 63) / 64, cs_task, &c);
        }
    const size_t qw = p->width[BUF_Q]; /* the width of the rows of q, and of attention's output */
    for (size_t i = first; i < last && st == GLLM_OK; i++) {
        const gllm_step *t = &p->steps[i];
        float *in = buf[t->in], *out = buf[t->out]; /* rows of the step's own width, contiguous */
        switch (t->kind) {
        case STEP_EMBED:
            for (size_t b = 0; b < n_seqs && st == GLLM_OK; b++)
                st = gllm_cpu_embed(t->dtype, t->w, t->n, t->k, seqs[b].tokens, seqs[b].n, out + row0[b] * t->k);
            break;
        case STEP_RMSNORM:
        case STEP_ADD:
        case STEP_ADD_LAYERNORM:
            run_rows(t, in, out, rows, p->eps);
            break;
        case STEP_QKV_ROPE: { /* the projections of all rows, then RoPE and the KV writes per sequence */
            const size_t kvw = t->n, kv_mark = gllm_ws_mark();
            float *k = gllm_ws_alloc(2 * n * kvw * sizeof(float)), *v = k + n * kvw;
            if (!k) st = gllm_fail(GLLM_E_OUT_OF_MEMORY, "qkv_rope: no memory for %zu tokens", n);
            if (st == GLLM_OK) st = gllm_cpu_qkv(&t->qkv, in, n, t->k, qw, kvw, out, k, v);
            if (st == GLLM_OK)
                st = gllm_cpu_rope_kv(&t->qkv, out, k, v, p->n_heads, p->inv_freq, p->rot, p->neox, pos, cs, pool, kvs, row0, n_seqs,
                                      t->layer, slots);
            gllm_ws_release(kv_mark);
            break;
        }
        case STEP_ATTN: /* over each sequence's cache, all in one set of tasks: its prefix is its first row's slot */
            for (size_t b = 0; b < n_seqs; b++)
                att[b] = (gllm_attn_seq){seqs[b].s, in + row0[b] * qw, seqs[b].n, slots[row0[b]], out + row0[b] * qw};
            st = gllm_cpu_attention_seqs(pool, t->layer, p->n_heads, parent ? GLLM_MASK_TREE : GLLM_MASK_CAUSAL, parent, p->scale,
                                         att, n_seqs);
            break;
        case STEP_MATMUL:
            st = gllm_cpu_matmul(t->dtype, t->tiled, t->w, in, t->b, out, rows, t->n, t->k);
            break;
        case STEP_FFN_UP:
            st = gllm_cpu_ffn_up(t->ffn, t->dtype, t->tiled, t->w, t->b, t->w2, NULL, in, out, rows, t->n, t->k);
            break;
        case STEP_HEAD: /* the rows asked for, gathered */
            for (size_t b = 0; b < n_seqs && !all; b++)
                memcpy(head_x + b * t->k, in + (row0[b + 1] - 1) * t->k, t->k * sizeof(float));
            st = gllm_cpu_matmul(t->dtype, t->tiled, t->w, all ? in : head_x, NULL, result, head_rows, t->n, t->k);
            break;
        case STEP_EMBED_NORM: /* + the position's and the type's rows, then the norm */
            for (size_t b = 0; b < n_seqs; b++)
                for (size_t j = 0, r = row0[b]; j < seqs[b].n; j++, r++) {
                    float *x = out + r * t->k;
                    kt->add(x, (const float *)t->w + (size_t)pos[r] * t->k, x, t->k);
                    kt->add(x, (const float *)t->w2 + (size_t)(seqs[b].types ? seqs[b].types[j] : 0) * t->k, x, t->k);
                    kt->layernorm(x, t->b, t->b2, x, t->k, p->eps);
                }
            break;
        case STEP_QKV:
            st = gllm_cpu_qkv(&t->qkv, in, n, t->k, qw, t->n, out, buf[BUF_K], buf[BUF_V]);
            break;
        case STEP_SELF_ATTN: /* each sequence's K/V staged in its (empty) cache sequence, then seen whole */
            for (size_t b = 0; b < n_seqs && st == GLLM_OK; b++) {
                const size_t kvw = p->width[BUF_K];
                for (size_t j = 0, r = row0[b]; j < seqs[b].n && st == GLLM_OK; j++, r++)
                    st = gllm_kv_write(pool, seqs[b].s, 0, j, buf[BUF_K] + r * kvw, buf[BUF_V] + r * kvw);
                if (st == GLLM_OK)
                    st = gllm_cpu_attention(pool, seqs[b].s, 0, in + row0[b] * qw, seqs[b].n, p->n_heads, 0, GLLM_MASK_NONE, NULL,
                                            p->scale, out + row0[b] * qw);
            }
            break;
        case STEP_POOL:
            for (size_t b = 0; b < n_seqs && st == GLLM_OK; b++)
                st = gllm_cpu_pool(t->pool, in + row0[b] * t->k, NULL, seqs[b].n, t->k, flags & GLLM_RUN_NORMALIZE, out + b * t->k);
            rows = n_seqs;
            break;
        case STEP_TANH:
            for (size_t j = 0; j < rows * t->k; j++) out[j] = tanhf(in[j]);
            break;
        }
    }
    if (result && st == GLLM_OK && last > first && p->steps[last - 1].kind != STEP_HEAD) {
        const gllm_step *t = &p->steps[last - 1];
        memcpy(result, buf[t->out], rows * gllm_plan_out_width(p, t) * sizeof(float));
    }
    gllm_ws_release(mark);
    return st;
}

/* the weight matrices of step t that tiling concerns: pointers to its weight slots and their rows */
static size_t step_weights(const gllm_plan *p, gllm_step *t, const void ***w, size_t *rows) {
    switch (t->kind) {
    case STEP_MATMUL:
    case STEP_HEAD: w[0] = &t->w, rows[0] = t->n; return 1;
    case STEP_FFN_UP: w[0] = &t->w, w[1] = &t->w2, rows[0] = rows[1] = t->n; return t->w2 ? 2 : 1;
    case STEP_QKV_ROPE:
        w[0] = &t->qkv.wq, w[1] = &t->qkv.wk, w[2] = &t->qkv.wv;
        rows[0] = p->width[BUF_Q], rows[1] = rows[2] = t->n;
        return 3;
    default: return 0;
    }
}

static gllm_dtype step_dtype(const gllm_step *t) { return t->kind == STEP_QKV_ROPE ? t->qkv.dtype : t->dtype; }

#define TILE_ALIGN(x) (((x) + 63) / 64 * 64)
#define HUGE_PAGE ((size_t)2 << 20)

gllm_status gllm_cpu_plan_tile(const gllm_plan *p, const void *file, size_t file_size, gllm_plan *out, void **arena) {
    *out = *p, *arena = NULL;
    if (!(out->steps = malloc(p->n_steps * sizeof *p->steps))) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "plan: no memory");
    memcpy(out->steps, p->steps, p->n_steps * sizeof *p->steps);
    out->cap = p->n_steps;
    size_t total = 0;
    for (int pass = 0; pass < 2; pass++) {
        size_t at = 0;
        for (size_t i = 0; i < out->n_steps; i++) {
            gllm_step *t = &out->steps[i];
            const void **w[3];
            size_t rows[3], nw = step_weights(p, t, w, rows), ok = nw > 0;
            for (size_t q = 0; q < nw; q++) ok &= gllm_cpu_tileable(step_dtype(t), rows[q]);
            for (size_t q = 0; ok && q < nw; q++) {
                const size_t bytes = rows[q] * gllm_row_bytes(step_dtype(t), t->k);
                if (pass) {
                    gllm_cpu_tile(step_dtype(t), *w[q], (char *)*arena + at, rows[q], t->k);
                    gllm_map_release(file, file_size, *w[q], bytes);
                    *w[q] = (char *)*arena + at;
                }
                at += TILE_ALIGN(bytes);
            }
            if (ok && pass) t->kind == STEP_QKV_ROPE ? (t->qkv.tiled = 1) : (t->tiled = 1);
        }
        total = at;
        if (!pass && total) { /* in huge pages where the system lends them: fewer faults at upload, fewer TLB misses */
            total = (total + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
            if (!(*arena = aligned_alloc(HUGE_PAGE, total))) {
                free(out->steps), out->steps = NULL;
                return gllm_fail(GLLM_E_OUT_OF_MEMORY, "plan: no memory for %zu bytes of tiled weights", total);
            }
#ifdef MADV_HUGEPAGE
            (void)madvise(*arena, total, MADV_HUGEPAGE);
#endif
        }
        if (!total) break;
    }
    return GLLM_OK;
}

void gllm_cpu_plan_tile_free(gllm_plan *out, void *arena) {
    free(out->steps), free(arena);
    memset(out, 0, sizeof *out);
}
