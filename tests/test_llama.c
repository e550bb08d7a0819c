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
#include "cpu/matmul.h"
#include "gguf_writer.h"
#include "cpu/decoder.h"
#include "model/llama.h"

#include "synth_model.h"

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
    gllm_ref_llama(&m, tok, N, 1, ref);
    gllm_kv_pool p;
    gllm_kv_seq s, s1, s2;
    cr_assert_eq(gllm_kv_pool_init(&p, GLLM_DTYPE_F32, LAYERS, NKV, HD, 16, 16), GLLM_OK);
    gllm_kv_seq_init(&s, &p, CTX), gllm_kv_seq_init(&s1, &p, CTX), gllm_kv_seq_init(&s2, &p, CTX);
    gllm_kv_reserve(&p, &s, 32), gllm_kv_reserve(&p, &s1, 32), gllm_kv_reserve(&p, &s2, 32);
    float *lg = malloc(N * VOCAB * 4), *one = malloc(VOCAB * 4);
    float lg_dummy[1];
    (void)lg_dummy;
    cr_assert_eq(gllm_cpu_forward(&m, NULL, &p, &s, tok, N, NULL, NULL, 1, lg), GLLM_OK, "%s", gllm_last_error());
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
    for (int i = 0; i < N; i++) cr_assert_eq(gllm_cpu_forward(&m, NULL, &p, &s1, &tok[i], 1, NULL, NULL, 0, one), GLLM_OK);
    for (size_t v = 0; v < VOCAB; v++)
        cr_assert(fabs(one[v] - lg[(N - 1) * VOCAB + v]) <= rel * scale + 1e-6, "%s %s: incremental logit %zu: %.7g vs %.7g",
                  arch, gllm_dtype_name(t), v, one[v], lg[(N - 1) * VOCAB + v]);
    /* the plan over tiled weights (the generator's, where this ISA has a tiled gemv for t):
     * a prefill (gemm unpacking the tiles) and then decode steps (gemv_lanes), against the reference */
    gllm_plan tp;
    void *arena;
    cr_assert_eq(gllm_cpu_plan_tile(&m.plan, NULL, 0, &tp, &arena), GLLM_OK, "%s", gllm_last_error());
    size_t tiled = 0;
    for (size_t i = 0; i < tp.n_steps; i++) tiled += tp.steps[i].tiled || tp.steps[i].qkv.tiled;
    cr_assert_eq(tiled, gllm_cpu_tileable(t, DIM) ? 4 * LAYERS : 0, "%s: %zu steps tiled", gllm_dtype_name(t), tiled);
    cr_assert_eq(gllm_cpu_forward(&m, &tp, &p, &s2, tok, N - 3, NULL, NULL, 0, one), GLLM_OK);
    for (int i = N - 3; i < N; i++)
        cr_assert_eq(gllm_cpu_forward(&m, &tp, &p, &s2, &tok[i], 1, NULL, NULL, 0, one), GLLM_OK);
    for (size_t v = 0; v < VOCAB; v++)
        cr_assert(fabs(one[v] - ref[(N - 1) * VOCAB + v]) <= tol, "%s %s, tiled: logit %zu: %.7g vs reference %.7g",
                  arch, gllm_dtype_name(t), v, one[v], ref[(N - 1) * VOCAB + v]);
    gllm_cpu_plan_tile_free(&tp, arena);
    gllm_kv_seq_release(&p, &s), gllm_kv_seq_release(&p, &s1), gllm_kv_seq_release(&p, &s2), gllm_kv_pool_free(&p);
    free(ref), free(lg), free(one);
    gllm_llama_free(&m);
    gllm_gguf_close(&g);
    drop(&f);
}

/* bf16 where gemm rounds activations to bf16 (AVX-512): the reference keeps them, as decode does */
static void check(const char *arch, gllm_dtype t) { check_tol(arch, t, gllm_matmul_tol(gllm_kernels(), t) > 1e-4 ? 1.5e-2 : 1e-4); }

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
    cr_assert_eq(gllm_cpu_forward(&m, NULL, &p, &s, bad, 2, NULL, NULL, 0, lg), GLLM_E_INVALID_ARGUMENT, "token id >= vocab");
    cr_assert(strstr(gllm_last_error(), "vocabulary"), "%s", gllm_last_error());
    cr_assert_eq(s.len, 0u, "the cache is left as it was");
    int32_t many[70] = {0};
    cr_assert_eq(gllm_cpu_forward(&m, NULL, &p, &s, many, 70, NULL, NULL, 0, lg), GLLM_E_INVALID_ARGUMENT, "more than the reserved cache");
    cr_assert_eq(gllm_cpu_forward(&m, NULL, &p, &s, many, 64, NULL, NULL, 0, lg), GLLM_OK);
    cr_assert_eq(gllm_cpu_forward(&m, NULL, &p, &s, many, 40, NULL, NULL, 0, lg), GLLM_E_INVALID_ARGUMENT, "past the context of 96");
    gllm_kv_seq_release(&p, &s), gllm_kv_pool_free(&p);
    gllm_llama_free(&m);
    gllm_gguf_close(&g);
    drop(&f);
}

