/* Tensor-op calls of the public API: validate, then route to the dispatched kernels on the pool. */
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include "core/dispatch.h"
#include "core/dtype_traits.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "cpu/matmul.h"

gllm_status gllm_init(void) { return gllm_ensure_init(); }

const char *gllm_isa_name(void) {
    return gllm_ensure_init() == GLLM_OK ? gllm_kernels()->isa : NULL;
}

const char *gllm_isa_detected(void) { return gllm_kernel_tables[gllm_best_isa()]->isa; }

int gllm_num_threads(void) { return gllm_ensure_init() == GLLM_OK ? gllm_pool_threads() : 0; }

const char *gllm_dtype_name(gllm_dtype t) {
    return (unsigned)t < GLLM_DTYPE_COUNT ? gllm_dtype_traits_table[t].name : NULL;
}

gllm_status gllm_dtype_from_name(const char *name, gllm_dtype *out) {
    if (!name || !out) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_dtype_from_name: NULL argument");
    for (int t = 0; t < GLLM_DTYPE_COUNT; t++)
        if (strcmp(gllm_dtype_traits_table[t].name, name) == 0) {
            *out = (gllm_dtype)t;
            return GLLM_OK;
        }
    return gllm_fail(GLLM_E_UNSUPPORTED, "unknown dtype '%s'", name);
}

size_t gllm_dtype_block_size(gllm_dtype t) {
    return (unsigned)t < GLLM_DTYPE_COUNT ? (size_t)gllm_dtype_traits_table[t].block : 0;
}

static gllm_status check_dtype_k(const char *fn, gllm_dtype t, size_t k) {
    if ((unsigned)t >= GLLM_DTYPE_COUNT) return gllm_fail(GLLM_E_UNSUPPORTED, "%s: unknown dtype %d", fn, (int)t);
    const size_t block = (size_t)gllm_dtype_traits_table[t].block;
    if (k == 0 || k % block)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "%s: k=%zu must be a positive multiple of %zu for %s", fn, k,
                         block, gllm_dtype_traits_table[t].name);
    return GLLM_OK;
}

gllm_status gllm_row_size(gllm_dtype t, size_t k, size_t *bytes) {
    gllm_status s = check_dtype_k("gllm_row_size", t, k);
    if (s != GLLM_OK) return s;
    if (!bytes) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_row_size: NULL output");
    const gllm_dtype_traits *tr = &gllm_dtype_traits_table[t];
    if (__builtin_mul_overflow(k / (size_t)tr->block, (size_t)tr->block_bytes, bytes))
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_row_size: %zu %s weights overflow size_t", k, tr->name);
    return GLLM_OK;
}

const char *gllm_kernel_name(const char *op, gllm_dtype t) {
    if (!op || (unsigned)t >= GLLM_DTYPE_COUNT || gllm_ensure_init() != GLLM_OK) return NULL;
    for (int i = 0; i < GLLM_OP_COUNT; i++)
        if (strcmp(gllm_op_names[i], op) == 0) return gllm_kernels()->names[i][t];
    return NULL;
}

/* a*b, or 0 with *ovf set when it overflows */
static size_t mul(size_t a, size_t b, int *ovf) {
    size_t r;
    if (__builtin_mul_overflow(a, b, &r)) *ovf = 1;
    return r;
}

static int overlap(const void *a, size_t an, const void *b, size_t bn) {
    const uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return a && b && x < y + bn && y < x + an;
}

