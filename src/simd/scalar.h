/* SIMD wrapper, scalar ISA: one lane, plain C. The templates are written
 * against these names (gv_* float vectors); see avx512.h for the contract. */
#ifndef GLLM_SIMD_SCALAR_H
#define GLLM_SIMD_SCALAR_H
#include "core/half.h"
#define GV_W 1
typedef float gv_f32;
static inline gv_f32 gv_zero(void) { return 0.0f; }
static inline gv_f32 gv_set1(float a) { return a; }
static inline gv_f32 gv_load(const float *p) { return *p; }
static inline void gv_store(float *p, gv_f32 v) { *p = v; }
static inline gv_f32 gv_fma(gv_f32 a, gv_f32 b, gv_f32 c) { return a * b + c; }
static inline gv_f32 gv_add(gv_f32 a, gv_f32 b) { return a + b; }
static inline gv_f32 gv_mul(gv_f32 a, gv_f32 b) { return a * b; }
static inline gv_f32 gv_sub(gv_f32 a, gv_f32 b) { return a - b; }
static inline gv_f32 gv_div(gv_f32 a, gv_f32 b) { return a / b; }
static inline gv_f32 gv_min(gv_f32 a, gv_f32 b) { return a < b ? a : b; }
static inline gv_f32 gv_max(gv_f32 a, gv_f32 b) { return a > b ? a : b; }
static inline gv_f32 gv_abs(gv_f32 a) { return gllm_bits_to_f32(gllm_f32_to_bits(a) & 0x7fffffffu); }
static inline gv_f32 gv_copysign(gv_f32 mag, gv_f32 s) {
    return gllm_bits_to_f32((gllm_f32_to_bits(mag) & 0x7fffffffu) | (gllm_f32_to_bits(s) & 0x80000000u));
}
static inline gv_f32 gv_round(gv_f32 a) { return (float)(int)(a + (a < 0 ? -0.5f : 0.5f)); }
/* 2^n for integral n in [-126, 127] */
/* y * 2^n, n integral in [-126, 127] (exp's last step) */
static inline gv_f32 gv_ldexp(gv_f32 y, gv_f32 n) { return y * gllm_bits_to_f32((uint32_t)((int)n + 127) << 23); }
static inline float gv_hmax(gv_f32 v) { return v; }
static inline float gv_reduce(gv_f32 v) { return v; }
/* out[j] = the lane sum of acc[j], j < n */
static inline void gv_reduce_many(const gv_f32 *acc, size_t n, float *out) {
    for (size_t j = 0; j < n; j++) out[j] = gv_reduce(acc[j]);
}
static inline gv_f32 gv_load_f16(const uint16_t *p) { return gllm_f16_to_f32(*p); }
static inline void gv_store_f16(uint16_t *p, gv_f32 v) { *p = gllm_f32_to_f16(v); }
static inline void gv_store_bf16(uint16_t *p, gv_f32 v) { *p = gllm_f32_to_bf16(v); }
static inline gv_f32 gv_load_bf16(const uint16_t *p) { return gllm_bf16_to_f32(*p); }
#define GQ_SIGNED_BIAS 0
typedef int32_t gv_i32;
static inline gv_i32 gv_izero(void) { return 0; }
static inline gv_i32 gv_set1_i32(int32_t a) { return a; }
static inline gv_i32 gv_dot4_u(gv_i32 acc, const void *codes, const int8_t *x4) {
    const uint8_t *c = (const uint8_t *)codes;
    return acc + c[0] * x4[0] + c[1] * x4[1] + c[2] * x4[2] + c[3] * x4[3];
}
static inline gv_i32 gv_dot4_s(gv_i32 acc, const void *codes, const int8_t *x4) {
    const int8_t *c = (const int8_t *)codes;
    return acc + c[0] * x4[0] + c[1] * x4[1] + c[2] * x4[2] + c[3] * x4[3];
}
static inline gv_f32 gv_cvt_i32(gv_i32 v) { return (float)v; }
#endif
