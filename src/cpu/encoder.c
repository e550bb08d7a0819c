/* The CPU backend's BERT-family encoder (src/model/bert.h): its forward on the host. */
#include "cpu/encoder.h"
#include <math.h>
#include <string.h>
#include "core/dispatch.h"
#include "core/error.h"
#include "core/workspace.h"
#include "cpu/attention.h"
#include "cpu/embed.h"
#include "cpu/fused.h"
#include "cpu/matmul.h"

gllm_status gllm_cpu_encoder_init(gllm_cpu_encoder *e, const gllm_bert *m) {
    *e = (gllm_cpu_encoder){.m = m};
    gllm_status st = gllm_kv_pool_init(&e->kv, GLLM_DTYPE_F32, 1, m->n_heads, m->head_dim, 16, (m->max_pos + 15) / 16);
    if (st == GLLM_OK && (st = gllm_kv_seq_init(&e->seq, &e->kv, m->max_pos)) == GLLM_OK) st = gllm_kv_reserve(&e->kv, &e->seq, m->max_pos);
    if (st != GLLM_OK) gllm_cpu_encoder_free(e);
    return st;
}

void gllm_cpu_encoder_free(gllm_cpu_encoder *e) {
    if (e->seq.table) gllm_kv_seq_release(&e->kv, &e->seq);
    gllm_kv_pool_free(&e->kv);
    *e = (gllm_cpu_encoder){0};
}

/* the last hidden states of every sequence's rows into x (rows x dim); types: 0/1 per row from
 * the first [SEP] on when pairs != 0 */
static gllm_status encode(gllm_cpu_encoder *e, const int32_t *const *seqs, const size_t *lens, size_t n_seq, int pairs,
                          float *x, int32_t *ids) {
    const gllm_bert *m = e->m;
    size_t rows = 0;
    for (size_t i = 0; i < n_seq; i++) rows += lens[i];
    const size_t d = m->dim, mark = gllm_ws_mark();
    /* every sequence's rows in one matrix: the projections run as one GEMM each */
    float *h = gllm_ws_alloc(rows * d * 4), *q = gllm_ws_alloc(rows * d * 4);
    float *k = gllm_ws_alloc(rows * d * 4), *v = gllm_ws_alloc(rows * d * 4), *a = gllm_ws_alloc(rows * d * 4);
    float *f = gllm_ws_alloc(rows * m->ffn * 4);
    int32_t *types = gllm_ws_alloc(rows * 4);
    gllm_status st = GLLM_OK;
    if (!h || !q || !k || !v || !a || !f || !types) {
        st = gllm_fail(GLLM_E_OUT_OF_MEMORY, "embed: no memory for %zu tokens", rows);
        goto done;
    }
    const gllm_kernel_table *kt = gllm_kernels();
    for (size_t i = 0, r = 0; i < n_seq; r += lens[i], i++) memcpy(ids + r, seqs[i], lens[i] * 4);
    if ((st = gllm_cpu_embed(m->edt, m->word, m->vocab, d, ids, rows, x)) != GLLM_OK) goto done;
    for (size_t i = 0, r = 0; i < n_seq; r += lens[i], i++) {
        gllm_bert_types(m, seqs[i], lens[i], pairs, types + r);
        for (size_t t = 0; t < lens[i]; t++) { /* positions restart in each sequence */
            float *xr = x + (r + t) * d;
            kt->add(xr, m->pos + t * d, xr, d);
            kt->add(xr, m->type + (size_t)types[r + t] * d, xr, d);
            kt->layernorm(xr, m->ln_w, m->ln_b, xr, d, m->eps);
        }
    }
    const float scale = 1.0f / sqrtf((float)m->head_dim);
    for (size_t l = 0; l < m->n_layers && st == GLLM_OK; l++) {
        const gllm_bert_layer *L = &m->layers[l];
        const gllm_qkv_weights w = {.dtype = m->mdt, .wq = L->wq, .wk = L->wk, .wv = L->wv, .bq = L->bq, .bk = L->bk, .bv = L->bv};
        if ((st = gllm_cpu_qkv(&w, x, rows, d, d, d, q, k, v)) != GLLM_OK) break;
        for (size_t i = 0, r = 0; i < n_seq && st == GLLM_OK; r += lens[i], i++) { /* attention within each sequence */
            for (size_t t = 0; t < lens[i] && st == GLLM_OK; t++)
                st = gllm_kv_write(&e->kv, &e->seq, 0, t, k + (r + t) * d, v + (r + t) * d);
            e->seq.len = 0;
            if (st == GLLM_OK)
                st = gllm_cpu_attention(&e->kv, &e->seq, 0, q + r * d, lens[i], m->n_heads, 0, GLLM_MASK_NONE, NULL, scale,
                                        a + r * d);
        }
        if (st != GLLM_OK || (st = gllm_cpu_matmul(m->mdt, 0, L->wo, a, L->bo, h, rows, d, d))) break;
        for (size_t r = 0; r < rows; r++) {
            kt->add(x + r * d, h + r * d, x + r * d, d);
            kt->layernorm(x + r * d, L->ln1_w, L->ln1_b, x + r * d, d, m->eps);
        }
        if ((st = gllm_cpu_ffn_up(GLLM_FFN_GELU, m->mdt, 0, L->wi, L->bi, NULL, NULL, x, f, rows, m->ffn, d)) ||
            (st = gllm_cpu_matmul(m->mdt, 0, L->wd, f, L->bd, h, rows, d, m->ffn)))
            break;
        for (size_t r = 0; r < rows; r++) {
            kt->add(x + r * d, h + r * d, x + r * d, d);
            kt->layernorm(x + r * d, L->ln2_w, L->ln2_b, x + r * d, d, m->eps);
        }
    }
done:
    gllm_ws_release(mark);
    return st;
}

