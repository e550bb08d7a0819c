/* gllmk bench --op cuda: the device's copy bandwidth (the decode limit), attention over a paged
 * cache (decode, and prefill on tensor cores beside CUDA cores), the CUDA gemv of every dtype on
 * weights larger than the L2, and the prefill gemm on tensor cores beside the CUDA-core one,
 * timed with events on the compute stream. */
#include <stdio.h>
#include <stdlib.h>
#include "bench/bench.h"
#include "core/dtype_traits.h"
#include "cuda/kernels/step.h"
#include "cuda/model.h"
#include "cuda/names.h"
#include "cuda/runtime.h"
#include "gllm_kernels.h"

double gllm_bench_cuda_bw; /* bytes/s, read + written, of the latest copy measurement */

/* one timed operation on the compute stream */
typedef struct {
    CUfunction f; /* a launch of (gx, gy, gz) blocks of `threads` (0: 1, 1, 256), or when NULL: */
    unsigned gx, gy, gz, threads;
    void **args;
    CUdeviceptr src, dst; /* a copy of bytes (gemm 0), or */
    size_t bytes;
    gllm_dtype gemm; /* a gemm of m x n x k (bytes 0), or with gemv set, a gemv of n x k at m rows a warp */
    int gemv;
    CUdeviceptr w, x, y, scratch;
    int m, n, k;
} op;

static void run_op(gllm_cuda *c, const op *o) {
    if (o->f) gllm_cuda_launch(c, o->f, o->gx, o->gy ? o->gy : 1, o->gz ? o->gz : 1, o->threads ? o->threads : 256, 0, o->args);
    else if (o->bytes) c->drv.cuMemcpyDtoDAsync(o->dst, o->src, o->bytes, c->stream);
    else if (o->gemv) gllm_cuda_gemv(c, o->gemm, o->w, 0, o->x, o->y, (size_t)o->n, (size_t)o->k, 0, 0.0f, 0, o->m);
    else gllm_cuda_gemm(c, o->gemm, o->w, 0, o->x, o->y, (size_t)o->m, (size_t)o->n, (size_t)o->k, o->scratch);
}

/* best seconds of one op, over 5 rounds of 10 between two events */
static double timed(gllm_cuda *c, const op *o) {
    CUevent a, b;
    c->drv.cuEventCreate(&a, CU_EVENT_DEFAULT), c->drv.cuEventCreate(&b, CU_EVENT_DEFAULT);
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        c->drv.cuEventRecord(a, c->stream);
        for (int i = 0; i < 10; i++) run_op(c, o);
        c->drv.cuEventRecord(b, c->stream);
        c->drv.cuEventSynchronize(b);
        float ms = 0;
        c->drv.cuEventElapsedTime(&ms, a, b);
        if (ms / 10 < best) best = ms / 10;
    }
    c->drv.cuEventDestroy(a), c->drv.cuEventDestroy(b);
    return best * 1e-3;
}

/* the gemm (m tokens, weights n x k) of the block and half formats: prefill shapes on tensor
 * cores beside CUDA cores (f32 activations), in TFLOPS; a batch of decode rows (under 32: CUDA
 * cores, every weight read once for all rows) in GB/s of weights beside the copy bandwidth */
