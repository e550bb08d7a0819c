#include "cuda/model.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/dtype_traits.h"
#include "core/error.h"
#include "cuda/kernels/step.h"
#include "cuda/names.h"

static const char *const GEMV[] = GLLM_CUDA_BY_DTYPE("gemv"), *const GEMM[] = GLLM_CUDA_BY_DTYPE("gemm"),
                  *const GEMM_TC[] = GLLM_CUDA_BY_DTYPE("gemm_tc"),
                  *const GEMV_QKV[] = GLLM_CUDA_BY_DTYPE("gemv_qkv"), *const GEMV_GLU[] = GLLM_CUDA_BY_DTYPE("gemv_glu"),
                  *const GEMV_BATCH[] = GLLM_CUDA_BY_DTYPE("gemv_batch"),
                  *const EMBED[] = GLLM_CUDA_BY_DTYPE("embed"), *const ROPE_KV[] = GLLM_CUDA_BY_DTYPE("rope_kv"),
                  *const ATTN[] = GLLM_CUDA_BY_DTYPE("attn"), *const ATTN_G8[] = GLLM_CUDA_BY_DTYPE("attn_g8"),
                  *const ATTN_TC[] = GLLM_CUDA_BY_DTYPE("attn_tc");

/* attention launches up to 32 splits of each row's keys, until the launch has two blocks an SM
 * (`blocks` blocks a row and split), while rows x splits stays within 256 (the partials' room);
 * by the row count and the model alone, so a graph holds. The kernel uses as many as the row's
 * length fills (GLLM_ATTN_SPLIT_KEYS keys each). On an H200 (SmolLM2, ~560 keys, 3 KV heads) 8
 * splits decoded fastest and 64 cost 10 %; one row of 4096 keys over 8 KV heads took 65, 38 and
 * 28 us at 8, 16 and 32 */
enum { ATTN_SPLIT_ROWS = 256, ATTN_SPLITS_CHOSEN = 32 };
int gllm_cuda_attn_splits(const gllm_cuda *c, size_t rows, size_t blocks) {
    size_t s = (2 * (size_t)(c->sms > 0 ? c->sms : 1) + rows * blocks - 1) / (rows * blocks);
    if (s > ATTN_SPLITS_CHOSEN) s = ATTN_SPLITS_CHOSEN;
    if (c->attn_splits > 0) s = c->attn_splits < GLLM_ATTN_SPLITS ? (size_t)c->attn_splits : GLLM_ATTN_SPLITS;
    if (s > ATTN_SPLIT_ROWS / rows) s = ATTN_SPLIT_ROWS / rows;
    return s < 1 ? 1 : (int)s;
}
enum { TC_MIN_ROWS = 32 };  /* gemm, prefill attention: from this many tokens on tensor cores */

/* the step header's ints: the fixed fields; per row its token, sequence, slot and position; per
 * item its last row; attention tiles (two ints, one row or more each) and the other rows; a
 * tree's ancestor rows */
static size_t header_ints(size_t max_rows) {
    return GLLM_HDR_TOKENS + 8 * max_rows + GLLM_MAX_TREE * (GLLM_MAX_TREE / 32);
}

/* a weight's copy on the device */
static CUdeviceptr dev(const gllm_cuda_model *cm, const void *p) {
    return p ? cm->weights + (CUdeviceptr)((const uint8_t *)p - cm->host) : 0;
}

static gllm_status launch3(gllm_cuda_model *cm, const char *name, unsigned gx, unsigned gy, unsigned gz, unsigned block,
                           unsigned smem, void **args) {
    return gllm_cuda_run(cm->c, name, gx, gy, gz, block, smem, args);
}

static gllm_status launch(gllm_cuda_model *cm, const char *name, unsigned gx, unsigned gy, unsigned block, void **args) {
    return gllm_cuda_run(cm->c, name, gx, gy, 1, block, 0, args);
}

/* decode kernels normalise x themselves into k floats of dynamic shared memory, which with
 * their static bytes must stay in the default 48 KB: up to this width */
enum { NORM_IN_KERNEL_MAX = 12032 };

/* a decode gemv's dynamic shared memory, for m rows of x of width k (m > 1: the batch gemv) and
 * a warp's `rows` weight rows: on the int8 path (block formats) x's codes and (d, sum) pairs, m
 * (k + k/4) bytes rounded up to 16, then the 8 warps' rings of weight rows
 * (src/cuda/kernels/step.h); else the normalised x (norm) or none */
static size_t decode_smem(gllm_dtype t, int int8, size_t m, size_t k, int norm, int rows) {
    if (!int8) return norm ? k * sizeof(float) : 0;
    const size_t row = GLLM_STAGE_BYTES((size_t)gllm_dtype_traits_table[t].block_bytes, (size_t)rows);
    return (m * (k + k / 4) + 15) / 16 * 16 + 8 * (size_t)rows * GLLM_STAGES * row;
}

/* the most dynamic shared memory a decode gemv takes: the device's limit, less its static bytes */
static size_t smem_most(const gllm_cuda *c) { return c->smem_optin - 1024; }

/* whether a decode kernel over weights of dtype t rounds x to int8 (block formats): where its
 * shared memory fits at one row a warp (per: weight rows per output, 2 for the gated gemv) */
static int int8x(const gllm_cuda *c, gllm_dtype t, size_t k, int norm, int per) {
    return c->int8_gemv && gllm_dtype_traits_table[t].int8_path && decode_smem(t, 1, 1, k, norm, per) <= smem_most(c);
}

/* rows per warp r, halved while the kernel's shared memory is over the limit */
static int fit_rows(const gllm_cuda *c, gllm_dtype t, int int8, size_t k, int norm, int per, int r) {
    while (r > 1 && decode_smem(t, int8, 1, k, norm, per * r) > smem_most(c)) r /= 2;
    return r;
}

