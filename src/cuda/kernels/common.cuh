/* Device-side helpers shared by the generated CUDA kernels (generated/cuda/). */
#ifndef GLLM_CUDA_COMMON_CUH
#define GLLM_CUDA_COMMON_CUH
#include <cuda_fp16.h>
#include <stdint.h>
#include "quant_blocks.h"

__device__ __forceinline__ float gllm_f16_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float gllm_bf16_to_f32(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }

__device__ __forceinline__ float gllm_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}
#endif
