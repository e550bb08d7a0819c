#include "cuda/encoder.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/dtype_traits.h"
#include "core/error.h"
#include "cuda/kernels/step.h"
#include "cuda/model.h"
#include "cuda/names.h"

static const char *const EMBED[] = GLLM_CUDA_BY_DTYPE("embed");


/* a weight's address on the device: in the file's image or the owned block */
static CUdeviceptr dev(const gllm_cuda_encoder *e, const void *p) {
    const uint8_t *b = p;
    if (!p) return 0;
    if (b >= e->host && b < e->host + e->size) return e->file + (CUdeviceptr)(b - e->host);
    return e->owned + (CUdeviceptr)(b - e->owned_host);
}

gllm_status gllm_cuda_encoder_init(gllm_cuda_encoder *e, gllm_cuda *c, const gllm_plan *p, const void *file, size_t file_size,
                                   const void *owned, size_t owned_size) {
    memset(e, 0, sizeof *e);
    const char *run = getenv("GLLM_CUDA_ENCODE_ROWS");
    e->run_rows = run && atol(run) > 0 && atol(run) < GLLM_CUDA_ENCODE_ROWS ? (size_t)atol(run) : GLLM_CUDA_ENCODE_ROWS;
    const size_t hd = p->width[BUF_Q] / p->n_heads;
    if (hd > 256) return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA encoder: head dim %zu (256 at most)", hd);
    for (size_t i = 0; i < p->n_steps; i++) {
        const gllm_step *t = &p->steps[i];
        const int ok = t->kind == STEP_EMBED || t->kind == STEP_EMBED_NORM || t->kind == STEP_QKV || t->kind == STEP_SELF_ATTN ||
                       t->kind == STEP_MATMUL || t->kind == STEP_ADD_LAYERNORM || t->kind == STEP_POOL || t->kind == STEP_TANH ||
                       (t->kind == STEP_FFN_UP && t->ffn == GLLM_FFN_GELU && !t->w2);
        if (!ok) return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA encoder: plan step %zu (kind %d) not taken", i, (int)t->kind);
    }
    if (p->width[BUF_K] != p->width[BUF_Q]) return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA encoder: grouped-query attention");
    e->c = c, e->p = p, e->host = file, e->size = file_size, e->owned_host = owned, e->owned_size = owned_size;
    gllm_status s = GLLM_OK;
    if (c->map) { /* UMA: the file's pages in place; where mapping fails, a copy as below */
        e->mapped = gllm_cuda_map(c, e->host, e->size, &e->file, &e->registered) == GLLM_OK;
        if (!e->mapped) fprintf(stderr, "gllm: encoder weights copied to the device (%s)\n", gllm_last_error());
    }
    if (!e->mapped && (s = gllm_cuda_alloc(c, e->size, &e->file)) == GLLM_OK) s = gllm_cuda_upload(c, e->file, e->host, e->size);
    if (s == GLLM_OK && owned_size && (s = gllm_cuda_alloc(c, owned_size, &e->owned)) == GLLM_OK)
        s = gllm_cuda_upload(c, e->owned, owned, owned_size);
    if (s == GLLM_OK) s = gllm_cuda_sync(c);
    if (s != GLLM_OK) gllm_cuda_encoder_free(e);
    return s;
}

/* the step header's ints: the token ids (where the embedding kernel reads them), per row its
 * position, type and its sequence's rows [begin, end), per sequence its first row (and the
 * end), its first row + 1 and its last row */
static size_t header_ints(size_t rows, size_t n_seq) { return GLLM_HDR_TOKENS + 5 * rows + 3 * n_seq + 1; }

static void free_activations(gllm_cuda_encoder *e) {
    for (int b = 0; b < BUF_COUNT; b++) gllm_cuda_free(e->c, e->buf[b]), e->buf[b] = 0;
    gllm_cuda_free(e->c, e->hdr), gllm_cuda_free(e->c, e->scratch);
    e->hdr = e->scratch = 0;
    free(e->hdr_host), e->hdr_host = NULL;
    e->rows_cap = e->seqs_cap = 0;
}

void gllm_cuda_encoder_free(gllm_cuda_encoder *e) {
    if (!e->c) return;
    free_activations(e);
    if (e->mapped) gllm_cuda_unmap(e->c, e->host, e->registered);
    else gllm_cuda_free(e->c, e->file);
    gllm_cuda_free(e->c, e->owned);
    memset(e, 0, sizeof *e);
}