gllm_status gllm_cuda_model_init(gllm_cuda_model *cm, gllm_cuda *c, const gllm_plan *p, const void *host, size_t size,
                                 size_t max_rows, size_t kv_width) {
    memset(cm, 0, sizeof *cm);
    const size_t hd = p->width[BUF_Q] / p->n_heads;
    if (hd > 256 || hd % 8) return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA: head dim %zu (a multiple of 8, 256 at most)", hd);
    if (max_rows > 65535) /* a grid's rows */
        return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA: forwards of %zu tokens (65535 at most a call)", max_rows);
    size_t ffn = 0; /* the widest feed-forward, which must be a SiLU GLU */
    for (size_t i = 0; i < p->n_steps; i++) {
        if (p->steps[i].kind > STEP_HEAD) /* the encoders' steps: src/cuda/encoder.h */
            return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA: plan step %zu (kind %d) needs no cache", i, (int)p->steps[i].kind);
        if (p->steps[i].kind == STEP_FFN_UP) {
            if (p->steps[i].ffn != GLLM_FFN_SILU_GLU) return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA: feed-forward kind %d", (int)p->steps[i].ffn);
            if (p->steps[i].n > ffn) ffn = p->steps[i].n;
        }
    }
    cm->c = c, cm->p = p, cm->host = host, cm->max_rows = max_rows;
    const char *g = getenv("GLLM_CUDA_GRAPHS");
    cm->graphs = !(g && !strcmp(g, "0"));
    const char *prof = getenv("GLLM_CUDA_PROFILE");
    cm->profile = prof && !strcmp(prof, "1");
    if (cm->profile) cm->graphs = 0; /* per-step events need eager launches */
    gllm_status s = GLLM_OK;
    if (c->map) { /* UMA: the file's pages in place; where mapping fails, a copy as below */
        cm->mapped = gllm_cuda_map(c, host, size, &cm->weights, &cm->registered) == GLLM_OK;
        if (!cm->mapped) fprintf(stderr, "gllm: weights copied to the device (%s)\n", gllm_last_error());
    }
    if (!cm->mapped && (s = gllm_cuda_alloc(c, size, &cm->weights)) == GLLM_OK) s = gllm_cuda_upload(c, cm->weights, host, size);
    for (int b = 0; b < BUF_COUNT && s == GLLM_OK; b++) s = gllm_cuda_alloc(c, max_rows * p->width[b] * sizeof(float), &cm->buf[b]);
    if (s == GLLM_OK) s = gllm_cuda_alloc(c, max_rows * kv_width * sizeof(float), &cm->k);
    if (s == GLLM_OK) s = gllm_cuda_alloc(c, max_rows * kv_width * sizeof(float), &cm->v);
    if (s == GLLM_OK) s = gllm_cuda_alloc(c, max_rows * ffn * sizeof(float), &cm->up);
    size_t k = 0; /* the widest gemm input */
    for (size_t i = 0; i < p->n_steps; i++) k = p->steps[i].k > k ? p->steps[i].k : k;
    if (s == GLLM_OK && c->tensor_cores && max_rows >= TC_MIN_ROWS)
        s = gllm_cuda_alloc(c, gllm_cuda_gemm_scratch(max_rows, k), &cm->scratch);
    if (s == GLLM_OK) s = gllm_cuda_alloc(c, ATTN_SPLIT_ROWS * p->n_heads * (hd + 2) * sizeof(float), &cm->part);
    if (s == GLLM_OK) s = gllm_cuda_alloc(c, ATTN_SPLIT_ROWS * p->n_heads * sizeof(int), &cm->count);
    if (s == GLLM_OK) s = gllm_cuda_check(c, c->drv.cuMemsetD32Async(cm->count, 0, ATTN_SPLIT_ROWS * p->n_heads, c->stream), "clearing");
    if (s == GLLM_OK) s = gllm_cuda_alloc(c, p->rot / 2 * sizeof(float), &cm->inv_freq);
    if (s == GLLM_OK) s = gllm_cuda_upload(c, cm->inv_freq, p->inv_freq, p->rot / 2 * sizeof(float));
    if (s == GLLM_OK) s = gllm_cuda_alloc(c, max_rows * p->rot * sizeof(float), &cm->rope);
    if (s == GLLM_OK) s = gllm_cuda_sync(c);
    if (s == GLLM_OK) s = gllm_cuda_alloc(c, header_ints(max_rows) * sizeof(int32_t), &cm->hdr);
    if (s == GLLM_OK && !(cm->hdr_host = malloc(header_ints(max_rows) * sizeof(int32_t))))
        s = gllm_fail(GLLM_E_OUT_OF_MEMORY, "CUDA model: no memory");
    if (s == GLLM_OK) s = gllm_cuda_check(c, c->drv.cuEventCreate(&cm->hdr_copied, CU_EVENT_DISABLE_TIMING), "creating an event");
    if (s != GLLM_OK) gllm_cuda_model_free(cm);
    return s;
}

void gllm_cuda_model_free(gllm_cuda_model *cm) {
    if (!cm->c) return;
    static const char *const kinds[] = {"embed", "rmsnorm", "qkv+rope+kv", "attention", "matmul", "add(+norm)", "ffn_up", "head"};
    for (int k = 0; cm->prof_steps && k < 8; k++)
        fprintf(stderr, "gllm profile: %-12s %8.1f us per decode step\n", kinds[k], 1e3 * cm->prof_ms[k] / (double)cm->prof_steps);
    for (int i = 0; i < GLLM_CUDA_GRAPHS; i++)
        if (cm->graph[i].exec) cm->c->drv.cuGraphExecDestroy(cm->graph[i].exec);
    if (cm->mapped) gllm_cuda_unmap(cm->c, cm->host, cm->registered);
    CUdeviceptr all[] = {cm->mapped ? 0 : cm->weights, cm->k, cm->v, cm->up, cm->scratch, cm->part, cm->count, cm->inv_freq, cm->rope, cm->hdr};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) gllm_cuda_free(cm->c, all[i]);
    for (int b = 0; b < BUF_COUNT; b++) gllm_cuda_free(cm->c, cm->buf[b]);
    free(cm->hdr_host);
    if (cm->hdr_copied) cm->c->drv.cuEventDestroy(cm->hdr_copied);
    memset(cm, 0, sizeof *cm);
}