static void bench_gemm(gllm_cuda *c, int quick, const float *w32) {
    static const int shapes[][3] = {{512, 4096, 4096}, {512, 576, 576}, {8, 4096, 4096}, {16, 4096, 4096}}; /* m n k */
    static const gllm_dtype dts[] = {GLLM_DTYPE_F16, GLLM_DTYPE_BF16, GLLM_DTYPE_Q8_0, GLLM_DTYPE_Q4_0};
    float *x = malloc((size_t)512 * 4096 * 4);
    for (size_t i = 0; i < (size_t)512 * 4096; i++) x[i] = (float)(i % 29) / 29.0f - 0.5f;
    for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++) {
        const int m = quick && shapes[sh][0] == 512 ? 128 : shapes[sh][0], n = shapes[sh][1], k = shapes[sh][2], batch = m < 32;
        if (sh == 0 || sh == 2)
            printf(batch ? "%-5s %-5s %5s %6s %6s %9s %9s %7s (decode rows, CUDA cores)\n" : "%-5s %-5s %5s %6s %6s %12s %12s %7s\n", "op",
                   "dtype", "m", "n", "k", batch ? "us" : "tc TFLOPS", batch ? "GB/s" : "cores TFLOPS", batch ? "limit%" : "tc/cores");
        for (size_t d = 0; d < sizeof dts / sizeof *dts; d++) {
            const size_t row = gllm_row_bytes(dts[d], k);
            void *w = malloc(n * row);
            gllm_quantize(dts[d], w32, w, n, k);
            op o = {.gemm = dts[d], .m = m, .n = n, .k = k};
            if (gllm_cuda_alloc(c, n * row, &o.w) || gllm_cuda_alloc(c, (size_t)m * k * 4, &o.x) ||
                gllm_cuda_alloc(c, (size_t)m * n * 4, &o.y) || gllm_cuda_alloc(c, gllm_cuda_gemm_scratch(m, k), &o.scratch)) {
                printf("cuda gemm %s: %s\n", gllm_dtype_name(dts[d]), gllm_last_error());
                gllm_cuda_free(c, o.w), gllm_cuda_free(c, o.x), gllm_cuda_free(c, o.y), gllm_cuda_free(c, o.scratch), free(w);
                free(x);
                return;
            }
            gllm_cuda_upload(c, o.w, w, n * row), gllm_cuda_upload(c, o.x, x, (size_t)m * k * 4);
            const int tc = c->tensor_cores;
            c->tensor_cores = 1;
            const double t_tc = batch ? 0.0 : timed(c, &o);
            c->tensor_cores = 0;
            const double t_cores = timed(c, &o), flop = 2.0 * m * n * k, bytes = (double)(n * row);
            c->tensor_cores = tc;
            if (batch)
                printf("%-5s %-5s %5d %6d %6d %9.1f %9.1f %6.0f%%\n", "gemm", gllm_dtype_name(dts[d]), m, n, k, t_cores * 1e6,
                       bytes / t_cores / 1e9, 100 * bytes / t_cores / gllm_bench_cuda_bw);
            else
                printf("%-5s %-5s %5d %6d %6d %12.1f %12.1f %6.1fx\n", "gemm", gllm_dtype_name(dts[d]), m, n, k, flop / t_tc / 1e12,
                       flop / t_cores / 1e12, t_cores / t_tc);
            fflush(stdout);
            gllm_cuda_free(c, o.w), gllm_cuda_free(c, o.x), gllm_cuda_free(c, o.y), gllm_cuda_free(c, o.scratch), free(w);
        }
    }
    free(x);
}

/* the step header of rows 0 .. n - 1 of sequence 0 at slots prefix .. prefix + n - 1: every row
 * on CUDA cores, or in tiles of 32 on tensor cores */
static void attn_header(gllm_cuda *c, CUdeviceptr hdr, int prefix, int n) {
    const size_t ints = GLLM_HDR_TOKENS + 3 * (size_t)n + 1 + 2 * (size_t)(n + 31) / 32;
    int32_t *h = calloc(ints, sizeof(int32_t)), *slot = h + GLLM_HDR_TOKENS + 2 * n, *tiles = slot + n + 1;
    h[GLLM_HDR_SEQS] = GLLM_HDR_TOKENS + n, h[GLLM_HDR_SLOTS] = GLLM_HDR_TOKENS + 2 * n, h[GLLM_HDR_LAST] = GLLM_HDR_TOKENS + 3 * n;
    h[GLLM_HDR_TILES] = GLLM_HDR_TOKENS + 3 * n + 1;
    for (int i = 0; i < n; i++) slot[i] = prefix + i;
    slot[n] = n - 1;
    for (int t = 0; t * 32 < n; t++) tiles[2 * t] = 32 * t, tiles[2 * t + 1] = n - 32 * t < 32 ? n - 32 * t : 32;
    gllm_cuda_upload(c, hdr, h, ints * sizeof(int32_t));
    gllm_cuda_sync(c);
    free(h);
}

/* attention over an f16 paged cache of L keys (Llama-3-8B heads: 32 query, 8 KV, dim 128; pages
 * of 16): one decode row (a GQA group of 4 per block, the keys split 8 to 64 ways; * marks the
 * generator's choice) as GB/s of K and V read beside the copy bandwidth, and the last 512 rows
 * as a prefill on tensor cores beside CUDA cores */
