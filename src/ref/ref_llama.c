/* Reference forward of the Llama family in double, from the dequantised weights, with no
 * cache: every position recomputed from the tokens. The oracle of the backends' forwards. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/dtype_traits.h"
#include "ref/ref.h"
#include "model/llama.h"

static double *rows(const gllm_gguf_tensor *t) { /* the whole tensor as double rows */
    const size_t cols = (size_t)t->dims[0], n = t->n_dims > 1 ? (size_t)t->dims[1] : 1;
    const size_t row = t->nbytes / n;
    double *d = malloc(n * cols * sizeof(double));
    for (size_t r = 0; r < n; r++) gllm_ref_dequantize(t->dtype, (const char *)t->data + r * row, d + r * cols, cols);
    return d;
}

/* y[n_out] = W[n_out][n_in] x (+ b); with int8, for block-quantised weights the activations
 * are first rounded as the CPU's int8 path does (per 32: d = max|x|/127, x = d * round(x / d)),
 * so the comparison measures the kernels, not that documented approximation */
static void mv(int int8, const gllm_gguf_tensor *t, const double *w, const double *b, const double *x, double *y,
               size_t n_out, size_t n_in) {
    double *xq = malloc(n_in * sizeof(double));
    memcpy(xq, x, n_in * sizeof(double));
    if (int8 && gllm_dtype_traits_table[t->dtype].int8_path) {
        float *xf = malloc(n_in * sizeof(float));
        for (size_t i = 0; i < n_in; i++) xf[i] = (float)x[i];
        gllm_ref_round_int8(xf, xq, n_in);
        free(xf);
    }
    for (size_t o = 0; o < n_out; o++) {
        double s = b ? b[o] : 0;
        for (size_t i = 0; i < n_in; i++) s += w[o * n_in + i] * xq[i];
        y[o] = s;
    }
    free(xq);
}

static void rms(const double *x, const double *w, double *y, size_t n, double eps) {
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += x[i] * x[i];
    const double r = 1.0 / sqrt(ss / (double)n + eps);
    for (size_t i = 0; i < n; i++) y[i] = x[i] * r * w[i];
}

/* rotations of magnitude ms (YaRN's; 1 otherwise) */
static void rope(double *v, size_t heads, size_t hd, size_t rot, const float *inv, size_t pos, int neox, double ms) {
    for (size_t h = 0; h < heads; h++)
        for (size_t i = 0; i < rot / 2; i++) {
            const size_t a = h * hd + (neox ? i : 2 * i), b = h * hd + (neox ? i + rot / 2 : 2 * i + 1);
            const double ang = (double)pos * inv[i], c = ms * cos(ang), s = ms * sin(ang), x = v[a], y = v[b];
            v[a] = x * c - y * s, v[b] = x * s + y * c;
        }
}

void gllm_ref_llama(const gllm_llama *m, const int32_t *tokens, size_t n, int int8, double *logits) {
    const size_t d = m->dim, hd = m->head_dim, nq = m->n_heads * hd, nk = m->n_kv_heads * hd, g = m->n_heads / m->n_kv_heads;
    double *x = malloc(n * d * 8), *h = malloc(d * 8), *q = malloc(n * nq * 8), *k = malloc(n * nk * 8),
           *v = malloc(n * nk * 8), *att = malloc(nq * 8), *o = malloc(d * 8), *gt = malloc(m->ffn * 8),
           *up = malloc(m->ffn * 8), *s = malloc(n * 8);
    double *emb = rows(m->tok_embd);
    for (size_t t = 0; t < n; t++) memcpy(x + t * d, emb + (size_t)tokens[t] * d, d * 8);
    free(emb);
    for (size_t l = 0; l < m->n_layers; l++) {
        const gllm_llama_layer *L = &m->layers[l];
        double *an = rows(L->attn_norm), *wq = rows(L->wq), *wk = rows(L->wk), *wv = rows(L->wv), *wo = rows(L->wo);
        double *bq = L->bq ? rows(L->bq) : NULL, *bk = L->bk ? rows(L->bk) : NULL, *bv = L->bv ? rows(L->bv) : NULL;
        double *qn = L->q_norm ? rows(L->q_norm) : NULL, *kn = L->k_norm ? rows(L->k_norm) : NULL;
        double *fn = rows(L->ffn_norm), *wg = rows(L->w_gate), *wu = rows(L->w_up), *wd = rows(L->w_down);
        for (size_t t = 0; t < n; t++) {
            rms(x + t * d, an, h, d, m->eps);
            mv(int8, L->wq, wq, bq, h, q + t * nq, nq, d), mv(int8, L->wk, wk, bk, h, k + t * nk, nk, d);
            mv(int8, L->wv, wv, bv, h, v + t * nk, nk, d);
            for (size_t hh = 0; qn && hh < m->n_heads; hh++) rms(q + t * nq + hh * hd, qn, q + t * nq + hh * hd, hd, m->eps);
            for (size_t hh = 0; kn && hh < m->n_kv_heads; hh++) rms(k + t * nk + hh * hd, kn, k + t * nk + hh * hd, hd, m->eps);
            rope(q + t * nq, m->n_heads, hd, m->rot, m->inv_freq, t, m->neox, gllm_rope_mscale(&m->rope));
            rope(k + t * nk, m->n_kv_heads, hd, m->rot, m->inv_freq, t, m->neox, gllm_rope_mscale(&m->rope));
        }
        for (size_t t = 0; t < n; t++) {
            for (size_t hh = 0; hh < m->n_heads; hh++) { /* causal softmax(q k^T / sqrt(hd)) v */
                const double *qh = q + t * nq + hh * hd;
                double mx = -INFINITY, den = 0;
                for (size_t u = 0; u <= t; u++) {
                    double dot = 0;
                    for (size_t i = 0; i < hd; i++) dot += qh[i] * k[u * nk + (hh / g) * hd + i];
                    s[u] = dot / sqrt((double)hd), mx = fmax(mx, s[u]);
                }
                memset(att + hh * hd, 0, hd * 8);
                for (size_t u = 0; u <= t; u++) {
                    const double p = exp(s[u] - mx);
                    den += p;
                    for (size_t i = 0; i < hd; i++) att[hh * hd + i] += p * v[u * nk + (hh / g) * hd + i];
                }
                for (size_t i = 0; i < hd; i++) att[hh * hd + i] /= den;
            }
            mv(int8, L->wo, wo, NULL, att, o, d, nq);
            for (size_t i = 0; i < d; i++) x[t * d + i] += o[i];
            rms(x + t * d, fn, h, d, m->eps);
            mv(int8, L->w_gate, wg, NULL, h, gt, m->ffn, d), mv(int8, L->w_up, wu, NULL, h, up, m->ffn, d);
            for (size_t i = 0; i < m->ffn; i++) gt[i] = gt[i] / (1.0 + exp(-gt[i])) * up[i];
            mv(int8, L->w_down, wd, NULL, gt, o, d, m->ffn);
            for (size_t i = 0; i < d; i++) x[t * d + i] += o[i];
        }
        free(an), free(wq), free(wk), free(wv), free(wo), free(bq), free(bk), free(bv), free(qn), free(kn);
        free(fn), free(wg), free(wu), free(wd);
    }
    double *on = rows(m->out_norm), *out = rows(m->output);
    for (size_t t = 0; t < n; t++) {
        rms(x + t * d, on, h, d, m->eps);
        mv(int8, m->output, out, NULL, h, logits + t * m->vocab, m->vocab, d);
    }
    free(on), free(out);
    free(x), free(h), free(q), free(k), free(v), free(att), free(o), free(gt), free(up), free(s);
}
