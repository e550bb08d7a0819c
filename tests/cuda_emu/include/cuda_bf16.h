/* The CUDA emulator's cuda_bf16.h: the bfloat16 type and conversions the kernels use. */
#ifndef GLLM_EMU_CUDA_BF16_H
#define GLLM_EMU_CUDA_BF16_H
#include <stdint.h>
#include <string.h>

struct __nv_bfloat16 {
    uint16_t bits;
};
static inline float __bfloat162float(__nv_bfloat16 h) {
    const uint32_t u = (uint32_t)h.bits << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { /* round to nearest even; NaN stays NaN */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{(uint16_t)((u >> 16) | 0x40)};
    return __nv_bfloat16{(uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)};
}
static inline __nv_bfloat16 __ushort_as_bfloat16(uint16_t u) { return __nv_bfloat16{u}; }
static inline uint16_t __bfloat16_as_ushort(__nv_bfloat16 h) { return h.bits; }
#endif
