#include "kernel_cases.h"
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/cpu_features.h"
#include "core/dispatch.h"
#include "core/dtype_traits.h"
#include "core/half.h"
#include "cpu/matmul.h"
#include "ref/ref.h"

/* splitmix64: seeded per kernel, so a failure reproduces */
static uint64_t rng_state;
static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float uni(float lo, float hi) { return lo + (hi - lo) * (float)((rnd() >> 40) * (1.0 / 16777216.0)); }

static int fail(char *msg, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return CASE_FAIL;
}

/* random weights in dtype t: floats in [-1, 1]; blocks: random codes, small f16 scales */
static void random_rows(gllm_dtype t, void *dst, size_t rows, size_t k) {
    const gllm_dtype_traits *tr = &gllm_dtype_traits_table[t];
    uint8_t *p = dst;
    const size_t n = rows * k;
    if (t == GLLM_DTYPE_F32) {
        for (size_t i = 0; i < n; i++) ((float *)dst)[i] = uni(-1, 1);
    } else if (!tr->int8_path) {
        for (size_t i = 0; i < n; i++) {
            const float v = uni(-1, 1);
            ((uint16_t *)dst)[i] = t == GLLM_DTYPE_F16 ? gllm_f32_to_f16(v) : gllm_f32_to_bf16(v);
        }
    } else {
        const size_t blocks = n / 32, halves = ((size_t)tr->block_bytes - 32 * (size_t)tr->bits / 8) / 2;
        for (size_t b = 0; b < blocks; b++, p += tr->block_bytes) {
            for (int i = 0; i < tr->block_bytes; i++) p[i] = (uint8_t)rnd();
            for (size_t h = 0; h < halves; h++) {
                const uint16_t v = gllm_f32_to_f16(h == 0 ? uni(0.001f, 0.05f) : uni(-0.2f, 0.2f));
                p[2 * h] = (uint8_t)v, p[2 * h + 1] = (uint8_t)(v >> 8);
            }
        }
    }
}

typedef struct {
    size_t m, n, k;
} shape;

/* odd m and n with tails; k multiples of 32 up to 4128 (float formats: odd k too);
 * crossings of the gemm blocking (codegen/spec.py: KC=256 (AMX, bf16 and the block formats: 1024) in k,
 * MC=72 (64) rows, NC=1024 (512) columns; AVX-512 int8: 512, 48, 768); 21x1040: tiled weights across NC, a last panel of one tile; gemv: one
 * row (decode), and 2 to 13 (batched decode: groups of rows, as even as they go) */
static const shape gemv_shapes[] = {{1, 1, 32},  {1, 7, 96},  {1, 33, 1056}, {1, 257, 288}, {1, 257, 4128},
                                    {2, 7, 96},  {3, 33, 288}, {4, 1, 32},    {5, 65, 1056}, {9, 65, 4128}, {13, 33, 288}, {29, 65, 1056}};
static const shape gemv_odd_k[] = {{1, 7, 33}, {1, 33, 101}, {1, 257, 1027}, {3, 7, 33}, {7, 33, 101}, {2, 257, 1027}};
static const shape gemm_shapes[] = {{3, 7, 32}, {17, 33, 288}, {69, 257, 544}, {17, 257, 4128},
                                    {150, 33, 96}, {5, 1100, 64}, {69, 1, 4128}, {17, 48, 288},
                                    {21, 1040, 288}};
/* gemv_lanes: whole tiles of 16 rows; 1 to 7 activation rows (batched decode; the random
 * shapes' up to 100 make several groups), 9 to 32 (AMX: int8 dots on tiles, two of 16 rows past
 * 16) and past 32 (AMX: groups of up to 32, 41 = 21 + 20, 97 = 25 + 25 + 25 + 22); over the tiles and
 * over the rows (the gemv's batched path, which gemv_shapes also takes with odd n) */
static const shape tiled_shapes[] = {{1, 16, 32},  {1, 48, 96},   {1, 272, 1056}, {1, 256, 4128}, {2, 48, 96},
                                     {3, 272, 1056}, {4, 256, 4128}, {7, 32, 288},  {9, 48, 96},   {16, 32, 4128},
                                     {17, 272, 288}, {23, 48, 1056}, {32, 64, 96},   {41, 48, 288},  {64, 32, 96},   {97, 32, 288}};
static const shape gemm_odd_k[] = {{3, 7, 33}, {17, 33, 101}, {69, 257, 1027}};

/* and RANDOM_SHAPES drawn from the kernel's seeded stream: any m (gemv: 1 to 32 rows, gemv_lanes 100) and n,
 * k a multiple of 32 or (float formats, untiled) any */
