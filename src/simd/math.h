/* Vector exp and erf over the gv_* contract of the ISA header included before
 * this one. exp: Cephes' expf (range reduction by ln 2, degree-6 polynomial,
 * ~2 ulp, input clamped to [-87.3, 88]); erf: Abramowitz & Stegun 7.1.26
 * (absolute error <= 1.5e-7). */
#ifndef GLLM_SIMD_MATH_H
#define GLLM_SIMD_MATH_H

static inline gv_f32 gv_exp(gv_f32 x) {
    x = gv_min(gv_max(x, gv_set1(-87.33654f)), gv_set1(88.0f));
    const gv_f32 n = gv_round(gv_mul(x, gv_set1(1.44269504088896341f)));
    gv_f32 r = gv_fma(n, gv_set1(-0.693359375f), x);
    r = gv_fma(n, gv_set1(2.12194440e-4f), r);
    gv_f32 p = gv_set1(1.9875691500e-4f);
    p = gv_fma(p, r, gv_set1(1.3981999507e-3f));
    p = gv_fma(p, r, gv_set1(8.3334519073e-3f));
    p = gv_fma(p, r, gv_set1(4.1665795894e-2f));
    p = gv_fma(p, r, gv_set1(1.6666665459e-1f));
    p = gv_fma(p, r, gv_set1(5.0000001201e-1f));
    const gv_f32 y = gv_add(gv_fma(gv_mul(p, r), r, r), gv_set1(1.0f));
    return gv_ldexp(y, n);
}

static inline gv_f32 gv_erf(gv_f32 x) {
    const gv_f32 a = gv_abs(x);
    const gv_f32 t = gv_div(gv_set1(1.0f), gv_fma(gv_set1(0.3275911f), a, gv_set1(1.0f)));
    gv_f32 p = gv_set1(1.061405429f);
    p = gv_fma(p, t, gv_set1(-1.453152027f));
    p = gv_fma(p, t, gv_set1(1.421413741f));
    p = gv_fma(p, t, gv_set1(-0.284496736f));
    p = gv_fma(p, t, gv_set1(0.254829592f));
    const gv_f32 e = gv_exp(gv_sub(gv_zero(), gv_mul(a, a)));
    const gv_f32 y = gv_sub(gv_set1(1.0f), gv_mul(gv_mul(p, t), e));
    return gv_copysign(y, x);
}
#endif
