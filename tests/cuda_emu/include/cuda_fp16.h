/* The CUDA emulator's cuda_fp16.h: the few half-precision conversions the kernels use, on the
 * host compiler's _Float16 (round to nearest even, as the device). */
#ifndef GLLM_EMU_CUDA_FP16_H
#define GLLM_EMU_CUDA_FP16_H
#include <stdint.h>
#include <string.h>

struct __half {
    _Float16 v;
};
static inline float __half2float(__half h) { return (float)h.v; }
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
#endif