enum { RANDOM_SHAPES = 4 };
static shape random_shape(int op, int odd_k) {
    shape s;
    s.m = op == GLLM_OP_GEMM ? 1 + rnd() % 100 : op == GLLM_OP_GEMV_LANES ? 1 + rnd() % 100 : 1 + rnd() % 32;
    s.n = op == GLLM_OP_GEMV_LANES ? GLLM_TILE_ROWS * (1 + rnd() % 20) : 1 + rnd() % 300;
    s.k = odd_k && op != GLLM_OP_GEMV_LANES && rnd() % 2 ? 1 + rnd() % 1300 : 32 * (1 + rnd() % 40);
    return s;
}

/* fn over the columns of a, into a buffer of its own, gives y's bits */
static int same_bits(gllm_matmul_fn fn, gllm_matmul_args a, const float *y, void *scratch) {
    float *y3 = malloc(a.m * a.n * sizeof(float));
    a.y = y3;
    fn(&a, 0, a.n, scratch);
    const int same = !memcmp(y, y3, a.m * a.n * sizeof(float));
    free(y3);
    return same;
}

static int check_matmul(int op, gllm_dtype t, const gllm_kernel_table *kt, shape s, char *msg, size_t len) {
    const gllm_dtype_traits *tr = &gllm_dtype_traits_table[t];
    const size_t row = gllm_row_bytes(t, s.k);
    void *w = malloc(s.n * row);
    float *x = malloc(s.m * s.k * sizeof(float)), *bias = malloc(s.n * sizeof(float));
    float *y = malloc(s.m * s.n * sizeof(float)), *y2 = malloc(s.m * s.n * sizeof(float));
    double *ref = malloc(s.m * s.n * sizeof(double)), *mag = malloc(s.m * s.n * sizeof(double));
    gllm_q8x *xq = malloc(s.m * (s.k / 32 + 1) * sizeof(gllm_q8x));
    void *scratch = aligned_alloc(64, GLLM_SCRATCH_BYTES);
    random_rows(t, w, s.n, s.k);
    for (size_t i = 0; i < s.m * s.k; i++) x[i] = uni(-1, 1);
    for (size_t j = 0; j < s.n; j++) bias[j] = uni(-1, 1);
    const int with_bias = (int)(rnd() & 1);
    if (tr->int8_path)
        for (size_t i = 0; i < s.m; i++) kt->act_quant(x + i * s.k, xq + i * (s.k / 32), s.k);
    /* X rounded to bf16 for the AMX gemm, and what that left rounded again: k padded to 32, 31
     * rows past the last (zeros) */
    const size_t ldxb = (s.k + 31) / 32 * 32;
    uint16_t *xb = calloc(2 * (s.m + 31) * ldxb, sizeof *xb), *xb_lo = xb + (s.m + 31) * ldxb;
    for (size_t i = 0; i < s.m; i++)
        for (size_t kk = 0; kk < s.k; kk++) {
            const float v = x[i * s.k + kk];
            xb[i * ldxb + kk] = gllm_f32_to_bf16(v);
            xb_lo[i * ldxb + kk] = gllm_f32_to_bf16(v - gllm_bf16_to_f32(xb[i * ldxb + kk]));
        }
    gllm_matmul_args a = {.w = w, .w_row_bytes = row, .x = x, .ldx = s.k, .xq = xq, .xb = xb, .xb_lo = xb_lo, .ldxb = ldxb,
                          .bias = with_bias ? bias : NULL, .y = y, .ldy = s.n, .m = s.m, .n = s.n, .k = s.k};
    gllm_matmul_fn fn = op == GLLM_OP_GEMV ? kt->gemv[t] : op == GLLM_OP_GEMV_LANES ? kt->gemv_lanes[t] : kt->gemm[t];
    void *wt = NULL;
    if (op == GLLM_OP_GEMV_LANES) { /* tiled by src (gllm_cpu_tile); the reference reads the rows */
        wt = malloc(s.n * row);
        gllm_cpu_tile(t, w, wt, s.n, s.k);
        a.w = wt, a.tiled = 1;
    }
    fn(&a, 0, s.n, scratch);
    /* the same columns split into random ranges (as threads would; whole tiles for tiled
     * weights) must give identical bits */
    const size_t step = a.tiled ? GLLM_TILE_ROWS : 1;
    a.y = y2;
    for (size_t j0 = 0; j0 < s.n;) {
        size_t j1 = j0 + step * (1 + (size_t)(rnd() % ((s.n - j0) / step)));
        fn(&a, j0, j1, scratch);
        j0 = j1;
    }
    /* gemm packs tiled weights (where this ISA tiles the dtype) into the same panels: the same bits */
    const char *differs = NULL;
    if (op == GLLM_OP_GEMV_LANES) { /* the same kernel gathering the rows themselves: the same bits */
        gllm_matmul_args ar = a;
        ar.w = w, ar.tiled = 0;
        if (!same_bits(fn, ar, y, scratch)) differs = "gemv_lanes over rows differs from the tiles";
    }
    if (op == GLLM_OP_GEMM && kt->gemv_lanes[t] && s.n % GLLM_TILE_ROWS == 0) {
        wt = malloc(s.n * row);
        gllm_cpu_tile(t, w, wt, s.n, s.k);
        gllm_matmul_args at = a;
        at.w = wt, at.tiled = 1;
        if (!same_bits(fn, at, y, scratch)) differs = "gemm over tiled weights differs from the rows";
    }
    if (differs) {
        free(w), free(wt), free(x), free(bias), free(y), free(y2), free(ref), free(mag), free(xq), free(xb), free(scratch);
        return fail(msg, len, "m=%zu n=%zu k=%zu: %s", s.m, s.n, s.k, differs);
    }
    gllm_ref_matmul(t, w, row, x, a.bias, ref, s.m, s.n, s.k);
    gllm_ref_matmul_abs(t, w, row, x, mag, s.m, s.n, s.k);
    int rc = CASE_PASS;
    for (size_t i = 0; i < s.m * s.n && rc == CASE_PASS; i++) {
        const double tol = op == GLLM_OP_GEMM ? gllm_matmul_tol(kt, t) : tr->tol;
        const double err = fabs(y[i] - ref[i]), bound = tol * mag[i] + 1e-5;
        if (!(err <= bound))
            rc = fail(msg, len, "m=%zu n=%zu k=%zu bias=%d: y[%zu][%zu]=%.7g, reference %.7g (|err| %.3g > %.3g)",
                      s.m, s.n, s.k, with_bias, i / s.n, i % s.n, y[i], ref[i], err, bound);
        else if (memcmp(&y[i], &y2[i], sizeof(float)))
            rc = fail(msg, len, "m=%zu n=%zu k=%zu: y[%zu][%zu] differs when the columns are split (%.9g vs %.9g)",
                      s.m, s.n, s.k, i / s.n, i % s.n, y[i], y2[i]);
    }
    free(w), free(wt), free(x), free(bias), free(y), free(y2), free(ref), free(mag), free(xq), free(xb), free(scratch);
    return rc;
}

