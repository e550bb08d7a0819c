/* The CUDA backend's parts that need no GPU (driver loading against the toolkit's stub,
 * blob checks, architecture selection, backend selection), and, where a GPU is present,
 * every gemv kernel against the CPU kernels (skipped, and saying why, elsewhere). */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/dispatch.h"
#include "core/dtype_traits.h"
#include "cuda/encoder.h"
#include "cuda/model.h"
#include "cuda/names.h"
#include "cuda/runtime.h"
#include "model/bert.h"
#include "model/llama.h"
#include "ref/ref.h"
#include "synth_model.h"
#include "gllm_kernels.h"

#define STUB "/usr/local/cuda/lib64/stubs/libcuda.so"

Test(cuda, stub_driver_means_no_gpu) {
    if (access(STUB, R_OK)) cr_skip_test("no CUDA toolkit stub at %s", STUB);
    gllm_cuda_driver d;
    cr_assert_eq(gllm_cuda_load(&d, STUB), GLLM_E_UNSUPPORTED);
    cr_assert(strstr(gllm_last_error(), "no GPU"), "%s", gllm_last_error());
}

Test(cuda, missing_driver) {
    gllm_cuda_driver d;
    cr_assert_eq(gllm_cuda_load(&d, "/nonexistent/libcuda.so.1"), GLLM_E_UNSUPPORTED);
    cr_assert(strstr(gllm_last_error(), "cannot be loaded"));
}

Test(cuda, blobs_are_sass_only) {
    static const int cc[4][2] = {{8, 0}, {8, 6}, {8, 9}, {9, 0}};
    for (int i = 0; i < 4; i++) {
        const void *blob;
        size_t size;
        int sm;
        cr_assert_eq(gllm_cuda_blob(cc[i][0], cc[i][1], &blob, &size, &sm), GLLM_OK);
        cr_assert_eq(sm, cc[i][0] * 10 + cc[i][1]);
        cr_assert(size > 1000);
        cr_assert_eq(gllm_cuda_blob_check(blob, size), GLLM_OK, "sm_%d: %s", sm, gllm_last_error());
        /* a blob with a PTX section is refused */
        unsigned char *c = malloc(size);
        memcpy(c, blob, size);
        for (size_t k = 0; k + 8 < size; k++)
            if (!memcmp(c + k, ".nv.info", 8)) {
                memcpy(c + k, ".nv.ptx.", 8);
                break;
            }
        cr_assert_eq(gllm_cuda_blob_check(c, size), GLLM_E_INVALID_ARGUMENT, "PTX must be refused");
        cr_assert_eq(gllm_cuda_blob_check("not an elf at all, not an elf at all, not an elf at all, padding!", 64),
                     GLLM_E_INVALID_ARGUMENT);
        free(c);
    }
}

Test(cuda, architecture_selection) {
    const void *blob;
    size_t size;
    int sm;
    cr_assert_eq(gllm_cuda_blob(7, 5, &blob, &size, &sm), GLLM_E_UNSUPPORTED);
    cr_assert(strstr(gllm_last_error(), "7.5"), "%s", gllm_last_error());
    cr_assert_eq(gllm_cuda_blob(12, 0, &blob, &size, &sm), GLLM_E_UNSUPPORTED);
    cr_assert_eq(gllm_cuda_blob(8, 7, &blob, &size, &sm), GLLM_OK, "8.7 runs the sm_86 SASS");
    cr_assert_eq(sm, 86);
    cr_assert_eq(gllm_cuda_blob(9, 1, &blob, &size, &sm), GLLM_OK);
    cr_assert_eq(sm, 90);
}

Test(cuda, forced_backend_without_gpu_is_an_error) {
    gllm_cuda_driver d;
    const int gpu = gllm_cuda_load(&d, NULL) == GLLM_OK;
    if (gpu) gllm_cuda_unload(&d);
    gllm_backend *b;
    if (!gpu) {
        cr_assert_eq(gllm_backend_open("cuda:0", &b), GLLM_E_UNSUPPORTED, "never a silent fallback");
    }
    cr_assert_eq(gllm_backend_open("cuda:x", &b), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_backend_open("cuda:-1", &b), GLLM_E_INVALID_ARGUMENT, "a negative ordinal is not the CPU");
    cr_assert_eq(gllm_backend_open("auto", &b), GLLM_OK);
    gllm_backend_info bi;
    gllm_backend_get_info(b, &bi);
    cr_assert_str_eq(bi.backend, gpu ? "cuda" : "cpu", "auto: CUDA first, the CPU without a GPU");
    gllm_backend_close(b);
}

/* with a GPU: gemv and gemm of every dtype against a double reference over the dequantised
 * weights (the CPU's own dequantisation), odd shapes */
static const char *const GEMM[] = GLLM_CUDA_BY_DTYPE("gemm"), *const GEMM_TC[] = GLLM_CUDA_BY_DTYPE("gemm_tc");

Test(cuda, matmul_kernels_match_the_cpu) {
    gllm_cuda c;
    if (gllm_cuda_open(&c, 0) != GLLM_OK) cr_skip_test("no GPU: %s", gllm_last_error());
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    cr_assert_eq(gllm_cuda_enter(&c), GLLM_OK);
    const int n = 1027, k = 4128;
    const int ms[4] = {1, 3, 17, 69};
    float *w32 = malloc((size_t)n * k * 4), *x = malloc((size_t)69 * k * 4), *y = malloc((size_t)69 * n * 4);
    double *ref = malloc((size_t)69 * n * 8), *mag = malloc((size_t)69 * n * 8);
    float *deq = malloc((size_t)n * k * 4), *xbig = malloc((size_t)69 * k * 4);
    for (size_t i = 0; i < (size_t)n * k; i++) w32[i] = sinf((float)i * 0.37f);
    for (size_t i = 0; i < (size_t)69 * k; i++) x[i] = cosf((float)i * 0.11f);
    double *xq = malloc((size_t)k * 8), *ref8 = malloc((size_t)n * 8), *mag8 = malloc((size_t)n * 8);
    float *deq2 = malloc((size_t)n * 2048 * 4);
    void *w2 = malloc((size_t)n * k * 4);
    gllm_ref_round_int8(x, xq, k);
    for (int t = 0; t < GLLM_DTYPE_COUNT; t++) {
        size_t row;
        gllm_row_size((gllm_dtype)t, k, &row);
        void *w = malloc(n * row);
        gllm_quantize((gllm_dtype)t, w32, w, n, k);
        gllm_dequantize((gllm_dtype)t, w, deq, n, k);
        for (int i = 0; i < 69; i++)
            for (int j = 0; j < n; j++) {
                double s = 0, a = 0;
                for (int e = 0; e < k; e++) s += (double)deq[(size_t)j * k + e] * x[(size_t)i * k + e], a += fabs((double)deq[(size_t)j * k + e] * x[(size_t)i * k + e]);
                ref[(size_t)i * n + j] = s, mag[(size_t)i * n + j] = a; /* a: the scale of rounding */
            }
        CUdeviceptr dw, dx, dy, scratch;
        cr_assert_eq(gllm_cuda_alloc(&c, n * row, &dw), GLLM_OK);
        cr_assert_eq(gllm_cuda_alloc(&c, (size_t)69 * k * 4, &dx), GLLM_OK);
        cr_assert_eq(gllm_cuda_alloc(&c, gllm_cuda_gemm_scratch(69, k), &scratch), GLLM_OK);
        cr_assert_eq(gllm_cuda_alloc(&c, (size_t)69 * n * 4, &dy), GLLM_OK);
        gllm_cuda_upload(&c, dw, w, n * row), gllm_cuda_upload(&c, dx, x, (size_t)69 * k * 4);
        /* the gemv with 1, 2 and 4 rows per warp (1027 rows: a last warp of 3, 1 or 3), then
         * with 4 accumulating onto the 2-row result, over f32 x, and for block formats over x
         * rounded to int8 as the CPU rounds it (against the reference over x so rounded); the
         * gemm at m = 3, 17, 69 */
        const int block = gllm_dtype_traits_table[t].int8_path;
        double *want = ref8, *scale = mag8;
        for (int j = 0; block && j < n; j++) {
            double s = 0, a = 0;
            for (int e = 0; e < k; e++) s += (double)deq[(size_t)j * k + e] * xq[e], a += fabs((double)deq[(size_t)j * k + e] * xq[e]);
            ref8[j] = s, mag8[j] = a;
        }
        for (int int8 = 0; int8 <= block; int8++)
            for (int r = 1; r <= 8; r *= 2) {
                const int acc = r == 8;
                c.int8_gemv = int8, want = int8 ? ref8 : ref, scale = int8 ? mag8 : mag;
                cr_assert_eq(gllm_cuda_gemv(&c, (gllm_dtype)t, dw, 0, dx, dy, n, k, 0, 0.0f, acc, acc ? 4 : r), GLLM_OK, "%s",
                             gllm_last_error());
                cr_assert_eq(gllm_cuda_download(&c, y, dy, (size_t)n * 4), GLLM_OK, "%s", gllm_last_error());
                for (size_t i = 0; i < (size_t)n; i++)
                    cr_assert(fabs(y[i] - (1 + acc) * want[i]) <= (1 + acc) * 1e-5 * scale[i], "gemv %s%s, %d rows a warp%s [%zu]: %g vs %g",
                              gllm_dtype_name((gllm_dtype)t), int8 ? " (int8 x)" : "", acc ? 4 : r, acc ? ", accumulating" : "", i, y[i],
                              (1 + acc) * want[i]);
            }
        /* a small decode batch on the int8 path (the batch gemv, m <= 8, m k <= 16384): 2 and 3
         * rows of 4128 (M = 2 and 4), and 8 rows of 2048 (M = 8: the first 1027 x 2048 weights
         * quantised anew, x's first 8 x 2048 values as its rows), each against the reference
         * over its own rounded row */
        for (int mi = 0; block && mi < 3; mi++) {
            const int m = (int[]){2, 3, 8}[mi], kk = mi < 2 ? k : 2048;
            const float *dq = deq;
            if (kk != k) {
                gllm_quantize((gllm_dtype)t, w32, w2, n, kk);
                gllm_dequantize((gllm_dtype)t, w2, deq2, n, kk);
                gllm_cuda_upload(&c, dw, w2, n * gllm_row_bytes((gllm_dtype)t, kk));
                dq = deq2;
            }
            c.int8_gemv = 1;
            cr_assert_eq(gllm_cuda_gemm(&c, (gllm_dtype)t, dw, 0, dx, dy, m, n, kk, 0), GLLM_OK, "%s", gllm_last_error());
            cr_assert_eq(gllm_cuda_download(&c, y, dy, (size_t)m * n * 4), GLLM_OK, "%s", gllm_last_error());
            for (int i = 0; i < m; i++) {
                gllm_ref_round_int8(x + (size_t)i * kk, xq, kk);
                for (int j = 0; j < n; j++) {
                    double s = 0, a = 0;
                    for (int e = 0; e < kk; e++) s += (double)dq[(size_t)j * kk + e] * xq[e], a += fabs((double)dq[(size_t)j * kk + e] * xq[e]);
                    cr_assert(fabs(y[(size_t)i * n + j] - s) <= 1e-5 * a, "batch gemv %s, %d rows of %d [%d][%d]: %g vs %g",
                              gllm_dtype_name((gllm_dtype)t), m, kk, i, j, y[(size_t)i * n + j], s);
                }
            }
            if (kk != k) gllm_cuda_upload(&c, dw, w, n * row);
        }
        gllm_ref_round_int8(x, xq, k); /* row 0's again, for the next dtype's gemv */
        c.int8_gemv = 1;
        for (int mi = 1; mi < 4; mi++) {
            const int m = ms[mi];
            const char *name = GEMM[t];
            CUfunction f;
            cr_assert_eq(gllm_cuda_kernel(&c, name, &f), GLLM_OK, "%s", gllm_last_error());
            const CUdeviceptr nul = 0;
            void *a2[] = {&dw, &row, &dx, (void *)&nul, &dy, (void *)&m, (void *)&n, (void *)&k};
            cr_assert_eq(gllm_cuda_launch(&c, f, (n + 7) / 8, (m + 7) / 8, 1, 256, 0, a2), GLLM_OK);
            cr_assert_eq(gllm_cuda_download(&c, y, dy, (size_t)m * n * 4), GLLM_OK, "%s", gllm_last_error());
            for (size_t i = 0; i < (size_t)m * n; i++)
                cr_assert(fabs(y[i] - ref[i]) <= 1e-5 * mag[i], "%s m=%d [%zu]: %g vs %g", name, m, i, y[i], ref[i]);
        }
        /* on tensor cores: x rounded to f16 (bf16 for bf16 weights), and quantised weights widened
         * to f16, before products summed in f32 (measured on the emulator: 5e-6..6e-5 of the
         * magnitude; a misplaced tile or element is of its order) */
        for (int mi = 1; t != GLLM_DTYPE_F32 && mi < 6; mi += 2) {
            /* m = 3, 69, then 69 rows of x times 2^17 (up to 131072, past f16's 65504): the same
             * result times 2^17 */
            const int m = ms[mi < 4 ? mi : 3], big = mi > 3;
            if (big) {
                for (size_t i = 0; i < (size_t)69 * k; i++) xbig[i] = x[i] * 131072.0f;
                for (size_t i = 0; i < (size_t)69 * n; i++) ref[i] *= 131072.0, mag[i] *= 131072.0;
                gllm_cuda_upload(&c, dx, xbig, (size_t)69 * k * 4);
            }
            const double tol = t == GLLM_DTYPE_BF16 ? 5e-4 : 2e-4;
            const char *name = GEMM_TC[t];
            const int nt = 131; /* the first weight rows only: two whole 64-row tiles and a tail */
            const gllm_cuda_mm mm = {dw, 0, dy, nt};
            cr_assert_eq(gllm_cuda_gemm_tc(&c, (gllm_dtype)t, dx, m, k, scratch, &mm, 1), GLLM_OK, "%s", gllm_last_error());
            cr_assert_eq(gllm_cuda_download(&c, y, dy, (size_t)m * nt * 4), GLLM_OK, "%s", gllm_last_error());
            double worst = 0;
            for (size_t i = 0; i < (size_t)m; i++)
                for (size_t j = 0; j < (size_t)nt; j++) {
                    const double g = y[i * nt + j], want = ref[i * n + j], tm = tol * mag[i * n + j];
                    worst = fmax(worst, fabs(g - want) / mag[i * n + j]);
                    cr_assert(fabs(g - want) <= tm, "%s m=%d [%zu][%zu]: %g vs %g", name, m, i, j, g, want);
                }
            cr_log_info("%s m=%d%s: largest error %.2g of the magnitude", name, m, big ? " (x 2^17)" : "", worst);
        }
        gllm_cuda_free(&c, dw), gllm_cuda_free(&c, dx), gllm_cuda_free(&c, dy), gllm_cuda_free(&c, scratch);
        free(w);
    }
    free(w32), free(x), free(y), free(ref), free(mag), free(deq), free(xbig), free(xq), free(ref8), free(mag8), free(deq2), free(w2);
    gllm_cuda_leave(&c);
    gllm_cuda_close(&c);
}

