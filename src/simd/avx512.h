/* SIMD wrapper, AVX-512 (F/BW/DQ/VL + VNNI + BF16), 16 f32 lanes.
 *
 * Contract shared by every src/simd/<isa>.h (what the templates use):
 *   gv_f32 / GV_W           float vector of GV_W lanes
 *   gv_zero set1 load store fma(a,b,c)=a*b+c add reduce (fixed lane order)
 *   gv_load_n / gv_store_n  first n < GV_W lanes (others zero / untouched)
 *   gv_load_f16 / _bf16 [_n] GV_W half/bfloat values widened to f32
 *   gv_store_f16 / _bf16    GV_W values rounded to f16 / bf16, bit for bit as gllm_f32_to_f16 / _bf16
 *   gv_i32, gv_dot4_u/_s    int32 lanes += 4 code bytes (u8 / s8) * 4 x bytes (s8),
 *                           codes: one 4-byte group per lane; x: the same 4 bytes broadcast
 *   gv_cvt_i32              int32 lanes -> f32
 *   gq_*                    one 32-element q8 block: codes (32 bytes) . x (32 int8)
 *                           -> partial int32 sums gq_i32, gq_f32 float lanes, gq_reduce;
 *                           gq_sum_qs the block's code sum
 * AVX-512 only (templates use them where the ISA row says so):
 *   gv_transpose16_u32 / _f16, gq_transpose_codes16   16 x 16 words (f16 widened, or block
 *                           codes) transposed, for gemm's packs (AVX2: gv_transpose8 and
 *                           gv_transpose8_u32 / _f16 / _bf16, 8 x 8, NEON 4 x 4, for the float gemm's)
 *   gv_bf16x2_from, gv_dot_bf16x2   bf16 pairs and their dots (Isa.bf16_dot)
 */
#ifndef GLLM_SIMD_AVX512_H
#define GLLM_SIMD_AVX512_H
#include <immintrin.h>
#include <string.h>
#include "core/half.h"
#include "core/kernel_abi.h"
#define GV_W 16
#define GQ_SIGNED_BIAS 128 /* int8-dot panels store signed codes + 128 (vpdpbusd is u8 x s8) */
typedef __m512 gv_f32;
typedef __m512i gv_i32;
static inline gv_f32 gv_zero(void) { return _mm512_setzero_ps(); }
static inline gv_f32 gv_set1(float a) { return _mm512_set1_ps(a); }
static inline gv_f32 gv_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void gv_store(float *p, gv_f32 v) { _mm512_storeu_ps(p, v); }
static inline gv_f32 gv_fma(gv_f32 a, gv_f32 b, gv_f32 c) { return _mm512_fmadd_ps(a, b, c); }
static inline gv_f32 gv_add(gv_f32 a, gv_f32 b) { return _mm512_add_ps(a, b); }
static inline gv_f32 gv_mul(gv_f32 a, gv_f32 b) { return _mm512_mul_ps(a, b); }
static inline gv_f32 gv_sub(gv_f32 a, gv_f32 b) { return _mm512_sub_ps(a, b); }
static inline gv_f32 gv_div(gv_f32 a, gv_f32 b) { return _mm512_div_ps(a, b); }
static inline gv_f32 gv_min(gv_f32 a, gv_f32 b) { return _mm512_min_ps(a, b); }
static inline gv_f32 gv_max(gv_f32 a, gv_f32 b) { return _mm512_max_ps(a, b); }
static inline gv_f32 gv_abs(gv_f32 a) { return _mm512_abs_ps(a); }
static inline gv_f32 gv_copysign(gv_f32 mag, gv_f32 s) {
    const __m512i m = _mm512_set1_epi32((int)0x80000000u); /* (s & m) | (mag & ~m) */
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(m, _mm512_castps_si512(s), _mm512_castps_si512(mag), 0xca));
}
static inline gv_f32 gv_round(gv_f32 a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
/* y * 2^n, n integral (exp's last step) */
static inline gv_f32 gv_ldexp(gv_f32 y, gv_f32 n) { return _mm512_scalef_ps(y, n); }
static inline float gv_hmax(gv_f32 v) { return _mm512_reduce_max_ps(v); }
static inline float gv_reduce(gv_f32 v) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}
/* out[j] = the lane sum of acc[j], j < n; for n = 16 a transposing add tree (45 ops
 * instead of 16 separate reductions) */
