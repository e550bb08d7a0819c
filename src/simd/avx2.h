/* SIMD wrapper, AVX2 + FMA + F16C, 8 f32 lanes. Contract: see avx512.h. */
#ifndef GLLM_SIMD_AVX2_H
#define GLLM_SIMD_AVX2_H
#include <immintrin.h>
#include "core/half.h"
#define GV_W 8
#define GQ_SIGNED_BIAS 0
typedef __m256 gv_f32;
typedef __m256i gv_i32;
static inline gv_f32 gv_zero(void) { return _mm256_setzero_ps(); }
static inline gv_f32 gv_set1(float a) { return _mm256_set1_ps(a); }
static inline gv_f32 gv_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void gv_store(float *p, gv_f32 v) { _mm256_storeu_ps(p, v); }
static inline gv_f32 gv_fma(gv_f32 a, gv_f32 b, gv_f32 c) { return _mm256_fmadd_ps(a, b, c); }
static inline gv_f32 gv_add(gv_f32 a, gv_f32 b) { return _mm256_add_ps(a, b); }
static inline gv_f32 gv_mul(gv_f32 a, gv_f32 b) { return _mm256_mul_ps(a, b); }
static inline gv_f32 gv_sub(gv_f32 a, gv_f32 b) { return _mm256_sub_ps(a, b); }
static inline gv_f32 gv_div(gv_f32 a, gv_f32 b) { return _mm256_div_ps(a, b); }
static inline gv_f32 gv_min(gv_f32 a, gv_f32 b) { return _mm256_min_ps(a, b); }
static inline gv_f32 gv_max(gv_f32 a, gv_f32 b) { return _mm256_max_ps(a, b); }
static inline gv_f32 gv_abs(gv_f32 a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
static inline gv_f32 gv_copysign(gv_f32 mag, gv_f32 s) {
    const __m256 m = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(m, mag), _mm256_and_ps(m, s));
}
static inline gv_f32 gv_round(gv_f32 a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
/* y * 2^n, n integral in [-126, 127] (exp's last step) */
static inline gv_f32 gv_ldexp(gv_f32 y, gv_f32 n) {
    return _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23)));
}
static inline float gv_hmax(gv_f32 v) {
    __m128 q = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_max_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_max_ss(q, _mm_movehdup_ps(q)));
}
static inline float gv_reduce(gv_f32 v) {
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}
/* out[j] = the lane sum of acc[j], j < n */
static inline void gv_reduce_many(const gv_f32 *acc, size_t n, float *out) {
    for (size_t j = 0; j < n; j++) out[j] = gv_reduce(acc[j]);
}
static inline __m256i gv_mask(size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline gv_f32 gv_load_n(const float *p, size_t n) { return _mm256_maskload_ps(p, gv_mask(n)); }
static inline void gv_store_n(float *p, gv_f32 v, size_t n) { _mm256_maskstore_ps(p, gv_mask(n), v); }
static inline gv_f32 gv_load_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
/* GV_W values rounded to f16 (nearest even) as gllm_f32_to_f16 rounds them: a NaN becomes the quiet
 * NaN of its sign, no payload */
static inline void gv_store_f16(uint16_t *p, gv_f32 v) {
    const __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m128i q = _mm_or_si128(_mm_and_si128(h, _mm_set1_epi16((short)0x8000)), _mm_set1_epi16(0x7e00));
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    const __m128i nan16 = _mm_packs_epi32(_mm256_castsi256_si128(nan), _mm256_extracti128_si256(nan, 1));
    _mm_storeu_si128((__m128i *)p, _mm_blendv_epi8(h, q, nan16));
}
/* as gllm_f32_to_bf16: to nearest even in integers, NaN quieted */
static inline void gv_store_bf16(uint16_t *p, gv_f32 v) {
    const __m256i u = _mm256_castps_si256(v), odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff)));
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    const __m256i w = _mm256_srli_epi32(_mm256_blendv_epi8(r, _mm256_or_si256(u, _mm256_set1_epi32(0x400000)), nan), 16);
    _mm_storeu_si128((__m128i *)p, _mm_packus_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1)));
}
static inline gv_f32 gv_load_bf16(const uint16_t *p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
static inline gv_f32 gv_load_f16_n(const uint16_t *p, size_t n) {
    uint16_t t[8] = {0};
    memcpy(t, p, n * 2);
    return gv_load_f16(t);
}
static inline gv_f32 gv_load_bf16_n(const uint16_t *p, size_t n) {
    uint16_t t[8] = {0};
    memcpy(t, p, n * 2);
    return gv_load_bf16(t);
}
/* 8 x 8 floats transposed: lane j of row i goes to dst + j*dst_stride, lane i (dst_stride in
 * floats), stored in order of j: with dst_stride < 8 each store's lanes past dst_stride are the
 * next one's to overwrite (the last one's land past the end). 32-bit interleaves, 64-bit
 * shuffles, then the 128-bit halves. */
static inline void gv_transpose8(const gv_f32 r[8], float *dst, size_t dst_stride) {
    __m256 t[8], s[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);     /* k 0, 1 | 4, 5 of rows 2i, 2i+1 */
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]); /* k 2, 3 | 6, 7 */
    }
    for (int h = 0; h < 8; h += 4) { /* rows h/2..h/2+3: s[h + c] holds k c | c + 4 (immediates: constants at -O0 too) */
        s[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);
        s[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xee);
        s[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
        s[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xee);
    }
    for (int j = 0; j < 4; j++)
        _mm256_storeu_ps(dst + (size_t)j * dst_stride, _mm256_permute2f128_ps(s[j], s[4 + j], 0x20));
    for (int j = 0; j < 4; j++)
        _mm256_storeu_ps(dst + (size_t)(4 + j) * dst_stride, _mm256_permute2f128_ps(s[j], s[4 + j], 0x31));
}
/* 8 rows (src_stride bytes apart) of 8 f32 / f16 / bf16 values, widened and transposed into dst
 * (floats): gemm's packs */
