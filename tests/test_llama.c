/* The Llama-family forward on small synthetic models (random weights, GGUF written
 * here) against the double-precision reference, for every weight dtype and for the
 * llama / qwen2 (QKV bias) / qwen3 (QK-norm) variants; prefill vs token by token;
 * bad input. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/dispatch.h"
#include "core/dtype_traits.h"
#include "gguf_writer.h"
#include "model/llama.h"

/* model shape (the small default, or SmolLM2-135M's for one test) */
static size_t DIM = 64, NH = 4, NKV = 2, HD = 16, FFN = 96, VOCAB = 40, LAYERS = 2, CTX = 96;
static double BASE = 10000.0;

static uint64_t st = 3;
static float uni(void) {
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(st >> 40) / 16777216.0f * 2.0f - 1.0f;
}

typedef struct {
    uint8_t *img;
    size_t len;
    void *bufs[64];
    int nb;
} model_file;

/* scale is for 64 inputs; wider rows get scale * sqrt(64 / cols), so every layer has the same gain */
static void *mat(model_file *f, gllm_dtype t, size_t rows, size_t cols, float scale, float offset) {
    if (rows > 1) scale *= sqrtf(64.0f / (float)cols);
    float *w = malloc(rows * cols * 4);
    for (size_t i = 0; i < rows * cols; i++) w[i] = offset + scale * uni();
    void *q = malloc(rows * gllm_row_bytes(t, cols));
    gllm_quantize(t, w, q, rows, cols);
    free(w);
    return f->bufs[f->nb++] = q;
}

/* arch: "llama", "qwen2" (QKV bias), "qwen3" (QK-norm) */
static void build(model_file *f, const char *arch, gllm_dtype t) {
    memset(f, 0, sizeof *f);
    const uint32_t gt = (uint32_t)gllm_dtype_traits_table[t].gguf_type;
    tw_tensor ts[64];
    int nt = 0;
    char names[64][48];
#define ADD(nm, type, cols, rows, data)                                                                              \
    do {                                                                                                             \
        snprintf(names[nt], 48, "%s", nm);                                                                           \
        ts[nt] = (tw_tensor){names[nt], type, (rows) != 0 ? 2u : 1u, {cols, rows}, data,                             \
                             ((rows) != 0 ? (rows) : 1) * gllm_row_bytes(type == 0 ? GLLM_DTYPE_F32 : t, cols)};      \
        nt++;                                                                                                        \
    } while (0)
    ADD("token_embd.weight", gt, DIM, VOCAB, mat(f, t, VOCAB, DIM, 1.0f, 0));
    ADD("output_norm.weight", 0, DIM, 0, mat(f, GLLM_DTYPE_F32, 1, DIM, 0.2f, 1.0f));
    for (int l = 0; l < (int)LAYERS; l++) {
        char n[48];
#define NAME(x) (snprintf(n, sizeof n, "blk.%d.%s", l, x), n)
        ADD(NAME("attn_norm.weight"), 0, DIM, 0, mat(f, GLLM_DTYPE_F32, 1, DIM, 0.2f, 1.0f));
        ADD(NAME("attn_q.weight"), gt, DIM, NH * HD, mat(f, t, NH * HD, DIM, 0.3f, 0));
        ADD(NAME("attn_k.weight"), gt, DIM, NKV * HD, mat(f, t, NKV * HD, DIM, 0.3f, 0));
        ADD(NAME("attn_v.weight"), gt, DIM, NKV * HD, mat(f, t, NKV * HD, DIM, 0.3f, 0));
        if (!strcmp(arch, "qwen2")) {
            ADD(NAME("attn_q.bias"), 0, NH * HD, 0, mat(f, GLLM_DTYPE_F32, 1, NH * HD, 0.2f, 0));
            ADD(NAME("attn_k.bias"), 0, NKV * HD, 0, mat(f, GLLM_DTYPE_F32, 1, NKV * HD, 0.2f, 0));
            ADD(NAME("attn_v.bias"), 0, NKV * HD, 0, mat(f, GLLM_DTYPE_F32, 1, NKV * HD, 0.2f, 0));
        }
        if (!strcmp(arch, "qwen3")) {
            ADD(NAME("attn_q_norm.weight"), 0, HD, 0, mat(f, GLLM_DTYPE_F32, 1, HD, 0.2f, 1.0f));
            ADD(NAME("attn_k_norm.weight"), 0, HD, 0, mat(f, GLLM_DTYPE_F32, 1, HD, 0.2f, 1.0f));
        }
        ADD(NAME("attn_output.weight"), gt, NH * HD, DIM, mat(f, t, DIM, NH * HD, 0.3f, 0));
        ADD(NAME("ffn_norm.weight"), 0, DIM, 0, mat(f, GLLM_DTYPE_F32, 1, DIM, 0.2f, 1.0f));
        ADD(NAME("ffn_gate.weight"), gt, DIM, FFN, mat(f, t, FFN, DIM, 0.3f, 0));
        ADD(NAME("ffn_up.weight"), gt, DIM, FFN, mat(f, t, FFN, DIM, 0.3f, 0));
        ADD(NAME("ffn_down.weight"), gt, FFN, DIM, mat(f, t, DIM, FFN, 0.3f, 0));
#undef NAME
    }
#undef ADD
    char k[8][64];
    snprintf(k[0], 64, "%s.block_count", arch), snprintf(k[1], 64, "%s.embedding_length", arch);
    snprintf(k[2], 64, "%s.attention.head_count", arch), snprintf(k[3], 64, "%s.attention.head_count_kv", arch);
    snprintf(k[4], 64, "%s.feed_forward_length", arch), snprintf(k[5], 64, "%s.context_length", arch);
    snprintf(k[6], 64, "%s.attention.layer_norm_rms_epsilon", arch), snprintf(k[7], 64, "%s.rope.freq_base", arch);
    const tw_kv kv[] = {{.key = "general.architecture", .type = GGUF_STRING, .s = arch},
                        {.key = k[0], .type = GGUF_U32, .u = LAYERS}, {.key = k[1], .type = GGUF_U32, .u = DIM},
                        {.key = k[2], .type = GGUF_U32, .u = NH}, {.key = k[3], .type = GGUF_U32, .u = NKV},
                        {.key = k[4], .type = GGUF_U32, .u = FFN}, {.key = k[5], .type = GGUF_U32, .u = CTX},
                        {.key = k[6], .type = GGUF_F32, .f = 1e-5}, {.key = k[7], .type = GGUF_F32, .f = BASE}};
    f->img = gguf_build(kv, 9, ts, (size_t)nt, 32, &f->len);
}