/* a file whose tensor `name` (in every layer) is renamed to `other` (same length) */
static gllm_status load_renamed(const char *arch, const char *name, const char *other) {
    model_file f;
    build(&f, arch, GLLM_DTYPE_F32);
    const size_t n = strlen(name);
    for (size_t i = 0; i + n <= f.len; i++)
        if (!memcmp(f.img + i, name, n)) memcpy(f.img + i, other, n);
    gllm_gguf g;
    gllm_llama m;
    cr_assert_eq(gllm_gguf_parse(f.img, f.len, &g), GLLM_OK);
    const gllm_status s = gllm_llama_load(&g, &m);
    if (s == GLLM_OK) gllm_llama_free(&m);
    gllm_gguf_close(&g), drop(&f);
    return s;
}

/* the optional sets are all or none: a K or V bias without the Q bias, a K norm without the Q
 * norm, were used unchecked (a bias past the file's end was read) */
Test(llama, partial_bias_or_norm_refused) {
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    cr_assert_eq(load_renamed("qwen2", "attn_q.bias", "attn_x.bias"), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "attn_q.bias"), "%s", gllm_last_error());
    cr_assert_eq(load_renamed("qwen2", "attn_v.bias", "attn_x.bias"), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(load_renamed("qwen3", "attn_q_norm", "attn_x_norm"), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "attn_q_norm"), "%s", gllm_last_error());
    cr_assert_eq(load_renamed("qwen2", "attn_x.bias", "attn_y.bias"), GLLM_OK, "nothing renamed: the model loads");
}

static gllm_status load_synth(model_file *f, gllm_gguf *g, gllm_llama *m) {
    build(f, "llama", GLLM_DTYPE_F32);
    cr_assert_eq(gllm_gguf_parse(f->img, f->len, g), GLLM_OK);
    const gllm_status s = gllm_llama_load(g, m);
    if (s) gllm_gguf_close(g), drop(f);
    return s;
}

/* a tensor the forward would not use (llama.cpp applies an attn_output bias) is refused, never
 * ignored; attn_rot_embd (old files' rotation frequencies) is skipped, as llama.cpp skips it */
Test(llama, unused_tensors_refused) {
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    model_file f;
    gllm_gguf g;
    gllm_llama m;
    EXTRA_TENSOR = "attn_output.bias";
    cr_assert_eq(load_synth(&f, &g, &m), GLLM_E_UNSUPPORTED);
    cr_assert(strstr(gllm_last_error(), "blk.0.attn_output.bias"), "%s", gllm_last_error());
    EXTRA_TENSOR = "attn_rot_embd";
    cr_assert_eq(load_synth(&f, &g, &m), GLLM_OK, "%s", gllm_last_error());
    gllm_llama_free(&m), gllm_gguf_close(&g), drop(&f);
    EXTRA_TENSOR = NULL;
}

/* RoPE scaling from the file: per-pair factors (rope_freqs.weight, Llama 3.1+) and linear scaling
 * divide the frequencies, against base^(-2i/rot) written out here; YaRN; the forwards with
 * factors and with YaRN against the reference; other scalings and bad factors refused */