/* float formats: special values (signed zeros, infinities, NaNs with payloads, the f16 overflow
 * edge, f16 subnormals and their ties, an f32 subnormal) in vector lanes and in the tail give the
 * bits of the portable conversions in src/core/half.h */
static int check_quantize_specials(gllm_dtype t, const gllm_kernel_table *kt, char *msg, size_t len) {
    static const uint32_t special[] = {0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001,
                                       0x7f800001, 0x7fa5a5a5, 0x477fe000, 0x477ff000, 0x477fefff, 0x38800000,
                                       0x387fffff, 0x33800000, 0x33000000, 0x33000001, 0x33c00000, 0x00000001,
                                       0x807fffff, 0x3f800000, 0xbf801000, 0x3f801001, 0x7f7fffff, 0xc7800000,
                                       0x3f808000, 0xbf818000, 0x3f808001};
    enum { N = 67 }; /* the specials twice over, random values between, a tail past the vectors */
    float x[N];
    uint16_t q[N];
    for (size_t i = 0; i < N; i++) {
        const uint32_t u = i % 5 == 4 ? 0 : special[(i - i / 5) % (sizeof special / sizeof *special)];
        x[i] = i % 5 == 4 ? uni(-3, 3) : gllm_bits_to_f32(u);
    }
    kt->quantize[t](x, q, N);
    for (size_t i = 0; i < N; i++) {
        const uint16_t want = t == GLLM_DTYPE_F16 ? gllm_f32_to_f16(x[i]) : gllm_f32_to_bf16(x[i]);
        if (q[i] != want)
            return fail(msg, len, "x[%zu] = 0x%08x: 0x%04x, the portable conversion gives 0x%04x", i,
                        gllm_f32_to_bits(x[i]), q[i], want);
    }
    return CASE_PASS;
}

static int check_quantize(gllm_dtype t, const gllm_kernel_table *kt, size_t k, char *msg, size_t len) {
    const gllm_dtype_traits *tr = &gllm_dtype_traits_table[t];
    float *x = malloc(k * sizeof(float));
    void *q = malloc(gllm_row_bytes(t, k));
    double *back = malloc(k * sizeof(double));
    const float scale = uni(0.01f, 100.0f);
    for (size_t i = 0; i < k; i++) x[i] = uni(-scale, scale);
    if (k >= 64) memset(x + 32, 0, 32 * sizeof(float)); /* an all-zero block */
    kt->quantize[t](x, q, k);
    gllm_ref_dequantize(t, q, back, k);
    int rc = CASE_PASS;
    for (size_t i = 0; i < k && rc == CASE_PASS; i++) {
        double m = 0; /* bound: relative to |x| (float formats) or the block's max |x| */
        if (tr->int8_path)
            for (size_t j = i / 32 * 32; j < i / 32 * 32 + 32; j++) m = fmax(m, fabs(x[j]));
        else
            m = fabs(x[i]);
        const double err = fabs(back[i] - x[i]), bound = tr->roundtrip * m + 1e-30;
        if (!(err <= bound))
            rc = fail(msg, len, "k=%zu: x[%zu]=%.7g comes back as %.7g (|err| %.3g > %.3g)", k, i, x[i], back[i],
                      err, bound);
    }
    free(x), free(q), free(back);
    return rc;
}

