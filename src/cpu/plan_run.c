/* The CPU backend's plan runner: steps in order, each on the pool through the dispatched
 * kernels; buffers from the thread's workspace (nothing allocated in steady state). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "core/dispatch.h"
#include "core/dtype_traits.h"
#include "core/error.h"
#include "core/workspace.h"
#include "cpu/attention.h"
#include "cpu/embed.h"
#include "cpu/matmul.h"
#include "format/mapfile.h"
#include "plan/plan.h"

gllm_status gllm_cpu_plan_run(const gllm_plan *p, size_t first, size_t last, const gllm_kv_pool *pool,
                              gllm_kv_seq *s, const int32_t *tokens, size_t n, const int32_t *position,
                              const int32_t *parent, const float *x_in, float *x_out, int all, float *logits) {
    gllm_status st = gllm_ensure_init();
    if (st != GLLM_OK) return st;
    const gllm_kernel_table *kt = gllm_kernels();
    const size_t mark = gllm_ws_mark(), prefix = s ? s->len : 0;
    float *buf[BUF_COUNT];
    int32_t *pos = gllm_ws_alloc(n * 4);
    uint32_t *slots = gllm_ws_alloc(n * 4);
    int ok = pos && slots;
    for (int b = 0; b < BUF_COUNT; b++) ok &= (buf[b] = gllm_ws_alloc(n * p->width[b] * sizeof(float))) != NULL;
    if (!ok) {
        gllm_ws_release(mark);
        return gllm_fail(GLLM_E_OUT_OF_MEMORY, "plan: no memory for %zu tokens", n);
    }
    for (size_t i = 0; i < n; i++) pos[i] = position ? position[i] : (int32_t)(prefix + i), slots[i] = (uint32_t)(prefix + i);
    if (x_in) memcpy(buf[BUF_X], x_in, n * p->width[BUF_X] * sizeof(float));
    for (size_t i = first; i < last && st == GLLM_OK; i++) {
        const gllm_step *t = &p->steps[i];
        float *in = buf[t->in], *out = buf[t->out]; /* rows of the step's own width, contiguous */
        switch (t->kind) {
        case STEP_EMBED:
            st = gllm_cpu_embed(t->dtype, t->w, t->n, t->k, tokens, n, out);
            break;
        case STEP_RMSNORM:
            for (size_t r = 0; r < n; r++) kt->rmsnorm(in + r * t->k, t->b, out + r * t->k, t->k, p->eps);
            break;
        case STEP_QKV_ROPE:
            st = gllm_cpu_qkv_rope(&t->qkv, in, n, t->k, p->n_heads, p->inv_freq, p->rot, p->neox, pos, pool, s, t->layer,
                                   slots, out);
            break;
        case STEP_ATTN:
            st = gllm_cpu_attention(pool, s, t->layer, in, n, p->n_heads, prefix, parent ? GLLM_MASK_TREE : GLLM_MASK_CAUSAL,
                                    parent, p->scale, out);
            break;
        case STEP_MATMUL:
            st = gllm_cpu_matmul(t->dtype, t->tiled, t->w, in, t->b, out, n, t->n, t->k);
            break;
        case STEP_ADD:
            kt->add(out, in, out, n * t->k);
            break;
        case STEP_FFN_UP:
            st = gllm_cpu_ffn_up(t->ffn, t->dtype, t->tiled, t->w, NULL, t->w2, NULL, in, out, n, t->n, t->k);
            break;
        case STEP_HEAD: {
            const size_t from = all ? 0 : n - 1;
            st = gllm_cpu_matmul(t->dtype, t->tiled, t->w, in + from * t->k, NULL, logits, n - from, t->n, t->k);
            break;
        }
        }
    }
    if (x_out && st == GLLM_OK) memcpy(x_out, buf[BUF_X], n * p->width[BUF_X] * sizeof(float));
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