/* the float gemvs read 16 bytes a lane where the width allows (f32: k % 4 == 0, f16/bf16:
 * k % 8 == 0), else an element: widths 1001 (neither), 1004 (f32 only) and 1016 (both), at 1,
 * 2 and 4 rows a warp, against a double reference */
Test(cuda, float_gemv_any_width) {
    gllm_cuda c;
    if (gllm_cuda_open(&c, 0) != GLLM_OK) cr_skip_test("no GPU: %s", gllm_last_error());
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    cr_assert_eq(gllm_cuda_enter(&c), GLLM_OK);
    const int n = 37, ks[3] = {1001, 1004, 1016};
    const gllm_dtype dts[3] = {GLLM_DTYPE_F32, GLLM_DTYPE_F16, GLLM_DTYPE_BF16};
    float *w32 = malloc((size_t)n * 1016 * 4), *x = malloc(1016 * 4), *deq = malloc((size_t)n * 1016 * 4), y[37];
    void *w = malloc((size_t)n * 1016 * 4);
    CUdeviceptr dw, dx, dy;
    cr_assert_eq(gllm_cuda_alloc(&c, (size_t)n * 1016 * 4, &dw), GLLM_OK);
    cr_assert_eq(gllm_cuda_alloc(&c, 1016 * 4, &dx), GLLM_OK);
    cr_assert_eq(gllm_cuda_alloc(&c, (size_t)n * 4, &dy), GLLM_OK);
    for (int i = 0; i < n * 1016; i++) w32[i] = sinf((float)i * 0.29f);
    for (int i = 0; i < 1016; i++) x[i] = cosf((float)i * 0.13f);
    gllm_cuda_upload(&c, dx, x, 1016 * 4);
    for (int d = 0; d < 3; d++)
        for (int ki = 0; ki < 3; ki++) {
            const int k = ks[ki];
            gllm_quantize(dts[d], w32, w, n, k);
            gllm_dequantize(dts[d], w, deq, n, k);
            gllm_cuda_upload(&c, dw, w, gllm_row_bytes(dts[d], k) * n);
            for (int r = 1; r <= 4; r *= 2) {
                cr_assert_eq(gllm_cuda_gemv(&c, dts[d], dw, 0, dx, dy, n, k, 0, 0.0f, 0, r), GLLM_OK, "%s", gllm_last_error());
                cr_assert_eq(gllm_cuda_download(&c, y, dy, (size_t)n * 4), GLLM_OK, "%s", gllm_last_error());
                for (int j = 0; j < n; j++) {
                    double ref = 0, mag = 0;
                    for (int e = 0; e < k; e++) ref += (double)deq[j * k + e] * x[e], mag += fabs((double)deq[j * k + e] * x[e]);
                    cr_assert(fabs(y[j] - ref) <= 1e-5 * mag, "gemv %s, k %d, %d rows a warp [%d]: %g vs %g", gllm_dtype_name(dts[d]), k,
                              r, j, y[j], ref);
                }
            }
        }
    gllm_cuda_free(&c, dw), gllm_cuda_free(&c, dx), gllm_cuda_free(&c, dy);
    free(w32), free(x), free(deq), free(w);
    gllm_cuda_leave(&c);
    gllm_cuda_close(&c);
}

/* the int8 gemv's dynamic shared memory (x's codes, then every warp's ring of weight rows) past
 * the default 48 KB, asked for (cuFuncSetAttribute): q8_0 of widths 12320 (385 blocks: rows
 * 16-byte misaligned; 52 KB) and 32800 (78 KB) at 4 rows a warp, against the reference over x
 * rounded to int8; at 196608 x's codes alone pass the device's limit: f32 x, against the
 * reference over x as it is (the other's rounding is far outside either tolerance) */
Test(cuda, int8_gemv_within_shared_memory) {
    gllm_cuda c;
    if (gllm_cuda_open(&c, 0) != GLLM_OK) cr_skip_test("no GPU: %s", gllm_last_error());
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    cr_assert_eq(gllm_cuda_enter(&c), GLLM_OK);
    enum { N = 37, KMAX = 196608 };
    const gllm_dtype t = GLLM_DTYPE_Q8_0;
    float *w32 = malloc((size_t)N * KMAX * 4), *x = malloc(KMAX * 4), *deq = malloc((size_t)N * KMAX * 4), y[N];
    double *xq = malloc(KMAX * sizeof(double));
    void *w = malloc(gllm_row_bytes(t, KMAX) * N);
    for (int i = 0; i < N * KMAX; i++) w32[i] = sinf((float)i * 0.23f);
    for (int i = 0; i < KMAX; i++) x[i] = cosf((float)i * 0.17f) * (1.0f + (float)(i % 7));
    CUdeviceptr dx, dy;
    cr_assert_eq(gllm_cuda_alloc(&c, KMAX * 4, &dx), GLLM_OK);
    cr_assert_eq(gllm_cuda_alloc(&c, N * 4, &dy), GLLM_OK);
    gllm_cuda_upload(&c, dx, x, KMAX * 4);
    c.int8_gemv = 1;
    for (int ki = 0; ki < 3; ki++) {
        const int k = (int[]){12320, 32800, KMAX}[ki], int8 = k < KMAX;
        const size_t bytes = gllm_row_bytes(t, k) * N;
        CUdeviceptr dw; /* the matrix alone in its allocation: a copy past its end is a fault */
        cr_assert_eq(gllm_cuda_alloc(&c, bytes, &dw), GLLM_OK);
        gllm_quantize(t, w32, w, N, k);
        gllm_dequantize(t, w, deq, N, k);
        gllm_cuda_upload(&c, dw, w, bytes);
        if (int8) gllm_ref_round_int8(x, xq, k);
        cr_assert_eq(gllm_cuda_gemv(&c, t, dw, 0, dx, dy, N, k, 0, 0.0f, 0, 4), GLLM_OK, "k %d: %s", k, gllm_last_error());
        cr_assert_eq(gllm_cuda_download(&c, y, dy, N * 4), GLLM_OK, "%s", gllm_last_error());
        for (int j = 0; j < N; j++) {
            double ref = 0, mag = 0;
            for (int e = 0; e < k; e++) {
                const double xe = int8 ? xq[e] : x[e];
                ref += (double)deq[(size_t)j * k + e] * xe, mag += fabs((double)deq[(size_t)j * k + e] * xe);
            }
            cr_assert(fabs(y[j] - ref) <= 1e-5 * mag, "gemv q8_0, k %d (%s x) [%d]: %g vs %g", k, int8 ? "int8" : "f32", j, y[j], ref);
        }
        gllm_cuda_free(&c, dw);
    }
    gllm_cuda_free(&c, dx), gllm_cuda_free(&c, dy);
    free(w32), free(x), free(deq), free(xq), free(w);
    gllm_cuda_leave(&c);
    gllm_cuda_close(&c);
}

/* the tensor-core gemm over f16/bf16 weights of widths 1001 (rows too short and misaligned for
 * 16-byte loads, k ending inside a 32), 1016 (16-byte loads, then a short end) and 1088 (whole
 * steps of 64); x with a zero row (exactly zero out) and a row of values near 1e-30 (scaled up
 * before f16), against a double reference; bad arguments refused, empty shapes nothing to do */
Test(cuda, float_gemm_tc_any_width) {
    gllm_cuda c;
    if (gllm_cuda_open(&c, 0) != GLLM_OK) cr_skip_test("no GPU: %s", gllm_last_error());
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    cr_assert_eq(gllm_cuda_enter(&c), GLLM_OK);
    enum { M = 37, N = 70, K = 1088 };
    const int ks[3] = {1001, 1016, 1088};
    const gllm_dtype dts[2] = {GLLM_DTYPE_F16, GLLM_DTYPE_BF16};
    float *w32 = malloc((size_t)N * K * 4), *x = malloc((size_t)M * K * 4), *deq = malloc((size_t)N * K * 4), *y = malloc((size_t)M * N * 4);
    void *w = malloc((size_t)N * K * 2);
    CUdeviceptr dw, dx, dy, scratch;
    cr_assert_eq(gllm_cuda_alloc(&c, (size_t)M * K * 4, &dx), GLLM_OK);
    cr_assert_eq(gllm_cuda_alloc(&c, (size_t)M * N * 4, &dy), GLLM_OK);
    cr_assert_eq(gllm_cuda_alloc(&c, gllm_cuda_gemm_scratch(M, K), &scratch), GLLM_OK);
    /* NaN everywhere first: x's rounded rows must be padded with zeros, not left as found */
    cr_assert_eq(c.drv.cuMemsetD32Async(scratch, 0xffffffffu, gllm_cuda_gemm_scratch(M, K) / 4, c.stream), CUDA_SUCCESS);
    for (int i = 0; i < N * K; i++) w32[i] = sinf((float)i * 0.29f);
    for (int d = 0; d < 2; d++)
        for (int ki = 0; ki < 3; ki++) {
            const int k = ks[ki];
            for (int i = 0; i < M * k; i++) x[i] = i / k == 5 ? 0.0f : cosf((float)i * 0.13f) * (i / k == 6 ? 1e-30f : 1.0f);
            gllm_quantize(dts[d], w32, w, N, k);
            gllm_dequantize(dts[d], w, deq, N, k);
            cr_assert_eq(gllm_cuda_alloc(&c, gllm_row_bytes(dts[d], k) * N, &dw), GLLM_OK); /* ends where W ends */
            gllm_cuda_upload(&c, dw, w, gllm_row_bytes(dts[d], k) * N), gllm_cuda_upload(&c, dx, x, (size_t)M * k * 4);
            const gllm_cuda_mm mm = {dw, 0, dy, N};
            cr_assert_eq(gllm_cuda_gemm_tc(&c, dts[d], dx, M, k, scratch, &mm, 1), GLLM_OK, "%s", gllm_last_error());
            cr_assert_eq(gllm_cuda_download(&c, y, dy, (size_t)M * N * 4), GLLM_OK, "%s", gllm_last_error());
            const double tol = dts[d] == GLLM_DTYPE_BF16 ? 2e-3 : 5e-4; /* x rounded to 8 or 11 bits */
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double ref = 0, mag = 0;
                    for (int e = 0; e < k; e++) ref += (double)deq[j * k + e] * x[i * k + e], mag += fabs((double)deq[j * k + e] * x[i * k + e]);
                    cr_assert(fabs(y[i * N + j] - ref) <= tol * mag, "gemm_tc %s, k %d [%d][%d]: %g vs %g", gllm_dtype_name(dts[d]), k, i, j,
                              y[i * N + j], ref);
                }
            gllm_cuda_free(&c, dw);
        }
    /* refused: f32 weights, no scratch, a scratch off its 16-byte alignment */
    const gllm_cuda_mm mm = {dx, 0, dy, N};
    cr_assert_eq(gllm_cuda_gemm_tc(&c, GLLM_DTYPE_F32, dx, M, 64, scratch, &mm, 1), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_cuda_gemm_tc(&c, GLLM_DTYPE_F16, dx, M, 64, 0, &mm, 1), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_cuda_gemm_tc(&c, GLLM_DTYPE_F16, dx, M, 64, scratch + 2, &mm, 1), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "aligned"), "%s", gllm_last_error());
    /* k = 0 refused on either path; no rows, or a weight of no rows, is nothing to do */
    cr_assert_eq(gllm_cuda_gemm_tc(&c, GLLM_DTYPE_F16, dx, M, 0, scratch, &mm, 1), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_cuda_gemm(&c, GLLM_DTYPE_Q8_0, dx, 0, dx, dy, 3, N, 0, scratch), GLLM_E_INVALID_ARGUMENT);
    const gllm_cuda_mm none = {dx, 0, dy, 0};
    cr_assert_eq(gllm_cuda_gemm_tc(&c, GLLM_DTYPE_F16, dx, 0, 64, scratch, &mm, 1), GLLM_OK);
    cr_assert_eq(gllm_cuda_gemms(&c, GLLM_DTYPE_F16, dx, M, 64, scratch, &none, 1), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_cuda_gemms(&c, GLLM_DTYPE_F16, dx, 5, 64, 0, &none, 1), GLLM_OK, "%s", gllm_last_error());
    gllm_cuda_free(&c, dx), gllm_cuda_free(&c, dy), gllm_cuda_free(&c, scratch);
    free(w32), free(x), free(deq), free(y), free(w);
    gllm_cuda_leave(&c);
    gllm_cuda_close(&c);
}

/* freed page-locked blocks are handed out again, the smallest that fits; the ones past the
 * spares' count go back to the driver */
Test(cuda, pinned_blocks_are_reused) {
    gllm_cuda c;
    if (gllm_cuda_open(&c, 0) != GLLM_OK) cr_skip_test("no GPU: %s", gllm_last_error());
    cr_assert_eq(gllm_cuda_enter(&c), GLLM_OK);
    void *big, *small, *p[GLLM_CUDA_SPARES + 1];
    cr_assert_eq(gllm_cuda_host_alloc(&c, 1 << 20, &big), GLLM_OK);
    cr_assert_eq(gllm_cuda_host_alloc(&c, 1000, &small), GLLM_OK);
    cr_assert((uintptr_t)big % 64 == 0 && (uintptr_t)small % 64 == 0, "64-byte aligned");
    memset(big, 1, 1 << 20), memset(small, 2, 1000);
    gllm_cuda_host_free(&c, big), gllm_cuda_host_free(&c, small);
    void *q;
    cr_assert_eq(gllm_cuda_host_alloc(&c, 900, &q), GLLM_OK);
    cr_assert_eq(q, small, "the smallest spare that fits");
    cr_assert_eq(gllm_cuda_host_alloc(&c, 5000, &q), GLLM_OK);
    cr_assert_eq(q, big);
    cr_assert_eq(gllm_cuda_host_alloc(&c, 2 << 20, &q), GLLM_OK);
    cr_assert(q != big && q != small, "none fits: a new block");
    memset(q, 3, 2 << 20);
    gllm_cuda_host_free(&c, q), gllm_cuda_host_free(&c, big), gllm_cuda_host_free(&c, small);
    for (int i = 0; i < GLLM_CUDA_SPARES + 1; i++) cr_assert_eq(gllm_cuda_host_alloc(&c, 64, &p[i]), GLLM_OK);
    for (int i = 0; i < GLLM_CUDA_SPARES + 1; i++) gllm_cuda_host_free(&c, p[i]); /* the last one is not kept */
    int kept = 0;
    for (int i = 0; i < GLLM_CUDA_SPARES; i++) kept += c.spare[i].p != NULL;
    cr_assert_eq(kept, GLLM_CUDA_SPARES);
    gllm_cuda_leave(&c);
    gllm_cuda_close(&c); /* the spares go back to the driver (ASan: no leak) */
}