static int check_dequantize(gllm_dtype t, const gllm_kernel_table *kt, size_t k, char *msg, size_t len) {
    void *q = malloc(gllm_row_bytes(t, k));
    float *y = malloc(k * sizeof(float));
    double *ref = malloc(k * sizeof(double));
    random_rows(t, q, 1, k);
    kt->dequantize[t](q, y, k);
    gllm_ref_dequantize(t, q, ref, k);
    int rc = CASE_PASS;
    for (size_t i = 0; i < k && rc == CASE_PASS; i++)
        if (!(fabs(y[i] - ref[i]) <= 1e-6 * fabs(ref[i]) + 1e-6))
            rc = fail(msg, len, "k=%zu: y[%zu]=%.9g, reference %.9g", k, i, y[i], ref[i]);
    free(q), free(y), free(ref);
    return rc;
}

static int check_act_quant(const gllm_kernel_table *kt, size_t k, char *msg, size_t len) {
    float *x = malloc(k * sizeof(float));
    gllm_q8x *q = malloc(k / 32 * sizeof(gllm_q8x));
    for (size_t i = 0; i < k; i++) x[i] = uni(-3, 3);
    memset(x, 0, 32 * sizeof(float));
    x[32 + 5] = INFINITY;                     /* blocks with inf or NaN: NaN scales, zero codes */
    if (k / 32 > 3) x[64 + 31] = NAN;
    if (k / 32 > 4) for (int t = 0; t < 32; t++) x[96 + t] = 1e-42f * (float)(t - 16); /* max below FLT_MIN * 127: zero codes */
    kt->act_quant(x, q, k);
    int rc = CASE_PASS;
    for (size_t b = 0; b < k / 32 && rc == CASE_PASS; b++) {
        int zero = 1;
        for (int t = 0; t < 32; t++) zero = zero && q[b].qs[t] == 0;
        if (b == 1 || (b == 2 && k / 32 > 3)) {
            if (!isnan(q[b].d) || !isnan(q[b].s) || !zero)
                rc = fail(msg, len, "block %zu holds inf or NaN: d=%g s=%g, codes %s", b, q[b].d, q[b].s, zero ? "zero" : "not zero");
            continue;
        }
        double amax = 0;
        int32_t sum = 0;
        for (int t = 0; t < 32; t++) sum += q[b].qs[t];
        for (int t = 0; t < 32; t++) amax = fmax(amax, fabs(x[32 * b + t]));
        if (fabs(q[b].d - amax / 127) > 1e-6 * amax + 1.5e-45 /* a denormal d: one ulp */ || fabs(q[b].s - q[b].d * sum) > 1e-5 * fabs(q[b].d * sum) + 1e-30)
            rc = fail(msg, len, "block %zu: d=%g s=%g, expected %g and %g", b, q[b].d, q[b].s, amax / 127, q[b].d * sum);
        for (int t = 0; t < 32 && rc == CASE_PASS; t++)
            if (!(fabs(q[b].d * q[b].qs[t] - x[32 * b + t]) <= 0.5001 * q[b].d + 1e-30))
                rc = fail(msg, len, "block %zu: x[%d]=%g quantised to %d (d=%g)", b, t, x[32 * b + t], q[b].qs[t], q[b].d);
    }
    free(x), free(q);
    return rc;
}

/* ---- attention over a paged KV head ------------------------------------------- */

/* one random case: the kernel over [0, T) in two ranges, combined, against softmax(qK)V in double;
 * and the same keys in a contiguous layout must give the same bits */