static inline void gv_transpose8_u32(const char *src, size_t src_stride, void *dst, size_t dst_stride) {
    gv_f32 r[8];
    for (int i = 0; i < 8; i++) r[i] = gv_load((const float *)(src + (size_t)i * src_stride));
    gv_transpose8(r, dst, dst_stride);
}
static inline void gv_transpose8_f16(const char *src, size_t src_stride, void *dst, size_t dst_stride) {
    gv_f32 r[8];
    for (int i = 0; i < 8; i++) r[i] = gv_load_f16((const uint16_t *)(src + (size_t)i * src_stride));
    gv_transpose8(r, dst, dst_stride);
}
static inline void gv_transpose8_bf16(const char *src, size_t src_stride, void *dst, size_t dst_stride) {
    gv_f32 r[8];
    for (int i = 0; i < 8; i++) r[i] = gv_load_bf16((const uint16_t *)(src + (size_t)i * src_stride));
    gv_transpose8(r, dst, dst_stride);
}
static inline gv_i32 gv_izero(void) { return _mm256_setzero_si256(); }
static inline gv_i32 gv_set1_i32(int32_t a) { return _mm256_set1_epi32(a); }
static inline __m256i gv_x4(const int8_t *x4) {
    int32_t x;
    memcpy(&x, x4, 4);
    return _mm256_set1_epi32(x);
}
/* u8 codes (<= 15 here, so the int16 pair sums of vpmaddubsw cannot saturate) */
static inline gv_i32 gv_dot4_u(gv_i32 acc, const void *codes, const int8_t *x4) {
    __m256i p = _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)codes), gv_x4(x4));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}
static inline gv_i32 gv_dot4_s(gv_i32 acc, const void *codes, const int8_t *x4) {
    __m256i c = _mm256_loadu_si256((const __m256i *)codes);
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(c, c), _mm256_sign_epi8(gv_x4(x4), c));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}
/* u8 codes <= 15 into int16 sums (acc16): 8 groups add at most 16 x 15 x 127 to a lane, no
 * saturation; gv_widen16 adds such sums to int32 ones */