void gllm_cuda_model_forget(gllm_cuda_model *cm, const gllm_cuda_kv *kv) {
    for (int i = 0; i < GLLM_CUDA_GRAPHS; i++)
        if (cm->graph[i].exec && cm->graph[i].k == kv->k) cm->c->drv.cuGraphExecDestroy(cm->graph[i].exec), cm->graph[i].exec = NULL;
}

int gllm_cuda_gemv_rows(const gllm_cuda *c, size_t n, size_t unit, int most) {
    const size_t sms = c->sms > 0 ? (size_t)c->sms : 1;
    int r = c->gemv_rows;
    if (r != 1 && r != 2 && r != 4) r = (n + 31) / 32 >= sms ? 4 : (n + 15) / 16 >= sms ? 2 : 1; /* 8 warps for every SM */
    while (r > most || (unit && unit % (size_t)r)) r /= 2;
    return r;
}

gllm_status gllm_cuda_gemv(gllm_cuda *c, gllm_dtype t, CUdeviceptr w, CUdeviceptr bias, CUdeviceptr x, CUdeviceptr y, size_t n,
                           size_t k, CUdeviceptr nw, float eps, int accumulate, int rows_per_warp) {
    size_t rb = gllm_row_bytes(t, k);
    int ni = (int)n, ki = (int)k, q = int8x(c, t, k, nw != 0, 1);
    int r = fit_rows(c, t, q, k, nw != 0, 1, rows_per_warp ? rows_per_warp : gllm_cuda_gemv_rows(c, n, 0, 4));
    void *args[] = {&w, &rb, &x, &bias, &y, &ni, &ki, &nw, &eps, &accumulate, &r, &q};
    return gllm_cuda_run(c, GEMV[t], (unsigned)((n + 8 * r - 1) / (8 * r)), 1, 1, 256, (unsigned)decode_smem(t, q, 1, k, nw != 0, r),
                         args);
}

/* one row: y = W . rmsnorm(x; nw) (+ bias), or y += that (accumulate); nw NULL: x as it is */
static gllm_status gemv(gllm_cuda_model *cm, gllm_dtype t, const void *w, const float *bias, CUdeviceptr x, CUdeviceptr y,
                        size_t n, size_t k, const float *nw, int accumulate) {
    return gllm_cuda_gemv(cm->c, t, dev(cm, w), dev(cm, bias), x, y, n, k, dev(cm, nw), cm->p->eps, accumulate, 0);
}

size_t gllm_cuda_gemm_scratch(size_t m, size_t k) { return m * ((k + 63) / 64 * 64) * sizeof(uint16_t) + m * sizeof(int); }

gllm_status gllm_cuda_gemm_tc(gllm_cuda *c, gllm_dtype t, CUdeviceptr x, size_t m, size_t k, CUdeviceptr scratch,
                              const gllm_cuda_mm *mm, size_t count) {
    if (t == GLLM_DTYPE_F32 || !scratch || scratch % 16 || !k)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "CUDA gemm on tensor cores: %s",
                         t == GLLM_DTYPE_F32 ? "f32 weights" : !k ? "k = 0" : scratch ? "scratch not 16-byte aligned" : "no scratch");
    if (!m) return GLLM_OK;
    const size_t kp = (k + 63) / 64 * 64;
    CUdeviceptr xh = scratch, row_exp = scratch + m * kp * sizeof(uint16_t);
    int mi = (int)m, ki = (int)k, kpi = (int)kp;
    gllm_status s;
    if (t == GLLM_DTYPE_BF16) {
        void *args[] = {&x, &xh, &ki, &kpi};
        s = gllm_cuda_run(c, "gllm_round_bf16_cuda", (unsigned)m, 1, 1, 256, 0, args);
    } else {
        void *args[] = {&x, &xh, &row_exp, &ki, &kpi};
        s = gllm_cuda_run(c, "gllm_round_f16_cuda", (unsigned)m, 1, 1, 256, 0, args);
    }
    size_t rb = gllm_row_bytes(t, k);
    for (size_t j = 0; j < count && s == GLLM_OK; j++) {
        if (!mm[j].n) continue;
        int ni = (int)mm[j].n;
        CUdeviceptr w = mm[j].w, bias = mm[j].bias, y = mm[j].y;
        void *args[] = {&w, &rb, &xh, &row_exp, &kpi, &bias, &y, &mi, &ni, &ki};
        s = gllm_cuda_run(c, GEMM_TC[t], (unsigned)((mm[j].n + 63) / 64), (unsigned)((m + 63) / 64), 1, 128, 0, args);
    }
    return s;
}

gllm_status gllm_cuda_gemms(gllm_cuda *c, gllm_dtype t, CUdeviceptr x, size_t m, size_t k, CUdeviceptr scratch,
                            const gllm_cuda_mm *mm, size_t count) {
    if (!k) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "CUDA gemm: k = 0");
    if (c->tensor_cores && scratch && t != GLLM_DTYPE_F32 && m >= TC_MIN_ROWS) return gllm_cuda_gemm_tc(c, t, x, m, k, scratch, mm, count);
    size_t rb = gllm_row_bytes(t, k);
    int mi = (int)m, ki = (int)k;
    gllm_status s = GLLM_OK;
    /* a small decode batch on the int8 path: the batch gemv, in one launch, while its prologue
     * (every block rounds all m rows of x) stays short. On an H200 over SmolLM2's shapes (k 576
     * and 1536) 4 and 8 rows stepped 1.82 -> 1.70 and 2.50 -> 2.35 ms; 8 x 4096 x 4096 q4_0 took
     * 75 us against the CUDA-core gemm's 60, and 16 rows in two launches lost (2.62 -> 4.07 ms) */
    const int batch_gemv = int8x(c, t, k, 0, 1) && m <= 8 && m * k <= 16384;
    for (size_t j = 0; j < count && s == GLLM_OK && m; j++) {
        if (!mm[j].n) continue;
        if (m == 1) {
            s = gllm_cuda_gemv(c, t, mm[j].w, mm[j].bias, x, mm[j].y, mm[j].n, k, 0, 0.0f, 0, 0);
            continue;
        }
        int ni = (int)mm[j].n;
        CUdeviceptr w = mm[j].w, bias = mm[j].bias, y = mm[j].y;
        void *args[] = {&w, &rb, &x, &bias, &y, &mi, &ni, &ki}; /* the batch gemv's and the gemm's */
        s = batch_gemv ? gllm_cuda_run(c, GEMV_BATCH[t], (unsigned)((mm[j].n + 7) / 8), 1, 1, 256, (unsigned)decode_smem(t, 1, m, k, 0, 1), args)
                       : gllm_cuda_run(c, GEMM[t], (unsigned)((mm[j].n + 7) / 8), (unsigned)((m + 7) / 8), 1, 256, 0, args);
    }
    return s;
}