static int check_attn_case(gllm_attn_fn fn, gllm_dtype t, size_t hd, size_t rows, size_t T, char *msg,
                           size_t len) {
    const unsigned shift = 4;
    const size_t P = 16, heads = 2, head = rnd() & 1, npages = (T + P - 1) / P, pool = npages + 3;
    const size_t page_elems = P * heads * hd, esize = t == GLLM_DTYPE_F32 ? 4 : 2;
    void *k = malloc(pool * page_elems * esize), *v = malloc(pool * page_elems * esize);
    void *kc = malloc(pool * page_elems * esize), *vc = malloc(pool * page_elems * esize);
    random_rows(t, k, pool, page_elems);
    random_rows(t, v, pool, page_elems);
    int32_t *pages = malloc(npages * 4), *ident = malloc(npages * 4);
    for (size_t i = 0; i < npages; i++) pages[i] = (int32_t)i, ident[i] = (int32_t)i;
    for (size_t i = npages; i > 1; i--) { /* a random page table into a larger pool */
        const size_t j = rnd() % i;
        const int32_t x = pages[i - 1];
        pages[i - 1] = pages[j], pages[j] = x;
    }
    /* contiguous copy: logical page i at physical page i */
    for (size_t i = 0; i < npages; i++) {
        memcpy((char *)kc + i * page_elems * esize, (char *)k + (size_t)pages[i] * page_elems * esize, page_elems * esize);
        memcpy((char *)vc + i * page_elems * esize, (char *)v + (size_t)pages[i] * page_elems * esize, page_elems * esize);
    }
    float *q = malloc(rows * hd * 4), *o = malloc(rows * hd * 4), *o2 = malloc(rows * hd * 4), *oc = malloc(rows * hd * 4);
    float *m = malloc(rows * 4 * 6), *l = m + rows, *m2 = l + rows, *l2 = m2 + rows, *mc = l2 + rows, *lc = mc + rows;
    uint32_t *ncontig = malloc(rows * 4);
    void *work = aligned_alloc(64, GLLM_ATTN_WORK);
    const size_t bstart = rnd() % (T + 1), blen = T - bstart, stride = (blen + 7) / 8 + 1;
    uint8_t *bits = calloc(rows * stride, 1);
    for (size_t i = 0; i < rows * hd; i++) q[i] = uni(-4, 4); /* scores of a few units: the weights differ */
    for (size_t r = 0; r < rows; r++) {
        ncontig[r] = (uint32_t)(rnd() % (T + 1));
        for (size_t b = 0; b < rows * stride; b++) bits[b] = (uint8_t)rnd();
    }
    const float scale = 1.0f / sqrtf((float)hd);
    gllm_attn_args a = {.q = q, .rows = rows, .hd = hd, .scale = scale, .k = k, .v = v, .page_elems = page_elems,
                        .head_offset = head * P * hd, .page_shift = shift, .pages = pages, .n_contig = ncontig,
                        .bits = bits, .bits_start = bstart, .bits_len = blen, .bits_stride = stride, .work = work};
    const size_t split = rnd() % (T + 1);
    fn(&a, 0, split, o, m, l);
    fn(&a, split, T, o2, m2, l2);
    gllm_attn_args c = a;
    c.k = kc, c.v = vc, c.pages = ident;
    fn(&c, 0, split, oc, mc, lc);
    int rc = CASE_PASS;
    if (memcmp(o, oc, rows * hd * 4) || memcmp(m, mc, rows * 4) || memcmp(l, lc, rows * 4))
        rc = fail(msg, len, "hd=%zu rows=%zu T=%zu: paged and contiguous KV differ", hd, rows, T);
    double *kr = malloc(hd * 8), *vr = malloc(hd * 8), *acc = malloc(hd * 8);
    for (size_t r = 0; r < rows && rc == CASE_PASS; r++) {
        /* combine the two ranges */
        const float mm = fmaxf(m[r], m2[r]);
        const double w1 = m[r] == -INFINITY ? 0 : exp((double)m[r] - mm), w2 = m2[r] == -INFINITY ? 0 : exp((double)m2[r] - mm);
        const double lsum = l[r] * w1 + l2[r] * w2;
        /* reference */
        double mx = -INFINITY, den = 0;
        memset(acc, 0, hd * 8);
        for (int pass = 0; pass < 2; pass++)
            for (size_t tt = 0; tt < T; tt++) {
                const size_t s = tt - bstart;
                const int vis = tt < ncontig[r] || (tt >= bstart && s < blen && (bits[r * stride + s / 8] >> (s % 8) & 1));
                if (!vis) continue;
                const size_t pg = (size_t)pages[tt / P] * page_elems + head * P * hd, off = pg + (tt % P) * hd;
                for (size_t i = 0; i < hd; i++) /* K is dim-major in a page */
                    gllm_ref_dequantize(t, (char *)k + (pg + i * P + tt % P) * esize, kr + i, 1);
                double sc = 0;
                for (size_t i = 0; i < hd; i++) sc += (double)q[r * hd + i] * kr[i];
                sc *= scale;
                if (pass == 0) { mx = fmax(mx, sc); continue; }
                gllm_ref_dequantize(t, (char *)v + off * esize, vr, hd);
                const double p = exp(sc - mx);
                den += p;
                for (size_t i = 0; i < hd; i++) acc[i] += p * vr[i];
            }
        if (den == 0) {
            if (lsum != 0) rc = fail(msg, len, "row %zu sees no key but l=%g", r, lsum);
            continue;
        }
        for (size_t i = 0; i < hd && rc == CASE_PASS; i++) {
            const double got = (o[r * hd + i] * w1 + o2[r * hd + i] * w2) / lsum, want = acc[i] / den;
            if (!(fabs(got - want) <= 2e-5))
                rc = fail(msg, len, "hd=%zu rows=%zu T=%zu split=%zu: row %zu o[%zu]=%.7g, reference %.7g", hd, rows, T,
                          split, r, i, got, want);
        }
    }
    free(k), free(v), free(kc), free(vc), free(pages), free(ident), free(q), free(o), free(o2), free(oc), free(bits);
    free(kr), free(vr), free(acc), free(m), free(ncontig), free(work);
    return rc;
}

