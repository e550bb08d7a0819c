/* Reference dequantisation, one case per format, straight from the layouts
 * documented in DESIGN.md §3 (and generated/quant_blocks.h). */
#include <math.h>
#include <string.h>
#include "ref/ref.h"

static double half(const uint8_t *p) { /* IEEE binary16, little-endian, by the definition */
    const unsigned h = p[0] | p[1] << 8, e = (h >> 10) & 31, f = h & 1023;
    const double sign = (h & 0x8000) ? -1.0 : 1.0;
    if (e == 0) return sign * ldexp(f, -24);
    if (e == 31) return f ? NAN : sign * INFINITY;
    return sign * ldexp(1024 + f, (int)e - 25);
}

static double bfloat(const uint8_t *p) {
    const uint32_t u = (uint32_t)(p[0] | p[1] << 8) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void gllm_ref_dequantize(gllm_dtype t, const void *row, double *out, size_t k) {
    const uint8_t *p = row;
    switch (t) {
    case GLLM_DTYPE_F32:
        for (size_t i = 0; i < k; i++) {
            float f;
            memcpy(&f, p + 4 * i, 4);
            out[i] = f;
        }
        return;
    case GLLM_DTYPE_F16:
        for (size_t i = 0; i < k; i++) out[i] = half(p + 2 * i);
        return;
    case GLLM_DTYPE_BF16:
        for (size_t i = 0; i < k; i++) out[i] = bfloat(p + 2 * i);
        return;
    case GLLM_DTYPE_Q8_0: /* f16 d; int8 qs[32] */
        for (size_t b = 0; b < k / 32; b++, p += 34) {
            const double d = half(p);
            for (int j = 0; j < 32; j++) out[32 * b + j] = d * (int8_t)p[2 + j];
        }
        return;
    case GLLM_DTYPE_Q4_0: /* f16 d; qs[16]: low nibble j, high nibble j+16; d*(q-8) */
        for (size_t b = 0; b < k / 32; b++, p += 18) {
            const double d = half(p);
            for (int j = 0; j < 16; j++) {
                out[32 * b + j] = d * ((p[2 + j] & 15) - 8);
                out[32 * b + j + 16] = d * ((p[2 + j] >> 4) - 8);
            }
        }
        return;
    case GLLM_DTYPE_Q4_1: /* f16 d; f16 m; qs[16] as q4_0; d*q + m */
        for (size_t b = 0; b < k / 32; b++, p += 20) {
            const double d = half(p), m = half(p + 2);
            for (int j = 0; j < 16; j++) {
                out[32 * b + j] = d * (p[4 + j] & 15) + m;
                out[32 * b + j + 16] = d * (p[4 + j] >> 4) + m;
            }
        }
        return;
    case GLLM_DTYPE_Q2_0: /* f16 d; qs[8]: code t = bits 2(t/8).. of byte t%8; d*(q-2) */
        for (size_t b = 0; b < k / 32; b++, p += 10) {
            const double d = half(p);
            for (int j = 0; j < 32; j++) out[32 * b + j] = d * (((p[2 + j % 8] >> (2 * (j / 8))) & 3) - 2);
        }
        return;
    case GLLM_DTYPE_Q1_0: /* f16 d; qs[4]: bit t of the LE word = code t; +d or -d */
        for (size_t b = 0; b < k / 32; b++, p += 6) {
            const double d = half(p);
            for (int j = 0; j < 32; j++) out[32 * b + j] = (p[2 + j / 8] >> (j % 8) & 1) ? d : -d;
        }
        return;
    case GLLM_DTYPE_COUNT:
        break;
    }
    for (size_t i = 0; i < k; i++) out[i] = NAN; /* unknown format: poison, never a plausible value */
}
