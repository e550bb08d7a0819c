/* Fused projections against the reference matmul, activations and rotation in double. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/dispatch.h"
#include "core/dtype_traits.h"
#include "cpu/fused.h"
#include "model/rope.h"
#include "ref/ref.h"

static uint64_t state = 1;
static float uni(void) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(state >> 40) / 16777216.0f * 2.0f - 1.0f;
}

/* weights of dtype t (quantised from random floats by the library) */
static void *weights(gllm_dtype t, size_t n, size_t k) {
    float *w = malloc(n * k * 4);
    for (size_t i = 0; i < n * k; i++) w[i] = uni();
    void *q = malloc(n * gllm_row_bytes(t, k));
    cr_assert_eq(gllm_quantize(t, w, q, n, k), GLLM_OK);
    free(w);
    return q;
}

static void ffn_case(gllm_ffn_kind kind, gllm_dtype t, size_t m, size_t n, size_t k) {
    void *wg = weights(t, n, k), *wu = weights(t, n, k);
    float *bg = malloc(n * 4), *bu = malloc(n * 4), *x = malloc(m * k * 4), *y = malloc(m * n * 4);
    for (size_t i = 0; i < n; i++) bg[i] = uni(), bu[i] = uni();
    for (size_t i = 0; i < m * k; i++) x[i] = uni();
    double *g = malloc(m * n * 8), *u = malloc(m * n * 8), *mg = malloc(m * n * 8), *mu = malloc(m * n * 8);
    const size_t row = gllm_row_bytes(t, k);
    gllm_ref_matmul(t, wg, row, x, bg, g, m, n, k);
    gllm_ref_matmul(t, wu, row, x, bu, u, m, n, k);
    gllm_ref_matmul_abs(t, wg, row, x, mg, m, n, k);
    gllm_ref_matmul_abs(t, wu, row, x, mu, m, n, k);
    cr_assert_eq(gllm_cpu_ffn_up(kind, t, 0, wg, bg, wu, bu, x, y, m, n, k), GLLM_OK, "%s", gllm_last_error());
    const double tol = gllm_matmul_tol(gllm_kernels(), t);
    for (size_t i = 0; i < m * n; i++) {
        const double a = kind == GLLM_FFN_SILU_GLU ? gllm_ref_silu(g[i]) : gllm_ref_gelu(g[i]);
        const double want = kind == GLLM_FFN_GELU ? a : a * u[i];
        const double bound = kind == GLLM_FFN_GELU ? 1.2 * tol * mg[i] + 1e-4
                                                   : 1.2 * tol * mg[i] * fabs(u[i]) + tol * mu[i] * fabs(a) + 1e-4;
        cr_assert(fabs(y[i] - want) <= bound, "%s kind %d m=%zu: y[%zu]=%.6g, reference %.6g", gllm_dtype_name(t), kind, m,
                  i, y[i], want);
    }
    free(wg), free(wu), free(bg), free(bu), free(x), free(y), free(g), free(u), free(mg), free(mu);
}

Test(fused, ffn_up_all_kinds) {
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    const gllm_dtype ts[] = {GLLM_DTYPE_F32, GLLM_DTYPE_F16, GLLM_DTYPE_BF16, GLLM_DTYPE_Q8_0, GLLM_DTYPE_Q4_0, GLLM_DTYPE_Q4_1};
    for (int kind = 0; kind < 3; kind++)
        for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) {
            ffn_case((gllm_ffn_kind)kind, ts[i], 1, 130, 96);
            ffn_case((gllm_ffn_kind)kind, ts[i], 7, 200, 64);
        }
    ffn_case(GLLM_FFN_SILU_GLU, GLLM_DTYPE_Q4_0, 70, 300, 288);
    /* the gemv past 32 rows (AMX's int8 tiles in groups, AVX's lanes): chunks of columns */
    ffn_case(GLLM_FFN_SILU_GLU, GLLM_DTYPE_Q8_0, 40, 200, 64);
    ffn_case(GLLM_FFN_GELU, GLLM_DTYPE_Q4_1, 50, 130, 96);
    /* GELU past the gemv's rows: the matmul, then GELU over the rows (column and row splits) */
    ffn_case(GLLM_FFN_GELU, GLLM_DTYPE_F32, 45, 70, 96);
    ffn_case(GLLM_FFN_GELU, GLLM_DTYPE_Q8_0, 131, 40, 64);
    /* gated, many rows: chunks of columns, every row each */
    ffn_case(GLLM_FFN_SILU_GLU, GLLM_DTYPE_Q8_0, 301, 72, 256);
    ffn_case(GLLM_FFN_GELU_GLU, GLLM_DTYPE_F16, 263, 130, 288);
}