gllm_status gllm_cuda_gemm(gllm_cuda *c, gllm_dtype t, CUdeviceptr w, CUdeviceptr bias, CUdeviceptr x, CUdeviceptr y, size_t m,
                           size_t n, size_t k, CUdeviceptr scratch) {
    const gllm_cuda_mm mm = {w, bias, y, n};
    return gllm_cuda_gemms(c, t, x, m, k, scratch, &mm, 1);
}

static gllm_status matmul(gllm_cuda_model *cm, gllm_dtype t, const void *w, const float *bias, CUdeviceptr x, CUdeviceptr y,
                          size_t m, size_t n, size_t k) {
    return gllm_cuda_gemm(cm->c, t, dev(cm, w), dev(cm, bias), x, y, m, n, k, cm->scratch);
}

static gllm_status rmsnorm(gllm_cuda_model *cm, CUdeviceptr x, const float *w, CUdeviceptr y, size_t rows, size_t k, float eps) {
    CUdeviceptr wd = dev(cm, w);
    int ki = (int)k;
    void *args[] = {&x, &wd, &y, &ki, &eps};
    return launch(cm, "gllm_rmsnorm_cuda", (unsigned)rows, 1, 256, args);
}

/* y = a op b over count floats, in launches of at most 2^30 (the kernels count in int) */
static gllm_status elementwise(gllm_cuda_model *cm, const char *name, CUdeviceptr a, CUdeviceptr b, CUdeviceptr y, size_t count) {
    gllm_status s = GLLM_OK;
    for (size_t at = 0; at < count && s == GLLM_OK; at += (size_t)1 << 30) {
        int ci = (int)(count - at < (size_t)1 << 30 ? count - at : (size_t)1 << 30);
        CUdeviceptr ao = a + at * sizeof(float), bo = b + at * sizeof(float), yo = y + at * sizeof(float);
        void *args[] = {&ao, &bo, &yo, &ci};
        s = launch(cm, name, (unsigned)((ci + 255) / 256), 1, 256, args);
    }
    return s;
}

/* the plan's steps first .. last - 1 for n rows (n_out logits rows: every row's, or each item's
 * last); the step header is already on the device. One row (decode) takes the fused launches:
 * a norm inside the projection after it (Q/K/V in one gemv, gate/up/SiLU in one, the head), a
 * residual add inside the projection before it. RoPE and the KV write are one launch, or part
 * of the attention in a decode step (one row per item); several rows fuse a residual add with
 * the norm after it. */