/* ---- the L3 generator on the GPU against the CPU backend (synthetic models) ---------------- */

/* store: the dtype the matrices are written in (f32: the twin of a t model, same values) */
static void write_model(const char *arch, gllm_dtype t, gllm_dtype store, char *path, size_t cap) {
    model_file f;
    synth_seed(11);
    build_as(&f, arch, t, store);
    snprintf(path, cap, "/tmp/gllm_cuda_%s_%s_%s_%d.gguf", arch, gllm_dtype_name(t), gllm_dtype_name(store), (int)getpid());
    cr_assert_eq(save(&f, path), 0, "%s", path);
}

/* a model of dtype t and its twin in f32 (the same values), written and opened */
typedef struct {
    char path[128], twin_path[128];
    gllm_model *m, *twin;
} twins;

static void twins_open(twins *w, const char *arch, gllm_dtype t) {
    write_model(arch, t, t, w->path, sizeof w->path);
    write_model(arch, t, GLLM_DTYPE_F32, w->twin_path, sizeof w->twin_path);
    cr_assert_eq(gllm_model_open(w->path, &w->m), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_model_open(w->twin_path, &w->twin), GLLM_OK, "%s", gllm_last_error());
}

/* an f16 llama of 400 positions (past one generator step of 256 rows) and its twin */
static void twins_open_long(twins *w) {
    const size_t ctx = CTX;
    CTX = 400;
    twins_open(w, "llama", GLLM_DTYPE_F16);
    CTX = ctx;
}

static void twins_close(twins *w) {
    gllm_model_close(w->m), gllm_model_close(w->twin);
    unlink(w->path), unlink(w->twin_path);
}

typedef struct {
    gllm_backend *b;
    gllm_generator *g;
    gllm_kv_cache *kv;
    int seq;
} side;

/* a backend, generator (steps of up to `step` tokens), cache of `pages` pages of 16 and one sequence */
static void side_open_sized(side *s, const char *backend, gllm_model *m, gllm_dtype kvt, size_t step, size_t pages) {
    cr_assert_eq(gllm_backend_open(backend, &s->b), GLLM_OK, "%s: %s", backend, gllm_last_error());
    cr_assert_eq(gllm_generator_upload(s->b, m, step, &s->g), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_kv_cache_alloc(s->g, pages, 16, kvt, &s->kv), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_seq_open(s->kv, pages * 16, &s->seq), GLLM_OK);
}

static void side_open(side *s, const char *backend, gllm_model *m, gllm_dtype kvt) { side_open_sized(s, backend, m, kvt, 64, 12); }

static void side_close(side *s) {
    gllm_kv_cache_free(s->kv), gllm_generator_free(s->g), gllm_backend_close(s->b);
}

/* max |a - b| over max |b|; infinite where either holds a NaN or infinity (fmax would skip it) */
static double rel_err(const float *a, const float *b, size_t n) {
    double d = 0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return INFINITY;
        d = fmax(d, fabs((double)a[i] - b[i])), m = fmax(m, fabs((double)b[i]));
    }
    return d / m;
}

static int has_gpu(void) {
    gllm_cuda_driver d;
    if (gllm_cuda_load(&d, NULL) != GLLM_OK) return 0;
    gllm_cuda_unload(&d);
    return 1;
}

/* one batch on both sides (the same sequence ids): every logits row of the GPU's within tol of
 * the CPU's */
static void batch_both(side *cpu, side *gpu, const gllm_batch_item *items, size_t n, double tol, const char *what) {
    gllm_logits *xc, *xg;
    cr_assert_eq(gllm_batch_forward(cpu->g, cpu->kv, items, n, &xc), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_batch_forward(gpu->g, gpu->kv, items, n, &xg), GLLM_OK, "%s: %s", what, gllm_last_error());
    float *lc = malloc(n * VOCAB * 4), *lg = malloc(n * VOCAB * 4);
    cr_assert_eq(gllm_logits_read(xc, lc, n * VOCAB), GLLM_OK);
    cr_assert_eq(gllm_logits_read(xg, lg, n * VOCAB), GLLM_OK, "%s", gllm_last_error());
    double worst = 0;
    for (size_t b = 0; b < n; b++) {
        const double e = rel_err(lg + b * VOCAB, lc + b * VOCAB, VOCAB);
        cr_assert(e <= tol, "%s: item %zu (sequence %d): error %.3g > %.3g", what, b, items[b].seq, e, tol);
        worst = fmax(worst, e);
    }
    cr_log_info("%s: largest error %.2g", what, worst);
    free(lc), free(lg);
}

/* prefill 37 tokens, then 24 greedy decode steps (eager once, then graph replays): every
 * logits row close to the CPU's on the f32 twin of the model (the same weight values: the
 * GPU widens block weights and keeps f32 activations, the CPU's int8 path would round them),
 * and the GPU's greedy id = argmax of its row */
/* arch's synthetic model in t and its f32 twin, a prompt of 37 tokens then greedy decode steps
 * (both sides taking the CPU's choice): the GPU's logits within the cache type's tolerance of
 * the CPU's each step, and its greedy choice the first of its largest logits; decode gemvs of
 * gemv_rows rows per warp */
static void generation_matches(const char *arch, gllm_dtype t, gllm_dtype kvt, const char *gemv_rows, int steps) {
    setenv("GLLM_CUDA_TENSOR_CORES", "0", 1); /* f32 activations, as the CPU twin */
    twins tw;
    twins_open(&tw, arch, t);
    side cpu, gpu;
    setenv("GLLM_CUDA_GEMV_ROWS", gemv_rows, 1);
    side_open(&cpu, "cpu", tw.twin, kvt), side_open(&gpu, "cuda:0", tw.m, kvt);
    unsetenv("GLLM_CUDA_GEMV_ROWS");
    const double tol = kvt == GLLM_DTYPE_F16 ? 5e-3 : 1e-4;
    int32_t tok[37];
    for (int i = 0; i < 37; i++) tok[i] = (int32_t)((i * 7 + 3) % VOCAB);
    float *lc = malloc(VOCAB * 4), *lg = malloc(VOCAB * 4);
    gllm_logits *xc, *xg;
    size_t n = 37;
    const gllm_sampling greedy = {.temperature = 0, .top_p = 1, .repetition_penalty = 1};
    for (int step = 0; step < steps; step++) {
        cr_assert_eq(gllm_generator_forward(cpu.g, cpu.kv, cpu.seq, tok, n, NULL, &xc), GLLM_OK);
        cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, gpu.seq, tok, n, NULL, &xg), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(gllm_logits_read(xc, lc, VOCAB), GLLM_OK);
        cr_assert_eq(gllm_logits_read(xg, lg, VOCAB), GLLM_OK, "%s", gllm_last_error());
        const double e = rel_err(lg, lc, VOCAB);
        cr_assert(e <= tol, "%s %s kv %s step %d: error %.3g > %.3g", arch, gllm_dtype_name(t), gllm_dtype_name(kvt), step, e, tol);
        int32_t idg, idc;
        cr_assert_eq(gllm_sample(gpu.g, xg, &greedy, NULL, 0, 0, &idg), GLLM_OK, "%s", gllm_last_error());
        size_t best = 0;
        for (size_t i = 1; i < VOCAB; i++) best = lg[i] > lg[best] ? i : best;
        cr_assert_eq(idg, (int32_t)best, "greedy on the GPU is the first of the largest");
        cr_assert_eq(gllm_sample(cpu.g, xc, &greedy, NULL, 0, 0, &idc), GLLM_OK);
        tok[0] = idc, n = 1; /* both continue with the CPU's choice */
    }
    free(lc), free(lg);
    side_close(&cpu), side_close(&gpu);
    twins_close(&tw);
}

Test(cuda, generator_matches_cpu) {
    if (!has_gpu()) cr_skip_test("no GPU");
    const char *archs[3] = {"llama", "qwen2", "qwen3"};
    const gllm_dtype dts[5] = {GLLM_DTYPE_F32, GLLM_DTYPE_BF16, GLLM_DTYPE_Q8_0, GLLM_DTYPE_Q4_0, GLLM_DTYPE_Q4_1};
    for (int a = 0; a < 3; a++) /* decode gemvs of 1, 2 and 4 rows per warp: each dtype takes all three over the archs */
        for (int d = 0; d < 5; d++)
            generation_matches(archs[a], dts[d], d % 2 ? GLLM_DTYPE_F16 : GLLM_DTYPE_F32, (const char *[]){"1", "2", "4"}[(a * 5 + d) % 3], 25);
}

/* RoPE on part of each head (rope.dimension_count below the head dim; the dims past it as they
 * are), in the prefill's RoPE kernel and the decode attention: interleaved pairs (llama) and
 * halves (qwen3, with its q/k norms) */
Test(cuda, partial_rotary_matches_cpu) {
    if (!has_gpu()) cr_skip_test("no GPU");
    const synth_key rot[] = {{"rope.dimension_count", 1, (double)(HD / 2 + 2)}, {NULL, 0, 0}}, *old = EXTRA_KEYS;
    EXTRA_KEYS = rot;
    generation_matches("llama", GLLM_DTYPE_F32, GLLM_DTYPE_F32, "1", 6);
    generation_matches("qwen3", GLLM_DTYPE_Q8_0, GLLM_DTYPE_F16, "2", 6);
    EXTRA_KEYS = old;
}

/* decode over x rounded to int8 (the default for block formats) against the CPU's int8 path on
 * the same model, one token at a time from the first (every matmul a gemv on both sides), then
 * a batch of the sequences (the GPU's batch gemv): both round x per 32 values alike, so the
 * logits agree to the sums' rounding, except where the two RMSNorms' sums (in other orders)
 * put a value on the other side of a rounding step: one code apart, which these small models
 * amplify to a few percent, in that step and the later ones (its K/V). So three sequences of 4
 * steps and the batch step per format: all within 5e-2, and two sequences of three within 1e-4
 * throughout (a wrong scale, offset or code layout misses every step) */
Test(cuda, int8_decode_matches_cpu) {
    if (!has_gpu()) cr_skip_test("no GPU");
    const gllm_dtype dts[3] = {GLLM_DTYPE_Q8_0, GLLM_DTYPE_Q4_0, GLLM_DTYPE_Q4_1}; /* GGUF's (q2_0, q1_0: the kernel test) */
    enum { SEQS = 3, STEPS = 4 };
    for (int d = 0; d < 3; d++) {
        char path[128];
        write_model(d % 2 ? "qwen2" : "llama", dts[d], dts[d], path, sizeof path);
        gllm_model *m;
        cr_assert_eq(gllm_model_open(path, &m), GLLM_OK, "%s", gllm_last_error());
        side cpu, gpu;
        setenv("GLLM_CUDA_GEMV_ROWS", (const char *[]){"1", "2", "4"}[d % 3], 1);
        side_open(&cpu, "cpu", m, GLLM_DTYPE_F32), side_open(&gpu, "cuda:0", m, GLLM_DTYPE_F32);
        unsetenv("GLLM_CUDA_GEMV_ROWS");
        float *lc = malloc(SEQS * VOCAB * 4), *lg = malloc(SEQS * VOCAB * 4);
        double worst = 0;
        int sc[SEQS], sg[SEQS], close[SEQS];
        for (int q = 0; q < SEQS; q++) {
            sc[q] = cpu.seq, sg[q] = gpu.seq, close[q] = 1;
            if (q) {
                cr_assert_eq(gllm_seq_open(cpu.kv, 64, &sc[q]), GLLM_OK);
                cr_assert_eq(gllm_seq_open(gpu.kv, 64, &sg[q]), GLLM_OK);
            }
            for (int step = 0; step < STEPS; step++) {
                const int32_t tok = (int32_t)(((q * STEPS + step) * 13 + 5) % VOCAB);
                gllm_logits *xc, *xg;
                cr_assert_eq(gllm_generator_forward(cpu.g, cpu.kv, sc[q], &tok, 1, NULL, &xc), GLLM_OK);
                cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, sg[q], &tok, 1, NULL, &xg), GLLM_OK, "%s", gllm_last_error());
                gllm_logits_read(xc, lc, VOCAB), gllm_logits_read(xg, lg, VOCAB);
                const double e = rel_err(lg, lc, VOCAB);
                cr_assert(e <= 5e-2, "%s sequence %d step %d: error %.3g", gllm_dtype_name(dts[d]), q, step, e);
                close[q] &= e <= 1e-4, worst = fmax(worst, e);
            }
        }
        const int32_t next[SEQS] = {3, 11, 19};
        gllm_batch_item bc[SEQS], bg[SEQS];
        for (int q = 0; q < SEQS; q++) bc[q] = (gllm_batch_item){sc[q], &next[q], 1}, bg[q] = (gllm_batch_item){sg[q], &next[q], 1};
        gllm_logits *xc, *xg;
        cr_assert_eq(gllm_batch_forward(cpu.g, cpu.kv, bc, SEQS, &xc), GLLM_OK);
        cr_assert_eq(gllm_batch_forward(gpu.g, gpu.kv, bg, SEQS, &xg), GLLM_OK, "%s", gllm_last_error());
        gllm_logits_read(xc, lc, SEQS * VOCAB), gllm_logits_read(xg, lg, SEQS * VOCAB);
        int n_close = 0;
        for (int q = 0; q < SEQS; q++) {
            const double e = rel_err(lg + q * VOCAB, lc + q * VOCAB, VOCAB);
            cr_assert(e <= 5e-2, "%s batch row %d: error %.3g", gllm_dtype_name(dts[d]), q, e);
            close[q] &= e <= 1e-4, worst = fmax(worst, e), n_close += close[q];
        }
        cr_log_info("int8 decode, %s: %d of %d sequences within 1e-4, largest error %.2g", gllm_dtype_name(dts[d]), n_close, SEQS, worst);
        cr_assert(n_close >= SEQS - 1, "%s: %d of %d sequences within 1e-4", gllm_dtype_name(dts[d]), n_close, SEQS);
        free(lc), free(lg);
        side_close(&cpu), side_close(&gpu);
        gllm_model_close(m), unlink(path);
    }
}

/* prefill on tensor cores (the default from 32 tokens on): activations rounded to f16 (bf16 for
 * bf16 weights), so logits within 1e-2 (2e-2) of the CPU's on the f32 twin, the prompt's and
 * those of decode steps over its K/V */
