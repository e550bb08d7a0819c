/* SIMD wrapper, AVX-512 + AMX-BF16: avx512.h, and the tile helpers of the gemms (Isa.amx).
 *
 * The gemms' tiles (palette 1), one configuration for the whole kernel call; bf16, and the block
 * formats dequantised to bf16:
 *   tmm0, tmm1 / tmm2, tmm3   C: activation rows 0-15 / 16-31 x weight rows 0-15, 16-31, f32
 *   tmm4 / tmm5               A: activation rows 0-15 / 16-31 x 32 k, bf16
 *   tmm6 / tmm7               B: 16 pairs of k x weight rows 0-15 / 16-31, bf16
 * The gemm of f32 and f16 (operands split into bf16 hi and lo parts) and attn_tiles take the
 * same shapes in their own roles (templates/cpu/gemm.c.j2, attn_tiles.c.j2); the batched gemv's
 * int8 dots (AMX-INT8) configure their own (templates/cpu/gemv_lanes.c.j2).
 * The kernel loads its configuration on entry and releases the tiles on return; the OS grants
 * the process tile state once (src/core/cpu_features.c) before any AMX table is chosen.
 */
#ifndef GLLM_SIMD_AMX_H
#define GLLM_SIMD_AMX_H
#include "simd/avx512.h"

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} gv_amx_config;

static inline void gv_amx_bf16_begin(void) {
    static const gv_amx_config cfg = {
        .palette = 1,
        .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
        .rows = {16, 16, 16, 16, 16, 16, 16, 16},
    };
    _tile_loadconfig(&cfg);
}
static inline void gv_amx_end(void) { _tile_release(); }

/* a B operand's row from an A operand's: 16 even k then 16 odd k interleaved into 16 pairs, the even k low */
static inline __m512i gv_amx_pairs(__m512i a) {
    const __m512i order = _mm512_setr_epi32(0x100000, 0x110001, 0x120002, 0x130003, 0x140004, 0x150005, 0x160006,
                                            0x170007, 0x180008, 0x190009, 0x1a000a, 0x1b000b, 0x1c000c, 0x1d000d,
                                            0x1e000e, 0x1f000f);
    return _mm512_permutexvar_epi16(order, a);
}
/* a B operand's row: 16 lanes' even and odd k rounded to bf16, in pairs */
static inline __m512i gv_amx_bf16_pairs(gv_f32 even, gv_f32 odd) {
    return gv_amx_pairs((__m512i)_mm512_cvtne2ps_pbh(odd, even));
}
/* 32 values (x0 the first 16) rounded to bf16 (returned), and in *lo what that leaves, rounded
 * to bf16 too: hi + lo carries 16 bits of each (f16 and bf16 values exactly) */
static inline __m512i gv_amx_bf16_split(gv_f32 x0, gv_f32 x1, __m512i *lo) {
    const __m512i hi = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);
    const gv_f32 h0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(hi)), 16));
    const gv_f32 h1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(hi, 1)), 16));
    *lo = (__m512i)_mm512_cvtne2ps_pbh(gv_sub(x1, h1), gv_sub(x0, h0));
    return hi;
}

#endif