/* attn: a few rows (decode, and a group's heads); attn_tiles: 16-row tiles, whole and partial */
static int check_attn(gllm_dtype t, const gllm_kernel_table *kt, int tiles, int quick, char *msg, size_t len) {
    static const size_t hds[] = {64, 80, 96, 128, 48, 256, 16}, rowss[2][3] = {{1, 4, 7}, {16, 37, 5}};
    static const size_t Ts[] = {1, 17, 100, 300};
    int rc = CASE_PASS;
    for (size_t a = 0; a < 7 && rc == CASE_PASS; a++)
        for (size_t b = 0; b < 3 && rc == CASE_PASS; b++)
            for (size_t c = 0; c < (quick ? 2u : 4u) && rc == CASE_PASS; c++)
                rc = check_attn_case(tiles ? kt->attn_tiles[t] : kt->attn[t], t, hds[a], rowss[tiles][b], Ts[c],
                                     msg, len);
    return rc;
}

/* ---- ops outside the dtype grid ---------------------------------------------- */

static const size_t row_sizes[] = {1, 7, 16, 64, 257, 4099};

/* |got - want| <= rel*scale + abs for every element */
static int close_rows(const char *what, size_t n, const float *got, const double *want, double rel, double abs_,
                      double scale, char *msg, size_t len) {
    for (size_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= rel * scale + abs_))
            return fail(msg, len, "%s n=%zu: y[%zu]=%.9g, reference %.9g", what, n, i, got[i], want[i]);
    return CASE_PASS;
}