gllm_status gllm_matmul(gllm_dtype wt, const void *w, const float *x, const float *bias, float *y, size_t m,
                        size_t n, size_t k) {
    gllm_status s = gllm_ensure_init();
    if (s != GLLM_OK) return s;
    if (!w || !x || !y) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_matmul: NULL w, x or y");
    if (m == 0 || n == 0) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_matmul: m=%zu n=%zu must be > 0", m, n);
    if ((s = check_dtype_k("gllm_matmul", wt, k)) != GLLM_OK) return s;
    int ovf = 0;
    const size_t row = gllm_row_bytes(wt, k), wbytes = mul(n, row, &ovf);
    const size_t xbytes = mul(mul(m, k, &ovf), sizeof(float), &ovf);
    const size_t ybytes = mul(mul(m, n, &ovf), sizeof(float), &ovf);
    if (ovf) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_matmul: m=%zu n=%zu k=%zu overflow size_t", m, n, k);
    if (overlap(y, ybytes, w, wbytes) || overlap(y, ybytes, x, xbytes) ||
        overlap(y, ybytes, bias, n * sizeof(float)))
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_matmul: y overlaps w, x or bias");

    return gllm_cpu_matmul(wt, 0, w, x, bias, y, m, n, k);
}

typedef struct {
    const void *src;
    void *dst;
    size_t k, src_row, dst_row;
    gllm_quantize_fn q;
    gllm_dequantize_fn dq;
} convert_job;

static void convert_task(void *ctx, size_t r, void *scratch) {
    (void)scratch;
    convert_job *j = ctx;
    const char *src = (const char *)j->src + r * j->src_row;
    char *dst = (char *)j->dst + r * j->dst_row;
    if (j->q) j->q((const float *)src, dst, j->k);
    else j->dq(src, (float *)dst, j->k);
}

static gllm_status convert(const char *fn, gllm_dtype t, const void *src, void *dst, size_t rows, size_t k,
                           int quantize) {
    gllm_status s = gllm_ensure_init();
    if (s != GLLM_OK) return s;
    if (!src || !dst) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "%s: NULL buffer", fn);
    if (rows == 0) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "%s: rows must be > 0", fn);
    if ((s = check_dtype_k(fn, t, k)) != GLLM_OK) return s;
    int ovf = 0;
    const size_t packed = gllm_row_bytes(t, k), flt = mul(k, sizeof(float), &ovf);
    mul(rows, flt, &ovf);
    if (ovf) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "%s: rows=%zu k=%zu overflow size_t", fn, rows, k);
    convert_job j = {.src = src, .dst = dst, .k = k, .src_row = quantize ? flt : packed,
                     .dst_row = quantize ? packed : flt};
    if (overlap(src, rows * j.src_row, dst, rows * j.dst_row))
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "%s: source and destination overlap", fn);
    const gllm_dtype_traits *tr = &gllm_dtype_traits_table[t];
    const int scales = (tr->block_bytes * 8 - tr->block * tr->bits) / 16; /* f16 scales leading each block */
    if (quantize && tr->block > 1)
        for (size_t i = 0; i < rows * k; i++)
            if (!isfinite(((const float *)src)[i]))
                return gllm_fail(GLLM_E_INVALID_ARGUMENT, "%s: value %zu is %g (%s blocks hold finite values)", fn, i,
                                 ((const float *)src)[i], tr->name);
    if (quantize) j.q = gllm_kernels()->quantize[t];
    else j.dq = gllm_kernels()->dequantize[t];
    gllm_pool_run(rows, convert_task, &j);
    for (size_t b = 0; quantize && tr->block > 1 && b < rows * (k / (size_t)tr->block); b++) /* scales past f16's range */
        for (int i = 0; i < scales; i++) {
            uint16_t h;
            memcpy(&h, (const char *)dst + b * (size_t)tr->block_bytes + 2 * (size_t)i, 2);
            if ((h & 0x7c00) == 0x7c00)
                return gllm_fail(GLLM_E_INVALID_ARGUMENT, "%s: block %zu's values are too large for %s's f16 scales", fn, b, tr->name);
        }
    return GLLM_OK;
}

gllm_status gllm_quantize(gllm_dtype t, const float *x, void *y, size_t rows, size_t k) {
    return convert("gllm_quantize", t, x, y, rows, k, 1);
}

gllm_status gllm_dequantize(gllm_dtype t, const void *x, float *y, size_t rows, size_t k) {
    return convert("gllm_dequantize", t, x, y, rows, k, 0);
}
