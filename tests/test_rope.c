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

/* Llama 3.1 settings: factor 8, low 1, high 4, original context 8192, theta 500000 */
Test(rope, llama3_scaling_bands) {
    const gllm_rope_cfg c = {.base = 500000.0f, .l3_factor = 8.0f, .l3_low_freq = 1.0f, .l3_high_freq = 4.0f,
                             .l3_orig_ctx = 8192.0f};
    float f[64];
    gllm_rope_freqs(&c, 128, f);
    for (int i = 0; i < 64; i++) {
        const double f0 = pow(500000.0, -i / 64.0), wl = 2 * M_PI / f0;
        double want = f0;
        if (wl > 8192.0) want = f0 / 8;
        else if (wl >= 2048.0) {
            const double s = (8192.0 / wl - 1.0) / 3.0;
            want = (1 - s) * f0 / 8 + s * f0;
        }
        cr_assert(fabs(f[i] - want) <= 1e-6 * want, "i=%d: %g, expected %g", i, f[i], want);
    }
    cr_assert_float_eq(f[0], 1.0f, 1e-7f);                    /* highest frequency kept */
    cr_assert(fabs(f[63] - pow(500000.0, -63 / 64.0) / 8) < 1e-9); /* lowest divided by the factor */
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