Test(cuda, prefill_on_tensor_cores_matches_cpu) {
    if (!has_gpu()) cr_skip_test("no GPU");
    setenv("GLLM_CUDA_INT8", "0", 1); /* decode steps over f32 x, as the twin's */
    const gllm_dtype dts[4] = {GLLM_DTYPE_F16, GLLM_DTYPE_BF16, GLLM_DTYPE_Q8_0, GLLM_DTYPE_Q4_1};
    for (int d = 0; d < 4; d++) {
        twins tw;
        twins_open(&tw, "qwen3", dts[d]);
        gllm_model *m = tw.m, *twin = tw.twin;
        side cpu, gpu;
        side_open(&cpu, "cpu", twin, GLLM_DTYPE_F32), side_open(&gpu, "cuda:0", m, GLLM_DTYPE_F32);
        const double tol = dts[d] == GLLM_DTYPE_BF16 ? 2e-2 : 1e-2;
        int32_t tok[61];
        for (int i = 0; i < 61; i++) tok[i] = (int32_t)((i * 5 + 1) % VOCAB);
        float *lc = malloc(VOCAB * 4), *lg = malloc(VOCAB * 4);
        gllm_logits *xc, *xg;
        size_t n = 61;
        for (int step = 0; step < 4; step++, n = 1) {
            cr_assert_eq(gllm_generator_forward(cpu.g, cpu.kv, cpu.seq, tok, n, NULL, &xc), GLLM_OK);
            cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, gpu.seq, tok, n, NULL, &xg), GLLM_OK, "%s", gllm_last_error());
            gllm_logits_read(xc, lc, VOCAB), gllm_logits_read(xg, lg, VOCAB);
            const double e = rel_err(lg, lc, VOCAB);
            cr_log_info("tensor cores, %s step %d: error %.2g", gllm_dtype_name(dts[d]), step, e);
            cr_assert(e <= tol, "%s step %d: error %.3g", gllm_dtype_name(dts[d]), step, e);
            tok[0] = (int32_t)((step * 7 + 3) % VOCAB);
        }
        free(lc), free(lg);
        side_close(&cpu), side_close(&gpu);
        twins_close(&tw);
    }
}

/* prefill attention on tensor cores (f16 and bf16 caches, from 32 rows): a 70-row prompt (two
 * whole blocks of 32 rows and a tail), a 45-row chunk after it (keys from slot 70, not a tile
 * boundary), then decode steps, against the CPU with the same cache dtype on the f32 twin; head
 * dims 16 and 64, GQA groups of 2 and 4 */
Test(cuda, prefill_attention_on_tensor_cores_matches_cpu) {
    if (!has_gpu()) cr_skip_test("no GPU");
    setenv("GLLM_CUDA_INT8", "0", 1); /* decode steps over f32 x, as the twin's */
    const size_t shapes[2][3] = {{4, 2, 16}, {4, 1, 64}}; /* heads, KV heads, head dim */
    const gllm_dtype kvts[2] = {GLLM_DTYPE_F16, GLLM_DTYPE_BF16};
    CTX = 160;
    int32_t tok[70];
    for (int i = 0; i < 70; i++) tok[i] = (int32_t)((i * 17 + 3) % VOCAB);
    for (int c = 0; c < 2; c++)
        for (int d = 0; d < 2; d++) {
            NH = shapes[c][0], NKV = shapes[c][1], HD = shapes[c][2], DIM = NH * HD;
            twins tw;
            twins_open(&tw, "llama", GLLM_DTYPE_Q8_0);
            side cpu, gpu;
            side_open_sized(&cpu, "cpu", tw.twin, kvts[d], 64, 24), side_open_sized(&gpu, "cuda:0", tw.m, kvts[d], 64, 24);
            const double tol = kvts[d] == GLLM_DTYPE_BF16 ? 3e-2 : 1e-2;
            float *lc = malloc(VOCAB * 4), *lg = malloc(VOCAB * 4);
            const size_t lens[4] = {70, 45, 1, 1};
            for (int step = 0; step < 4; step++) {
                gllm_logits *xc, *xg;
                cr_assert_eq(gllm_generator_forward(cpu.g, cpu.kv, cpu.seq, tok + step, lens[step], NULL, &xc), GLLM_OK);
                cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, gpu.seq, tok + step, lens[step], NULL, &xg), GLLM_OK, "%s",
                             gllm_last_error());
                gllm_logits_read(xc, lc, VOCAB), gllm_logits_read(xg, lg, VOCAB);
                const double e = rel_err(lg, lc, VOCAB);
                cr_log_info("head dim %zu, kv %s, step %d: error %.2g", HD, gllm_dtype_name(kvts[d]), step, e);
                cr_assert(e <= tol, "head dim %zu, kv %s, step %d: error %.3g", HD, gllm_dtype_name(kvts[d]), step, e);
            }
            /* batches: two new sequences' prompts (40 rows: a tile and a tail; 5 rows: CUDA cores) beside
             * a decode row, then a 33-row chunk after a prefix of 40 (not a tile boundary, not the
             * batch's first row) beside two decode rows, then decode rows of all three */
            int a, b, ga, gb;
            cr_assert_eq(gllm_seq_open(cpu.kv, 96, &a), GLLM_OK);
            cr_assert_eq(gllm_seq_open(cpu.kv, 96, &b), GLLM_OK);
            cr_assert_eq(gllm_seq_open(gpu.kv, 96, &ga), GLLM_OK);
            cr_assert_eq(gllm_seq_open(gpu.kv, 96, &gb), GLLM_OK);
            cr_assert(a == ga && b == gb, "both sides number their sequences alike");
            const gllm_batch_item b1[3] = {{a, tok, 40}, {b, tok + 3, 5}, {cpu.seq, tok + 9, 1}};
            const gllm_batch_item b2[3] = {{cpu.seq, tok + 10, 1}, {a, tok + 20, 33}, {b, tok + 30, 1}};
            const gllm_batch_item b3[3] = {{a, tok + 1, 1}, {b, tok + 2, 1}, {cpu.seq, tok + 4, 1}};
            char what[96];
            snprintf(what, sizeof what, "head dim %zu, kv %s, batch", HD, gllm_dtype_name(kvts[d]));
            batch_both(&cpu, &gpu, b1, 3, tol, what), batch_both(&cpu, &gpu, b2, 3, tol, what), batch_both(&cpu, &gpu, b3, 3, tol, what);
            free(lc), free(lg);
            side_close(&cpu), side_close(&gpu);
            twins_close(&tw);
        }
}

/* a long context: 1000 prefilled tokens (prefill attention over many pages), then decode steps
 * whose keys spread over every split of the decode attention */
Test(cuda, long_context_matches_cpu) {
    if (!has_gpu()) cr_skip_test("no GPU");
    setenv("GLLM_CUDA_TENSOR_CORES", "0", 1); /* f32 activations, as the CPU twin */
    CTX = 1100;
    twins tw;
    twins_open(&tw, "qwen2", GLLM_DTYPE_Q8_0);
    gllm_model *m = tw.m, *twin = tw.twin;
    side cpu, gpu;
    side_open_sized(&cpu, "cpu", twin, GLLM_DTYPE_F32, 1024, 80), side_open_sized(&gpu, "cuda:0", m, GLLM_DTYPE_F32, 1024, 80);
    int32_t *tok = malloc(1000 * sizeof(int32_t));
    for (int i = 0; i < 1000; i++) tok[i] = (int32_t)((i * 13 + 5) % VOCAB);
    float *lc = malloc(VOCAB * 4), *lg = malloc(VOCAB * 4);
    gllm_logits *xc, *xg;
    size_t n = 1000;
    for (int step = 0; step < 6; step++) {
        cr_assert_eq(gllm_generator_forward(cpu.g, cpu.kv, cpu.seq, tok, n, NULL, &xc), GLLM_OK);
        cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, gpu.seq, tok, n, NULL, &xg), GLLM_OK, "%s", gllm_last_error());
        gllm_logits_read(xc, lc, VOCAB), gllm_logits_read(xg, lg, VOCAB);
        const double e = rel_err(lg, lc, VOCAB);
        cr_assert(e <= 1e-4, "step %d (context %d): error %.3g", step, 1000 + step, e);
        tok[0] = (int32_t)((step * 3 + 1) % VOCAB), n = 1;
    }
    free(tok), free(lc), free(lg);
    side_close(&cpu), side_close(&gpu);
    twins_close(&tw);
}

/* the decode graph replays exactly what the eager launches compute; batch rows = each alone */
Test(cuda, graph_replay_equals_eager_and_batch_equals_alone) {
    if (!has_gpu()) cr_skip_test("no GPU");
    setenv("GLLM_CUDA_INT8", "0", 1); /* a row alone and in a batch both over f32 x */
    char path[128];
    write_model("llama", GLLM_DTYPE_Q4_0, GLLM_DTYPE_Q4_0, path, sizeof path);
    gllm_model *m;
    cr_assert_eq(gllm_model_open(path, &m), GLLM_OK);
    side graph, eager;
    setenv("GLLM_CUDA_DEPENDENT_LAUNCH", "1", 1); /* the graph side: on sm_90 kernels launched as dependents */
    side_open(&graph, "cuda:0", m, GLLM_DTYPE_F16);
    setenv("GLLM_CUDA_GRAPHS", "0", 1); /* eager, each kernel after the one before */
    setenv("GLLM_CUDA_DEPENDENT_LAUNCH", "0", 1);
    side_open(&eager, "cuda:0", m, GLLM_DTYPE_F16);
    unsetenv("GLLM_CUDA_GRAPHS"), unsetenv("GLLM_CUDA_DEPENDENT_LAUNCH");
    int32_t tok[5] = {1, 2, 3, 4, 5};
    float *a = malloc(VOCAB * 4), *b2 = malloc(VOCAB * 4);
    gllm_logits *la, *lb;
    size_t n = 5;
    for (int step = 0; step < 10; step++) {
        cr_assert_eq(gllm_generator_forward(graph.g, graph.kv, graph.seq, tok, n, NULL, &la), GLLM_OK);
        cr_assert_eq(gllm_generator_forward(eager.g, eager.kv, eager.seq, tok, n, NULL, &lb), GLLM_OK);
        gllm_logits_read(la, a, VOCAB), gllm_logits_read(lb, b2, VOCAB);
        cr_assert(!memcmp(a, b2, VOCAB * 4), "step %d: graph replay (dependent launches) differs from eager launches in order", step);
        tok[0] = (int32_t)((step * 5 + 1) % VOCAB), n = 1;
    }
    /* a batch of two sequences on the graph side: each row equals that sequence run alone */
    int s2;
    cr_assert_eq(gllm_seq_open(graph.kv, 96, &s2), GLLM_OK);
    const int32_t p2[3] = {7, 8, 9};
    cr_assert_eq(gllm_generator_forward(graph.g, graph.kv, s2, p2, 3, NULL, &la), GLLM_OK);
    const int32_t t1 = 11, t2 = 12;
    const gllm_batch_item items[2] = {{graph.seq, &t1, 1}, {s2, &t2, 1}};
    cr_assert_eq(gllm_batch_forward(graph.g, graph.kv, items, 2, &la), GLLM_OK, "%s", gllm_last_error());
    float *rows = malloc(2 * VOCAB * 4);
    cr_assert_eq(gllm_logits_read(la, rows, 2 * VOCAB), GLLM_OK);
    int e2;
    cr_assert_eq(gllm_seq_open(eager.kv, 96, &e2), GLLM_OK);
    cr_assert_eq(gllm_generator_forward(eager.g, eager.kv, e2, p2, 3, NULL, &lb), GLLM_OK);
    cr_assert_eq(gllm_generator_forward(eager.g, eager.kv, eager.seq, &t1, 1, NULL, &lb), GLLM_OK);
    gllm_logits_read(lb, b2, VOCAB);
    cr_assert(!memcmp(rows, b2, VOCAB * 4), "batch row 0 = alone");
    cr_assert_eq(gllm_generator_forward(eager.g, eager.kv, e2, &t2, 1, NULL, &lb), GLLM_OK);
    gllm_logits_read(lb, b2, VOCAB);
    cr_assert(!memcmp(rows + VOCAB, b2, VOCAB * 4), "batch row 1 = alone");
    free(a), free(b2), free(rows);
    side_close(&graph), side_close(&eager);
    gllm_model_close(m);
    unlink(path);
}

/* a decode batch of 33 sequences (33 rows: its gemms on tensor cores, x rounded into the
 * model's scratch) captured as a graph and replayed equals eager launches, bit for bit */
