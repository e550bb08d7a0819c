/* SIMD wrapper, AArch64 NEON + dotprod, 4 f32 lanes. Contract: see avx512.h. */
#ifndef GLLM_SIMD_NEON_H
#define GLLM_SIMD_NEON_H
#include <arm_neon.h>
#include "core/half.h"
#define GV_W 4
#define GQ_SIGNED_BIAS 0
typedef float32x4_t gv_f32;
typedef int32x4_t gv_i32;
static inline gv_f32 gv_zero(void) { return vdupq_n_f32(0.0f); }
static inline gv_f32 gv_set1(float a) { return vdupq_n_f32(a); }
static inline gv_f32 gv_load(const float *p) { return vld1q_f32(p); }
static inline void gv_store(float *p, gv_f32 v) { vst1q_f32(p, v); }
static inline gv_f32 gv_fma(gv_f32 a, gv_f32 b, gv_f32 c) { return vfmaq_f32(c, a, b); }
static inline gv_f32 gv_add(gv_f32 a, gv_f32 b) { return vaddq_f32(a, b); }
static inline gv_f32 gv_mul(gv_f32 a, gv_f32 b) { return vmulq_f32(a, b); }
static inline gv_f32 gv_sub(gv_f32 a, gv_f32 b) { return vsubq_f32(a, b); }
static inline gv_f32 gv_div(gv_f32 a, gv_f32 b) { return vdivq_f32(a, b); }
static inline gv_f32 gv_min(gv_f32 a, gv_f32 b) { return vminq_f32(a, b); }
static inline gv_f32 gv_max(gv_f32 a, gv_f32 b) { return vmaxq_f32(a, b); }
static inline gv_f32 gv_abs(gv_f32 a) { return vabsq_f32(a); }
static inline gv_f32 gv_copysign(gv_f32 mag, gv_f32 s) {
    return vbslq_f32(vdupq_n_u32(0x80000000u), s, mag);
}
static inline gv_f32 gv_round(gv_f32 a) { return vrndnq_f32(a); }
/* y * 2^n, n integral in [-126, 127] (exp's last step) */
static inline gv_f32 gv_ldexp(gv_f32 y, gv_f32 n) {
    return vmulq_f32(y, vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23)));
}
static inline float gv_hmax(gv_f32 v) { return vmaxvq_f32(v); }
static inline float gv_reduce(gv_f32 v) { return vaddvq_f32(v); }
/* out[j] = the lane sum of acc[j], j < n */
static inline void gv_reduce_many(const gv_f32 *acc, size_t n, float *out) {
    for (size_t j = 0; j < n; j++) out[j] = gv_reduce(acc[j]);
}
static inline gv_f32 gv_load_n(const float *p, size_t n) {
    float t[4] = {0};
    memcpy(t, p, n * 4);
    return vld1q_f32(t);
}
static inline void gv_store_n(float *p, gv_f32 v, size_t n) {
    float t[4];
    vst1q_f32(t, v);
    memcpy(p, t, n * 4);
}
static inline gv_f32 gv_load_f16(const uint16_t *p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}
/* GV_W values rounded to f16 (nearest even) as gllm_f32_to_f16 rounds them: a NaN becomes the quiet
 * NaN of its sign, no payload */
