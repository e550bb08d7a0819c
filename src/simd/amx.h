/* SIMD wrapper, AVX-512 + AMX-INT8: avx512.h, and the tile helpers of the int8 gemm (Isa.amx).
 *
 * The gemm's tiles (palette 1), one configuration for the whole kernel call:
 *   tmm0, tmm1 / tmm4, tmm5   C: 16 activation rows x 16 weight rows, int32 (blocks even / odd)
 *   tmm2 / tmm6               A: 16 activation rows x 32 int8 (one q8 block each)
 *   tmm3, tmm7                B: 8 groups of 4 k x 16 weight rows, int8 (the panel's layout)
 * The kernel loads it on entry and releases the tiles on return; the OS grants the process
 * tile state once (src/core/cpu_features.c) before any AMX table is chosen.
 */
#ifndef GLLM_SIMD_AMX_H
#define GLLM_SIMD_AMX_H
#include "simd/avx512.h"

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} gq_amx_config;

static inline void gq_amx_begin(void) {
    static const gq_amx_config cfg = {
        .palette = 1,
        .colsb = {64, 64, 32, 64, 64, 64, 32, 64},
        .rows = {16, 16, 16, 8, 16, 16, 16, 8},
    };
    _tile_loadconfig(&cfg);
}
static inline void gq_amx_end(void) { _tile_release(); }

static inline gv_i32 gv_load_i32(const int32_t *p) { return _mm512_loadu_si512(p); }

/* The int32 dots of one q8 block of 16 activation rows (A, rows xs bytes apart) with a panel
 * block's two 16-row halves (B, groups bs bytes apart), in tiles C0 and C1, stored as 16 rows
 * of 32 int32 at dst. Tile numbers are constants, hence a macro. */
#define GQ_AMX_DOTS(C0, C1, A, x, xs, codes, bs, dst)      \
    do {                                                  \
        _tile_zero(C0);                                   \
        _tile_zero(C1);                                   \
        _tile_loadd(A, x, xs);                            \
        _tile_loadd(3, codes, bs);                        \
        _tile_loadd(7, (const uint8_t *)(codes) + 64, bs); \
        _tile_dpbssd(C0, A, 3);                           \
        _tile_dpbssd(C1, A, 7);                           \
        _tile_stored(C0, dst, 128);                       \
        _tile_stored(C1, (int32_t *)(dst) + 16, 128);     \
    } while (0)

/* the 32 codes of a block plus z, as signed bytes (AMX's tdpbssd is s8 x s8: no bias) */
static inline gq_codes gq_add_codes(gq_codes c, int z) { return _mm256_add_epi8(c, _mm256_set1_epi8((char)z)); }
#endif