static inline void gv_reduce_many(const gv_f32 *acc, size_t n, float *out) {
    if (n != 16) {
        for (size_t j = 0; j < n; j++) out[j] = gv_reduce(acc[j]);
        return;
    }
    __m512 t[8];
    for (int k = 0; k < 8; k++) /* per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] */
        t[k] = _mm512_add_ps(_mm512_unpacklo_ps(acc[2 * k], acc[2 * k + 1]), _mm512_unpackhi_ps(acc[2 * k], acc[2 * k + 1]));
    __m512 u[4];
    for (int k = 0; k < 4; k++) { /* per lane: the lane sums of 4 consecutive keys */
        const __m512 a = t[2 * k], b = t[2 * k + 1];
        const __m512 lo = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
        const __m512 hi = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
        u[k] = _mm512_add_ps(lo, hi);
    }
    const __m512 y01 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x44), _mm512_shuffle_f32x4(u[0], u[1], 0xee));
    const __m512 y23 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x44), _mm512_shuffle_f32x4(u[2], u[3], 0xee));
    _mm512_storeu_ps(out, _mm512_add_ps(_mm512_shuffle_f32x4(y01, y23, 0x88), _mm512_shuffle_f32x4(y01, y23, 0xdd)));
}
static inline __mmask16 gv_mask(size_t n) { return (__mmask16)((1u << n) - 1); }
static inline gv_f32 gv_load_n(const float *p, size_t n) { return _mm512_maskz_loadu_ps(gv_mask(n), p); }
static inline void gv_store_n(float *p, gv_f32 v, size_t n) { _mm512_mask_storeu_ps(p, gv_mask(n), v); }
static inline gv_f32 gv_load_f16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
static inline gv_f32 gv_load_f16_n(const uint16_t *p, size_t n) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(gv_mask(n), p));
}
/* GV_W values rounded to f16 (nearest even) as gllm_f32_to_f16 rounds them: a NaN becomes the quiet
 * NaN of its sign, no payload */
static inline void gv_store_f16(uint16_t *p, gv_f32 v) {
    const __m256i h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256i q = _mm256_or_si256(_mm256_and_si256(h, _mm256_set1_epi16((short)0x8000)), _mm256_set1_epi16(0x7e00));
    _mm256_storeu_si256((__m256i *)p, _mm256_mask_mov_epi16(h, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), q));
}
/* as gllm_f32_to_bf16: to nearest even in integers (vcvtneps2bf16 would flush subnormals), NaN quieted */
static inline void gv_store_bf16(uint16_t *p, gv_f32 v) {
    const __m512i u = _mm512_castps_si512(v), odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff)));
    const __m512i w = _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), u, _mm512_set1_epi32(0x400000));
    _mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16(_mm512_srli_epi32(w, 16)));
}
static inline gv_f32 gv_load_bf16(const uint16_t *p) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
static inline gv_f32 gv_load_bf16_n(const uint16_t *p, size_t n) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(gv_mask(n), p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
static inline gv_i32 gv_izero(void) { return _mm512_setzero_si512(); }
static inline gv_i32 gv_set1_i32(int32_t a) { return _mm512_set1_epi32(a); }
static inline gv_i32 gv_dot4_u(gv_i32 acc, const void *codes, const int8_t *x4) {
    int32_t x;
    memcpy(&x, x4, 4);
    return _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(codes), _mm512_set1_epi32(x));
}
#define gv_dot4_s gv_dot4_u /* signed codes are biased by GQ_SIGNED_BIAS in the panel */
static inline gv_f32 gv_cvt_i32(gv_i32 v) { return _mm512_cvtepi32_ps(v); }
/* 16 x 16 32-bit words transposed: word j < nout of row i goes to dst + j*dst_stride, lane i
 * (dst_stride in words). 32-bit interleaves, then 64-bit, then two rounds of 128-bit lane shuffles. */