static inline void gv_store_f16(uint16_t *p, gv_f32 v) {
    const uint16x4_t h = vreinterpret_u16_f16(vcvt_f16_f32(v));
    const uint16x4_t q = vorr_u16(vand_u16(h, vdup_n_u16(0x8000)), vdup_n_u16(0x7e00));
    vst1_u16(p, vbsl_u16(vmovn_u32(vceqq_f32(v, v)), h, q));
}
/* as gllm_f32_to_bf16: to nearest even in integers, NaN quieted */
static inline void gv_store_bf16(uint16_t *p, gv_f32 v) {
    const uint32x4_t u = vreinterpretq_u32_f32(v), odd = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    const uint32x4_t r = vaddq_u32(u, vaddq_u32(odd, vdupq_n_u32(0x7fff)));
    const uint32x4_t w = vbslq_u32(vceqq_f32(v, v), r, vorrq_u32(u, vdupq_n_u32(0x400000)));
    vst1_u16(p, vshrn_n_u32(w, 16));
}
static inline gv_f32 gv_load_bf16(const uint16_t *p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
}
static inline gv_f32 gv_load_f16_n(const uint16_t *p, size_t n) {
    uint16_t t[4] = {0};
    memcpy(t, p, n * 2);
    return gv_load_f16(t);
}
static inline gv_f32 gv_load_bf16_n(const uint16_t *p, size_t n) {
    uint16_t t[4] = {0};
    memcpy(t, p, n * 2);
    return gv_load_bf16(t);
}
/* 4 x 4 floats transposed: lane j of row i goes to dst + j*dst_stride, lane i (dst_stride in floats) */
static inline void gv_transpose4(const gv_f32 r[4], float *dst, size_t dst_stride) {
    const float64x2_t a = vreinterpretq_f64_f32(vtrn1q_f32(r[0], r[1])), b = vreinterpretq_f64_f32(vtrn2q_f32(r[0], r[1])); /* k 0, 2 | 1, 3 of rows 0, 1 */
    const float64x2_t c = vreinterpretq_f64_f32(vtrn1q_f32(r[2], r[3])), d = vreinterpretq_f64_f32(vtrn2q_f32(r[2], r[3]));
    vst1q_f32(dst, vreinterpretq_f32_f64(vtrn1q_f64(a, c)));
    vst1q_f32(dst + dst_stride, vreinterpretq_f32_f64(vtrn1q_f64(b, d)));
    vst1q_f32(dst + 2 * dst_stride, vreinterpretq_f32_f64(vtrn2q_f64(a, c)));
    vst1q_f32(dst + 3 * dst_stride, vreinterpretq_f32_f64(vtrn2q_f64(b, d)));
}
/* 4 rows (src_stride bytes apart) of 4 f32 / f16 / bf16 values, widened and transposed into dst
 * (floats): gemm's packs */
static inline void gv_transpose4_u32(const char *src, size_t src_stride, void *dst, size_t dst_stride) {
    gv_f32 r[4];
    for (int i = 0; i < 4; i++) r[i] = gv_load((const float *)(src + (size_t)i * src_stride));
    gv_transpose4(r, dst, dst_stride);
}
static inline void gv_transpose4_f16(const char *src, size_t src_stride, void *dst, size_t dst_stride) {
    gv_f32 r[4];
    for (int i = 0; i < 4; i++) r[i] = gv_load_f16((const uint16_t *)(src + (size_t)i * src_stride));
    gv_transpose4(r, dst, dst_stride);
}
static inline void gv_transpose4_bf16(const char *src, size_t src_stride, void *dst, size_t dst_stride) {
    gv_f32 r[4];
    for (int i = 0; i < 4; i++) r[i] = gv_load_bf16((const uint16_t *)(src + (size_t)i * src_stride));
    gv_transpose4(r, dst, dst_stride);
}
static inline gv_i32 gv_izero(void) { return vdupq_n_s32(0); }
static inline gv_i32 gv_set1_i32(int32_t a) { return vdupq_n_s32(a); }
static inline gv_i32 gv_dot4_u(gv_i32 acc, const void *codes, const int8_t *x4) {
    int32_t x;
    memcpy(&x, x4, 4);
    return vdotq_s32(acc, vld1q_s8((const int8_t *)codes), vreinterpretq_s8_s32(vdupq_n_s32(x)));
}
#define gv_dot4_s gv_dot4_u /* sdot is s8 x s8: codes of every format fit */
/* int32 lanes += 4 code bytes . the 4 bytes in lane l (a constant) of x (Isa.by_lane) */
#define gv_dot4_lane(acc, codes, x, l) vdotq_laneq_s32((acc), vld1q_s8((const int8_t *)(codes)), (x), (l))
static inline gv_f32 gv_cvt_i32(gv_i32 v) { return vcvtq_f32_s32(v); }