static inline gv_i32 gv_dot4_u16(gv_i32 acc16, const void *codes, const int8_t *x4) {
    return _mm256_add_epi16(acc16, _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)codes), gv_x4(x4)));
}
static inline gv_i32 gv_widen16(gv_i32 acc, gv_i32 acc16) { return _mm256_add_epi32(acc, _mm256_madd_epi16(acc16, _mm256_set1_epi16(1))); }
static inline gv_f32 gv_cvt_i32(gv_i32 v) { return _mm256_cvtepi32_ps(v); }

typedef __m256i gq_codes;
typedef __m256i gq_i32;
typedef __m256 gq_f32;
static inline gq_f32 gq_fzero(void) { return _mm256_setzero_ps(); }
static inline gq_i32 gq_dot_u(gq_codes c, const int8_t *x) {
    __m256i p = _mm256_maddubs_epi16(c, _mm256_loadu_si256((const __m256i *)x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}
static inline gq_i32 gq_dot_s(gq_codes c, const int8_t *x) {
    __m256i xv = _mm256_loadu_si256((const __m256i *)x);
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(c, c), _mm256_sign_epi8(xv, c));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
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
    const __m256i p = _mm256_maddubs_epi16(_mm256_set1_epi8((char)-z), _mm256_loadu_si256((const __m256i *)x));
    return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}
static inline gq_i32 gq_dot_u_acc(gq_i32 acc, gq_codes c, const int8_t *x) {
    return _mm256_add_epi32(acc, gq_dot_u(c, x));
}
/* the 32 codes of a block as panel bytes (signed codes + GQ_SIGNED_BIAS) */
static inline void gq_store_codes(uint8_t *dst, gq_codes c, int is_signed) {
    (void)is_signed;
    _mm256_storeu_si256((__m256i *)dst, c);
}
static inline gq_f32 gq_fma_i32(gq_i32 d, float s, gq_f32 acc) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(s), acc);
}
static inline float gq_reduce(gq_f32 v) { return gv_reduce(v); }
/* Weight rows in lanes, 8 a vector (the gemv_lanes kernels): */
/* the 4 bytes at p[i] + off of 8 rows, loaded one by one (no gather) */
static inline __m256i gq_rows_u32(const uint8_t *const p[8], size_t off) {
    int32_t v[8];
    for (int i = 0; i < 8; i++) memcpy(&v[i], p[i] + off, 4);
    return _mm256_setr_epi32(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
}
/* the lanes' low halves in the low 128 bits, in order, their high halves in the high 128 (one byte
 * shuffle and one quadword permute; both halves of one vector share them) */
static inline __m256i gq_halves(__m256i h) {
    const __m256i by = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
                                        0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
    return _mm256_permute4x64_epi64(_mm256_shuffle_epi8(h, by), 0xD8);
}
/* each lane's low / high 16 bits as an f16, widened */
static inline __m256 gq_f16_low(__m256i h) { return _mm256_cvtph_ps(_mm256_castsi256_si128(gq_halves(h))); }
static inline __m256 gq_f16_high(__m256i h) { return _mm256_cvtph_ps(_mm256_extracti128_si256(gq_halves(h), 1)); }
/* 16 bytes at p[i] + off for 8 rows i: 4 vectors of 4-byte groups, group g of row i in lane i
 * of g[g] (a 4 x 4 transpose of words in each 128-bit lane, the rows loaded so that it leaves
 * them in order) */
static inline void gq_rows_groups(const uint8_t *const p[8], size_t off, __m256i g[4]) {
    __m256i z[4]; /* z[q]: rows q, q+4 */
    for (int q = 0; q < 4; q++)
        z[q] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p[q] + off))),
                                       _mm_loadu_si128((const __m128i *)(p[q + 4] + off)), 1);
    const __m256i a0 = _mm256_unpacklo_epi32(z[0], z[1]), a1 = _mm256_unpackhi_epi32(z[0], z[1]);
    const __m256i a2 = _mm256_unpacklo_epi32(z[2], z[3]), a3 = _mm256_unpackhi_epi32(z[2], z[3]);
    g[0] = _mm256_unpacklo_epi64(a0, a2), g[1] = _mm256_unpackhi_epi64(a0, a2);
    g[2] = _mm256_unpacklo_epi64(a1, a3), g[3] = _mm256_unpackhi_epi64(a1, a3);
}
#endif
