#include "cpu/matmul.h"
#include <stdlib.h>
#include <string.h>
#include "core/dispatch.h"
#include "core/dtype_traits.h"
#include "core/error.h"
#include "core/half.h"
#include "core/threadpool.h"
#include "core/workspace.h"

typedef struct {
    const float *x;
    size_t m, k, rows;
    gllm_q8x *xq;          /* or */
    uint16_t *xb, *xb_lo;  /* xb_lo: NULL, or the parts xb leaves */
    size_t ldxb;
} act_job;

static void act_task(void *ctx, size_t task, void *scratch) {
    const act_job *j = ctx;
    const gllm_quantize_fn bf16 = gllm_kernels()->quantize[GLLM_DTYPE_BF16];
    for (size_t row = task * j->rows; row < j->m && row < (task + 1) * j->rows; row++) {
        const float *x = j->x + row * j->k;
        if (j->xq) {
            gllm_kernels()->act_quant(x, j->xq + row * (j->k / 32), j->k);
            continue;
        }
        uint16_t *hi = j->xb + row * j->ldxb;
        bf16(x, hi, j->k);
        memset(hi + j->k, 0, (j->ldxb - j->k) * sizeof *hi);
        if (!j->xb_lo) continue;
        uint16_t *lo = j->xb_lo + row * j->ldxb;
        float *rest = scratch; /* x - hi, GLLM_SCRATCH_BYTES at a time */
        for (size_t c = 0, n = GLLM_SCRATCH_BYTES / sizeof(float); c < j->k; c += n) {
            const size_t len = j->k - c < n ? j->k - c : n;
            for (size_t i = 0; i < len; i++) rest[i] = x[c + i] - gllm_bf16_to_f32(hi[c + i]);
            bf16(rest, lo + c, len);
        }
        memset(lo + j->k, 0, (j->ldxb - j->k) * sizeof *lo);
    }
}

size_t gllm_cpu_gemv_rows(gllm_dtype t) {
    const int amx = gllm_kernels() == gllm_kernel_tables[GLLM_ISA_AMX];
    if (gllm_kernels()->gemv_lanes[t]) { /* a vector's lanes of weight rows at a time, tiled or gathered */
        if (gllm_kernels() == gllm_kernel_tables[GLLM_ISA_AVX2]) return t == GLLM_DTYPE_Q8_0 ? 128 : 512;
        if (amx) return t == GLLM_DTYPE_Q4_0 ? 64 : 96;
        return t == GLLM_DTYPE_Q8_0 ? 32 : t == GLLM_DTYPE_Q4_0 ? 48 : 64;
    }
    /* float formats: AVX2's gemv (weight rows against groups of 4 activation rows, no packing) is
     * ahead of its gemm to 32 rows (Zen 3, 1 thread, best of 3, f16 4096^2: 32 rows 60 -> 83 GFLOPS,
     * f32 56 -> 65; 48 rows about even) */
    if (gllm_dtype_traits_table[t].block == 1)
        return amx && t == GLLM_DTYPE_BF16 ? 8 : gllm_kernels() == gllm_kernel_tables[GLLM_ISA_AVX2] ? 32 : 16;
    return amx ? 6 : gllm_kernels() == gllm_kernel_tables[GLLM_ISA_AVX512] ? 4 : 8; /* AVX-512's gemm dots int8 with vpdpbusd */
}

gllm_status gllm_cpu_matmul_prepare(gllm_dtype t, const float *x, size_t m, size_t k, gllm_matmul_args *a) {
    const int bf16 = m > gllm_cpu_gemv_rows(t) && gllm_kernels() == gllm_kernel_tables[GLLM_ISA_AMX]; /* the AMX gemm */
    const int split = bf16 && (t == GLLM_DTYPE_F32 || t == GLLM_DTYPE_F16);
    if (!bf16 && !gllm_dtype_traits_table[t].int8_path) return GLLM_OK;
    /* tasks of whole rows, about 16K elements each: a row of a small model (576 elements, ~0.15 us)
     * is less work than the pool's hand-out, and a batched decode step's few rows are quickest
     * on the calling thread (4 x 576: 0.6 us there, 1.4 us on the pool) */
    act_job j = {.x = x, .m = m, .k = k, .rows = (16384 + k - 1) / k, .ldxb = (k + 31) / 32 * 32};
    const size_t xb_elems = (m + 31) * j.ldxb; /* 31 rows past the last, zero: tiles of 32 rows read them */
    if (bf16) j.xb = gllm_ws_alloc((split ? 2 : 1) * xb_elems * sizeof *j.xb);
    else j.xq = gllm_ws_alloc(m * (k / 32) * sizeof *j.xq);
    if (!j.xb && !j.xq) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "matmul: no memory for %zu rows of activations", m);
    if (split) j.xb_lo = j.xb + xb_elems;
    for (int part = 0; bf16 && part < 1 + split; part++)
        memset((part ? j.xb_lo : j.xb) + m * j.ldxb, 0, 31 * j.ldxb * sizeof *j.xb);
    gllm_pool_run((m + j.rows - 1) / j.rows, act_task, &j);
    a->xq = j.xq, a->xb = j.xb, a->xb_lo = j.xb_lo, a->ldxb = j.ldxb;
    return GLLM_OK;
}

gllm_matmul_fn gllm_cpu_matmul_kernel(gllm_dtype t, size_t m, int tiled) {
    if (m > gllm_cpu_gemv_rows(t)) return gllm_kernels()->gemm[t];
    /* a few rows: the lanes kernel, tiled or gathering the rows (AMX: int8 dots on tiles) */
    return (tiled || m > 1) && gllm_kernels()->gemv_lanes[t] ? gllm_kernels()->gemv_lanes[t] : gllm_kernels()->gemv[t];
}