/* room for rows tokens in n_seq sequences: grown to the largest batch so far, then kept */
static gllm_status reserve(gllm_cuda_encoder *e, size_t rows, size_t n_seq) {
    if (rows <= e->rows_cap && n_seq <= e->seqs_cap) return GLLM_OK;
    const gllm_plan *p = e->p;
    if (rows < e->rows_cap) rows = e->rows_cap;
    if (n_seq < e->seqs_cap) n_seq = e->seqs_cap;
    free_activations(e);
    size_t k = 0; /* the widest gemm input */
    for (size_t i = 0; i < p->n_steps; i++) k = p->steps[i].k > k ? p->steps[i].k : k;
    gllm_status s = GLLM_OK;
    for (int b = 0; b < BUF_COUNT && s == GLLM_OK; b++) s = gllm_cuda_alloc(e->c, rows * p->width[b] * sizeof(float), &e->buf[b]);
    if (s == GLLM_OK && e->c->tensor_cores) s = gllm_cuda_alloc(e->c, gllm_cuda_gemm_scratch(rows, k), &e->scratch);
    if (s == GLLM_OK) s = gllm_cuda_alloc(e->c, header_ints(rows, n_seq) * sizeof(int32_t), &e->hdr);
    if (s == GLLM_OK && !(e->hdr_host = malloc(header_ints(rows, n_seq) * sizeof(int32_t))))
        s = gllm_fail(GLLM_E_OUT_OF_MEMORY, "CUDA encoder: no memory");
    if (s != GLLM_OK) return free_activations(e), s;
    e->rows_cap = rows, e->seqs_cap = n_seq;
    return GLLM_OK;
}

/* the kernel's count is an int: 2^30 values a launch */
static gllm_status rows_op(gllm_cuda_encoder *e, const char *name, CUdeviceptr x, size_t count) {
    gllm_status s = GLLM_OK;
    for (size_t at = 0; at < count && s == GLLM_OK; at += (size_t)1 << 30) {
        int n = (int)(count - at < (size_t)1 << 30 ? count - at : (size_t)1 << 30);
        CUdeviceptr xo = x + at * sizeof(float);
        void *args[] = {&xo, &n};
        s = gllm_cuda_run(e->c, name, (unsigned)((n + 255) / 256), 1, 1, 256, 0, args);
    }
    return s;
}