static gllm_status embed(gllm_cpu_encoder *e, const int32_t *const *seqs, const size_t *lens, size_t n_seq, int normalize, float *out) {
    const gllm_bert *m = e->m;
    size_t rows;
    gllm_status st = gllm_bert_check(m, seqs, lens, n_seq, &rows);
    if (st != GLLM_OK) return st;
    if (!out) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "embed: NULL output");
    const size_t d = m->dim, mark = gllm_ws_mark();
    float *x = gllm_ws_alloc(rows * d * 4);
    int32_t *ids = gllm_ws_alloc(rows * 4);
    if (!x || !ids) st = gllm_fail(GLLM_E_OUT_OF_MEMORY, "embed: no memory for %zu tokens", rows);
    if (st == GLLM_OK) st = encode(e, seqs, lens, n_seq, 0, x, ids);
    for (size_t i = 0, r = 0; i < n_seq && st == GLLM_OK; r += lens[i], i++)
        st = gllm_cpu_pool(m->pooling, x + r * d, NULL, lens[i], d, normalize, out + i * d);
    gllm_ws_release(mark);
    return st;
}

static gllm_status rerank(gllm_cpu_encoder *e, const int32_t *const *seqs, const size_t *lens, size_t n_seq, float *scores) {
    const gllm_bert *m = e->m;
    size_t rows;
    gllm_status st = gllm_bert_check(m, seqs, lens, n_seq, &rows);
    if (st != GLLM_OK) return st;
    if (!m->cls_w || !m->n_labels) return gllm_fail(GLLM_E_UNSUPPORTED, "rerank: the model has no classifier head");
    if (!scores) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "rerank: NULL output");
    const size_t d = m->dim, mark = gllm_ws_mark();
    float *x = gllm_ws_alloc(rows * d * 4), *cls = gllm_ws_alloc(n_seq * d * 4), *pooled = gllm_ws_alloc(n_seq * d * 4);
    float *logit = gllm_ws_alloc(n_seq * m->n_labels * 4);
    int32_t *ids = gllm_ws_alloc(rows * 4);
    if (!x || !cls || !pooled || !logit || !ids) st = gllm_fail(GLLM_E_OUT_OF_MEMORY, "rerank: no memory for %zu tokens", rows);
    if (st == GLLM_OK) st = encode(e, seqs, lens, n_seq, 1, x, ids);
    for (size_t i = 0, r = 0; i < n_seq && st == GLLM_OK; r += lens[i], i++) memcpy(cls + i * d, x + r * d, d * 4);
    if (st == GLLM_OK) st = gllm_cpu_matmul(m->hdt, 0, m->pool_w, cls, m->pool_b, pooled, n_seq, d, d);
    for (size_t i = 0; i < n_seq * d && st == GLLM_OK; i++) pooled[i] = tanhf(pooled[i]);
    if (st == GLLM_OK) st = gllm_cpu_matmul(m->hdt, 0, m->cls_w, pooled, m->cls_b, logit, n_seq, m->n_labels, d);
    for (size_t i = 0; i < n_seq && st == GLLM_OK; i++) scores[i] = logit[i * m->n_labels];
    gllm_ws_release(mark);
    return st;
}

gllm_status gllm_cpu_encode(gllm_cpu_encoder *e, const int32_t *const *seqs, const size_t *lens, size_t n_seq, int rerank_,
                            int normalize, float *out) {
    return rerank_ ? rerank(e, seqs, lens, n_seq, out) : embed(e, seqs, lens, n_seq, normalize, out);
}