static gllm_status run(gllm_cuda_model *cm, const gllm_cuda_kv *kv, size_t first, size_t last, size_t n, CUdeviceptr logits,
                       size_t n_out) {
    const gllm_plan *p = cm->p;
    const int hd = (int)kv->head_dim, n_kv = (int)kv->n_kv, heads = (int)p->n_heads, shift = (int)kv->page_shift;
    const int stride = (int)kv->table_stride;
    gllm_status s = GLLM_OK;
    gllm_qkv_weights qkv = {0}; /* the layer's Q/K/V weights: their norms, for a decode step's attention */
    CUevent ev[2] = {NULL, NULL};
    const int profile = cm->profile && n == 1;
    if (profile) cm->c->drv.cuEventCreate(&ev[0], 0), cm->c->drv.cuEventCreate(&ev[1], 0);
    for (size_t i = first; i < last && s == GLLM_OK; i++) {
        const gllm_step *t = &p->steps[i], *nx = i + 1 < last ? &p->steps[i + 1] : NULL;
        if (profile) cm->c->drv.cuEventRecord(ev[0], cm->c->stream);
        CUdeviceptr in = cm->buf[t->in], out = cm->buf[t->out];
        const float *nw = NULL; /* decode: the norm the next step applies itself */
        if (n == 1 && t->kind == STEP_RMSNORM && nx && nx->in == t->out && t->k <= NORM_IN_KERNEL_MAX &&
            (nx->kind == STEP_QKV_ROPE || nx->kind == STEP_FFN_UP || nx->kind == STEP_HEAD)) {
            nw = t->b, t = nx, i++;
            out = cm->buf[t->out]; /* in stays the norm's input */
        }
        if (n == 1 && t->kind == STEP_MATMUL && nx && nx->kind == STEP_ADD && nx->in == t->out) {
            s = gemv(cm, t->dtype, t->w, t->b, in, cm->buf[nx->out], t->n, t->k, NULL, 1); /* x += W . in */
            i++;
            goto next;
        }
        const size_t lo = (t->layer - kv->first_layer) * kv->layer_bytes;
        CUdeviceptr kl = kv->k + lo, vl = kv->v + lo;
        switch (t->kind) {
        case STEP_EMBED: {
            CUdeviceptr w = dev(cm, t->w);
            size_t rb = gllm_row_bytes(t->dtype, t->k);
            int dim = (int)t->k, rot = (int)p->rot;
            void *args[] = {&w, &rb, &cm->hdr, &out, &dim, &rot, &cm->inv_freq, &cm->rope};
            s = launch(cm, EMBED[t->dtype], (unsigned)n, 1, 256, args);
            break;
        }
        case STEP_RMSNORM:
            s = rmsnorm(cm, in, t->b, out, n, t->k, p->eps);
            break;
        case STEP_QKV_ROPE: {
            const gllm_qkv_weights *w = &t->qkv;
            const size_t nq = p->n_heads * kv->head_dim, nkv = kv->n_kv * kv->head_dim;
            if (n == 1) {
                CUdeviceptr wq = dev(cm, w->wq), wk = dev(cm, w->wk), wv = dev(cm, w->wv), bq = dev(cm, w->bq),
                            bk = dev(cm, w->bk), bv = dev(cm, w->bv), nd = dev(cm, nw);
                size_t rb = gllm_row_bytes(w->dtype, t->k);
                int nqi = (int)nq, nkvi = (int)nkv, ki = (int)t->k, q = int8x(cm->c, w->dtype, t->k, nw != NULL, 1);
                int r = fit_rows(cm->c, w->dtype, q, t->k, nw != NULL, 1, gllm_cuda_gemv_rows(cm->c, nq + 2 * nkv, nkv, 4));
                /* r divides nkv, and so nq (a multiple): a warp's rows lie in one matrix */
                float eps = p->eps;
                void *args[] = {&wq, &wk, &wv, &rb, &in, &bq, &bk, &bv, &out, &cm->k, &cm->v, &nqi, &nkvi, &ki, &nd, &eps, &r, &q};
                s = launch3(cm, GEMV_QKV[w->dtype], (unsigned)((nq + 2 * nkv + 8 * r - 1) / (8 * r)), 1, 1, 256,
                            (unsigned)decode_smem(w->dtype, q, 1, t->k, nw != NULL, r), args);
            } else {
                const gllm_cuda_mm mm[3] = {{dev(cm, w->wq), dev(cm, w->bq), out, nq}, {dev(cm, w->wk), dev(cm, w->bk), cm->k, nkv},
                                            {dev(cm, w->wv), dev(cm, w->bv), cm->v, nkv}};
                s = gllm_cuda_gemms(cm->c, w->dtype, in, n, t->k, cm->scratch, mm, 3);
            }
            if (s != GLLM_OK) break;
            qkv = *w; /* a decode step: RoPE, the norms and the cache write happen in the attention */
            if (cm->decode) break;
            /* q/k norms inside RoPE (up to 256 heads in all), else by themselves first */
            const int fuse = w->q_norm && p->n_heads + kv->n_kv <= 256;
            if (w->q_norm && !fuse && ((s = rmsnorm(cm, out, w->q_norm, out, n * p->n_heads, kv->head_dim, w->norm_eps)) ||
                                       (s = rmsnorm(cm, cm->k, w->k_norm, cm->k, n * kv->n_kv, kv->head_dim, w->norm_eps))))
                break;
            int rot = (int)p->rot, neox = p->neox;
            CUdeviceptr qn = fuse ? dev(cm, w->q_norm) : 0, kn = fuse ? dev(cm, w->k_norm) : 0;
            float neps = w->norm_eps;
            void *args[] = {&out, &cm->k, &cm->v, &kl, &vl, (void *)&kv->tables, (void *)&stride, &cm->hdr, (void *)&heads,
                            (void *)&n_kv, (void *)&hd, (void *)&shift, &rot, &neox, &cm->rope, &qn, &kn, &neps};
            s = launch(cm, ROPE_KV[kv->dtype], (unsigned)n, 1, 128, args);
            break;
        }
        case STEP_ATTN: { /* the header's tiles on tensor cores, its other rows on CUDA cores */
            float scale = p->scale;
            gllm_fresh_kv f = {0};
            if (cm->decode)
                f = (gllm_fresh_kv){(const float *)cm->k, (const float *)cm->v,
                                    (const float *)cm->rope, (const float *)dev(cm, qkv.q_norm),
                                    (const float *)dev(cm, qkv.k_norm), (int)p->rot, p->neox, qkv.norm_eps};
            if (cm->attn_tiles) { /* flash attention on tensor cores */
                void *args[] = {&in, &kl, &vl, (void *)&kv->tables, (void *)&stride, &cm->hdr, (void *)&heads,
                                (void *)&n_kv, (void *)&hd, (void *)&shift, &scale, &out};
                if ((s = launch(cm, ATTN_TC[kv->dtype], (unsigned)p->n_heads, (unsigned)cm->attn_tiles, 64, args)) != GLLM_OK) break;
            }
            /* heads per block: 8 where a group has more than 4 (head dims up to 128), else 4 (the
             * kernel of 4 keeps more keys' loads in flight) */
            const int narrow = hd <= 128 && p->n_heads / kv->n_kv > GLLM_ATTN_HEADS_WIDE, per = narrow ? GLLM_ATTN_HEADS : GLLM_ATTN_HEADS_WIDE;
            const size_t chunks = (p->n_heads / kv->n_kv + per - 1) / per, rows = cm->attn_rows;
            void *args[] = {&in, &kl, &vl, (void *)&kv->tables, (void *)&stride, &cm->hdr, (void *)&heads, (void *)&n_kv,
                            (void *)&hd, (void *)&shift, &scale, &out, &cm->part, &cm->count, &f};
            if (rows) /* splits by the row count alone, so a graph holds */
                s = launch3(cm, (narrow ? ATTN_G8 : ATTN)[kv->dtype], (unsigned)(kv->n_kv * chunks), (unsigned)rows,
                            (unsigned)gllm_cuda_attn_splits(cm->c, rows, kv->n_kv * chunks), 128, 0, args);
            break;
        }
        case STEP_MATMUL:
            s = matmul(cm, t->dtype, t->w, t->b, in, out, n, t->n, t->k);
            break;
        case STEP_ADD:
            if (nx && nx->kind == STEP_RMSNORM && nx->in == t->out) {
                const gllm_step *nt = &p->steps[++i]; /* x += h; the next norm of x */
                CUdeviceptr nd = dev(cm, nt->b), y = cm->buf[nt->out];
                int ki = (int)t->k;
                float eps = p->eps;
                void *args[] = {&out, &in, &nd, &y, &ki, &eps};
                s = launch(cm, "gllm_add_rmsnorm_cuda", (unsigned)n, 1, 256, args);
            } else {
                s = elementwise(cm, "gllm_add_cuda", out, in, out, n * t->k);
            }
            break;
        case STEP_FFN_UP:
            if (n == 1) {
                CUdeviceptr wg = dev(cm, t->w), wu = dev(cm, t->w2), nd = dev(cm, nw);
                size_t rb = gllm_row_bytes(t->dtype, t->k);
                int ni = (int)t->n, ki = (int)t->k, q = int8x(cm->c, t->dtype, t->k, nw != NULL, 2);
                int r = fit_rows(cm->c, t->dtype, q, t->k, nw != NULL, 2, gllm_cuda_gemv_rows(cm->c, t->n, 0, 2));
                float eps = p->eps;
                void *args[] = {&wg, &wu, &rb, &in, &out, &ni, &ki, &nd, &eps, &r, &q};
                s = launch3(cm, GEMV_GLU[t->dtype], (unsigned)((t->n + 8 * r - 1) / (8 * r)), 1, 1, 256,
                            (unsigned)decode_smem(t->dtype, q, 1, t->k, nw != NULL, 2 * r), args);
                break;
            }
            const gllm_cuda_mm mm[2] = {{dev(cm, t->w), 0, out, t->n}, {dev(cm, t->w2), 0, cm->up, t->n}};
            if ((s = gllm_cuda_gemms(cm->c, t->dtype, in, n, t->k, cm->scratch, mm, 2))) break;
            s = elementwise(cm, "gllm_silu_mul_cuda", out, cm->up, out, n * t->n);
            break;
        case STEP_HEAD: /* every row's logits, or each item's last row's (gathered into the dead residual) */
            if (n == 1) {
                s = gemv(cm, t->dtype, t->w, NULL, in, logits, t->n, t->k, nw, 0);
                break;
            }
            if (n_out < n) {
                int ki = (int)t->k;
                void *args[] = {&in, &cm->hdr, &cm->buf[BUF_X], &ki};
                if ((s = launch(cm, "gllm_gather_rows_cuda", (unsigned)n_out, 1, 256, args)) != GLLM_OK) break;
                in = cm->buf[BUF_X];
            }
            s = matmul(cm, t->dtype, t->w, NULL, in, logits, n_out, t->n, t->k);
            break;
        default: /* refused at init */
            s = gllm_fail(GLLM_E_INTERNAL, "CUDA: step kind %d", (int)t->kind);
        }
    next:
        if (profile) { /* GLLM_CUDA_PROFILE: device time per step kind, printed at free */
            float ms = 0;
            cm->c->drv.cuEventRecord(ev[1], cm->c->stream);
            cm->c->drv.cuEventSynchronize(ev[1]);
            cm->c->drv.cuEventElapsedTime(&ms, ev[0], ev[1]);
            cm->prof_ms[t->kind] += ms;
        }
    }
    if (profile) cm->c->drv.cuEventDestroy(ev[0]), cm->c->drv.cuEventDestroy(ev[1]), cm->prof_steps++;
    return s;
}

