#include "cuda/encoder.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/dtype_traits.h"
#include "core/error.h"
#include "core/workspace.h"
#include "cuda/kernels/step.h"
#include "cuda/model.h"
#include "cuda/names.h"

static const char *const EMBED[] = GLLM_CUDA_BY_DTYPE("embed");

enum { MAX_ROWS = 65535 }; /* a launch's grid height: rows per attention launch */

/* a weight's address on the device: in the file's image or the widened tables */
static CUdeviceptr dev(const gllm_cuda_encoder *e, const void *p) {
    const uint8_t *b = p;
    if (!p) return 0;
    if (b >= e->host && b < e->host + e->size) return e->file + (CUdeviceptr)(b - e->host);
    return e->owned + (CUdeviceptr)(b - (const uint8_t *)e->m->owned);
}

gllm_status gllm_cuda_encoder_init(gllm_cuda_encoder *e, gllm_cuda *c, const gllm_bert *m) {
    memset(e, 0, sizeof *e);
    if (m->head_dim > 256) return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA encoder: head dim %zu (256 at most)", m->head_dim);
    e->c = c, e->m = m;
    e->host = m->st.base ? m->st.base : m->gguf.base, e->size = m->st.base ? m->st.size : m->gguf.size;
    gllm_status s = GLLM_OK;
    if (c->map) { /* UMA: the file's pages in place; where mapping fails, a copy as below */
        e->mapped = gllm_cuda_map(c, e->host, e->size, &e->file, &e->registered) == GLLM_OK;
        if (!e->mapped) fprintf(stderr, "gllm: encoder weights copied to the device (%s)\n", gllm_last_error());
    }
    if (!e->mapped && (s = gllm_cuda_alloc(c, e->size, &e->file)) == GLLM_OK) s = gllm_cuda_upload(c, e->file, e->host, e->size);
    if (s == GLLM_OK && m->owned) { /* GGUF: position rows, then type rows (one zero row where the file has none) */
        const size_t bytes = (m->max_pos + m->n_types) * m->dim * sizeof(float);
        if ((s = gllm_cuda_alloc(c, bytes, &e->owned)) == GLLM_OK) s = gllm_cuda_upload(c, e->owned, m->owned, bytes);
    }
    if (s == GLLM_OK) s = gllm_cuda_sync(c);
    if (s != GLLM_OK) gllm_cuda_encoder_free(e);
    return s;
}

static void free_activations(gllm_cuda_encoder *e) {
    CUdeviceptr all[] = {e->x, e->q, e->k, e->v, e->a, e->f, e->hdr, e->out, e->scratch};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) gllm_cuda_free(e->c, all[i]);
    e->x = e->q = e->k = e->v = e->a = e->f = e->hdr = e->out = e->scratch = 0;
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
    const gllm_bert *m = e->m;
    if (rows < e->rows_cap) rows = e->rows_cap;
    if (n_seq < e->seqs_cap) n_seq = e->seqs_cap;
    free_activations(e);
    const size_t d = m->dim * sizeof(float), out = (m->dim > m->n_labels ? m->dim : m->n_labels) * sizeof(float);
    const size_t ints = GLLM_HDR_TOKENS + 5 * rows + 2 * n_seq + 1;
    gllm_status s = GLLM_OK;
    CUdeviceptr *acts[] = {&e->x, &e->q, &e->k, &e->v, &e->a};
    for (size_t i = 0; i < sizeof acts / sizeof *acts && s == GLLM_OK; i++) s = gllm_cuda_alloc(e->c, rows * d, acts[i]);
    if (s == GLLM_OK) s = gllm_cuda_alloc(e->c, rows * m->ffn * sizeof(float), &e->f);
    if (s == GLLM_OK && e->c->tensor_cores)
        s = gllm_cuda_alloc(e->c, gllm_cuda_gemm_scratch(rows, m->ffn > m->dim ? m->ffn : m->dim), &e->scratch);
    if (s == GLLM_OK) s = gllm_cuda_alloc(e->c, n_seq * out, &e->out);
    if (s == GLLM_OK) s = gllm_cuda_alloc(e->c, ints * sizeof(int32_t), &e->hdr);
    if (s == GLLM_OK && !(e->hdr_host = malloc(ints * sizeof(int32_t)))) s = gllm_fail(GLLM_E_OUT_OF_MEMORY, "CUDA encoder: no memory");
    if (s != GLLM_OK) return free_activations(e), s;
    e->rows_cap = rows, e->seqs_cap = n_seq;
    return GLLM_OK;
}