static void drop(model_file *f) {
    for (int i = 0; i < f->nb; i++) free(f->bufs[i]);
    free(f->img);
}

/* rel: the tolerance on the logits, relative to the largest one */
static void check_tol(const char *arch, gllm_dtype t, double rel) {
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    model_file f;
    build(&f, arch, t);
    gllm_gguf g;
    gllm_llama m;
    cr_assert_eq(gllm_gguf_parse(f.img, f.len, &g), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_llama_load(&g, &m), GLLM_OK, "%s", gllm_last_error());
    enum { N = 11 };
    int32_t tok[N];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)((i * 7 + 3) % (int)VOCAB);
    double *ref = malloc(N * VOCAB * 8);
    gllm_ref_llama(&m, tok, N, ref);
    gllm_kv_pool p;
    gllm_kv_seq s, s1;
    cr_assert_eq(gllm_kv_pool_init(&p, GLLM_DTYPE_F32, LAYERS, NKV, HD, 16, 16), GLLM_OK);
    gllm_kv_seq_init(&s, &p, CTX), gllm_kv_seq_init(&s1, &p, CTX);
    gllm_kv_reserve(&p, &s, 32), gllm_kv_reserve(&p, &s1, 32);
    float *lg = malloc(N * VOCAB * 4), *one = malloc(VOCAB * 4);
    float lg_dummy[1];
    (void)lg_dummy;
    cr_assert_eq(gllm_llama_forward(&m, &p, &s, tok, N, NULL, NULL, 1, lg), GLLM_OK, "%s", gllm_last_error());
    double scale = 0;
    for (size_t i = 0; i < N * VOCAB; i++) scale = fmax(scale, fabs(ref[i]));
    /* the reference rounds activations as the int8 path does, so every dtype is held close */
    const double tol = rel * scale;
    double worst = 0;
    for (size_t i = 0; i < N * VOCAB; i++) worst = fmax(worst, fabs(lg[i] - ref[i]) / scale);
    cr_log_info("%s %s: largest logit error %.2e of the largest logit", arch, gllm_dtype_name(t), worst);
    for (size_t i = 0; i < N * VOCAB; i++)
        cr_assert(fabs(lg[i] - ref[i]) <= tol, "%s %s: logit [%zu][%zu] = %.6g, reference %.6g (tolerance %.3g)", arch,
                  gllm_dtype_name(t), i / VOCAB, i % VOCAB, lg[i], ref[i], tol);
    /* token by token through the cache: the same last logits */
    for (int i = 0; i < N; i++) cr_assert_eq(gllm_llama_forward(&m, &p, &s1, &tok[i], 1, NULL, NULL, 0, one), GLLM_OK);
    for (size_t v = 0; v < VOCAB; v++)
        cr_assert(fabs(one[v] - lg[(N - 1) * VOCAB + v]) <= rel * scale + 1e-6, "%s %s: incremental logit %zu: %.7g vs %.7g",
                  arch, gllm_dtype_name(t), v, one[v], lg[(N - 1) * VOCAB + v]);
    gllm_kv_seq_release(&p, &s), gllm_kv_seq_release(&p, &s1), gllm_kv_pool_free(&p);
    free(ref), free(lg), free(one);
    gllm_llama_free(&m);
    gllm_gguf_close(&g);
    drop(&f);
}

