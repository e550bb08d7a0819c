/* RoPE policy: frequencies against values written out from the formulas, and the
 * full path (angles + kernel) against a rotation computed in double. */
#include <criterion/criterion.h>
#include <math.h>
#include "core/dispatch.h"
#include "model/rope.h"
#include "ref/ref.h"

Test(rope, plain_frequencies) {
    const gllm_rope_cfg c = {.base = 10000.0f, .linear = 1.0f};
    float f[64];
    gllm_rope_freqs(&c, 128, f);
    for (int i = 0; i < 64; i++) cr_assert_float_eq(f[i], pow(10000.0, -i / 64.0), 1e-7 * (1 + f[i]), "i=%d", i);
}

Test(rope, linear_scaling_divides_every_frequency) {
    const gllm_rope_cfg a = {.base = 10000.0f, .linear = 1.0f}, b = {.base = 10000.0f, .linear = 4.0f};
    float fa[32], fb[32];
    gllm_rope_freqs(&a, 64, fa);
    gllm_rope_freqs(&b, 64, fb);
    for (int i = 0; i < 32; i++) cr_assert_float_eq(fb[i], fa[i] / 4.0f, 1e-6f * fa[i]);
}

/* per-pair factors (GGUF rope_freqs.weight: Llama 3.1's 1 for high frequencies, 8 for low ones,
 * blended between) divide each frequency, and linear scaling on top */
Test(rope, factors_divide_each_pair) {
    float ff[64], f[64];
    for (int i = 0; i < 64; i++) ff[i] = i < 20 ? 1.0f : i > 40 ? 8.0f : 1.0f + 7.0f * (float)(i - 20) / 20.0f;
    const gllm_rope_cfg c = {.base = 500000.0f, .linear = 2.0f, .factors = ff};
    gllm_rope_freqs(&c, 128, f);
    for (int i = 0; i < 64; i++) {
        const double want = pow(500000.0, -i / 64.0) / ff[i] / 2.0;
        cr_assert(fabs(f[i] - want) <= 1e-6 * want, "i=%d: %g, expected %g", i, f[i], want);
    }
}

/* YaRN as llama.cpp applies it: pairs below floor(d(beta_fast)) keep their frequency, pairs
 * above ceil(d(beta_slow)) are divided by the factor, linear in the pair index between, where
 * d(b) = rot ln(ctx / (2 pi b)) / (2 ln base) is the pair turning b times over the original
 * context; the magnitude 1 + 0.1 ln(factor) */
Test(rope, yarn_ramp_and_magnitude) {
    const gllm_rope_cfg c = {.base = 10000.0f, .yarn_factor = 4.0f, .yarn_orig_ctx = 4096.0f, .yarn_beta_fast = 32.0f,
                             .yarn_beta_slow = 1.0f, .yarn_ext_factor = 1.0f, .attn_factor = 1.0f};
    float f[64];
    gllm_rope_freqs(&c, 128, f);
    const double lo = floor(128 * log(4096 / (2 * M_PI * 32)) / (2 * log(10000.0))), hi = ceil(128 * log(4096 / (2 * M_PI)) / (2 * log(10000.0)));
    cr_assert(lo > 0 && hi < 63 && lo < hi, "the ramp lies inside the pairs: %g .. %g", lo, hi);
    for (int i = 0; i < 64; i++) {
        const double f0 = pow(10000.0, -i / 64.0), t = i <= lo ? 0 : i >= hi ? 1 : (i - lo) / (hi - lo);
        const double want = f0 * (1 - t) + f0 / 4 * t;
        cr_assert(fabs(f[i] - want) <= 1e-6 * want, "i=%d: %g, expected %g", i, f[i], want);
    }
    cr_assert_float_eq(gllm_rope_mscale(&c), 1 + 0.1 * log(4.0), 1e-12);
    const gllm_rope_cfg plain = {.base = 10000.0f, .linear = 4.0f};
    cr_assert_eq(gllm_rope_mscale(&plain), 1.0);
}

Test(rope, angles_and_kernel_rotate_non_contiguous_positions) {
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    const gllm_rope_cfg c = {.base = 10000.0f, .linear = 1.0f};
    const size_t hd = 128, nh = 4;
    float inv[64], cs[128], x[4 * 128];
    double ref[4 * 128], angle[64];
    gllm_rope_freqs(&c, hd, inv);
    static const int64_t positions[] = {0, 5, 3, 70000};
    for (size_t p = 0; p < 4; p++) {
        for (size_t i = 0; i < nh * hd; i++) x[i] = sinf((float)(i * 7 + p));
        for (size_t i = 0; i < 64; i++) angle[i] = (double)positions[p] * inv[i];
        gllm_ref_rope(x, ref, nh, hd, hd, angle, 1);
        gllm_rope_cos_sin(inv, hd, positions[p], cs);
        gllm_kernels()->rope(x, nh, hd, hd, cs, 1);
        for (size_t i = 0; i < nh * hd; i++)
            cr_assert(fabs(x[i] - ref[i]) < 2e-6, "pos %lld: x[%zu]=%g, expected %g", (long long)positions[p], i, x[i], ref[i]);
    }
}