static double max_abs(const double *v, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

static int check_norms(const gllm_kernel_table *kt, int layer, char *msg, size_t len) {
    int rc = CASE_PASS;
    for (size_t si = 0; si < 6 && rc == CASE_PASS; si++) {
        const size_t n = row_sizes[si];
        float *x = malloc(n * 4), *w = malloc(n * 4), *b = malloc(n * 4), *y = malloc(n * 4);
        double *ref = malloc(n * 8);
        const float shift = uni(-3, 3);
        for (size_t i = 0; i < n; i++) x[i] = uni(-2, 2) + shift, w[i] = uni(-1, 1), b[i] = uni(-1, 1);
        for (int variant = 0; variant < 2 && rc == CASE_PASS; variant++) {
            const float *wv = variant ? w : NULL, *bv = variant ? b : NULL;
            if (layer) {
                kt->layernorm(x, wv, bv, y, n, 1e-5f);
                gllm_ref_layernorm(x, wv, bv, ref, n, 1e-5);
            } else {
                kt->rmsnorm(x, wv, y, n, 1e-6f);
                gllm_ref_rmsnorm(x, wv, ref, n, 1e-6);
            }
            rc = close_rows(layer ? "layernorm" : "rmsnorm", n, y, ref, 2e-5, 1e-6, max_abs(ref, n), msg, len);
        }
        free(x), free(w), free(b), free(y), free(ref);
    }
    return rc;
}

static int check_l2norm(const gllm_kernel_table *kt, char *msg, size_t len) {
    int rc = CASE_PASS;
    for (size_t si = 0; si < 6 && rc == CASE_PASS; si++) {
        const size_t n = row_sizes[si];
        float *x = malloc(n * 4), *y = malloc(n * 4);
        double *ref = malloc(n * 8);
        for (int zero = 0; zero < 2 && rc == CASE_PASS; zero++) { /* an all-zero row stays zero */
            for (size_t i = 0; i < n; i++) x[i] = zero ? 0.0f : uni(-3, 3);
            gllm_ref_l2norm(x, ref, n);
            kt->l2norm(x, y, n);
            rc = close_rows("l2norm", n, y, ref, 2e-6, 1e-7, 1.0, msg, len);
            if (rc == CASE_PASS) { /* in place */
                kt->l2norm(x, x, n);
                rc = close_rows("l2norm in place", n, x, ref, 2e-6, 1e-7, 1.0, msg, len);
            }
        }
        free(x), free(y), free(ref);
    }
    return rc;
}

/* masked mean over rows: no mask, random masks, one row, and a mask that selects none (y = 0) */
static int check_mean_rows(const gllm_kernel_table *kt, char *msg, size_t len) {
    static const size_t rowss[] = {1, 3, 17, 69};
    int rc = CASE_PASS;
    for (size_t si = 0; si < 6 && rc == CASE_PASS; si++)
        for (size_t ri = 0; ri < 4 && rc == CASE_PASS; ri++) {
            const size_t n = row_sizes[si], rows = rowss[ri];
            float *x = malloc(rows * n * 4), *y = malloc(n * 4);
            uint8_t *mask = malloc(rows);
            double *ref = malloc(n * 8);
            for (size_t i = 0; i < rows * n; i++) x[i] = uni(-4, 4);
            for (int variant = 0; variant < 3 && rc == CASE_PASS; variant++) {
                for (size_t r = 0; r < rows; r++) mask[r] = variant == 1 ? uni(0, 1) < 0.6f : 0;
                if (variant == 1) mask[rows - 1] = 1;
                const uint8_t *mv = variant ? mask : NULL;
                for (size_t i = 0; i < n; i++) y[i] = 7.0f; /* overwritten, also when nothing is selected */
                const size_t want = gllm_ref_mean_rows(x, mv, rows, n, ref), got = kt->mean_rows(x, mv, rows, n, y);
                if (got != want) rc = fail(msg, len, "mean_rows %zux%zu: selected %zu, reference %zu", rows, n, got, want);
                else rc = close_rows("mean_rows", n, y, ref, 4e-6, 1e-7, 4.0, msg, len);
            }
            free(x), free(y), free(mask), free(ref);
        }
    return rc;
}

static int check_eltwise(const gllm_kernel_table *kt, const char *op, char *msg, size_t len) {
    int rc = CASE_PASS;
    for (size_t si = 0; si < 6 && rc == CASE_PASS; si++) {
        const size_t n = row_sizes[si];
        float *a = malloc(n * 4), *b = malloc(n * 4), *y = malloc(n * 4);
        double *ref = malloc(n * 8);
        for (size_t i = 0; i < n; i++) a[i] = uni(-12, 12), b[i] = uni(-2, 2);
        if (n > 8) a[0] = -100.0f, a[1] = 100.0f, a[2] = 0.0f; /* saturation and zero */
        double scale = 0;
        for (size_t i = 0; i < n; i++) {
            ref[i] = !strcmp(op, "silu_mul") ? gllm_ref_silu(a[i]) * b[i]
                     : !strcmp(op, "gelu")   ? gllm_ref_gelu(a[i])
                     : !strcmp(op, "mul")    ? (double)a[i] * b[i]
                                             : (double)a[i] + b[i];
            scale = fmax(scale, fabs(ref[i]));
        }
        if (!strcmp(op, "silu_mul")) kt->silu_mul(a, b, y, n);
        else if (!strcmp(op, "gelu")) kt->gelu(a, y, n);
        else if (!strcmp(op, "mul")) kt->mul(a, b, y, n);
        else kt->add(a, b, a, n), memcpy(y, a, n * 4); /* in place, as the residual add runs */
        for (size_t i = 0; i < n && rc == CASE_PASS; i++) /* per element: relative, with an absolute floor */
            if (!(fabs(y[i] - ref[i]) <= 4e-6 * fabs(ref[i]) + 2e-6))
                rc = fail(msg, len, "%s n=%zu: y[%zu]=%.9g, reference %.9g (input %g)", op, n, i, y[i], ref[i], a[i]);
        (void)scale;
        free(a), free(b), free(y), free(ref);
    }
    return rc;
}

static int check_reduce(const gllm_kernel_table *kt, int argmax, char *msg, size_t len) {
    int rc = CASE_PASS;
    for (size_t si = 0; si < 6 && rc == CASE_PASS; si++) {
        const size_t n = row_sizes[si];
        float *x = malloc(n * 4), *y = malloc(n * 4);
        double *ref = malloc(n * 8);
        for (size_t i = 0; i < n; i++) x[i] = uni(-30, 30);
        if (n > 8) x[3] = -INFINITY, x[n - 2] = x[n / 2]; /* a masked logit, a tie */
        if (argmax) {
            if (n > 8) x[n - 1] = x[n / 3] = 1000.0f; /* tie at the top: the first wins */
            const size_t got = kt->argmax(x, n), want = gllm_ref_argmax(x, n);
            if (got != want) rc = fail(msg, len, "argmax n=%zu: %zu, reference %zu", n, got, want);
        } else {
            gllm_ref_softmax(x, ref, n);
            kt->softmax(x, x, n); /* in place */
            rc = close_rows("softmax", n, x, ref, 1e-5, 1e-7, max_abs(ref, n), msg, len);
        }
        free(x), free(y), free(ref);
    }
    return rc;
}

static int check_rope(const gllm_kernel_table *kt, char *msg, size_t len) {
    static const size_t dims[][2] = {{64, 64}, {80, 80}, {128, 128}, {128, 64}, {96, 32}, {48, 48}};
    int rc = CASE_PASS;
    for (size_t di = 0; di < 6 && rc == CASE_PASS; di++)
        for (int neox = 0; neox < 2 && rc == CASE_PASS; neox++) {
            const size_t hd = dims[di][0], rot = dims[di][1], nh = 3;
            float *x = malloc(nh * hd * 4), *cs = malloc(rot * 4);
            double *ref = malloc(nh * hd * 8), *angle = malloc(rot / 2 * 8);
            for (size_t i = 0; i < nh * hd; i++) x[i] = uni(-2, 2);
            for (size_t i = 0; i < rot / 2; i++) {
                angle[i] = uni(-100, 100);
                cs[i] = (float)cos(angle[i]), cs[rot / 2 + i] = (float)sin(angle[i]);
            }
            gllm_ref_rope(x, ref, nh, hd, rot, angle, neox);
            kt->rope(x, nh, hd, rot, cs, neox);
            rc = close_rows(neox ? "rope neox" : "rope", nh * hd, x, ref, 1e-5, 1e-6, 2.0, msg, len);
            free(x), free(cs), free(ref), free(angle);
        }
    return rc;
}

static int skip_isa(gllm_isa_id isa, char *msg, size_t len) {
    const gllm_kernel_table *kt = gllm_kernel_tables[isa];
    if (kt && gllm_cpu_supports(isa)) return 0;
    snprintf(msg, len, "this CPU or build lacks the %s ISA", kt ? kt->isa : "requested");
    return 1;
}

int gllm_check_isa_kernel(const char *op, gllm_isa_id isa, int quick, char *msg, size_t len) {
    if (skip_isa(isa, msg, len)) return CASE_SKIP;
    const gllm_kernel_table *kt = gllm_kernel_tables[isa];
    rng_state = 0xab5eedull + (uint64_t)isa * 17u + (uint64_t)strlen(op) * 131u + (uint64_t)op[0];
    if (!strcmp(op, "act_quant")) return check_act_quant(kt, quick ? 96 : 4128, msg, len);
    if (!strcmp(op, "rmsnorm") || !strcmp(op, "layernorm")) return check_norms(kt, op[0] == 'l', msg, len);
    if (!strcmp(op, "l2norm")) return check_l2norm(kt, msg, len);
    if (!strcmp(op, "mean_rows")) return check_mean_rows(kt, msg, len);
    if (!strcmp(op, "silu_mul") || !strcmp(op, "gelu") || !strcmp(op, "add") || !strcmp(op, "mul"))
        return check_eltwise(kt, op, msg, len);
    if (!strcmp(op, "softmax") || !strcmp(op, "argmax")) return check_reduce(kt, op[0] == 'a', msg, len);
    if (!strcmp(op, "rope")) return check_rope(kt, msg, len);
    return fail(msg, len, "no check for op %s", op);
}

int gllm_check_kernel(int op, gllm_dtype t, gllm_isa_id isa, int quick, char *msg, size_t len) {
    if (skip_isa(isa, msg, len)) return CASE_SKIP;
    const gllm_kernel_table *kt = gllm_kernel_tables[isa];
    rng_state = 0x5eed0000ull + (uint64_t)op * 1000003u + (uint64_t)t * 1009u + (uint64_t)isa * 17u;
    const int odd_k = !gllm_dtype_traits_table[t].int8_path;
    if (op == GLLM_OP_ATTN || op == GLLM_OP_ATTN_TILES) return check_attn(t, kt, op == GLLM_OP_ATTN_TILES, quick, msg, len);
    if (op == GLLM_OP_QUANTIZE || op == GLLM_OP_DEQUANTIZE) {
        static const size_t ks[] = {32, 96, 4128, 33, 101};
        int rc = CASE_PASS;
        for (size_t i = 0; i < (odd_k ? 5u : 3u) && rc == CASE_PASS; i++)
            rc = op == GLLM_OP_QUANTIZE ? check_quantize(t, kt, ks[i], msg, len) : check_dequantize(t, kt, ks[i], msg, len);
        if (rc == CASE_PASS && op == GLLM_OP_QUANTIZE && (t == GLLM_DTYPE_F16 || t == GLLM_DTYPE_BF16))
            rc = check_quantize_specials(t, kt, msg, len);
        return rc;
    }
    const shape *sh = op == GLLM_OP_GEMV ? gemv_shapes : op == GLLM_OP_GEMV_LANES ? tiled_shapes : gemm_shapes;
    const shape *odd = op == GLLM_OP_GEMV ? gemv_odd_k : gemm_odd_k;
    const size_t ns = op == GLLM_OP_GEMV         ? sizeof gemv_shapes / sizeof *sh
                      : op == GLLM_OP_GEMV_LANES ? sizeof tiled_shapes / sizeof *sh
                                                 : sizeof gemm_shapes / sizeof *sh;
    int rc = CASE_PASS;
    for (size_t i = 0; i < ns && rc == CASE_PASS; i++) {
        if (quick && sh[i].m * sh[i].n * sh[i].k > 400000) continue;
        rc = check_matmul(op, t, kt, sh[i], msg, len);
    }
    const size_t no = op == GLLM_OP_GEMV ? sizeof gemv_odd_k / sizeof *odd : sizeof gemm_odd_k / sizeof *odd;
    for (size_t i = 0; i < no && odd_k && rc == CASE_PASS; i++) {
        if (quick && odd[i].m * odd[i].n * odd[i].k > 400000) continue;
        rc = check_matmul(op, t, kt, odd[i], msg, len);
    }
    for (int i = 0; i < RANDOM_SHAPES && rc == CASE_PASS; i++) {
        const shape r = random_shape(op, odd_k);
        if (!quick || r.m * r.n * r.k <= 400000) rc = check_matmul(op, t, kt, r, msg, len);
    }
    return rc;
}