Test(llama, rope_scaling) {
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    const float ff[8] = {1, 1, 1.5f, 2, 3, 5, 8, 8};
    model_file f;
    gllm_gguf g;
    gllm_llama m;
    ROPE_FREQS = ff;
    cr_assert_eq(load_synth(&f, &g, &m), GLLM_OK, "%s", gllm_last_error());
    for (size_t i = 0; i < HD / 2; i++) {
        const double want = pow(BASE, -2.0 * (double)i / (double)HD) / ff[i];
        cr_assert(fabs(m.inv_freq[i] - want) <= 1e-6 * want, "pair %zu: %g, expected %g", i, m.inv_freq[i], want);
    }
    gllm_llama_free(&m), gllm_gguf_close(&g), drop(&f);
    check("llama", GLLM_DTYPE_F32);
    ROPE_FREQS = NULL;

    ROPE_SCALING = "linear", ROPE_FACTOR = 4.0f;
    cr_assert_eq(load_synth(&f, &g, &m), GLLM_OK, "%s", gllm_last_error());
    for (size_t i = 0; i < HD / 2; i++) {
        const double want = pow(BASE, -2.0 * (double)i / (double)HD) / 4.0;
        cr_assert(fabs(m.inv_freq[i] - want) <= 1e-6 * want, "linear, pair %zu: %g, expected %g", i, m.inv_freq[i], want);
    }
    gllm_llama_free(&m), gllm_gguf_close(&g), drop(&f);
    ROPE_SCALING = "none";
    cr_assert_eq(load_synth(&f, &g, &m), GLLM_OK, "%s", gllm_last_error());
    cr_assert_float_eq(m.inv_freq[HD / 2 - 1], pow(BASE, -(double)(HD - 2) / (double)HD), 1e-9, "none: the factor ignored");
    gllm_llama_free(&m), gllm_gguf_close(&g), drop(&f);

    /* YaRN (factor 4 over the original 96 positions): its frequencies, and the forward, whose
     * attention scale carries the magnitude, against the reference, which rotates with it */
    ROPE_SCALING = "yarn";
    cr_assert_eq(load_synth(&f, &g, &m), GLLM_OK, "%s", gllm_last_error());
    const gllm_rope_cfg yarn = {.base = (float)BASE, .yarn_factor = 4.0f, .yarn_orig_ctx = (float)CTX, .yarn_beta_fast = 32.0f,
                                .yarn_beta_slow = 1.0f, .yarn_ext_factor = 1.0f, .attn_factor = 1.0f};
    float want[8];
    gllm_rope_freqs(&yarn, HD, want);
    for (size_t i = 0; i < HD / 2; i++) cr_assert_float_eq(m.inv_freq[i], want[i], 1e-6f * want[i], "yarn, pair %zu", i);
    cr_assert_float_eq(m.plan.scale, (1 + 0.1 * log(4.0)) * (1 + 0.1 * log(4.0)) / sqrt((double)HD), 1e-6);
    gllm_llama_free(&m), gllm_gguf_close(&g), drop(&f);
    check("llama", GLLM_DTYPE_F32);
    check("qwen2", GLLM_DTYPE_Q8_0);
    /* gguf-py writes original_context_length as a u32 (it was refused as "not a number") */
    const synth_key orig[] = {{"rope.scaling.original_context_length", 1, 8}, {NULL, 0, 0}};
    EXTRA_KEYS = orig;
    cr_assert_eq(load_synth(&f, &g, &m), GLLM_OK, "%s", gllm_last_error());
    gllm_rope_cfg yarn8 = yarn; /* over 8 positions the ramp ends at pair 1, over 96 at pair 3 */
    yarn8.yarn_orig_ctx = 8;
    float at96[8];
    gllm_rope_freqs(&yarn, HD, at96), gllm_rope_freqs(&yarn8, HD, want);
    cr_assert(fabsf(want[2] - at96[2]) > 1e-3f * at96[2], "the value changes the frequencies");
    for (size_t i = 0; i < HD / 2; i++) cr_assert_float_eq(m.inv_freq[i], want[i], 1e-6f * want[i], "yarn over 8, pair %zu", i);
    gllm_llama_free(&m), gllm_gguf_close(&g), drop(&f);
    /* attn_factor scales q and k under linear scaling too, as llama.cpp's rotation does: the
     * attention's scale carries its square, the reference rotates with it */
    const synth_key attn[] = {{"rope.scaling.attn_factor", 0, 1.3}, {NULL, 0, 0}};
    ROPE_SCALING = "linear", ROPE_FACTOR = 4.0f, EXTRA_KEYS = attn;
    cr_assert_eq(load_synth(&f, &g, &m), GLLM_OK, "%s", gllm_last_error());
    cr_assert_float_eq(m.plan.scale, 1.3 * 1.3 / sqrt((double)HD), 1e-6);
    gllm_llama_free(&m), gllm_gguf_close(&g), drop(&f);
    check("llama", GLLM_DTYPE_F32);
    /* the older key for the linear factor, read where rope.scaling.factor is absent */
    const synth_key old_key[] = {{"rope.scale_linear", 0, 4.0}, {NULL, 0, 0}};
    ROPE_SCALING = NULL, EXTRA_KEYS = old_key;
    cr_assert_eq(load_synth(&f, &g, &m), GLLM_OK, "%s", gllm_last_error());
    cr_assert_float_eq(m.inv_freq[1], pow(BASE, -2.0 / (double)HD) / 4.0, 1e-9, "rope.scale_linear 4");
    gllm_llama_free(&m), gllm_gguf_close(&g), drop(&f);
    EXTRA_KEYS = NULL;
    ROPE_SCALING = "longrope";
    cr_assert_eq(load_synth(&f, &g, &m), GLLM_E_UNSUPPORTED);
    cr_assert(strstr(gllm_last_error(), "longrope"), "%s", gllm_last_error());
    ROPE_SCALING = "linear", ROPE_FACTOR = -1.0f;
    cr_assert_eq(load_synth(&f, &g, &m), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "scaling.factor"), "%s", gllm_last_error());
    ROPE_SCALING = NULL;
    const float zero[8] = {1, 1, 1, 1, 0, 1, 1, 1};
    ROPE_FREQS = zero;
    cr_assert_eq(load_synth(&f, &g, &m), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "rope_freqs.weight[4]"), "%s", gllm_last_error());
    ROPE_FREQS = NULL;
}

/* SmolLM2-135M's shape (dim 576, 9 heads on 3 KV heads of 64, FFN 1536, 6 of its 30 layers), f16 weights */
Test(llama, smollm2_shape) {
    DIM = 576, NH = 9, NKV = 3, HD = 64, FFN = 1536, VOCAB = 300, LAYERS = 6, CTX = 128, BASE = 100000.0;
    check("llama", GLLM_DTYPE_F16);
    /* block formats round activations to int8 per 32 values: over 6 random layers of this width,
     * float differences before that rounding flip some of it, so the reference is only emulated */
    check_tol("llama", GLLM_DTYPE_Q4_1, 3e-2);
}