Test(cuda, wide_decode_batch_graph_equals_eager) {
    if (!has_gpu()) cr_skip_test("no GPU");
    enum { SEQS = 33 };
    char path[128];
    write_model("llama", GLLM_DTYPE_Q4_0, GLLM_DTYPE_Q4_0, path, sizeof path);
    gllm_model *m;
    cr_assert_eq(gllm_model_open(path, &m), GLLM_OK);
    side graph, eager;
    side_open_sized(&graph, "cuda:0", m, GLLM_DTYPE_F16, 128, 2 * SEQS);
    setenv("GLLM_CUDA_GRAPHS", "0", 1);
    side_open_sized(&eager, "cuda:0", m, GLLM_DTYPE_F16, 128, 2 * SEQS);
    unsetenv("GLLM_CUDA_GRAPHS");
    int32_t tok[2 * SEQS];
    gllm_batch_item items[SEQS];
    for (int i = 0; i < SEQS; i++) {
        int a = graph.seq, b = eager.seq;
        if (i) {
            cr_assert_eq(gllm_seq_open(graph.kv, 16, &a), GLLM_OK);
            cr_assert_eq(gllm_seq_open(eager.kv, 16, &b), GLLM_OK);
        }
        cr_assert_eq(a, b, "both sides number their sequences alike");
        items[i] = (gllm_batch_item){a, tok + 2 * i, 2};
    }
    float *a = malloc((size_t)SEQS * VOCAB * 4), *b = malloc((size_t)SEQS * VOCAB * 4);
    for (int step = 0; step < 4; step++) { /* two tokens each (66 rows), then decode: eager, captured, replayed */
        for (int i = 0; i < 2 * SEQS; i++) tok[i] = (int32_t)((i * 7 + step * 13 + 1) % VOCAB);
        gllm_logits *la, *lb;
        cr_assert_eq(gllm_batch_forward(graph.g, graph.kv, items, SEQS, &la), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(gllm_batch_forward(eager.g, eager.kv, items, SEQS, &lb), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(gllm_logits_read(la, a, (size_t)SEQS * VOCAB), GLLM_OK);
        cr_assert_eq(gllm_logits_read(lb, b, (size_t)SEQS * VOCAB), GLLM_OK);
        cr_assert(!memcmp(a, b, (size_t)SEQS * VOCAB * 4), "step %d: the graph's batch differs from eager launches", step);
        for (int i = 0; i < SEQS; i++) items[i].n = 1;
    }
    free(a), free(b);
    side_close(&graph), side_close(&eager);
    gllm_model_close(m);
    unlink(path);
}

/* a batch runs as one forward over all its rows: prefill and decode items mixed, then decode
 * steps of every sequence (a graph per row count, replayed) and of some, every row against the
 * CPU's; items past the generator's rows (256) split into several forwards. GQA groups of 12
 * (two blocks of heads: 8 + 4), 1, and 8 with head dim 144 (the wide kernel: two blocks of 4;
 * Qwen3's q/k norms and NeoX pairs 72 dims apart, in other lanes). */
Test(cuda, batch_matches_cpu) {
    if (!has_gpu()) cr_skip_test("no GPU");
    setenv("GLLM_CUDA_TENSOR_CORES", "0", 1); /* f32 activations, as the CPU twin */
    const size_t heads[3][3] = {{12, 1, 16}, {4, 4, 16}, {8, 1, 144}}; /* heads, KV heads, head dim */
    CTX = 320;
    int32_t *tok = malloc(300 * sizeof(int32_t));
    for (int i = 0; i < 300; i++) tok[i] = (int32_t)((i * 11 + 2) % VOCAB);
    for (int c = 0; c < 3; c++) {
        NH = heads[c][0], NKV = heads[c][1], HD = heads[c][2], DIM = NH * HD;
        twins tw;
        twins_open(&tw, c == 2 ? "qwen3" : "llama", GLLM_DTYPE_Q8_0);
        gllm_model *m = tw.m, *twin = tw.twin;
        side cpu, gpu;
        side_open_sized(&cpu, "cpu", twin, GLLM_DTYPE_F32, 64, 64), side_open_sized(&gpu, "cuda:0", m, GLLM_DTYPE_F32, 64, 64);
        int q[3] = {cpu.seq, 0, 0}, g1, g2;
        cr_assert_eq(gllm_seq_open(cpu.kv, 320, &q[1]), GLLM_OK);
        cr_assert_eq(gllm_seq_open(cpu.kv, 320, &q[2]), GLLM_OK);
        cr_assert_eq(gllm_seq_open(gpu.kv, 320, &g1), GLLM_OK);
        cr_assert_eq(gllm_seq_open(gpu.kv, 320, &g2), GLLM_OK);
        cr_assert(gpu.seq == q[0] && g1 == q[1] && g2 == q[2], "both sides number their sequences alike");
        char what[64];
        snprintf(what, sizeof what, "%zu heads / %zu KV heads, mixed", NH, NKV);
        const gllm_batch_item mixed[3] = {{q[0], tok, 9}, {q[1], tok + 20, 1}, {q[2], tok + 40, 4}};
        batch_both(&cpu, &gpu, mixed, 3, 1e-4, what);
        for (int step = 0; step < 8; step++) { /* all three (eager, captured, replays), then two */
            const gllm_batch_item dec[3] = {{q[0], tok + step, 1}, {q[1], tok + step + 1, 1}, {q[2], tok + 3, 1}};
            const gllm_batch_item two[2] = {dec[2], dec[0]}; /* later steps: two of them, the other way round */
            snprintf(what, sizeof what, "%zu heads / %zu KV heads, decode %d", NH, NKV, step);
            batch_both(&cpu, &gpu, step < 5 ? dec : two, step < 5 ? 3 : 2, 1e-4, what);
        }
        snprintf(what, sizeof what, "%zu heads / %zu KV heads, 271 rows", NH, NKV);
        const gllm_batch_item big[3] = {{q[1], tok, 250}, {q[0], tok + 50, 20}, {q[2], tok + 7, 1}};
        if (c == 0) batch_both(&cpu, &gpu, big, 3, 1e-4, what); /* the split is the same for every shape */
        snprintf(what, sizeof what, "%zu heads / %zu KV heads, decode after", NH, NKV);
        const gllm_batch_item after[3] = {{q[0], tok + 5, 1}, {q[1], tok + 6, 1}, {q[2], tok + 8, 1}};
        batch_both(&cpu, &gpu, after, 3, 1e-4, what);
        side_close(&cpu), side_close(&gpu);
        twins_close(&tw);
    }
    free(tok);
}

/* memory pressure on CUDA: the pool's used pages, or the device's memory in use (the pool's free
 * pages counted as free) when that is larger: 80 % of the free memory taken elsewhere shows, and
 * giving it back restores the pool's figure. The emulator's device is 256 MiB here. */
Test(cuda, memory_pressure_counts_the_device) {
    if (!has_gpu()) cr_skip_test("no GPU");
    setenv("GLLM_EMU_MEMORY", "268435456", 1); /* a real driver ignores it */
    char path[128];
    write_model("llama", GLLM_DTYPE_Q8_0, GLLM_DTYPE_Q8_0, path, sizeof path);
    gllm_model *m;
    cr_assert_eq(gllm_model_open(path, &m), GLLM_OK);
    side gpu;
    side_open(&gpu, "cuda:0", m, GLLM_DTYPE_F16);
    int32_t tok[40];
    for (int i = 0; i < 40; i++) tok[i] = i % (int)VOCAB;
    gllm_logits *l;
    cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, gpu.seq, tok, 40, NULL, &l), GLLM_OK, "%s", gllm_last_error());
    float before, during, after;
    cr_assert_eq(gllm_memory_pressure(gpu.kv, &before), GLLM_OK, "%s", gllm_last_error());
    cr_assert(before >= 3.0f / 12 - 1e-6f, "the pool's 3 of 12 pages at least: %g", before);
    gllm_cuda c;
    cr_assert_eq(gllm_cuda_open(&c, 0), GLLM_OK);
    cr_assert_eq(gllm_cuda_enter(&c), GLLM_OK);
    size_t free_bytes, total;
    cr_assert_eq(c.drv.cuMemGetInfo(&free_bytes, &total), CUDA_SUCCESS);
    CUdeviceptr big;
    cr_assert_eq(gllm_cuda_alloc(&c, free_bytes / 10 * 8, &big), GLLM_OK, "%s", gllm_last_error());
    gllm_cuda_leave(&c);
    cr_assert_eq(gllm_memory_pressure(gpu.kv, &during), GLLM_OK);
    cr_assert(during >= 0.8f * (float)free_bytes / (float)total - 0.01f && during <= 1.0f, "pressure %g with 80%% of %zu free bytes taken",
              during, free_bytes);
    cr_assert_eq(gllm_cuda_enter(&c), GLLM_OK);
    gllm_cuda_free(&c, big);
    gllm_cuda_leave(&c);
    gllm_cuda_close(&c);
    cr_assert_eq(gllm_memory_pressure(gpu.kv, &after), GLLM_OK);
    cr_assert(fabsf(after - before) < 1e-3f, "pressure back to %g, not %g", before, after);
    side_close(&gpu);
    gllm_model_close(m);
    unlink(path);
}

/* the L2 blocks on the GPU (the embedding, one layer's attention and feed-forward, the head)
 * against the CPU's on the f32 twin, at 1 and 13 rows, each fed the CPU's input; bad input refused */
Test(cuda, blocks_match_cpu) {
    if (!has_gpu()) cr_skip_test("no GPU");
    setenv("GLLM_CUDA_TENSOR_CORES", "0", 1); /* f32 activations, as the CPU twin */
    twins tw;
    twins_open(&tw, "qwen2", GLLM_DTYPE_Q4_1);
    gllm_model *m = tw.m, *twin = tw.twin;
    side cpu, gpu;
    side_open(&cpu, "cpu", twin, GLLM_DTYPE_F32), side_open(&gpu, "cuda:0", m, GLLM_DTYPE_F32);
    enum { N = 13 };
    int32_t tok[N];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)((i * 9 + 4) % VOCAB);
    const size_t wide = DIM > VOCAB ? DIM : VOCAB; /* a row of the residual stream or of logits */
    float *xc = malloc(N * DIM * 4), *xg = malloc(N * DIM * 4), *yc = malloc(N * wide * 4), *yg = malloc(N * wide * 4);
    /* the GPU's attention block before its embedding: it makes its own RoPE tables */
    for (size_t n = 1; n <= N; n += N - 1) {
        cr_assert_eq(gllm_embed_block(cpu.g, tok, n, xc), GLLM_OK);
        cr_assert_eq(gllm_attention_block(cpu.g, 1, xc, n, yc), GLLM_OK);
        cr_assert_eq(gllm_attention_block(gpu.g, 1, xc, n, yg), GLLM_OK, "%s", gllm_last_error());
        cr_assert(rel_err(yg, yc, n * DIM) <= 1e-4, "attention block, %zu rows: error %.3g", n, rel_err(yg, yc, n * DIM));
        cr_assert_eq(gllm_embed_block(gpu.g, tok, n, xg), GLLM_OK, "%s", gllm_last_error());
        cr_assert(rel_err(xg, xc, n * DIM) <= 1e-6, "embedding, %zu rows: error %.3g", n, rel_err(xg, xc, n * DIM));
        cr_assert_eq(gllm_ffn_block(cpu.g, 0, xc, n, yc), GLLM_OK);
        cr_assert_eq(gllm_ffn_block(gpu.g, 0, xc, n, yg), GLLM_OK, "%s", gllm_last_error());
        cr_assert(rel_err(yg, yc, n * DIM) <= 1e-4, "feed-forward block, %zu rows: error %.3g", n, rel_err(yg, yc, n * DIM));
        cr_assert_eq(gllm_head_block(cpu.g, xc, n, yc), GLLM_OK);
        cr_assert_eq(gllm_head_block(gpu.g, xc, n, yg), GLLM_OK, "%s", gllm_last_error());
        cr_assert(rel_err(yg, yc, n * VOCAB) <= 1e-4, "head, %zu rows: error %.3g", n, rel_err(yg, yc, n * VOCAB));
    }
    const int32_t bad = (int32_t)VOCAB;
    cr_assert_eq(gllm_embed_block(gpu.g, &bad, 1, xg), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_attention_block(gpu.g, LAYERS, xc, 1, yg), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_ffn_block(gpu.g, 0, xc, 0, yg), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_attention_block(gpu.g, 0, xc, CTX + 1, yg), GLLM_E_INVALID_ARGUMENT);
    free(xc), free(xg), free(yc), free(yg);
    side_close(&cpu), side_close(&gpu);
    twins_close(&tw);
}

/* UMA: weights the device reads in place (forced here with GLLM_CUDA_MAP=1, which maps them over
 * PCIe on a discrete card) give the same bits as weights copied to the device */