static void bench_attn(gllm_cuda *c, int quick) {
    enum { H = 32, KVH = 8, HD = 128 };
    const int L = quick ? 512 : 4096, n = quick ? 64 : 512, pages = L / 16;
    int shift = 4, heads = H, kvh = KVH, hd = HD; /* kernel arguments */
    const size_t kv_bytes = (size_t)pages * KVH * 16 * HD * 2;
    CUdeviceptr k = 0, v = 0, tables = 0, hdr = 0, q = 0, out = 0, part = 0, count = 0;
    CUfunction dec, tc;
    if (gllm_cuda_alloc(c, kv_bytes, &k) || gllm_cuda_alloc(c, kv_bytes, &v) || gllm_cuda_alloc(c, pages * 4, &tables) ||
        gllm_cuda_alloc(c, (GLLM_HDR_TOKENS + 4 * (size_t)n + 3) * 4, &hdr) || gllm_cuda_alloc(c, (size_t)n * H * HD * 4, &q) ||
        gllm_cuda_alloc(c, (size_t)n * H * HD * 4, &out) || gllm_cuda_alloc(c, (size_t)64 * H * (HD + 2) * 4, &part) ||
        gllm_cuda_alloc(c, (size_t)64 * H * 4, &count) || gllm_cuda_kernel(c, "gllm_attn_f16_cuda", &dec) ||
        gllm_cuda_kernel(c, "gllm_attn_tc_f16_cuda", &tc)) {
        printf("cuda attention: %s\n", gllm_last_error());
    } else {
        int32_t *table = malloc(pages * sizeof(int32_t));
        for (int i = 0; i < pages; i++) table[i] = (pages - 1 - i + 7) % pages; /* scattered pages */
        gllm_cuda_upload(c, tables, table, pages * sizeof(int32_t));
        c->drv.cuMemsetD32Async(k, 0x3c003c00u, kv_bytes / 4, c->stream); /* f16 1.0 */
        c->drv.cuMemsetD32Async(v, 0x3c003c00u, kv_bytes / 4, c->stream);
        c->drv.cuMemsetD32Async(q, 0x3c23d70au, (size_t)n * H * HD, c->stream); /* f32 0.01 */
        c->drv.cuMemsetD32Async(count, 0, 64 * H, c->stream);
        float scale = 0.0883883f;
        int stride = pages;
        gllm_fresh_kv cached = {0}; /* every key in the cache already */
        void *dargs[] = {&q, &k, &v, &tables, &stride, &hdr, &heads, &kvh, &hd, &shift, &scale, &out, &part, &count, &cached};
        void *targs[] = {&q, &k, &v, &tables, &stride, &hdr, &heads, &kvh, &hd, &shift, &scale, &out};
        printf("%-5s %-14s %6s %6s %9s %9s %7s\n", "op", "kind", "rows", "keys", "us", "GB/s", "limit%");
        attn_header(c, hdr, L - 1, 1);
        const int chosen = gllm_cuda_attn_splits(c, 1, KVH);
        for (int splits = 8; splits <= GLLM_ATTN_SPLITS; splits *= 2) { /* the generator's choice marked * */
            const op d1 = {.f = dec, .gx = KVH, .gy = 1, .gz = (unsigned)splits, .threads = 128, .args = dargs};
            const double t1 = timed(c, &d1);
            char kind[32];
            snprintf(kind, sizeof kind, "decode, %d%s", splits, splits == chosen ? "*" : "");
            printf("%-5s %-14s %6d %6d %9.1f %9.1f %6.0f%%\n", "attn", kind, 1, L, t1 * 1e6, 2.0 * kv_bytes / t1 / 1e9,
                   100 * 2.0 * kv_bytes / t1 / gllm_bench_cuda_bw);
        }
        attn_header(c, hdr, L - n, n);
        const op pt = {.f = tc, .gx = H, .gy = (unsigned)(n + 31) / 32, .threads = 64, .args = targs};
        const op pc = {.f = dec, .gx = KVH, .gy = (unsigned)n, .gz = 1, .threads = 128, .args = dargs};
        const double t_tc = timed(c, &pt), t_cores = timed(c, &pc);
        const double flop = 4.0 * HD * H * ((double)n * (L - n) + (double)n * (n + 1) / 2); /* Q K^T and P V, causal */
        printf("%-5s %-14s %6d %6d %9s %12s %12s %7s\n", "attn", "prefill f16", n, L, "", "tc TFLOPS", "cores TFLOPS", "tc/cores");
        printf("%-5s %-14s %6s %6s %9s %12.2f %12.2f %6.1fx\n", "", "", "", "", "", flop / t_tc / 1e12, flop / t_cores / 1e12, t_cores / t_tc);
        fflush(stdout);
        free(table);
    }
    CUdeviceptr all[] = {k, v, tables, hdr, q, out, part, count};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) gllm_cuda_free(c, all[i]);
}