/* hdr_host is rewritten by the next step or compaction pass before any sync, and the driver may
 * read pageable memory when the copy runs rather than when it is enqueued (hosts whose GPU walks
 * the host's page tables): each upload's end is recorded, and waited for before the next rewrite
 * (which on other hosts has long passed: the kernels after it are running) */
static gllm_status hdr_writable(gllm_cuda_model *cm) {
    return gllm_cuda_check(cm->c, cm->c->drv.cuEventSynchronize(cm->hdr_copied), "waiting for the step header's copy");
}

static gllm_status hdr_upload(gllm_cuda_model *cm, size_t ints) {
    gllm_cuda *c = cm->c;
    const gllm_status s = gllm_cuda_upload(c, cm->hdr, cm->hdr_host, ints * sizeof(int32_t));
    return s != GLLM_OK ? s : gllm_cuda_check(c, c->drv.cuEventRecord(cm->hdr_copied, c->stream), "recording the step header's copy");
}

/* the step header of n rows of these items (their positions, a tree: one item) to the device;
 * tc: the attention of items of TC_MIN_ROWS rows or more on tensor cores, in tiles of 32. A
 * step of one row per item is a decode step. */
static gllm_status header(gllm_cuda_model *cm, const gllm_cuda_item *items, size_t n_items, const int32_t *position,
                          const int32_t *parent, size_t n, int tc) {
    const gllm_status ready = hdr_writable(cm);
    if (ready != GLLM_OK) return ready;
    cm->decode = n == n_items && !parent;
    int32_t *h = cm->hdr_host, *tok = h + GLLM_HDR_TOKENS, *seq = tok + n, *slot = seq + n, *last = slot + n;
    size_t used = GLLM_HDR_TOKENS + 3 * n + n_items, r = 0;
    h[GLLM_HDR_SEQS] = (int32_t)(seq - h), h[GLLM_HDR_SLOTS] = (int32_t)(slot - h), h[GLLM_HDR_LAST] = (int32_t)(last - h);
    h[GLLM_HDR_POS] = h[GLLM_HDR_TREE] = 0;
    for (size_t b = 0; b < n_items; b++) {
        for (size_t i = 0; i < items[b].n; i++, r++)
            tok[r] = items[b].tokens ? items[b].tokens[i] : 0, seq[r] = items[b].seq, slot[r] = (int32_t)(items[b].prefix + i);
        last[b] = (int32_t)r - 1;
    }
    /* attention (tc): the rows of items of TC_MIN_ROWS or more in tiles of 32 on tensor cores,
     * the other rows listed for CUDA cores; else every row on CUDA cores */
    h[GLLM_HDR_TILES] = h[GLLM_HDR_ROWS] = 0;
    cm->attn_tiles = 0, cm->attn_rows = n;
    int32_t *tiles = h + used;
    r = 0;
    for (size_t b = 0; tc && b < n_items; r += items[b++].n) {
        if (items[b].n < TC_MIN_ROWS) continue;
        for (size_t i = 0; i < items[b].n; i += 32, cm->attn_tiles++) {
            tiles[2 * cm->attn_tiles] = (int32_t)(r + i);
            tiles[2 * cm->attn_tiles + 1] = (int32_t)(items[b].n - i < 32 ? items[b].n - i : 32);
        }
    }
    if (cm->attn_tiles) {
        int32_t *rows = tiles + 2 * cm->attn_tiles;
        h[GLLM_HDR_TILES] = (int32_t)used, h[GLLM_HDR_ROWS] = (int32_t)(rows - h);
        cm->attn_rows = 0, r = 0;
        for (size_t b = 0; b < n_items; r += items[b++].n)
            for (size_t i = 0; items[b].n < TC_MIN_ROWS && i < items[b].n; i++) rows[cm->attn_rows++] = (int32_t)(r + i);
        used += 2 * cm->attn_tiles + cm->attn_rows;
    }
    if (position) h[GLLM_HDR_POS] = (int32_t)used, memcpy(h + used, position, n * sizeof(int32_t)), used += n;
    if (parent) { /* row i: token i, its parent's row, so every ancestor */
        const size_t words = (n + 31) / 32;
        uint32_t *rows = (uint32_t *)(h + used);
        memset(rows, 0, n * words * sizeof(uint32_t));
        for (size_t i = 0; i < n; i++) {
            if (parent[i] < -1 || parent[i] >= (int32_t)i)
                return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: token %zu has parent %d (must be -1 or < %zu)", i, parent[i], i);
            if (parent[i] >= 0) memcpy(rows + i * words, rows + (size_t)parent[i] * words, words * sizeof(uint32_t));
            rows[i * words + i / 32] |= 1u << (i % 32);
        }
        h[GLLM_HDR_TREE] = (int32_t)used, used += n * words;
    }
    return hdr_upload(cm, used);
}