static gllm_status rows_op(gllm_cuda_encoder *e, const char *name, CUdeviceptr x, size_t count) {
    int n = (int)count;
    void *args[] = {&x, &n};
    return gllm_cuda_run(e->c, name, (unsigned)((count + 255) / 256), 1, 1, 256, 0, args);
}

/* x = layernorm(x + h) * w + b per row */
static gllm_status add_norm(gllm_cuda_encoder *e, CUdeviceptr h, const float *w, const float *b, size_t rows) {
    CUdeviceptr wd = dev(e, w), bd = dev(e, b);
    int n = (int)e->m->dim;
    float eps = e->m->eps;
    void *args[] = {&e->x, &h, &wd, &bd, &n, &eps};
    return gllm_cuda_run(e->c, "gllm_add_layernorm_cuda", (unsigned)rows, 1, 1, 256, 0, args);
}

gllm_status gllm_cuda_encode(gllm_cuda_encoder *e, const int32_t *const *seqs, const size_t *lens, size_t n_seq, int rerank,
                             int normalize, float *out) {
    const gllm_bert *m = e->m;
    size_t rows;
    gllm_status s = gllm_bert_check(m, seqs, lens, n_seq, &rows);
    if (s != GLLM_OK) return s;
    if (!out) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "encoder: NULL output");
    if (rerank && (!m->cls_w || !m->n_labels)) return gllm_fail(GLLM_E_UNSUPPORTED, "rerank: the model has no classifier head");
    if (rows > MAX_ROWS) return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA encoder: %zu tokens in one batch (%d at most)", rows, MAX_ROWS);
    if ((s = reserve(e, rows, n_seq)) != GLLM_OK) return s;
    /* the header: ids (where the embedding kernel reads them), then per row position, type,
     * its sequence's rows [begin, end), then the sequences' first rows (n_seq + 1: the last is
     * the end), then the edge of the pooled rows inside each sequence ([CLS] + 1, or last - 1) */
    int32_t *ids = e->hdr_host + GLLM_HDR_TOKENS, *pos = ids + rows, *type = pos + rows, *begin = type + rows, *end = begin + rows;
    int32_t *starts = end + rows, *edge = starts + n_seq + 1;
    const gllm_pooling pooling = rerank ? GLLM_POOL_CLS : m->pooling;
    memset(e->hdr_host, 0, GLLM_HDR_TOKENS * sizeof(int32_t));
    for (size_t i = 0, r = 0; i < n_seq; r += lens[i], i++) {
        memcpy(ids + r, seqs[i], lens[i] * sizeof(int32_t));
        gllm_bert_types(m, seqs[i], lens[i], rerank, type + r);
        for (size_t t = 0; t < lens[i]; t++) pos[r + t] = (int32_t)t, begin[r + t] = (int32_t)r, end[r + t] = (int32_t)(r + lens[i]);
        starts[i] = (int32_t)r, starts[i + 1] = (int32_t)(r + lens[i]);
        edge[i] = pooling == GLLM_POOL_LAST ? (int32_t)(r + lens[i] - 1) : (int32_t)r + 1;
    }
    gllm_cuda *c = e->c;
    const size_t ints = GLLM_HDR_TOKENS + 5 * rows + 2 * n_seq + 1;
    if ((s = gllm_cuda_upload(c, e->hdr, e->hdr_host, ints * sizeof(int32_t))) != GLLM_OK) return s;
    const CUdeviceptr d_pos = e->hdr + (GLLM_HDR_TOKENS + rows) * 4, d_type = d_pos + rows * 4, d_begin = d_type + rows * 4,
                      d_end = d_begin + rows * 4, d_starts = d_end + rows * 4, d_edge = d_starts + (n_seq + 1) * 4;
    /* the pooled rows [first, last) of each sequence: all, [CLS], or the last token */
    const CUdeviceptr d_first = pooling == GLLM_POOL_LAST ? d_edge : d_starts, d_last = pooling == GLLM_POOL_CLS ? d_edge : d_starts + 4;
    const size_t d = m->dim;
    int dim = (int)d, heads = (int)m->n_heads, hd = (int)m->head_dim;
    float eps = m->eps, scale = 1.0f / sqrtf((float)m->head_dim);
    { /* word embeddings, then + position + type, layer-normed */
        CUdeviceptr word = dev(e, m->word), pt = dev(e, m->pos), tt = dev(e, m->type), w = dev(e, m->ln_w), b = dev(e, m->ln_b);
        size_t rb = gllm_row_bytes(m->edt, d);
        void *a1[] = {&word, &rb, &e->hdr, &e->x, &dim};
        void *a2[] = {&e->x, &pt, &tt, (void *)&d_pos, (void *)&d_type, &w, &b, &dim, &eps};
        if ((s = gllm_cuda_run(c, EMBED[m->edt], (unsigned)rows, 1, 1, 256, 0, a1)) ||
            (s = gllm_cuda_run(c, "gllm_bert_embed_norm_cuda", (unsigned)rows, 1, 1, 256, 0, a2)))
            return s;
    }
    for (size_t l = 0; l < m->n_layers; l++) {
        const gllm_bert_layer *L = &m->layers[l];
        const gllm_cuda_mm qkv[3] = {{dev(e, L->wq), dev(e, L->bq), e->q, d}, {dev(e, L->wk), dev(e, L->bk), e->k, d},
                                     {dev(e, L->wv), dev(e, L->bv), e->v, d}};
        if ((s = gllm_cuda_gemms(c, m->mdt, e->x, rows, d, e->scratch, qkv, 3)) != GLLM_OK) return s;
        void *aa[] = {&e->q, &e->k, &e->v, (void *)&d_begin, (void *)&d_end, &heads, &hd, &scale, &e->a};
        if ((s = gllm_cuda_run(c, "gllm_encoder_attn_cuda", (unsigned)heads, (unsigned)rows, 1, 128, 0, aa)) ||
            (s = gllm_cuda_gemm(c, m->mdt, dev(e, L->wo), dev(e, L->bo), e->a, e->q, rows, d, d, e->scratch)) ||
            (s = add_norm(e, e->q, L->ln1_w, L->ln1_b, rows)) ||
            (s = gllm_cuda_gemm(c, m->mdt, dev(e, L->wi), dev(e, L->bi), e->x, e->f, rows, m->ffn, d, e->scratch)) ||
            (s = rows_op(e, "gllm_gelu_cuda", e->f, rows * m->ffn)) ||
            (s = gllm_cuda_gemm(c, m->mdt, dev(e, L->wd), dev(e, L->bd), e->f, e->q, rows, d, m->ffn, e->scratch)) ||
            (s = add_norm(e, e->q, L->ln2_w, L->ln2_b, rows)))
            return s;
    }
    if (rerank) normalize = 0;
    void *ap[] = {&e->x, (void *)&d_first, (void *)&d_last, &dim, &normalize, rerank ? &e->q : &e->out};
    if ((s = gllm_cuda_run(c, "gllm_pool_rows_cuda", (unsigned)n_seq, 1, 1, 256, 0, ap)) != GLLM_OK) return s;
    if (!rerank) return gllm_cuda_download(c, out, e->out, n_seq * d * sizeof(float));
    /* classifier(tanh(pooler([CLS] rows))), label 0 */
    if ((s = gllm_cuda_gemm(c, m->hdt, dev(e, m->pool_w), dev(e, m->pool_b), e->q, e->k, n_seq, d, d, e->scratch)) ||
        (s = rows_op(e, "gllm_tanh_cuda", e->k, n_seq * d)) ||
        (s = gllm_cuda_gemm(c, m->hdt, dev(e, m->cls_w), dev(e, m->cls_b), e->k, e->out, n_seq, m->n_labels, d, e->scratch)))
        return s;
    const size_t mark = gllm_ws_mark();
    float *logits = gllm_ws_alloc(n_seq * m->n_labels * sizeof(float));
    if (!logits) s = gllm_fail(GLLM_E_OUT_OF_MEMORY, "rerank: no memory");
    if (s == GLLM_OK) s = gllm_cuda_download(c, logits, e->out, n_seq * m->n_labels * sizeof(float));
    for (size_t i = 0; i < n_seq && s == GLLM_OK; i++) out[i] = logits[i * m->n_labels];
    gllm_ws_release(mark);
    return s;
}