static inline void gv_transpose16(__m512i r[16], uint32_t *dst, size_t dst_stride, int nout) {
    __m512i a[16];
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int k = 0; k < 4; k++) { /* r[4k + c], lane L: rows 4k..4k+3 of word 4L + c */
        r[4 * k] = _mm512_unpacklo_epi64(a[4 * k], a[4 * k + 2]);
        r[4 * k + 1] = _mm512_unpackhi_epi64(a[4 * k], a[4 * k + 2]);
        r[4 * k + 2] = _mm512_unpacklo_epi64(a[4 * k + 1], a[4 * k + 3]);
        r[4 * k + 3] = _mm512_unpackhi_epi64(a[4 * k + 1], a[4 * k + 3]);
    }
    for (int c = 0; c < 4; c++) {
        const __m512i plo = _mm512_shuffle_i32x4(r[c], r[4 + c], 0x44), phi = _mm512_shuffle_i32x4(r[c], r[4 + c], 0xee);
        const __m512i qlo = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0x44), qhi = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0xee);
        _mm512_storeu_si512(dst + (size_t)c * dst_stride, _mm512_shuffle_i32x4(plo, qlo, 0x88));
        _mm512_storeu_si512(dst + (size_t)(4 + c) * dst_stride, _mm512_shuffle_i32x4(plo, qlo, 0xdd));
        if (nout <= 8) continue;
        _mm512_storeu_si512(dst + (size_t)(8 + c) * dst_stride, _mm512_shuffle_i32x4(phi, qhi, 0x88));
        _mm512_storeu_si512(dst + (size_t)(12 + c) * dst_stride, _mm512_shuffle_i32x4(phi, qhi, 0xdd));
    }
}
/* 16 rows (src_stride bytes apart) of 16 32-bit words, transposed into dst */
static inline void gv_transpose16_u32(const char *src, size_t src_stride, void *dst, size_t dst_stride) {
    __m512i r[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512(src + (size_t)i * src_stride);
    gv_transpose16(r, dst, dst_stride, 16);
}
/* 16 rows of 16 f16 values, widened and transposed into dst (floats) */
static inline void gv_transpose16_f16(const char *src, size_t src_stride, void *dst, size_t dst_stride) {
    __m512i r[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_castps_si512(gv_load_f16((const uint16_t *)(src + (size_t)i * src_stride)));
    gv_transpose16(r, dst, dst_stride, 16);
}
/* 16 rows' unpacked block codes (32 bytes each), transposed into 8 vectors of 4-byte groups:
 * group g of row i at dst + g*dst_stride, lane i (the int8 gemm panel) */
static inline void gq_transpose_codes16(const __m256i c[16], uint32_t *dst, size_t dst_stride) {
    __m512i r[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_zextsi256_si512(c[i]);
    gv_transpose16(r, dst, dst_stride, 8);
}
/* Weight rows in lanes, 16 a vector (the gemv_lanes kernels): */
/* the 4 bytes at p[i] + off of 16 rows, loaded one by one (no gather) */
static inline __m512i gq_rows_u32(const uint8_t *const p[16], size_t off) {
    int32_t v[16];
    for (int i = 0; i < 16; i++) memcpy(&v[i], p[i] + off, 4);
    return _mm512_setr_epi32(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15]);
}
/* each lane's low / high 16 bits as an f16, widened */
static inline __m512 gq_f16_low(__m512i h) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h)); }
static inline __m512 gq_f16_high(__m512i h) { return gq_f16_low(_mm512_srli_epi32(h, 16)); }
/* 16 bytes at p[i] + off for 16 rows i, as a tile holds them: 4 vectors of 4-byte groups,
 * group g of row i in lane i of g[g] (a 4 x 4 transpose of words in each 128-bit lane, the rows
 * loaded so that it leaves them in order) */