gllm_status gllm_cuda_forward(gllm_cuda_model *cm, const gllm_cuda_kv *kv, const gllm_cuda_item *items, size_t n_items,
                              const int32_t *position, const int32_t *parent, CUdeviceptr logits, int replay) {
    gllm_cuda *c = cm->c;
    size_t n = 0;
    for (size_t b = 0; b < n_items; b++) n += items[b].n;
    if (n > cm->max_rows) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "CUDA forward: %zu tokens, room for %zu", n, cm->max_rows);
    if ((position || parent) && n_items != 1) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "CUDA forward: positions or a tree in a batch");
    if (parent && n > GLLM_MAX_TREE)
        return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA forward: a tree of %zu tokens (%d at most)", n, GLLM_MAX_TREE);
    const int tc = c->tensor_cores && !parent && kv->head_dim <= 128 && kv->head_dim % 16 == 0 &&
                   (kv->dtype == GLLM_DTYPE_F16 || kv->dtype == GLLM_DTYPE_BF16);
    gllm_status s = header(cm, items, n_items, position, parent, n, tc);
    if (s != GLLM_OK) return s;
    const size_t n_out = parent ? n : n_items;
    const int decode = n == n_items && cm->graphs && replay && !position && !parent;
    int slot_g = -1; /* the graph of this row count, cache and logits */
    for (int i = 0; decode && i < GLLM_CUDA_GRAPHS; i++)
        if (cm->graph[i].exec && cm->graph[i].rows == n && cm->graph[i].k == kv->k && cm->graph[i].logits == logits) slot_g = i;
    if (slot_g >= 0) return gllm_cuda_check(c, c->drv.cuGraphLaunch(cm->graph[slot_g].exec, c->stream), "replaying a decode graph");
    if ((s = run(cm, kv, 0, cm->p->n_steps, n, logits, n_out)) != GLLM_OK || !decode) return s;
    /* the first decode of this row count into this cache just ran eagerly (the warm-up):
     * capture it for the next ones, in a free entry or the oldest */
    int e = 0;
    while (e < GLLM_CUDA_GRAPHS && cm->graph[e].exec) e++;
    if (e == GLLM_CUDA_GRAPHS) e = (int)(cm->graph_next++ % GLLM_CUDA_GRAPHS), c->drv.cuGraphExecDestroy(cm->graph[e].exec);
    cm->graph[e].exec = NULL;
    CUgraph graph = NULL;
    if ((s = gllm_cuda_check(c, c->drv.cuStreamBeginCapture(c->stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "capturing")) == GLLM_OK) {
        const gllm_status rs = run(cm, kv, 0, cm->p->n_steps, n, logits, n_out);
        s = gllm_cuda_check(c, c->drv.cuStreamEndCapture(c->stream, &graph), "capturing a decode graph");
        if (rs != GLLM_OK) s = rs;
    }
    if (s == GLLM_OK)
        s = gllm_cuda_check(c, c->drv.cuGraphInstantiateWithFlags(&cm->graph[e].exec, graph, 0), "instantiating a decode graph");
    if (graph) c->drv.cuGraphDestroy(graph);
    if (s == GLLM_OK) {
        cm->graph[e].rows = n, cm->graph[e].k = kv->k, cm->graph[e].logits = logits;
        return GLLM_OK;
    }
    /* the step itself succeeded: go on eagerly, and say why once */
    fprintf(stderr, "gllm: decode graph not captured, eager launches from now on (%s)\n", gllm_last_error());
    cm->graph[e].exec = NULL, cm->graphs = 0;
    return GLLM_OK;
}