Test(cuda, mapped_weights) {
    if (!has_gpu()) cr_skip_test("no GPU");
    char path[128];
    write_model("llama", GLLM_DTYPE_Q4_0, GLLM_DTYPE_Q4_0, path, sizeof path);
    gllm_model *m;
    cr_assert_eq(gllm_model_open(path, &m), GLLM_OK);
    side mapped, copied;
    setenv("GLLM_CUDA_MAP", "1", 1);
    side_open(&mapped, "cuda:0", m, GLLM_DTYPE_F16);
    setenv("GLLM_CUDA_MAP", "0", 1);
    side_open(&copied, "cuda:0", m, GLLM_DTYPE_F16);
    unsetenv("GLLM_CUDA_MAP");
    gllm_backend_info im, ic;
    gllm_backend_get_info(mapped.b, &im), gllm_backend_get_info(copied.b, &ic);
    cr_assert(im.uma && !ic.uma, "info says which one maps");
    int32_t tok[9];
    for (int i = 0; i < 9; i++) tok[i] = (int32_t)((i * 11 + 2) % VOCAB);
    float *x = malloc(VOCAB * 4), *y = malloc(VOCAB * 4);
    gllm_logits *l;
    for (int step = 0; step < 4; step++) { /* a prefill, then decode steps (eager, then the graph) */
        const size_t n = step ? 1 : 9;
        cr_assert_eq(gllm_generator_forward(mapped.g, mapped.kv, mapped.seq, tok, n, NULL, &l), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(gllm_logits_read(l, x, VOCAB), GLLM_OK);
        cr_assert_eq(gllm_generator_forward(copied.g, copied.kv, copied.seq, tok, n, NULL, &l), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(gllm_logits_read(l, y, VOCAB), GLLM_OK);
        cr_assert(!memcmp(x, y, VOCAB * 4), "step %d: mapped and copied weights differ", step);
    }
    free(x), free(y);
    side_close(&mapped), side_close(&copied);
    gllm_model_close(m);
    unlink(path);
}

/* KV swap on the GPU: copies on the copy stream, refused while warm, protected or full; a
 * round trip through other pages computes the same bits as a twin that never left */
Test(cuda, swap_round_trip) {
    if (!has_gpu()) cr_skip_test("no GPU");
    char path[128];
    write_model("llama", GLLM_DTYPE_F16, GLLM_DTYPE_F16, path, sizeof path);
    gllm_model *m;
    cr_assert_eq(gllm_model_open(path, &m), GLLM_OK);
    side s;
    side_open_sized(&s, "cuda:0", m, GLLM_DTYPE_F16, 64, 6); /* 6 pages of 16 */
    int32_t p1[20], p2[20]; /* c and d hold other K/V than a, so a copy racing a step shows in a's bits */
    for (int i = 0; i < 20; i++) p1[i] = (int32_t)((i * 5 + 1) % VOCAB), p2[i] = (int32_t)((i * 3 + 2) % VOCAB);
    const int a = s.seq;
    int twin, c, d;
    cr_assert_eq(gllm_seq_open(s.kv, 64, &twin), GLLM_OK);
    cr_assert_eq(gllm_seq_open(s.kv, 64, &c), GLLM_OK);
    gllm_logits *l;
    cr_assert_eq(gllm_generator_forward(s.g, s.kv, a, p1, 20, NULL, &l), GLLM_OK, "%s", gllm_last_error()); /* 2 pages */
    cr_assert_eq(gllm_generator_forward(s.g, s.kv, twin, p1, 20, NULL, &l), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_generator_forward(s.g, s.kv, c, p2, 5, NULL, &l), GLLM_OK, "%s", gllm_last_error()); /* 5 of 6 used */
    cr_assert_eq(gllm_swap_out_pages(s.kv, c), GLLM_E_INVALID_ARGUMENT, "a warm sequence is refused");
    cr_assert_eq(gllm_seq_protect(s.kv, a, 1), GLLM_OK);
    cr_assert_eq(gllm_swap_out_pages(s.kv, a), GLLM_E_INVALID_ARGUMENT, "a protected sequence is refused");
    cr_assert_eq(gllm_seq_protect(s.kv, a, 0), GLLM_OK);
    cr_assert_eq(gllm_swap_out_pages(s.kv, a), GLLM_OK, "%s", gllm_last_error());
    gllm_page_info info[16];
    size_t n;
    cr_assert_eq(gllm_page_states(s.kv, info, 16, &n), GLLM_OK);
    cr_assert_eq(n, 8u, "6 pool pages and 2 swapped");
    cr_assert_eq(info[7].state, GLLM_PAGE_SWAPPED);
    const int32_t next = 7;
    cr_assert_eq(gllm_generator_forward(s.g, s.kv, a, &next, 1, NULL, &l), GLLM_E_INVALID_ARGUMENT, "a swapped sequence cannot run");
    /* d takes a's old pages (the step waits for the swap-out copies), which leaves one page free */
    cr_assert_eq(gllm_seq_open(s.kv, 64, &d), GLLM_OK);
    cr_assert_eq(gllm_generator_forward(s.g, s.kv, d, p2, 20, NULL, &l), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_swap_in_pages(s.kv, a), GLLM_E_OUT_OF_MEMORY, "no room: a stays swapped out");
    cr_assert_eq(gllm_seq_close(s.kv, c), GLLM_OK); /* its page: the swap-in copies go after c's last step */
    cr_assert_eq(gllm_swap_in_pages(s.kv, a), GLLM_OK, "%s", gllm_last_error());
    float *x = malloc(VOCAB * 4), *y = malloc(VOCAB * 4);
    for (int step = 0; step < 3; step++) { /* eager, then the graph */
        cr_assert_eq(gllm_generator_forward(s.g, s.kv, a, &next, 1, NULL, &l), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(gllm_logits_read(l, x, VOCAB), GLLM_OK);
        cr_assert_eq(gllm_generator_forward(s.g, s.kv, twin, &next, 1, NULL, &l), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(gllm_logits_read(l, y, VOCAB), GLLM_OK);
        cr_assert(!memcmp(x, y, VOCAB * 4), "step %d: after a swap round trip the sequence computes the same bits", step);
    }
    /* swapped out, then closed while swapped (ASan and compute-sanitizer watch the frees) */
    cr_assert_eq(gllm_swap_out_pages(s.kv, d), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_seq_close(s.kv, d), GLLM_OK);
    free(x), free(y);
    side_close(&s);
    gllm_model_close(m);
    unlink(path);
}

/* a tree step (speculative decoding) on the GPU against the CPU: after a prefill, a tree of 7
 * tokens (two branches, explicit positions), every token's logits; then an accepted path and
 * decode steps over the compacted cache */
Test(cuda, tree_step_and_accept_match_cpu) {
    if (!has_gpu()) cr_skip_test("no GPU");
    setenv("GLLM_CUDA_INT8", "0", 1); /* decode steps over f32 x, as the twin's */
    twins tw;
    twins_open(&tw, "qwen2", GLLM_DTYPE_Q4_0);
    gllm_model *m = tw.m, *twin = tw.twin;
    for (int kvi = 0; kvi < 2; kvi++) {
        const gllm_dtype kvt = kvi ? GLLM_DTYPE_F16 : GLLM_DTYPE_F32;
        const double tol = kvi ? 5e-3 : 1e-4;
        side cpu, gpu;
        side_open(&cpu, "cpu", twin, kvt), side_open(&gpu, "cuda:0", m, kvt);
        int32_t tok[19];
        for (int i = 0; i < 19; i++) tok[i] = (int32_t)((i * 11 + 2) % VOCAB);
        gllm_logits *xc, *xg;
        cr_assert_eq(gllm_generator_forward(cpu.g, cpu.kv, cpu.seq, tok, 19, NULL, &xc), GLLM_OK);
        cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, gpu.seq, tok, 19, NULL, &xg), GLLM_OK, "%s", gllm_last_error());
        /* 0 -> 1 -> 3 -> 5 and 0 -> 2 -> 4, and 6 a second root; positions by depth */
        const int32_t parent[7] = {-1, 0, 0, 1, 2, 3, -1}, position[7] = {19, 20, 20, 21, 21, 22, 19};
        const int32_t draft[7] = {5, 9, 14, 3, 27, 30, 8};
        const gllm_topology topo = {parent, position};
        float *lc = malloc(7 * VOCAB * 4), *lg = malloc(7 * VOCAB * 4);
        cr_assert_eq(gllm_generator_forward(cpu.g, cpu.kv, cpu.seq, draft, 7, &topo, &xc), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, gpu.seq, draft, 7, &topo, &xg), GLLM_OK, "%s", gllm_last_error());
        size_t rows, vocab;
        cr_assert_eq(gllm_logits_shape(xg, &rows, &vocab), GLLM_OK);
        cr_assert_eq(rows, 7u, "a tree step: every token's row");
        cr_assert_eq(gllm_logits_read(xc, lc, 7 * VOCAB), GLLM_OK);
        cr_assert_eq(gllm_logits_read(xg, lg, 7 * VOCAB), GLLM_OK, "%s", gllm_last_error());
        for (int r = 0; r < 7; r++) {
            const double e = rel_err(lg + r * VOCAB, lc + r * VOCAB, VOCAB);
            cr_assert(e <= tol, "kv %s tree token %d: error %.3g", gllm_dtype_name(kvt), r, e);
        }
        const uint32_t accepted[3] = {0, 1, 3}; /* the first branch, three deep */
        cr_assert_eq(gllm_seq_accept(cpu.kv, cpu.seq, 19, accepted, 3), GLLM_OK);
        cr_assert_eq(gllm_seq_accept(gpu.kv, gpu.seq, 19, accepted, 3), GLLM_OK, "%s", gllm_last_error());
        size_t len;
        gllm_seq_length(gpu.kv, gpu.seq, &len);
        cr_assert_eq(len, 22u);
        const uint32_t bad[2] = {1, 1};
        cr_assert_eq(gllm_seq_accept(gpu.kv, gpu.seq, 19, bad, 2), GLLM_E_INVALID_ARGUMENT, "slots must increase");
        int32_t next = 17;
        for (int step = 0; step < 4; step++) { /* decode over the compacted cache (eager, then graph replays) */
            cr_assert_eq(gllm_generator_forward(cpu.g, cpu.kv, cpu.seq, &next, 1, NULL, &xc), GLLM_OK);
            cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, gpu.seq, &next, 1, NULL, &xg), GLLM_OK, "%s", gllm_last_error());
            gllm_logits_read(xc, lc, VOCAB), gllm_logits_read(xg, lg, VOCAB);
            const double e = rel_err(lg, lc, VOCAB);
            cr_assert(e <= tol, "kv %s decode %d after the accept: error %.3g", gllm_dtype_name(kvt), step, e);
            next = (next * 5 + 1) % (int32_t)VOCAB;
        }
        free(lc), free(lg);
        side_close(&cpu), side_close(&gpu);
    }
    twins_close(&tw);
}

/* the same forwards on both sides; then each of seqs' next-token logits close */
static void both_forward(side *cpu, side *gpu, int seq, const int32_t *t, size_t n, const gllm_topology *topo) {
    gllm_logits *l;
    cr_assert_eq(gllm_generator_forward(cpu->g, cpu->kv, seq, t, n, topo, &l), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_generator_forward(gpu->g, gpu->kv, seq, t, n, topo, &l), GLLM_OK, "%s", gllm_last_error());
}

static void both_next_close(side *cpu, side *gpu, const int *seqs, int n, double tol, const char *what) {
    float lc[64], lg[64];
    for (int i = 0; i < n; i++) {
        const int32_t next = 7;
        gllm_logits *xc, *xg;
        cr_assert_eq(gllm_generator_forward(cpu->g, cpu->kv, seqs[i], &next, 1, NULL, &xc), GLLM_OK);
        cr_assert_eq(gllm_generator_forward(gpu->g, gpu->kv, seqs[i], &next, 1, NULL, &xg), GLLM_OK, "%s", gllm_last_error());
        gllm_logits_read(xc, lc, VOCAB), gllm_logits_read(xg, lg, VOCAB);
        const double e = rel_err(lg, lc, VOCAB);
        cr_assert(e <= tol, "%s: sequence %d: error %.3g", what, seqs[i], e);
    }
}

/* the largest tree step, 256 tokens (each token's ancestors: a row of 256 bits): two chains
 * of 128 from the prefix, every row as on the CPU */
Test(cuda, tree_of_256_tokens_matches_cpu) {
    if (!has_gpu()) cr_skip_test("no GPU");
    twins tw;
    twins_open_long(&tw);
    side cpu, gpu;
    setenv("GLLM_CUDA_TENSOR_CORES", "0", 1); /* f32 activations: a mask error stands out of the rounding */
    side_open_sized(&cpu, "cpu", tw.twin, GLLM_DTYPE_F32, 256, 40), side_open_sized(&gpu, "cuda:0", tw.m, GLLM_DTYPE_F32, 256, 40);
    unsetenv("GLLM_CUDA_TENSOR_CORES");
    static int32_t tok[256], parent[256], pos[256];
    for (int i = 0; i < 256; i++) {
        tok[i] = (int32_t)((i * 13 + 5) % VOCAB);
        parent[i] = i % 128 ? i - 1 : -1, pos[i] = 9 + i % 128;
    }
    const gllm_topology topo = {parent, pos};
    both_forward(&cpu, &gpu, cpu.seq, tok, 9, NULL);
    gllm_logits *xc, *xg;
    cr_assert_eq(gllm_generator_forward(cpu.g, cpu.kv, cpu.seq, tok, 256, &topo, &xc), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, gpu.seq, tok, 256, &topo, &xg), GLLM_OK, "%s", gllm_last_error());
    float *lc = malloc(256 * VOCAB * 4), *lg = malloc(256 * VOCAB * 4);
    cr_assert_eq(gllm_logits_read(xc, lc, 256 * VOCAB), GLLM_OK);
    cr_assert_eq(gllm_logits_read(xg, lg, 256 * VOCAB), GLLM_OK, "%s", gllm_last_error());
    for (int r = 0; r < 256; r++) {
        const double e = rel_err(lg + r * VOCAB, lc + r * VOCAB, VOCAB);
        cr_assert(e <= 1e-4, "tree token %d: error %.3g", r, e);
    }
    free(lc), free(lg);
    side_close(&cpu), side_close(&gpu);
    twins_close(&tw);
}

/* accepting a path after the sequence was swapped out and in (its pages are others now: the
 * device's block table was stale, and the moves went into another sequence's pages), and a
 * path longer than the generator's rows (refused, and the sequence emptied), and a path
 * that gives pages back */
Test(cuda, accept_after_swap_in_and_past_the_rows) {
    if (!has_gpu()) cr_skip_test("no GPU");
    twins tw;
    twins_open_long(&tw);
    side cpu, gpu;
    side_open_sized(&cpu, "cpu", tw.twin, GLLM_DTYPE_F32, 16, 40), side_open_sized(&gpu, "cuda:0", tw.m, GLLM_DTYPE_F32, 16, 40);
    int32_t t[320];
    for (int i = 0; i < 320; i++) t[i] = (int32_t)((i * 7 + 3) % VOCAB);
    int a = cpu.seq, other, c;
    for (side *s = &cpu; s; s = s == &cpu ? &gpu : NULL) gllm_seq_open(s->kv, 400, &other), gllm_seq_open(s->kv, 400, &c);
    const int32_t parent[5] = {-1, 0, 0, 1, 3}, position[5] = {20, 21, 21, 22, 23};
    const gllm_topology topo = {parent, position};
    both_forward(&cpu, &gpu, a, t, 20, NULL), both_forward(&cpu, &gpu, a, t + 20, 5, &topo);
    both_forward(&cpu, &gpu, other, t, 3, NULL); /* a is no longer warm */
    cr_assert_eq(gllm_swap_out_pages(cpu.kv, a), GLLM_OK);
    cr_assert_eq(gllm_swap_out_pages(gpu.kv, a), GLLM_OK, "%s", gllm_last_error());
    both_forward(&cpu, &gpu, c, t, 30, NULL); /* c takes a's pages */
    cr_assert_eq(gllm_swap_in_pages(cpu.kv, a), GLLM_OK);
    cr_assert_eq(gllm_swap_in_pages(gpu.kv, a), GLLM_OK, "%s", gllm_last_error());
    const uint32_t path[3] = {0, 1, 3};
    cr_assert_eq(gllm_seq_accept(cpu.kv, a, 20, path, 3), GLLM_OK);
    cr_assert_eq(gllm_seq_accept(gpu.kv, a, 20, path, 3), GLLM_OK, "%s", gllm_last_error());
    both_next_close(&cpu, &gpu, (const int[]){a, c}, 2, 1e-3, "after a swap round trip and an accept");
    /* 320 tokens accepted at once, 256 rows a forward: the moves go in two passes */
    int long_seq;
    for (side *s = &cpu; s; s = s == &cpu ? &gpu : NULL) gllm_seq_open(s->kv, 400, &long_seq);
    both_forward(&cpu, &gpu, long_seq, t, 200, NULL), both_forward(&cpu, &gpu, long_seq, t + 200, 120, NULL);
    uint32_t all[319];
    for (int i = 0; i < 319; i++) all[i] = (uint32_t)(i < 150 ? i : i + 1); /* token 150 dropped */
    cr_assert_eq(gllm_seq_accept(cpu.kv, long_seq, 0, all, 319), GLLM_OK);
    cr_assert_eq(gllm_seq_accept(gpu.kv, long_seq, 0, all, 319), GLLM_OK, "%s", gllm_last_error());
    size_t len;
    gllm_seq_length(gpu.kv, long_seq, &len);
    cr_assert_eq(len, 319u);
    both_next_close(&cpu, &gpu, &long_seq, 1, 1e-3, "after a 319-token accept");
    /* a chain of 14 over a page boundary, two tokens kept: its third page goes back, another
     * sequence writes it, and the first grows past it again (the device's table rewritten) */
    int d, e;
    for (side *s = &cpu; s; s = s == &cpu ? &gpu : NULL) gllm_seq_open(s->kv, 400, &d), gllm_seq_open(s->kv, 400, &e);
    int32_t chain_parent[14], chain_pos[14];
    for (int i = 0; i < 14; i++) chain_parent[i] = i - 1, chain_pos[i] = 20 + i;
    const gllm_topology chain = {chain_parent, chain_pos};
    both_forward(&cpu, &gpu, d, t, 20, NULL), both_forward(&cpu, &gpu, d, t + 40, 14, &chain);
    float before, after;
    gllm_memory_pressure(cpu.kv, &before);
    cr_assert_eq(gllm_seq_accept(cpu.kv, d, 20, path, 2), GLLM_OK);
    cr_assert_eq(gllm_seq_accept(gpu.kv, d, 20, path, 2), GLLM_OK, "%s", gllm_last_error());
    gllm_memory_pressure(cpu.kv, &after);
    cr_assert_float_eq(before - after, 1.0f / 40, 1e-6, "34 tokens to 22: one page of 16 back");
    both_forward(&cpu, &gpu, e, t + 100, 16, NULL), both_forward(&cpu, &gpu, d, t + 60, 12, NULL);
    both_next_close(&cpu, &gpu, (const int[]){d, e}, 2, 1e-3, "after the dropped page was reused");
    side_close(&cpu), side_close(&gpu);
    twins_close(&tw);
}

static size_t pages_in(const gllm_kv_cache *kv, gllm_page_state state) {
    gllm_page_info info[64];
    size_t n, k = 0;
    cr_assert_eq(gllm_page_states(kv, info, 64, &n), GLLM_OK, "%s", gllm_last_error());
    for (size_t i = 0; i < n; i++) k += info[i].state == state;
    return k;
}

