/* SIMD wrapper, AVX-512 + AMX-BF16: avx512.h, and the tile helpers of the gemms (Isa.amx).
 *
 * The gemms' tiles (palette 1), one configuration for the whole kernel call; bf16, and the block
 * formats dequantised to bf16:
 *   tmm0, tmm1 / tmm2, tmm3   C: activation rows 0-15 / 16-31 x weight rows 0-15, 16-31, f32
 *   tmm4 / tmm5               A: activation rows 0-15 / 16-31 x 32 k, bf16
 *   tmm6 / tmm7               B: 16 pairs of k x weight rows 0-15 / 16-31, bf16
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

#endif