static inline void gq_rows_groups(const uint8_t *const p[16], size_t off, __m512i g[4]) {
    __m512i z[4]; /* z[q]: rows q, q+4, q+8, q+12 */
    for (int q = 0; q < 4; q++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p[q] + off)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[q + 4] + off)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[q + 8] + off)), 2);
        z[q] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[q + 12] + off)), 3);
    }
    const __m512i a0 = _mm512_unpacklo_epi32(z[0], z[1]), a1 = _mm512_unpackhi_epi32(z[0], z[1]);
    const __m512i a2 = _mm512_unpacklo_epi32(z[2], z[3]), a3 = _mm512_unpackhi_epi32(z[2], z[3]);
    g[0] = _mm512_unpacklo_epi64(a0, a2), g[1] = _mm512_unpackhi_epi64(a0, a2);
    g[2] = _mm512_unpacklo_epi64(a1, a3), g[3] = _mm512_unpackhi_epi64(a1, a3);
}
/* AVX-512 BF16: 32 floats rounded (to nearest even) to bf16, as 16 pairs (the even k low) */
static inline void gv_bf16x2_from(uint32_t *pairs, const float *x) {
    _mm512_storeu_si512(pairs, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 16), _mm512_loadu_ps(x)));
}
/* AVX-512 BF16: acc += a.b over pairs of bf16 per lane (a 32-bit word: the even k low) */
static inline gv_f32 gv_dot_bf16x2(gv_f32 acc, const uint32_t *pairs, uint32_t x2) {
    return _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512(pairs), (__m512bh)_mm512_set1_epi32((int)x2));
}

/* one q8 block: 32 codes in a ymm */
typedef __m256i gq_codes;
typedef __m256i gq_i32;
typedef __m256 gq_f32;
static inline gq_f32 gq_fzero(void) { return _mm256_setzero_ps(); }
static inline gq_i32 gq_dot_u(gq_codes c, const int8_t *x) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), c, _mm256_loadu_si256((const __m256i *)x));
}
static inline gq_i32 gq_dot_s(gq_codes c, const int8_t *x) {
    __m256i xv = _mm256_loadu_si256((const __m256i *)x);
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(c, c), _mm256_sign_epi8(xv, c));
}
/* the sum of a q8 block's 32 signed codes: byte sums of the codes biased to unsigned, less 32*128 */
static inline int32_t gq_sum_qs(const int8_t *x) {
    const __m256i u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x), _mm256_set1_epi8((char)0x80));
    const __m256i s = _mm256_sad_epu8(u, _mm256_setzero_si256()); /* four 64-bit sums */
    __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    t = _mm_add_epi64(t, _mm_unpackhi_epi64(t, t));
    return _mm_cvtsi128_si32(t) - 32 * 128;
}
/* per-lane z * (sum of the lane's 4 x bytes), 0 < -z < 128: the integer form of an offset c = z*a */
static inline gq_i32 gq_xsum_neg(const int8_t *x, int z) {
    const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8((char)-z),
                                          _mm256_loadu_si256((const __m256i *)x));
    return _mm256_sub_epi32(_mm256_setzero_si256(), s);
}
static inline gq_i32 gq_dot_u_acc(gq_i32 acc, gq_codes c, const int8_t *x) {
    return _mm256_dpbusd_epi32(acc, c, _mm256_loadu_si256((const __m256i *)x));
}
/* the 32 codes of a block as panel bytes (signed codes + GQ_SIGNED_BIAS) */
static inline void gq_store_codes(uint8_t *dst, gq_codes c, int is_signed) {
    if (is_signed) c = _mm256_xor_si256(c, _mm256_set1_epi8((char)0x80));
    _mm256_storeu_si256((__m256i *)dst, c);
}
static inline gq_f32 gq_fma_i32(gq_i32 d, float s, gq_f32 acc) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(s), acc);
}
static inline float gq_reduce(gq_f32 v) {
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/* two q8 blocks per zmm (blocks b, b+1 in the 256-bit halves), for gemv over
 * four rows */
typedef __m512i gq2_codes;
typedef __m512i gq2_i32;
typedef __m512 gq2_f32;
typedef __m512 gq2_rb; /* one float per (row, block): see gq2_halves */
static inline gq2_codes gq2_join(gq_codes b0, gq_codes b1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(b0), b1, 1);
}
static inline __m512i gq2_load_x(const gllm_q8x *xb) {
    return gq2_join(_mm256_loadu_si256((const __m256i *)xb[0].qs), _mm256_loadu_si256((const __m256i *)xb[1].qs));
}
static inline gq2_i32 gq2_xsum_neg(__m512i x, int z) {
    const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)-z), x);
    return _mm512_sub_epi32(_mm512_setzero_si512(), s);
}
static inline gq_codes gq_flip(gq_codes c) { return _mm256_xor_si256(c, _mm256_set1_epi8((char)0x80)); } /* s8 + 128 as u8 */
static inline gq2_codes gq2_flip(gq2_codes c) { return _mm512_xor_si512(c, _mm512_set1_epi8((char)0x80)); } /* s8 + 128 as u8 */
static inline gq2_i32 gq2_dot_u(gq2_codes c, __m512i x) { return _mm512_dpbusd_epi32(_mm512_setzero_si512(), c, x); }
static inline gq2_i32 gq2_dot_u_acc(gq2_i32 acc, gq2_codes c, __m512i x) { return _mm512_dpbusd_epi32(acc, c, x); }
static inline gq2_f32 gq2_fzero(void) { return _mm512_setzero_ps(); }
/* Per-(row, block) values of four rows r x blocks b + i (i = 0, 1), as f32 lanes: gq2_halves,
 * each block's f16 scale d at lane 2r + i */