static size_t free_pages(const gllm_kv_cache *kv) { return pages_in(kv, GLLM_PAGE_FREE); }

/* a kernel launch that fails inside a forward (the emulator fails launches on request): the
 * batch split over two forwards, its first done, is undone whole (lengths and pages as
 * before), as are a single forward and one over two steps; then the same batch runs and
 * matches its items alone */
Test(cuda, failed_forwards_are_undone) {
    if (!has_gpu()) cr_skip_test("no GPU");
    void *emu = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    long (*launches)(void) = emu ? (long (*)(void))dlsym(emu, "gllm_emu_launches") : NULL;
    void (*fail_from)(long) = emu ? (void (*)(long))dlsym(emu, "gllm_emu_fail_launches_from") : NULL;
    if (!launches || !fail_from) cr_skip_test("a real GPU: no launch failures to inject");
    twins tw;
    twins_open_long(&tw);
    side gpu;
    side_open_sized(&gpu, "cuda:0", tw.m, GLLM_DTYPE_F32, 16, 48); /* 256 rows a forward */
    int32_t t[301];
    for (int i = 0; i < 301; i++) t[i] = (int32_t)((i * 5 + 1) % VOCAB);
    int a = gpu.seq, b, x, y;
    gllm_seq_open(gpu.kv, 200, &b), gllm_seq_open(gpu.kv, 200, &x), gllm_seq_open(gpu.kv, 200, &y);
    gllm_logits *l;
    const long c0 = launches();
    cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, x, t, 150, NULL, &l), GLLM_OK, "%s", gllm_last_error());
    const long per = launches() - c0; /* one forward of 150 rows */
    cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, y, t + 1, 150, NULL, &l), GLLM_OK);
    float alone[2][64], batch[2 * 64];
    gllm_logits_read(l, alone[1], VOCAB);
    gllm_seq_close(gpu.kv, y), gllm_seq_open(gpu.kv, 200, &y);
    cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, y, t, 150, NULL, &l), GLLM_OK);
    gllm_logits_read(l, alone[0], VOCAB);
    const size_t free0 = free_pages(gpu.kv), warm0 = pages_in(gpu.kv, GLLM_PAGE_WARM);
    const gllm_batch_item items[2] = {{a, t, 150}, {b, t + 1, 150}}; /* 300 rows: two forwards */
    fail_from(launches() + per + per / 2);
    cr_assert_neq(gllm_batch_forward(gpu.g, gpu.kv, items, 2, &l), GLLM_OK, "the second forward fails");
    cr_assert(warm0 > 0 && pages_in(gpu.kv, GLLM_PAGE_WARM) == warm0, "the latest forward is still the one that succeeded");
    size_t la, lb;
    gllm_seq_length(gpu.kv, a, &la), gllm_seq_length(gpu.kv, b, &lb);
    cr_assert(la == 0 && lb == 0, "lengths %zu and %zu: the first forward's item kept", la, lb);
    cr_assert_eq(free_pages(gpu.kv), free0, "the batch's pages back");
    fail_from(launches() + 3);
    cr_assert_neq(gllm_generator_forward(gpu.g, gpu.kv, a, t, 20, NULL, &l), GLLM_OK);
    gllm_seq_length(gpu.kv, a, &la);
    cr_assert(la == 0 && free_pages(gpu.kv) == free0, "a failed forward undone");
    fail_from(-1);
    int z;
    gllm_seq_open(gpu.kv, 400, &z);
    const long c1 = launches();
    cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, z, t, 256, NULL, &l), GLLM_OK, "%s", gllm_last_error());
    const long step256 = launches() - c1;
    gllm_seq_close(gpu.kv, z);
    const long c2 = launches();
    fail_from(c2 + step256 + 2); /* 300 tokens: steps of 256 and 44 rows, the second fails at its third launch */
    cr_assert_neq(gllm_generator_forward(gpu.g, gpu.kv, a, t, 300, NULL, &l), GLLM_OK);
    cr_assert_eq(launches() - c2, step256 + 3, "the first step ran whole");
    float stale[64];
    cr_assert_eq(gllm_logits_read(l, stale, VOCAB), GLLM_E_INVALID_ARGUMENT, "the failed forward's logits are gone");
    gllm_seq_length(gpu.kv, a, &la);
    cr_assert(la == 0 && free_pages(gpu.kv) == free0, "a forward over two steps undone whole: length %zu", la);
    fail_from(-1);
    cr_assert_eq(gllm_batch_forward(gpu.g, gpu.kv, items, 2, &l), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_logits_read(l, batch, 2 * VOCAB), GLLM_OK);
    for (int i = 0; i < 2; i++) {
        const double e = rel_err(batch + i * VOCAB, alone[i], VOCAB);
        cr_assert(e <= 1e-4, "item %d after the undone batch: error %.3g", i, e);
    }
    side_close(&gpu);
    twins_close(&tw);
    dlclose(emu);
}

/* a decode graph that cannot be captured: the step that ran eagerly as its warm-up stands, and
 * decoding goes on eagerly (the capture's failure was returned, the step undone, and every
 * later decode did the same) */
Test(cuda, failed_capture_goes_on_eagerly) {
    if (!has_gpu()) cr_skip_test("no GPU");
    void *emu = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    void (*fail_capture)(void) = emu ? (void (*)(void))dlsym(emu, "gllm_emu_fail_next_capture") : NULL;
    if (!fail_capture) cr_skip_test("a real GPU: no capture failure to inject");
    twins tw;
    twins_open(&tw, "llama", GLLM_DTYPE_F16);
    side cpu, gpu;
    side_open(&cpu, "cpu", tw.twin, GLLM_DTYPE_F32), side_open(&gpu, "cuda:0", tw.m, GLLM_DTYPE_F32);
    const int32_t prompt[5] = {3, 1, 4, 1, 5};
    gllm_logits *xc, *xg;
    cr_assert_eq(gllm_generator_forward(cpu.g, cpu.kv, cpu.seq, prompt, 5, NULL, &xc), GLLM_OK);
    cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, gpu.seq, prompt, 5, NULL, &xg), GLLM_OK, "%s", gllm_last_error());
    fail_capture();
    float lc[64], lg[64];
    for (int step = 0; step < 3; step++) {
        const int32_t next = 7 + step;
        cr_assert_eq(gllm_generator_forward(cpu.g, cpu.kv, cpu.seq, &next, 1, NULL, &xc), GLLM_OK);
        cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, gpu.seq, &next, 1, NULL, &xg), GLLM_OK, "decode %d: %s", step, gllm_last_error());
        gllm_logits_read(xc, lc, VOCAB), gllm_logits_read(xg, lg, VOCAB);
        const double e = rel_err(lg, lc, VOCAB);
        cr_assert(e <= 1e-3, "decode %d: error %.3g", step, e);
    }
    size_t len;
    gllm_seq_length(gpu.kv, gpu.seq, &len);
    cr_assert_eq(len, 8u);
    side_close(&cpu), side_close(&gpu);
    twins_close(&tw);
    dlclose(emu);
}

/* bad input on the GPU backend: clear errors, the cache as it was */
Test(cuda, generator_errors) {
    if (!has_gpu()) cr_skip_test("no GPU");
    char path[128];
    write_model("llama", GLLM_DTYPE_F16, GLLM_DTYPE_F16, path, sizeof path);
    gllm_model *m;
    cr_assert_eq(gllm_model_open(path, &m), GLLM_OK);
    side s;
    side_open(&s, "cuda:0", m, GLLM_DTYPE_F16);
    gllm_logits *l;
    const int32_t bad[2] = {1, (int32_t)VOCAB};
    cr_assert_eq(gllm_generator_forward(s.g, s.kv, s.seq, bad, 2, NULL, &l), GLLM_E_INVALID_ARGUMENT);
    const int32_t par[2] = {-1, 1}, pos[2] = {0, 1}, far[2] = {0, (int32_t)CTX};
    const gllm_topology tree = {par, pos}, beyond = {NULL, far};
    cr_assert_eq(gllm_generator_forward(s.g, s.kv, s.seq, pos, 2, &tree, &l), GLLM_E_INVALID_ARGUMENT, "a token its own parent");
    cr_assert_eq(gllm_generator_forward(s.g, s.kv, s.seq, pos, 2, &beyond, &l), GLLM_E_INVALID_ARGUMENT, "a position past the context");
    size_t len;
    gllm_seq_length(s.kv, s.seq, &len);
    cr_assert_eq(len, 0u, "a refused step leaves the sequence as it was");
    int32_t many[64];
    for (int i = 0; i < 64; i++) many[i] = i % (int)VOCAB;
    cr_assert_eq(gllm_generator_forward(s.g, s.kv, s.seq, many, 64, NULL, &l), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_generator_forward(s.g, s.kv, s.seq, many, 40, NULL, &l), GLLM_E_INVALID_ARGUMENT, "96 > context or cache");
    gllm_seq_length(s.kv, s.seq, &len);
    cr_assert_eq(len, 64u);
    float tiny[4];
    cr_assert_eq(gllm_logits_read(l, tiny, 4), GLLM_E_INVALID_ARGUMENT);
    gllm_generator *huge;
    cr_assert_eq(gllm_generator_upload(s.b, m, 70000, &huge), GLLM_E_UNSUPPORTED, "a CUDA forward holds 65535 tokens (a grid's rows)");
    cr_assert(strstr(gllm_last_error(), "65535"), "%s", gllm_last_error());
    const gllm_sampling bad_min_p = {.temperature = 1, .top_p = 1, .min_p = 1.5f, .repetition_penalty = 1};
    int32_t id;
    cr_assert_eq(gllm_sample(s.g, l, &bad_min_p, NULL, 0, 0, &id), GLLM_E_INVALID_ARGUMENT);
    side_close(&s);
    gllm_model_close(m);
    unlink(path);
}

/* ---- the encoders on the GPU against the CPU backend ------------------------------------------ */

static void write_bert(gllm_dtype t, gllm_dtype store, char *path, size_t cap) {
    model_file f;
    synth_seed(23);
    build_bert(&f, t, store, 1);
    snprintf(path, cap, "/tmp/gllm_cuda_bert_%s_%s_%d.gguf", gllm_dtype_name(t), gllm_dtype_name(store), (int)getpid());
    cr_assert_eq(save(&f, path), 0, "%s", path);
}

/* a synthetic cross-encoder with matrices in each of several dtypes (the CPU runs its f32
 * twin): embeddings (normalised or not) and rerank scores of three pairs of odd lengths in one
 * batch; each pair alone gives the same; bad input is refused as on the CPU; the [CLS] and
 * last-token poolings */
/* a batch of more tokens than one run takes (65535, a launch's grid height; 48 here, with
 * GLLM_CUDA_ENCODE_ROWS) runs in several, each sequence's vector and score the CPU's */
Test(cuda, encoder_batch_past_one_run) {
    if (!has_gpu()) cr_skip_test("no GPU");
    setenv("GLLM_CUDA_TENSOR_CORES", "0", 1);
    setenv("GLLM_CUDA_ENCODE_ROWS", "48", 1);
    char path[128];
    write_bert(GLLM_DTYPE_F32, GLLM_DTYPE_F32, path, sizeof path);
    gllm_backend *cpu, *gpu;
    gllm_embedder *ec, *eg;
    gllm_reranker *rc, *rg;
    cr_assert_eq(gllm_backend_open("cpu", &cpu), GLLM_OK);
    cr_assert_eq(gllm_backend_open("cuda:0", &gpu), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_embedding_upload(cpu, path, &ec), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_embedding_upload(gpu, path, &eg), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_reranker_upload(cpu, path, &rc), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_reranker_upload(gpu, path, &rg), GLLM_OK, "%s", gllm_last_error());
    unsetenv("GLLM_CUDA_ENCODE_ROWS");
    enum { N = 7 }; /* runs of 47 (two), 40, 48, 3 tokens */
    const size_t lens[N] = {30, 17, 40, 48, 20, 20, 3};
    static int32_t ids[N][48];
    const int32_t *seqs[N];
    for (int i = 0; i < N; i++) {
        for (size_t t = 0; t < lens[i]; t++) ids[i][t] = 4 + (int32_t)((i * 7 + t * 13) % (VOCAB - 4));
        ids[i][0] = 2, ids[i][lens[i] / 2] = 3, ids[i][lens[i] - 1] = 3, seqs[i] = ids[i];
    }
    const size_t dim = gllm_embedding_dim(eg);
    float vc[N * 64], vg[N * 64], sc[N], sg[N];
    cr_assert_eq(gllm_embedding_forward(ec, seqs, lens, N, 1, vc), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_embedding_forward(eg, seqs, lens, N, 1, vg), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_rerank_forward(rc, seqs, lens, N, sc), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_rerank_forward(rg, seqs, lens, N, sg), GLLM_OK, "%s", gllm_last_error());
    for (int i = 0; i < N; i++) {
        const double e = rel_err(vg + i * dim, vc + i * dim, dim);
        cr_assert(e <= 1e-4, "sequence %d: vector error %.3g", i, e);
        cr_assert(fabsf(sg[i] - sc[i]) <= 1e-4f * (1 + fabsf(sc[i])), "sequence %d: score %g vs %g", i, sg[i], sc[i]);
    }
    gllm_embedder_free(ec), gllm_embedder_free(eg), gllm_reranker_free(rc), gllm_reranker_free(rg);
    gllm_backend_close(cpu), gllm_backend_close(gpu);
    remove(path);
}