typedef int8x16x2_t gq_codes;
typedef int32x4_t gq_i32;
typedef float32x4_t gq_f32;
static inline gq_f32 gq_fzero(void) { return vdupq_n_f32(0.0f); }
static inline gq_i32 gq_dot_u(gq_codes c, const int8_t *x) {
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), c.val[0], vld1q_s8(x)), c.val[1], vld1q_s8(x + 16));
}
#define gq_dot_s gq_dot_u
/* the sum of a q8 block's 32 signed codes */
static inline int32_t gq_sum_qs(const int8_t *x) { return (int32_t)vaddlvq_s8(vld1q_s8(x)) + (int32_t)vaddlvq_s8(vld1q_s8(x + 16)); }
/* per-lane z * (sum of the lane's 4 x bytes): the integer form of an offset c = z*a */
static inline gq_i32 gq_xsum_neg(const int8_t *x, int z) {
    const int8x16_t k = vdupq_n_s8((int8_t)z);
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), k, vld1q_s8(x)), k, vld1q_s8(x + 16));
}
static inline gq_i32 gq_dot_u_acc(gq_i32 acc, gq_codes c, const int8_t *x) {
    return vdotq_s32(vdotq_s32(acc, c.val[0], vld1q_s8(x)), c.val[1], vld1q_s8(x + 16));
}
/* the 32 codes of a block as panel bytes (signed codes + GQ_SIGNED_BIAS) */
static inline void gq_store_codes(uint8_t *dst, gq_codes c, int is_signed) {
    (void)is_signed;
    vst1q_s8((int8_t *)dst, c.val[0]);
    vst1q_s8((int8_t *)dst + 16, c.val[1]);
}
/* panel codes need no bias here (sdot is s8 x s8) */
static inline gq_codes gq_flip(gq_codes c) { return c; }
/* 4 rows' unpacked block codes (32 bytes each), transposed into 8 vectors of 4-byte groups:
 * group g of row i at dst + g*dst_stride, lane i (the int8 gemm panel) */
static inline void gq_transpose_codes4(const gq_codes c[4], uint32_t *dst, size_t dst_stride) {
    for (int h = 0; h < 2; h++) { /* groups 4h .. 4h+3 */
        const uint32x4_t r0 = vreinterpretq_u32_s8(c[0].val[h]), r1 = vreinterpretq_u32_s8(c[1].val[h]);
        const uint32x4_t r2 = vreinterpretq_u32_s8(c[2].val[h]), r3 = vreinterpretq_u32_s8(c[3].val[h]);
        const uint64x2_t a = vreinterpretq_u64_u32(vtrn1q_u32(r0, r1)), b = vreinterpretq_u64_u32(vtrn2q_u32(r0, r1)); /* groups 0, 2 | 1, 3 of rows 0, 1 */
        const uint64x2_t e = vreinterpretq_u64_u32(vtrn1q_u32(r2, r3)), f = vreinterpretq_u64_u32(vtrn2q_u32(r2, r3));
        vst1q_u32(dst + (size_t)(4 * h) * dst_stride, vreinterpretq_u32_u64(vtrn1q_u64(a, e)));
        vst1q_u32(dst + (size_t)(4 * h + 1) * dst_stride, vreinterpretq_u32_u64(vtrn1q_u64(b, f)));
        vst1q_u32(dst + (size_t)(4 * h + 2) * dst_stride, vreinterpretq_u32_u64(vtrn2q_u64(a, e)));
        vst1q_u32(dst + (size_t)(4 * h + 3) * dst_stride, vreinterpretq_u32_u64(vtrn2q_u64(b, f)));
    }
}
static inline gq_f32 gq_fma_i32(gq_i32 d, float s, gq_f32 acc) {
    return vfmaq_n_f32(acc, vcvtq_f32_s32(d), s);
}
static inline float gq_reduce(gq_f32 v) { return vaddvq_f32(v); }
#endif
