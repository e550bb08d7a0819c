/* IEEE binary16 and bfloat16 <-> binary32, portable C (round to nearest even). */
#ifndef GLLM_HALF_H
#define GLLM_HALF_H
#include <stdint.h>
#include <string.h>

static inline float gllm_bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint32_t gllm_f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

#if defined(__F16C__)
#include <immintrin.h>
static inline float gllm_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
#elif defined(__aarch64__) && defined(__ARM_FEATURE_FP16_SCALAR_ARITHMETIC)
static inline float gllm_f16_to_f32(uint16_t h) {
    __fp16 f;
    memcpy(&f, &h, 2);
    return (float)f;
}
#else
static inline float gllm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return gllm_bits_to_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) { /* zero or subnormal: man * 2^-24 */
        float f = (float)man * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    return gllm_bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}
#endif

static inline uint16_t gllm_f32_to_f16(float f) {
    uint32_t u = gllm_f32_to_bits(f), sign = (u >> 16) & 0x8000, au = u & 0x7fffffffu;
    if (au >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (au > 0x7f800000u ? 0x200 : 0));
    if (au >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (au < 0x38800000u) { /* subnormal or zero in f16 */
        float a = gllm_bits_to_f32(au) * 16777216.0f; /* exact scale to units of 2^-24 */
        uint32_t m = (uint32_t)a;
        float r = a - (float)m;
        if (r > 0.5f || (r == 0.5f && (m & 1))) m++;
        return (uint16_t)(sign | m);
    }
    uint32_t man = au & 0x7fffff, exp = (au >> 23) - 112;
    uint32_t h = (exp << 10) | (man >> 13), rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

static inline float gllm_bf16_to_f32(uint16_t h) { return gllm_bits_to_f32((uint32_t)h << 16); }

static inline uint16_t gllm_f32_to_bf16(float f) {
    uint32_t u = gllm_f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
#endif