/* Q/K/V + QK-norm + RoPE + KV write, separated vs fused weights, against the reference */
static void qkv_case(gllm_dtype t, int bias, int qk_norm, size_t rot, int neox) {
    const size_t n_tok = 5, k = 64, nh = 4, nkv = 2, hd = 32, nq = nh * hd, nk = nkv * hd;
    void *wqkv = weights(t, nq + 2 * nk, k);
    float *b = malloc((nq + 2 * nk) * 4), *x = malloc(n_tok * k * 4), *qn = malloc(hd * 4), *kn = malloc(hd * 4);
    for (size_t i = 0; i < nq + 2 * nk; i++) b[i] = uni();
    for (size_t i = 0; i < n_tok * k; i++) x[i] = uni();
    for (size_t i = 0; i < hd; i++) qn[i] = 1 + 0.2f * uni(), kn[i] = 1 + 0.2f * uni();
    gllm_qkv_weights fused, sep;
    gllm_qkv_fused(&fused, t, wqkv, bias ? b : NULL, nh, nkv, hd, k);
    sep = fused; /* separated matrices: copies of the row ranges */
    const size_t row = gllm_row_bytes(t, k);
    void *wq = malloc(nq * row), *wk = malloc(nk * row), *wv = malloc(nk * row);
    memcpy(wq, fused.wq, nq * row), memcpy(wk, fused.wk, nk * row), memcpy(wv, fused.wv, nk * row);
    sep.wq = wq, sep.wk = wk, sep.wv = wv;
    if (qk_norm) fused.q_norm = sep.q_norm = qn, fused.k_norm = sep.k_norm = kn, fused.norm_eps = sep.norm_eps = 1e-6f;
    const gllm_rope_cfg rc = {.base = 10000.0f, .linear = 1.0f};
    float inv[32];
    gllm_rope_freqs(&rc, rot, inv);
    const int32_t pos[5] = {7, 8, 8, 9, 40}; /* a tree step: positions repeat */
    const uint32_t slots[5] = {3, 4, 5, 6, 9};
    gllm_kv_pool p1, p2;
    gllm_kv_seq s1, s2;
    cr_assert_eq(gllm_kv_pool_init(&p1, GLLM_DTYPE_F32, 1, nkv, hd, 16, 2), GLLM_OK);
    cr_assert_eq(gllm_kv_pool_init(&p2, GLLM_DTYPE_F32, 1, nkv, hd, 16, 2), GLLM_OK);
    gllm_kv_seq_init(&s1, &p1, 16), gllm_kv_seq_init(&s2, &p2, 16);
    gllm_kv_reserve(&p1, &s1, 16), gllm_kv_reserve(&p2, &s2, 16);
    float *q1 = malloc(n_tok * nq * 4), *q2 = malloc(n_tok * nq * 4);
    cr_assert_eq(gllm_cpu_qkv_rope(&fused, x, n_tok, k, nh, inv, rot, neox, pos, &p1, &s1, 0, slots, q1), GLLM_OK, "%s",
                 gllm_last_error());
    cr_assert_eq(gllm_cpu_qkv_rope(&sep, x, n_tok, k, nh, inv, rot, neox, pos, &p2, &s2, 0, slots, q2), GLLM_OK);
    cr_assert(memcmp(q1, q2, n_tok * nq * 4) == 0, "fused and separated weights differ");
    cr_assert(memcmp(p1.k, p2.k, 2 * p1.page_elems * 4) == 0 && memcmp(p1.v, p2.v, 2 * p1.page_elems * 4) == 0);
    /* reference */
    double *y = malloc(n_tok * (nq + 2 * nk) * 8), *ref = malloc(nh * hd * 8), *angle = malloc(rot / 2 * 8);
    double *mag = malloc(n_tok * (nq + 2 * nk) * 8);
    gllm_ref_matmul(t, wqkv, row, x, bias ? b : NULL, y, n_tok, nq + 2 * nk, k);
    gllm_ref_matmul_abs(t, wqkv, row, x, mag, n_tok, nq + 2 * nk, k);
    for (size_t i = 0; i < n_tok; i++) {
        float part[4 * 32];
        for (size_t c = 0; c < 3; c++) {
            const size_t heads = c == 0 ? nh : nkv, off = c == 0 ? 0 : c == 1 ? nq : nq + nk;
            /* bound: the dtype's tolerance of the largest |w||x| of the part, through the rotation
             * (two terms) and, with QK-norm, the normalisation's 1/rms */
            double mmax = 0, ss = 0;
            for (size_t x2 = 0; x2 < heads * hd; x2++) {
                part[x2] = (float)y[i * (nq + 2 * nk) + off + x2];
                mmax = fmax(mmax, mag[i * (nq + 2 * nk) + off + x2]);
                ss += part[x2] * part[x2];
            }
            const double gain = qk_norm && c < 2 ? 1.3 / sqrt(ss / (double)(heads * hd)) : 1.0;
            const double tol = 2.0 * gllm_dtype_traits_table[t].tol * mmax * gain + 1e-5;
            if (qk_norm && c < 2)
                for (size_t h = 0; h < heads; h++) {
                    double r[32];
                    gllm_ref_rmsnorm(part + h * hd, c == 0 ? qn : kn, r, hd, 1e-6);
                    for (size_t x2 = 0; x2 < hd; x2++) part[h * hd + x2] = (float)r[x2];
                }
            for (size_t a = 0; a < rot / 2; a++) angle[a] = (double)pos[i] * inv[a];
            if (c < 2) gllm_ref_rope(part, ref, heads, hd, rot, angle, neox);
            else for (size_t x2 = 0; x2 < heads * hd; x2++) ref[x2] = part[x2];
            for (size_t h = 0; h < heads; h++)
                for (size_t x2 = 0; x2 < hd; x2++) {
                    double got;
                    if (c == 0) got = q1[(i * nh + h) * hd + x2];
                    else { /* read back from the cache: K dim-major, V token-major, page 0 */
                        const size_t sl = slots[i];
                        got = c == 1 ? ((float *)p1.k)[h * 16 * hd + x2 * 16 + sl] : ((float *)p1.v)[h * 16 * hd + sl * hd + x2];
                    }
                    cr_assert(fabs(got - ref[h * hd + x2]) <= tol, "%s part %zu token %zu head %zu [%zu]: %.6g vs %.6g",
                              gllm_dtype_name(t), c, i, h, x2, got, ref[h * hd + x2]);
                }
        }
    }
    /* bad input: a slot past what is reserved */
    const uint32_t bad_slots[5] = {3, 4, 5, 6, 99};
    cr_assert_eq(gllm_cpu_qkv_rope(&fused, x, n_tok, k, nh, inv, rot, neox, pos, &p1, &s1, 0, bad_slots, q1),
                 GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_cpu_qkv_rope(&fused, x, n_tok, k, 3, inv, rot, neox, pos, &p1, &s1, 0, slots, q1),
                 GLLM_E_INVALID_ARGUMENT, "3 heads over 2 KV heads");
    cr_assert_eq(gllm_cpu_qkv_rope(&fused, x, n_tok, k, nh, inv, rot, neox, pos, &p1, &s1, p1.n_layers, slots, q1),
                 GLLM_E_INVALID_ARGUMENT, "a layer past the pool");
    gllm_kv_seq_release(&p1, &s1), gllm_kv_seq_release(&p2, &s2);
    gllm_kv_pool_free(&p1), gllm_kv_pool_free(&p2);
    free(wqkv), free(b), free(x), free(qn), free(kn), free(wq), free(wk), free(wv), free(q1), free(q2), free(y), free(ref), free(angle), free(mag);
}

Test(fused, qkv_rope) {
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    qkv_case(GLLM_DTYPE_F32, 0, 0, 32, 0);
    qkv_case(GLLM_DTYPE_F16, 1, 0, 32, 1);
    qkv_case(GLLM_DTYPE_Q8_0, 1, 1, 16, 1);
    qkv_case(GLLM_DTYPE_Q4_0, 0, 1, 32, 0);
}
