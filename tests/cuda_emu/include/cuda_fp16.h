/* The CUDA emulator's cuda_fp16.h: the few half-precision conversions the kernels use. Widening
 * is exact, done on the bits (a _Float16 cast without F16C calls libgcc's soft-float routine,
 * which took half the emulator's time); narrowing is the host compiler's _Float16 (round to
 * nearest even, as the device). */
#ifndef GLLM_EMU_CUDA_FP16_H
#define GLLM_EMU_CUDA_FP16_H
#include <stdint.h>
#include <string.h>

struct __half {
    _Float16 v;
};
static inline __half __float2half_rn(float f) { return __half{(_Float16)f}; }
static inline __half __ushort_as_half(uint16_t u) {
    __half h;
    memcpy(&h.v, &u, 2);
    return h;
}
static inline uint16_t __half_as_ushort(__half h) {
    uint16_t u;
    memcpy(&u, &h.v, 2);
    return u;
}
static inline float __half2float(__half h) {
    uint32_t u = __half_as_ushort(h), sign = (u & 0x8000u) << 16, exp = (u >> 10) & 0x1f, man = u & 0x3ff, bits;
    if (exp == 0) { /* zero, subnormal: man * 2^-24 */
        float f = (float)man * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    bits = sign | (exp == 0x1f ? 0x7f800000u : (exp + 112) << 23) | (man << 13); /* inf/NaN or normal */
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
#endif