static void check(const char *arch, gllm_dtype t) { check_tol(arch, t, 1e-4); }

Test(llama, every_weight_dtype) {
    for (int t = 0; t < GLLM_DTYPE_COUNT; t++)
        if (t != GLLM_DTYPE_Q2_0 && t != GLLM_DTYPE_Q1_0) check("llama", (gllm_dtype)t);
}
Test(llama, qwen2_qkv_bias) { check("qwen2", GLLM_DTYPE_F32), check("qwen2", GLLM_DTYPE_Q8_0); }
Test(llama, qwen3_qk_norm) { check("qwen3", GLLM_DTYPE_F16), check("qwen3", GLLM_DTYPE_Q4_1); }

Test(llama, bad_input) {
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    model_file f;
    build(&f, "llama", GLLM_DTYPE_F32);
    gllm_gguf g;
    gllm_llama m;
    cr_assert_eq(gllm_gguf_parse(f.img, f.len, &g), GLLM_OK);
    cr_assert_eq(gllm_llama_load(&g, &m), GLLM_OK);
    gllm_kv_pool p;
    gllm_kv_seq s;
    gllm_kv_pool_init(&p, GLLM_DTYPE_F16, LAYERS, NKV, HD, 16, 4);
    gllm_kv_seq_init(&s, &p, 64), gllm_kv_reserve(&p, &s, 64);
    float lg[64];
    const int32_t bad[2] = {3, VOCAB};
    cr_assert_eq(gllm_llama_forward(&m, &p, &s, bad, 2, NULL, NULL, 0, lg), GLLM_E_INVALID_ARGUMENT, "token id >= vocab");
    cr_assert(strstr(gllm_last_error(), "vocabulary"), "%s", gllm_last_error());
    cr_assert_eq(s.len, 0u, "the cache is left as it was");
    int32_t many[70] = {0};
    cr_assert_eq(gllm_llama_forward(&m, &p, &s, many, 70, NULL, NULL, 0, lg), GLLM_E_INVALID_ARGUMENT, "more than the reserved cache");
    cr_assert_eq(gllm_llama_forward(&m, &p, &s, many, 64, NULL, NULL, 0, lg), GLLM_OK);
    cr_assert_eq(gllm_llama_forward(&m, &p, &s, many, 40, NULL, NULL, 0, lg), GLLM_E_INVALID_ARGUMENT, "past the context of 96");
    gllm_kv_seq_release(&p, &s), gllm_kv_pool_free(&p);
    gllm_llama_free(&m);
    gllm_gguf_close(&g);
    drop(&f);
}

/* SmolLM2-135M's shape (dim 576, 9 heads on 3 KV heads of 64, FFN 1536, 6 of its 30 layers), f16 weights */
Test(llama, smollm2_shape) {
    DIM = 576, NH = 9, NKV = 3, HD = 64, FFN = 1536, VOCAB = 300, LAYERS = 6, CTX = 128, BASE = 100000.0;
    check("llama", GLLM_DTYPE_F16);
    /* block formats round activations to int8 per 32 values: over 6 random layers of this width,
     * float differences before that rounding flip some of it, so the reference is only emulated */
    check_tol("llama", GLLM_DTYPE_Q4_1, 3e-2);
}