gllm_status gllm_cuda_encode(gllm_cuda_encoder *e, const gllm_encoder_item *items, size_t n_seq, int normalize, float *out) {
    const gllm_plan *p = e->p;
    gllm_cuda *c = e->c;
    size_t rows = 0;
    for (size_t i = 0; i < n_seq; i++) rows += items[i].n;
    if (rows > e->run_rows) return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA encoder: %zu tokens in one run (%zu at most)", rows, e->run_rows);
    gllm_status s = reserve(e, rows, n_seq);
    if (s != GLLM_OK) return s;
    int32_t *ids = e->hdr_host + GLLM_HDR_TOKENS, *pos = ids + rows, *type = pos + rows, *begin = type + rows, *end = begin + rows;
    int32_t *starts = end + rows, *second = starts + n_seq + 1, *last = second + n_seq;
    memset(e->hdr_host, 0, GLLM_HDR_TOKENS * sizeof(int32_t));
    for (size_t i = 0, r = 0; i < n_seq; r += items[i].n, i++) {
        memcpy(ids + r, items[i].tokens, items[i].n * sizeof(int32_t));
        for (size_t t = 0; t < items[i].n; t++) {
            pos[r + t] = (int32_t)t, type[r + t] = items[i].types ? items[i].types[t] : 0;
            begin[r + t] = (int32_t)r, end[r + t] = (int32_t)(r + items[i].n);
        }
        starts[i] = (int32_t)r, starts[i + 1] = (int32_t)(r + items[i].n);
        second[i] = (int32_t)r + 1, last[i] = (int32_t)(r + items[i].n - 1);
    }
    if ((s = gllm_cuda_upload(c, e->hdr, e->hdr_host, header_ints(rows, n_seq) * sizeof(int32_t))) != GLLM_OK) return s;
    const CUdeviceptr d_pos = e->hdr + (GLLM_HDR_TOKENS + rows) * 4, d_type = d_pos + rows * 4, d_begin = d_type + rows * 4,
                      d_end = d_begin + rows * 4, d_starts = d_end + rows * 4, d_second = d_starts + (n_seq + 1) * 4,
                      d_last = d_second + n_seq * 4;
    int heads = (int)p->n_heads, hd = (int)(p->width[BUF_Q] / p->n_heads);
    float eps = p->eps, scale = p->scale;
    size_t m = rows; /* the rows of the row-wise steps: one per sequence after a POOL */
    for (size_t i = 0; i < p->n_steps && s == GLLM_OK; i++) {
        const gllm_step *t = &p->steps[i];
        CUdeviceptr in = e->buf[t->in], o = e->buf[t->out], w = dev(e, t->w), b = dev(e, t->b);
        int k = (int)t->k;
        switch (t->kind) {
        case STEP_EMBED: {
            size_t rb = gllm_row_bytes(t->dtype, t->k);
            int rot = 0;
            CUdeviceptr none = 0; /* no RoPE */
            void *args[] = {&w, &rb, &e->hdr, &o, &k, &rot, &none, &none};
            s = gllm_cuda_run(c, EMBED[t->dtype], (unsigned)rows, 1, 1, 256, 0, args);
            break;
        }
        case STEP_EMBED_NORM: { /* in place on out */
            CUdeviceptr w2 = dev(e, t->w2), b2 = dev(e, t->b2);
            void *args[] = {&o, &w, &w2, (void *)&d_pos, (void *)&d_type, &b, &b2, &k, &eps};
            s = gllm_cuda_run(c, "gllm_bert_embed_norm_cuda", (unsigned)rows, 1, 1, 256, 0, args);
            break;
        }
        case STEP_QKV: {
            const gllm_qkv_weights *q = &t->qkv;
            const gllm_cuda_mm mm[3] = {{dev(e, q->wq), dev(e, q->bq), o, p->width[BUF_Q]},
                                        {dev(e, q->wk), dev(e, q->bk), e->buf[BUF_K], t->n},
                                        {dev(e, q->wv), dev(e, q->bv), e->buf[BUF_V], t->n}};
            s = gllm_cuda_gemms(c, q->dtype, in, rows, t->k, e->scratch, mm, 3);
            break;
        }
        case STEP_SELF_ATTN: {
            void *args[] = {&in, &e->buf[BUF_K], &e->buf[BUF_V], (void *)&d_begin, (void *)&d_end, &heads, &hd, &scale, &o};
            s = gllm_cuda_run(c, "gllm_encoder_attn_cuda", (unsigned)heads, (unsigned)rows, 1, 128, 0, args);
            break;
        }
        case STEP_MATMUL:
            s = gllm_cuda_gemm(c, t->dtype, w, b, in, o, m, t->n, t->k, e->scratch);
            break;
        case STEP_ADD_LAYERNORM: {
            CUdeviceptr b2 = dev(e, t->b2);
            void *args[] = {&o, &in, &b, &b2, &k, &eps};
            s = gllm_cuda_run(c, "gllm_add_layernorm_cuda", (unsigned)m, 1, 1, 256, 0, args);
            break;
        }
        case STEP_FFN_UP: /* GELU(in . W^T + b) */
            if ((s = gllm_cuda_gemm(c, t->dtype, w, b, in, o, m, t->n, t->k, e->scratch)) == GLLM_OK)
                s = rows_op(e, "gllm_gelu_cuda", o, m * t->n);
            break;
        case STEP_POOL: { /* the rows [first, last) of each sequence: all, [CLS], or its last */
            CUdeviceptr first = t->pool == GLLM_POOL_LAST ? d_last : d_starts;
            CUdeviceptr past = t->pool == GLLM_POOL_CLS ? d_second : d_starts + 4;
            void *args[] = {&in, &first, &past, &k, &normalize, &o};
            s = gllm_cuda_run(c, "gllm_pool_rows_cuda", (unsigned)n_seq, 1, 1, 256, 0, args);
            m = n_seq;
            break;
        }
        case STEP_TANH:
            if (in != o) s = gllm_cuda_check(c, c->drv.cuMemcpyDtoDAsync(o, in, m * t->k * sizeof(float), c->stream), "copying");
            if (s == GLLM_OK) s = rows_op(e, "gllm_tanh_cuda", o, m * t->k);
            break;
        default:
            s = gllm_fail(GLLM_E_INTERNAL, "CUDA encoder: step kind %d", (int)t->kind);
        }
    }
    if (s != GLLM_OK || !p->n_steps) return s;
    const gllm_step *t = &p->steps[p->n_steps - 1];
    return gllm_cuda_download(c, out, e->buf[t->out], m * gllm_plan_out_width(p, t) * sizeof(float));
}
