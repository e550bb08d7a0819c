/* SIMD wrapper, AVX-512 + AMX-INT8 + AMX-BF16: avx512.h, and the tile helpers of the gemms (Isa.amx).
 *
 * The gemms' tiles (palette 1), one configuration for the whole kernel call. Block formats:
 *   tmm0, tmm1 / tmm4, tmm5   C: 16 weight rows x 16 activation rows, int32 (blocks even / odd)
 *   tmm2, tmm3                A: 16 weight rows x 32 codes, int8 (a panel block's two halves)
 *   tmm6 / tmm7               B: 8 quads of k x 16 activation rows, int8 (blocks even / odd)
 * bf16:
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

static inline void gv_amx_int8_begin(void) {
    static const gv_amx_config cfg = {
        .palette = 1,
        .colsb = {64, 64, 32, 32, 64, 64, 64, 64},
        .rows = {16, 16, 16, 16, 16, 16, 8, 8},
    };
    _tile_loadconfig(&cfg);
}
static inline void gv_amx_bf16_begin(void) {
    static const gv_amx_config cfg = {
        .palette = 1,
        .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
        .rows = {16, 16, 16, 16, 16, 16, 16, 16},
    };
    _tile_loadconfig(&cfg);
}
static inline void gv_amx_end(void) { _tile_release(); }

static inline gv_i32 gv_load_i32(const int32_t *p) { return _mm512_loadu_si512(p); }
/* 16 f16 values, one at each of base + the offsets lo, hi (gq_gather_u32), widened */
static inline gv_f32 gq_gather_f16(const void *base, __m512i lo, __m512i hi) {
    return gq_f16_low(gq_gather_u32(base, lo, hi));
}

/* The int32 dots of a panel block's 32 weight rows (two A tiles of 16 rows x 32 codes, rows 32
 * bytes apart) with one q8 block of 16 activation rows (B: 8 quads x 16 rows, 64 bytes a quad),
 * in tiles C0 and C1, stored as 32 weight rows of 16 int32 at dst. Tile numbers are constants,
 * hence a macro. */
#define GQ_AMX_DOTS(C0, C1, B, codes, xq, dst)             \
    do {                                                  \
        _tile_zero(C0);                                   \
        _tile_zero(C1);                                   \
        _tile_loadd(2, codes, 32);                        \
        _tile_loadd(3, (const int8_t *)(codes) + 512, 32); \
        _tile_loadd(B, xq, 64);                           \
        _tile_dpbssd(C0, 2, B);                           \
        _tile_dpbssd(C1, 3, B);                           \
        _tile_stored(C0, dst, 64);                        \
        _tile_stored(C1, (int32_t *)(dst) + 256, 64);     \
    } while (0)

/* the 32 codes of a block plus z, as signed bytes (AMX's tdpbssd is s8 x s8: no bias) */
static inline gq_codes gq_add_codes(gq_codes c, int z) { return _mm256_add_epi8(c, _mm256_set1_epi8((char)z)); }
#endif