Test(cuda, encoders_match_cpu) {
    if (!has_gpu()) cr_skip_test("no GPU");
    setenv("GLLM_CUDA_TENSOR_CORES", "0", 1); /* f32 activations, as the CPU twin */
    gllm_backend *cpu, *gpu;
    cr_assert_eq(gllm_backend_open("cpu", &cpu), GLLM_OK);
    cr_assert_eq(gllm_backend_open("cuda:0", &gpu), GLLM_OK, "%s", gllm_last_error());
    enum { N = 3 };
    const size_t lens[N] = {5, 13, 21};
    int32_t ids[N][21];
    const int32_t *seqs[N];
    uint64_t r = 99;
    for (int i = 0; i < N; i++) { /* [CLS] query [SEP] document [SEP] */
        for (size_t t = 0; t < lens[i]; t++) r = r * 6364136223846793005ull + 1442695040888963407ull, ids[i][t] = 4 + (int32_t)(r >> 33) % 36;
        ids[i][0] = 2, ids[i][lens[i] / 3] = 3, ids[i][lens[i] - 1] = 3;
        seqs[i] = ids[i];
    }
    const gllm_dtype dts[4] = {GLLM_DTYPE_F32, GLLM_DTYPE_F16, GLLM_DTYPE_Q8_0, GLLM_DTYPE_Q4_1};
    for (int d = 0; d < 4; d++) {
        char path[128], twin[128];
        write_bert(dts[d], dts[d], path, sizeof path);
        write_bert(dts[d], GLLM_DTYPE_F32, twin, sizeof twin);
        gllm_embedder *eg, *ec;
        gllm_reranker *rg, *rc;
        cr_assert_eq(gllm_embedding_upload(gpu, path, &eg), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(gllm_embedding_upload(cpu, twin, &ec), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(gllm_reranker_upload(gpu, path, &rg), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(gllm_reranker_upload(cpu, twin, &rc), GLLM_OK, "%s", gllm_last_error());
        const size_t dim = gllm_embedding_dim(eg);
        float vg[N * 64], vc[N * 64], one[64], sg[N], sc[N], s1;
        for (int norm = 0; norm < 2; norm++) {
            cr_assert_eq(gllm_embedding_forward(eg, seqs, lens, N, norm, vg), GLLM_OK, "%s", gllm_last_error());
            cr_assert_eq(gllm_embedding_forward(ec, seqs, lens, N, norm, vc), GLLM_OK);
            const double e = rel_err(vg, vc, N * dim);
            cr_log_info("bert %s embeddings (normalise %d): error %.2g", gllm_dtype_name(dts[d]), norm, e);
            cr_assert(e <= 1e-4, "%s embeddings: error %g", gllm_dtype_name(dts[d]), e);
            for (int i = 0; i < N; i++) {
                cr_assert_eq(gllm_embedding_forward(eg, &seqs[i], &lens[i], 1, norm, one), GLLM_OK);
                cr_assert(rel_err(one, vg + i * dim, dim) <= 1e-6, "pair %d alone", i);
            }
        }
        cr_assert_eq(gllm_rerank_forward(rg, seqs, lens, N, sg), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(gllm_rerank_forward(rc, seqs, lens, N, sc), GLLM_OK);
        const double e = rel_err(sg, sc, N);
        cr_log_info("bert %s scores %g %g %g: error %.2g", gllm_dtype_name(dts[d]), sg[0], sg[1], sg[2], e);
        cr_assert(e <= 1e-4, "%s scores: error %g", gllm_dtype_name(dts[d]), e);
        cr_assert(fabs(sg[0] - sg[1]) > 1e-3, "different pairs, different scores");
        cr_assert_eq(gllm_rerank_forward(rg, &seqs[2], &lens[2], 1, &s1), GLLM_OK);
        cr_assert(fabsf(s1 - sg[2]) <= 1e-6f * fabsf(sg[2]) + 1e-7f, "pair alone");
        /* bad input */
        const int32_t bad[3] = {2, 40, 3}, *pb = bad;
        size_t lb = 3, l0 = 0, lbig = 97;
        cr_assert_eq(gllm_embedding_forward(eg, &pb, &lb, 1, 1, one), GLLM_E_INVALID_ARGUMENT, "token id outside the vocabulary");
        cr_assert_eq(gllm_rerank_forward(rg, &pb, &l0, 1, &s1), GLLM_E_INVALID_ARGUMENT, "empty");
        static int32_t longer[97];
        const int32_t *pl = longer;
        cr_assert_eq(gllm_embedding_forward(eg, &pl, &lbig, 1, 1, one), GLLM_E_INVALID_ARGUMENT, "past the positions");
        cr_assert_eq(gllm_embedding_forward(eg, seqs, lens, N, 1, NULL), GLLM_E_INVALID_ARGUMENT);
        gllm_embedder_free(eg), gllm_embedder_free(ec), gllm_reranker_free(rg), gllm_reranker_free(rc);
        remove(path), remove(twin);
    }
    /* the model's pooling (GGUF bert.pooling_type): [CLS], the last token */
    for (BERT_POOLING = 2; BERT_POOLING <= 3; BERT_POOLING++) {
        char path[128];
        write_bert(GLLM_DTYPE_F32, GLLM_DTYPE_F32, path, sizeof path);
        gllm_embedder *eg, *ec;
        cr_assert_eq(gllm_embedding_upload(gpu, path, &eg), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(gllm_embedding_upload(cpu, path, &ec), GLLM_OK, "%s", gllm_last_error());
        float vg[N * 64], vc[N * 64];
        cr_assert_eq(gllm_embedding_forward(eg, seqs, lens, N, 1, vg), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(gllm_embedding_forward(ec, seqs, lens, N, 1, vc), GLLM_OK);
        const double e = rel_err(vg, vc, N * gllm_embedding_dim(eg));
        cr_log_info("bert embeddings, pooling type %d: error %.2g", BERT_POOLING, e);
        cr_assert(e <= 1e-4, "pooling type %d: error %g", BERT_POOLING, e);
        gllm_embedder_free(eg), gllm_embedder_free(ec);
        remove(path);
    }
    gllm_backend_close(gpu), gllm_backend_close(cpu);
}

/* the device's two plan runners: the decoder's (a KV cache, graphs) refuses an encoder's plan,
 * the encoder's (no cache) a decoder's, each naming the step */
Test(cuda, runners_refuse_the_other_plan) {
    gllm_cuda c;
    if (gllm_cuda_open(&c, 0) != GLLM_OK) cr_skip_test("no GPU: %s", gllm_last_error());
    cr_assert_eq(gllm_cuda_enter(&c), GLLM_OK);
    char bert_path[128], llama_path[128];
    write_bert(GLLM_DTYPE_F32, GLLM_DTYPE_F32, bert_path, sizeof bert_path);
    write_model("llama", GLLM_DTYPE_F32, GLLM_DTYPE_F32, llama_path, sizeof llama_path);
    gllm_bert bert;
    gllm_plan bp;
    cr_assert_eq(gllm_bert_open(bert_path, &bert), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_bert_plan(&bert, 1, &bp), GLLM_OK);
    gllm_cuda_model cm;
    cr_assert_eq(gllm_cuda_model_init(&cm, &c, &bp, bert.gguf.base, bert.gguf.size, 8, bert.dim), GLLM_E_UNSUPPORTED);
    cr_assert(strstr(gllm_last_error(), "needs no cache"), "%s", gllm_last_error());
    gllm_gguf gg;
    gllm_llama ll;
    cr_assert_eq(gllm_gguf_open(llama_path, &gg), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_llama_load(&gg, &ll), GLLM_OK, "%s", gllm_last_error());
    gllm_cuda_encoder e;
    cr_assert_eq(gllm_cuda_encoder_init(&e, &c, &ll.plan, gg.base, gg.size, NULL, 0), GLLM_E_UNSUPPORTED);
    cr_assert(strstr(gllm_last_error(), "not taken"), "%s", gllm_last_error());
    gllm_llama_free(&ll), gllm_gguf_close(&gg);
    gllm_plan_free(&bp), gllm_bert_close(&bert);
    remove(bert_path), remove(llama_path);
    gllm_cuda_leave(&c);
    gllm_cuda_close(&c);
}

/* on the device too, objects may be freed in any order: the backend and the model closed
 * first, a generator before its cache, the backend before an embedder */
Test(cuda, free_in_any_order) {
    if (!has_gpu()) cr_skip_test("no GPU");
    char path[128], bert_path[128];
    write_model("llama", GLLM_DTYPE_F16, GLLM_DTYPE_F16, path, sizeof path);
    write_bert(GLLM_DTYPE_F16, GLLM_DTYPE_F16, bert_path, sizeof bert_path);
    gllm_backend *b;
    gllm_model *m;
    gllm_generator *g;
    gllm_kv_cache *kv;
    gllm_embedder *e;
    cr_assert_eq(gllm_backend_open("cuda:0", &b), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_model_open(path, &m), GLLM_OK);
    cr_assert_eq(gllm_generator_upload(b, m, 16, &g), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_kv_cache_alloc(g, 4, 16, GLLM_DTYPE_F16, &kv), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_embedding_upload(b, bert_path, &e), GLLM_OK, "%s", gllm_last_error());
    gllm_backend_close(b);
    gllm_model_close(m);
    int seq;
    const int32_t tok[3] = {1, 2, 3}, *ids = tok;
    const size_t three = 3;
    gllm_logits *l;
    int32_t next;
    float v[64];
    cr_assert_eq(gllm_seq_open(kv, 16, &seq), GLLM_OK);
    cr_assert_eq(gllm_generator_forward(g, kv, seq, tok, 3, NULL, &l), GLLM_OK, "%s", gllm_last_error());
    const gllm_sampling greedy = {.temperature = 0, .top_p = 1, .repetition_penalty = 1};
    cr_assert_eq(gllm_sample(g, l, &greedy, NULL, 0, 0, &next), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_embedding_forward(e, &ids, &three, 1, 1, v), GLLM_OK, "%s", gllm_last_error());
    gllm_generator_free(g);
    float used;
    cr_assert_eq(gllm_memory_pressure(kv, &used), GLLM_OK, "the cache still works: %s", gllm_last_error());
    cr_assert_eq(gllm_seq_close(kv, seq), GLLM_OK);
    gllm_kv_cache_free(kv);
    gllm_embedder_free(e);
    remove(path), remove(bert_path);
}

/* the default embedding model, where fetched: the GPU's vectors are the CPU's */
Test(cuda, minilm_matches_cpu) {
    if (!has_gpu()) cr_skip_test("no GPU");
    char dir[512], probe[600];
    snprintf(dir, sizeof dir, "%s/models/all-MiniLM-L6-v2", GLLM_SOURCE_DIR);
    snprintf(probe, sizeof probe, "%s/model.safetensors", dir);
    if (access(probe, R_OK)) cr_skip_test("%s not fetched", dir);
    gllm_backend *cpu, *gpu;
    gllm_embedder *ec, *eg;
    cr_assert_eq(gllm_backend_open("cpu", &cpu), GLLM_OK);
    cr_assert_eq(gllm_backend_open("cuda:0", &gpu), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_embedding_upload(cpu, dir, &ec), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_embedding_upload(gpu, dir, &eg), GLLM_OK, "%s", gllm_last_error());
    static const char *const s[2] = {"A man is eating a piece of bread.", "The new movie is awesome."};
    int32_t ids[2][32];
    const int32_t *seqs[2] = {ids[0], ids[1]};
    size_t lens[2];
    for (int i = 0; i < 2; i++) cr_assert_eq(gllm_embedding_tokenize(ec, s[i], strlen(s[i]), ids[i], 32, &lens[i]), GLLM_OK);
    float vc[2 * 384], vg[2 * 384];
    cr_assert_eq(gllm_embedding_forward(ec, seqs, lens, 2, 1, vc), GLLM_OK);
    cr_assert_eq(gllm_embedding_forward(eg, seqs, lens, 2, 1, vg), GLLM_OK, "%s", gllm_last_error());
    const double e = rel_err(vg, vc, 2 * 384);
    cr_log_info("MiniLM on the GPU: error %.2g", e);
    cr_assert(e <= 1e-4, "error %g", e);
    gllm_embedder_free(eg), gllm_embedder_free(ec), gllm_backend_close(gpu), gllm_backend_close(cpu);
}

/* the default model (SmolLM2-135M, q4_1), where fetched: a prompt, then greedy decode steps (the
 * graph from the second on), each logits row against the reference forward in double of the
 * same weights (src/ref/ref_llama.c, activations kept in full, as the GPU keeps them), and each
 * greedy pick the reference's where the reference's margin is clear */
Test(cuda, smollm2_matches_reference) {
    if (!has_gpu()) cr_skip_test("no GPU");
    setenv("GLLM_CUDA_INT8", "0", 1); /* f32 x, as the reference's */
    char path[512];
    snprintf(path, sizeof path, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", GLLM_SOURCE_DIR);
    if (access(path, R_OK)) cr_skip_test("%s not fetched (bash scripts/fetch_models.sh)", path);
    enum { STEPS = 6, MAXN = 64 };
    gllm_model *m;
    gllm_model_info mi;
    cr_assert_eq(gllm_model_open(path, &m), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_model_get_info(m, &mi), GLLM_OK);
    const char *prompt = "The capital of France is";
    int32_t tok[MAXN];
    size_t np;
    cr_assert_eq(gllm_model_tokenize(m, prompt, strlen(prompt), 0, tok, MAXN - STEPS, &np), GLLM_OK);
    const size_t n = np + STEPS, V = mi.vocab;
    side gpu;
    side_open(&gpu, "cuda:0", m, GLLM_DTYPE_F32);
    float *lg = malloc(STEPS * V * sizeof(float)); /* the prompt's last row, then each step's but the last */
    gllm_logits *l;
    cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, gpu.seq, tok, np, NULL, &l), GLLM_OK, "%s", gllm_last_error());
    const gllm_sampling greedy = {.temperature = 0, .top_p = 1, .repetition_penalty = 1};
    for (size_t i = 0; i < STEPS; i++) {
        cr_assert_eq(gllm_logits_read(l, lg + i * V, V), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(gllm_sample(gpu.g, l, &greedy, NULL, 0, 0, &tok[np + i]), GLLM_OK, "%s", gllm_last_error());
        if (i + 1 < STEPS)
            cr_assert_eq(gllm_generator_forward(gpu.g, gpu.kv, gpu.seq, &tok[np + i], 1, NULL, &l), GLLM_OK, "%s",
                         gllm_last_error());
    }
    side_close(&gpu);
    /* the reference over the prompt and the picks: its rows np - 1 .. n - 2 */
    gllm_gguf gg;
    gllm_llama ll;
    cr_assert_eq(gllm_gguf_open(path, &gg), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_llama_load(&gg, &ll), GLLM_OK, "%s", gllm_last_error());
    double *ref = malloc((n - 1) * V * sizeof(double));
    gllm_ref_llama(&ll, tok, n - 1, 0, ref);
    double worst = 0;
    for (size_t i = 0; i < STEPS; i++) {
        const double *r = ref + (np - 1 + i) * V;
        const float *g = lg + i * V;
        double top = 0, err = 0;
        size_t best = 0, second = 1;
        for (size_t v = 0; v < V; v++) {
            top = fmax(top, fabs(r[v])), err = isfinite(g[v]) ? fmax(err, fabs(g[v] - r[v])) : INFINITY;
            if (r[v] > r[best]) second = best, best = v;
            else if (v != best && r[v] > r[second]) second = v;
        }
        worst = fmax(worst, err / top);
        cr_assert(err <= 1e-4 * top, "step %zu: logits differ by %.3g (largest %.3g)", i, err, top);
        if (r[best] - r[second] > 2 * err)
            cr_assert_eq(tok[np + i], (int32_t)best, "step %zu: the GPU picks %d, the reference %zu", i, tok[np + i], best);
    }
    cr_log_info("SmolLM2 on the GPU: logits within %.2g of the largest of the reference's", worst);
    free(ref), free(lg);
    gllm_llama_free(&ll), gllm_gguf_close(&gg), gllm_model_close(m);
}