void gllm_bench_cuda(int quick) {
    gllm_cuda c;
    if (gllm_cuda_open(&c, 0) != GLLM_OK) {
        printf("\ncuda: %s\n", gllm_last_error());
        return;
    }
    if (gllm_cuda_enter(&c) != GLLM_OK) {
        printf("\ncuda: %s\n", gllm_last_error());
        gllm_cuda_close(&c);
        return;
    }
    const size_t copy = quick ? (size_t)64 << 20 : (size_t)1 << 30;
    CUdeviceptr s, d;
    if (gllm_cuda_alloc(&c, copy, &s) != GLLM_OK || gllm_cuda_alloc(&c, copy, &d) != GLLM_OK) {
        printf("\ncuda: %s\n", gllm_last_error());
        gllm_cuda_leave(&c), gllm_cuda_close(&c);
        return;
    }
    c.drv.cuMemsetD32Async(s, 0x3f800000u, copy / 4, c.stream);
    const op cp = {.src = s, .dst = d, .bytes = copy};
    const double sec = timed(&c, &cp);
    gllm_bench_cuda_bw = 2.0 * (double)copy / sec;
    printf("\ncuda: %s (sm_%d)\nlimit: device copy bandwidth %.0f GB/s (read + written, %zu MiB)\n", c.name, c.sm,
           gllm_bench_cuda_bw / 1e9, copy >> 20);
    gllm_cuda_free(&c, s), gllm_cuda_free(&c, d);
    bench_attn(&c, quick);
    const int n = quick ? 4096 : 32768, k = 4096;
    float *w32 = malloc((size_t)n * k * 4), *x = malloc((size_t)k * 4);
    for (size_t i = 0; i < (size_t)n * k; i++) w32[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
    for (int i = 0; i < k; i++) x[i] = (float)(i % 17) / 17.0f;
    /* the decode gemv at 1, 2 and 4 rows per warp; the model takes the row count of gllm_cuda_gemv_rows */
    printf("%-5s %-5s %6s %6s %9s %9s %7s %5s %11s %11s\n", "op", "dtype", "n", "k", "us", "GB/s", "limit%", "rows", "1 row GB/s",
           "2 rows GB/s");
    for (int t = 0; t < GLLM_DTYPE_COUNT; t++) {
        const size_t row = gllm_row_bytes((gllm_dtype)t, k);
        void *w = malloc(n * row);
        gllm_quantize((gllm_dtype)t, w32, w, n, k);
        op gv = {.gemv = 1, .gemm = (gllm_dtype)t, .n = n, .k = k};
        if (gllm_cuda_alloc(&c, n * row, &gv.w) || gllm_cuda_alloc(&c, (size_t)k * 4, &gv.x) || gllm_cuda_alloc(&c, (size_t)n * 4, &gv.y)) {
            printf("cuda gemv %s: %s\n", gllm_dtype_name((gllm_dtype)t), gllm_last_error());
            gllm_cuda_free(&c, gv.w), gllm_cuda_free(&c, gv.x), gllm_cuda_free(&c, gv.y), free(w);
            break;
        }
        gllm_cuda_upload(&c, gv.w, w, n * row), gllm_cuda_upload(&c, gv.x, x, (size_t)k * 4);
        double gbs[3];
        for (int r = 0; r < 3; r++) gv.m = 1 << r, gbs[r] = (double)(n * row) / timed(&c, &gv);
        const int pick = gllm_cuda_gemv_rows(&c, (size_t)n, 0, 4);
        const double got = gbs[pick == 4 ? 2 : pick - 1]; /* the model's choice */
        printf("%-5s %-5s %6d %6d %9.1f %9.1f %6.0f%% %5d %11.1f %11.1f\n", "gemv", gllm_dtype_name((gllm_dtype)t), n, k,
               (double)(n * row) / got * 1e6, got / 1e9, 100 * got / gllm_bench_cuda_bw, pick, gbs[0] / 1e9, gbs[1] / 1e9);
        fflush(stdout);
        gllm_cuda_free(&c, gv.w), gllm_cuda_free(&c, gv.x), gllm_cuda_free(&c, gv.y);
        free(w);
    }
    bench_gemm(&c, quick, w32);
    free(w32), free(x);
    gllm_cuda_leave(&c);
    gllm_cuda_close(&c);
}