int gllm_cpu_tileable(gllm_dtype t, size_t n) {
    return gllm_ensure_init() == GLLM_OK && gllm_kernels()->gemv_lanes[t] && n % GLLM_TILE_ROWS == 0;
}

typedef struct {
    gllm_dtype t;
    const void *w;
    void *dst;
    size_t k;
} tile_job;

/* one tile of 16 rows: per block, the code groups row by row, then each f16 field */
static void tile_task(void *ctx, size_t tile, void *scratch) {
    (void)scratch;
    const tile_job *c = ctx;
    const gllm_dtype_traits *tr = &gllm_dtype_traits_table[c->t];
    const size_t bb = (size_t)tr->block_bytes, qb = 4 * (size_t)tr->bits, nf = (bb - qb) / 2, nb = c->k / 32, row = nb * bb;
    const size_t j = tile * GLLM_TILE_ROWS;
    for (size_t b = 0; b < nb; b++) {
        uint8_t *o = (uint8_t *)c->dst + j * row + b * GLLM_TILE_ROWS * bb;
        for (size_t l = 0; l < GLLM_TILE_ROWS; l++) {
            const uint8_t *blk = (const uint8_t *)c->w + (j + l) * row + b * bb;
            for (size_t f = 0; f < nf; f++) memcpy(o + 16 * qb + 32 * f + 2 * l, blk + 2 * f, 2);
            for (size_t g = 0; g < qb / 4; g++) memcpy(o + 64 * g + 4 * l, blk + 2 * nf + 4 * g, 4);
        }
    }
}

void gllm_cpu_tile(gllm_dtype t, const void *w, void *dst, size_t n, size_t k) {
    tile_job c = {t, w, dst, k};
    gllm_pool_run(n / GLLM_TILE_ROWS, tile_task, &c);
}

gllm_mm_split gllm_cpu_matmul_split(gllm_dtype t, size_t m, size_t n, size_t k) {
    const size_t threads = (size_t)gllm_pool_threads();
    const double work = (double)m * (double)n * (double)k;
    if (work >= 65536.0 && m > gllm_cpu_gemv_rows(t) && m >= 2 * n && threads > 1) { /* the activations outweigh the weights */
        const size_t chunk = (m + threads - 1) / threads;
        return (gllm_mm_split){chunk, (m + chunk - 1) / chunk, 1};
    }
    /* one range of weight rows per thread; a gemv's in multiples of a tile's 16 rows, so that
     * the ranges are even (SmolLM2 decode, 2 threads: 576 rows as 9 tasks of 64 taken dynamically
     * -> 2 x 288, with the FFN's gate/up so too: 3.11-3.18 -> 2.82-2.89 ms a token); a gemm's in
     * multiples of 32 rows, a whole number of every gemm's panels (576 rows: 2 x 288, not 320 +
     * 256; SmolLM2 prefill of 512 tokens, alternating: 192-198 -> 183-196 ms) */
    const size_t parts = work < 65536.0 ? 1 : threads, align = m <= gllm_cpu_gemv_rows(t) ? 16 : 32;
    const size_t chunk = ((n + parts - 1) / parts + align - 1) / align * align;
    return (gllm_mm_split){chunk, (n + chunk - 1) / chunk, 0};
}

void gllm_cpu_matmul_part(gllm_matmul_fn fn, const gllm_matmul_args *a, const gllm_mm_split *s, size_t task, void *scratch) {
    const size_t lo = task * s->chunk, len = s->by_rows ? a->m : a->n, hi = lo + s->chunk < len ? lo + s->chunk : len;
    if (!s->by_rows) {
        fn(a, lo, hi, scratch);
        return;
    }
    gllm_matmul_args rows = *a; /* rows lo .. hi - 1 as a matmul of their own */
    rows.x += lo * a->ldx, rows.y += lo * a->ldy, rows.m = hi - lo;
    if (a->xq) rows.xq += lo * (a->k / 32);
    if (a->xb) rows.xb += lo * a->ldxb;
    if (a->xb_lo) rows.xb_lo += lo * a->ldxb;
    fn(&rows, 0, a->n, scratch);
}

typedef struct {
    gllm_matmul_fn fn;
    gllm_matmul_args args;
    gllm_mm_split split;
} mm_job;

static void matmul_task(void *ctx, size_t task, void *scratch) {
    const mm_job *j = ctx;
    gllm_cpu_matmul_part(j->fn, &j->args, &j->split, task, scratch);
}

gllm_status gllm_cpu_matmul(gllm_dtype t, int tiled, const void *w, const float *x, const float *bias, float *y,
                            size_t m, size_t n, size_t k) {
    mm_job j = {.fn = gllm_cpu_matmul_kernel(t, m, tiled),
                .args = {.w = w, .w_row_bytes = gllm_row_bytes(t, k), .x = x, .ldx = k, .bias = bias, .y = y, .ldy = n,
                         .m = m, .n = n, .k = k, .tiled = tiled},
                .split = gllm_cpu_matmul_split(t, m, n, k)};
    const size_t mark = gllm_ws_mark();
    const gllm_status st = gllm_cpu_matmul_prepare(t, x, m, k, &j.args);
    if (st != GLLM_OK) return gllm_ws_release(mark), st;
    gllm_pool_run(j.split.tasks, matmul_task, &j);
    gllm_ws_release(mark);
    return GLLM_OK;
}