static inline gq2_rb gq2_halves(const void *const h[8]) {
    uint16_t u[8];
    for (int i = 0; i < 8; i++) memcpy(&u[i], h[i], 2);
    return _mm512_zextps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)u)));
}
/* (a*xd) of blocks b and b+1, repeated */
static inline gq2_rb gq2_xd(const gllm_q8x *xb, float a) {
    return _mm512_castpd_ps(_mm512_set1_pd(_mm_cvtsd_f64(_mm_castps_pd(_mm_setr_ps(a * xb[0].d, a * xb[1].d, 0, 0)))));
}
/* (c*xs) of blocks b and b+1, repeated */
static inline gq2_rb gq2_xs(const gllm_q8x *xb, float c) {
    return _mm512_castpd_ps(_mm512_set1_pd(_mm_cvtsd_f64(_mm_castps_pd(_mm_setr_ps(c * xb[0].s, c * xb[1].s, 0, 0)))));
}
static inline gq2_rb gq2_rb_zero(void) { return _mm512_setzero_ps(); }
static inline gq2_rb gq2_rb_mul(gq2_rb a, gq2_rb b) { return _mm512_mul_ps(a, b); }
static inline gq2_rb gq2_rb_fma(gq2_rb a, gq2_rb b, gq2_rb c) { return _mm512_fmadd_ps(a, b, c); }
/* lane lo of s on lanes 0-7, lane hi on lanes 8-15 */
static inline gq2_f32 gq2_lanes(gq2_rb s, int lo, int hi) {
    return _mm512_permutexvar_ps(_mm512_inserti64x4(_mm512_set1_epi32(lo), _mm256_set1_epi32(hi), 1), s);
}
/* row r's two block values (lanes 2r and 2r + 1), each over its block's 8 lanes */
static inline gq2_f32 gq2_pick(gq2_rb s, int r) { return gq2_lanes(s, 2 * r, 2 * r + 1); }
/* lo on lanes 0-7 (block b), hi on lanes 8-15 (block b+1) */
static inline gq2_f32 gq2_pair(float lo, float hi) {
    return _mm512_insertf32x8(_mm512_set1_ps(lo), _mm256_set1_ps(hi), 1);
}
static inline gq2_f32 gq2_fma_i32(gq2_i32 d, gq2_f32 s, gq2_f32 acc) {
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), s, acc);
}
static inline float gq2_reduce(gq2_f32 v) { return gv_reduce(v); }
/* the sum of row r's two block values (see gq2_pick) */
static inline float gq2_rb_pair(gq2_rb s, int r) {
    float t[16];
    _mm512_storeu_ps(t, s);
    return t[2 * r] + t[2 * r + 1];
}
#endif