gllm_status gllm_cuda_block(gllm_cuda_model *cm, size_t first, size_t last, const int32_t *tokens, const float *x, size_t n,
                            float *out) {
    gllm_cuda *c = cm->c;
    const gllm_plan *p = cm->p;
    if (n > cm->max_rows) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "block: %zu tokens, room for %zu", n, cm->max_rows);
    const gllm_cuda_item item = {0, 0, n, tokens};
    gllm_cuda_kv kv = {.dtype = GLLM_DTYPE_F32, .page_shift = 4};
    for (size_t i = first; i < last; i++)
        if (p->steps[i].kind == STEP_QKV_ROPE) { /* one layer's cache: pages 0 .. n_pages - 1 for sequence 0 */
            kv.head_dim = p->width[BUF_Q] / p->n_heads, kv.n_kv = p->steps[i].n / kv.head_dim, kv.first_layer = p->steps[i].layer;
            kv.n_pages = kv.table_stride = (n + 15) / 16, kv.layer_bytes = kv.n_pages * kv.n_kv * 16 * kv.head_dim * sizeof(float);
        }
    const int head = p->steps[last - 1].kind == STEP_HEAD;
    const size_t width = head ? p->vocab : p->width[BUF_X];
    CUdeviceptr logits = 0;
    int32_t *table = kv.n_pages ? malloc(kv.n_pages * sizeof(int32_t)) : NULL;
    gllm_status s = kv.n_pages && !table ? gllm_fail(GLLM_E_OUT_OF_MEMORY, "block: no memory") : GLLM_OK;
    for (size_t i = 0; i < kv.n_pages; i++) table[i] = (int32_t)i;
    if (s == GLLM_OK && kv.n_pages && (s = gllm_cuda_alloc(c, kv.layer_bytes, &kv.k)) == GLLM_OK &&
        (s = gllm_cuda_alloc(c, kv.layer_bytes, &kv.v)) == GLLM_OK &&
        (s = gllm_cuda_alloc(c, kv.n_pages * sizeof(int32_t), &kv.tables)) == GLLM_OK)
        s = gllm_cuda_upload(c, kv.tables, table, kv.n_pages * sizeof(int32_t));
    if (s == GLLM_OK && head) s = gllm_cuda_alloc(c, n * width * sizeof(float), &logits);
    if (s == GLLM_OK && x) s = gllm_cuda_upload(c, cm->buf[BUF_X], x, n * p->width[BUF_X] * sizeof(float));
    if (s == GLLM_OK) s = header(cm, &item, 1, NULL, NULL, n, 0); /* an f32 cache: CUDA cores */
    cm->decode = 0;                                                  /* RoPE before the attention: the block may end there */
    if (s == GLLM_OK && kv.n_pages) { /* the rotation tables the embedding lookup makes in a whole step */
        int rot = (int)p->rot;
        void *args[] = {&cm->hdr, &rot, &cm->inv_freq, &cm->rope};
        s = launch(cm, "gllm_rope_table_cuda", (unsigned)n, 1, 32, args);
    }
    if (s == GLLM_OK) s = run(cm, &kv, first, last, n, logits, n);
    if (s == GLLM_OK) s = gllm_cuda_download(c, out, head ? logits : cm->buf[BUF_X], n * width * sizeof(float));
    gllm_cuda_sync(c); /* nothing left running on what is freed */
    gllm_cuda_free(c, kv.k), gllm_cuda_free(c, kv.v), gllm_cuda_free(c, kv.tables), gllm_cuda_free(c, logits);
    free(table);
    return s;
}

gllm_status gllm_cuda_kv_copy(void *ctx, int v, size_t off, size_t pitch, void *host, size_t host_pitch, size_t bytes, size_t rows,
                              int out) {
    const gllm_cuda_kv_copy_ctx *x = ctx;
    gllm_cuda *c = x->c;
    const CUdeviceptr page = (v ? x->kv->v : x->kv->k) + off;
    const char *what = out ? "swapping KV pages out" : "swapping KV pages in";
    if (pitch > c->max_pitch || host_pitch > c->max_pitch) { /* past a 2-D copy's reach: a copy per row */
        gllm_status s = GLLM_OK;
        for (size_t r = 0; r < rows && s == GLLM_OK; r++) {
            char *h = (char *)host + r * host_pitch;
            s = gllm_cuda_check(c, out ? c->drv.cuMemcpyDtoHAsync(h, page + r * pitch, bytes, c->copy)
                                       : c->drv.cuMemcpyHtoDAsync(page + r * pitch, h, bytes, c->copy), what);
        }
        return s;
    }
    CUDA_MEMCPY2D m = {.WidthInBytes = bytes, .Height = rows};
    if (out) {
        m.srcMemoryType = CU_MEMORYTYPE_DEVICE, m.srcDevice = page, m.srcPitch = pitch;
        m.dstMemoryType = CU_MEMORYTYPE_HOST, m.dstHost = host, m.dstPitch = host_pitch;
    } else {
        m.srcMemoryType = CU_MEMORYTYPE_HOST, m.srcHost = host, m.srcPitch = host_pitch;
        m.dstMemoryType = CU_MEMORYTYPE_DEVICE, m.dstDevice = page, m.dstPitch = pitch;
    }
    return gllm_cuda_check(c, c->drv.cuMemcpy2DAsync(&m, c->copy), what);
}

gllm_status gllm_cuda_kv_compact(gllm_cuda_model *cm, const gllm_cuda_kv *kv, size_t n_layers, int seq, size_t base,
                                 const uint32_t *from, size_t n) {
    CUdeviceptr table = kv->tables + (size_t)seq * kv->table_stride * sizeof(int32_t);
    size_t layer_units = kv->layer_bytes / 2;
    int n_kv = (int)kv->n_kv, row_units = (int)(gllm_row_bytes(kv->dtype, kv->head_dim) / 2), shift = (int)kv->page_shift;
    gllm_status s = GLLM_OK;
    /* in order, at most max_rows moves at a time (the header's room, rewritten by the next
     * step on this stream): slot base + c + j takes base + from[c + j], as one pass would */
    for (size_t c = 0; c < n && s == GLLM_OK; c += cm->max_rows) {
        const size_t m = n - c < cm->max_rows ? n - c : cm->max_rows;
        int32_t *moves = cm->hdr_host;
        if ((s = hdr_writable(cm)) != GLLM_OK) break;
        moves[0] = (int32_t)(base + c);
        for (size_t i = 0; i < m; i++) moves[1 + i] = (int32_t)(from[c + i] - c);
        if ((s = hdr_upload(cm, m + 1)) != GLLM_OK) break;
        int mi = (int)m;
        void *args[] = {(void *)&kv->k, (void *)&kv->v, &layer_units, &table, &cm->hdr, &mi, &n_kv, &row_units, &shift};
        s = gllm_cuda_run(cm->c, "gllm_kv_move_cuda", (unsigned)kv->n_kv, (unsigned)n_layers, 2, 128, 0, args);
    }
    return s;
}
