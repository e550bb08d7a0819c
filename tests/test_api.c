/* The public API: bad input gets an error status and a message, never a crash. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "gllm_kernels.h"

static float buf_x[64 * 64], buf_y[64 * 64], buf_w[64 * 64];

Test(api, init_reports_isa) {
    cr_assert_eq(gllm_init(), GLLM_OK, "%s", gllm_last_error());
    cr_assert_not_null(gllm_isa_name());
    cr_assert(gllm_num_threads() >= 1);
    /* the gemm is the chosen ISA's own in every table (amx takes AVX-512's elsewhere: its gemv) */
    cr_assert_str_eq(gllm_kernel_name("gemm", GLLM_DTYPE_Q8_0) + strlen("gllm_gemm_q8_0_"), gllm_isa_name());
    cr_assert_str_eq(gllm_kernel_name("gemm", GLLM_DTYPE_BF16) + strlen("gllm_gemm_bf16_"), gllm_isa_name());
    cr_assert_str_eq(gllm_kernel_name("gemm", GLLM_DTYPE_F32) + strlen("gllm_gemm_f32_"), gllm_isa_name());
    if (!strcmp(gllm_isa_name(), "amx")) cr_assert_str_eq(gllm_kernel_name("gemv", GLLM_DTYPE_F32), "gllm_gemv_f32_avx512");
}

Test(api, null_buffers) {
    cr_assert_eq(gllm_matmul(GLLM_DTYPE_F32, NULL, buf_x, NULL, buf_y, 1, 4, 4), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "NULL"));
    cr_assert_eq(gllm_matmul(GLLM_DTYPE_F32, buf_w, NULL, NULL, buf_y, 1, 4, 4), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_matmul(GLLM_DTYPE_F32, buf_w, buf_x, NULL, NULL, 1, 4, 4), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_quantize(GLLM_DTYPE_Q8_0, NULL, buf_y, 1, 32), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_dequantize(GLLM_DTYPE_Q8_0, buf_w, NULL, 1, 32), GLLM_E_INVALID_ARGUMENT);
}

Test(api, zero_sizes) {
    cr_assert_eq(gllm_matmul(GLLM_DTYPE_F32, buf_w, buf_x, NULL, buf_y, 0, 4, 4), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_matmul(GLLM_DTYPE_F32, buf_w, buf_x, NULL, buf_y, 1, 0, 4), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_matmul(GLLM_DTYPE_F32, buf_w, buf_x, NULL, buf_y, 1, 4, 0), GLLM_E_INVALID_ARGUMENT);
}

Test(api, k_not_multiple_of_block) {
    cr_assert_eq(gllm_matmul(GLLM_DTYPE_Q4_0, buf_w, buf_x, NULL, buf_y, 1, 4, 48), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "multiple of 32"), "%s", gllm_last_error());
    cr_assert_eq(gllm_quantize(GLLM_DTYPE_Q8_0, buf_x, buf_w, 1, 33), GLLM_E_INVALID_ARGUMENT);
    size_t bytes = 0;
    cr_assert_eq(gllm_row_size(GLLM_DTYPE_Q4_1, 31, &bytes), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_row_size(GLLM_DTYPE_Q4_1, 64, &bytes), GLLM_OK);
    cr_assert_eq(bytes, 40u);
}

Test(api, unknown_dtype) {
    cr_assert_eq(gllm_matmul((gllm_dtype)GLLM_DTYPE_COUNT, buf_w, buf_x, NULL, buf_y, 1, 4, 32), GLLM_E_UNSUPPORTED);
    cr_assert_eq(gllm_matmul((gllm_dtype)-1, buf_w, buf_x, NULL, buf_y, 1, 4, 32), GLLM_E_UNSUPPORTED);
    cr_assert(strstr(gllm_last_error(), "unknown dtype"));
    gllm_dtype t;
    cr_assert_eq(gllm_dtype_from_name("q3_k", &t), GLLM_E_UNSUPPORTED);
    cr_assert_eq(gllm_dtype_from_name("q4_1", &t), GLLM_OK);
    cr_assert_eq(t, GLLM_DTYPE_Q4_1);
    cr_assert_null(gllm_dtype_name((gllm_dtype)99));
    cr_assert_null(gllm_kernel_name("gemv", (gllm_dtype)99));
    cr_assert_null(gllm_kernel_name("conv", GLLM_DTYPE_F32));
}

Test(api, overlapping_output) {
    cr_assert_eq(gllm_matmul(GLLM_DTYPE_F32, buf_w, buf_x, NULL, buf_x + 8, 2, 8, 8), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "overlap"));
    cr_assert_eq(gllm_matmul(GLLM_DTYPE_F32, buf_w, buf_x, NULL, buf_w + 60, 2, 8, 8), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_matmul(GLLM_DTYPE_F32, buf_w, buf_x, buf_y + 4, buf_y, 2, 8, 8), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_quantize(GLLM_DTYPE_F32, buf_x, buf_x + 16, 1, 32), GLLM_E_INVALID_ARGUMENT);
}

Test(api, size_overflow) {
    cr_assert_eq(gllm_matmul(GLLM_DTYPE_F32, buf_w, buf_x, NULL, buf_y, (size_t)1 << 40, (size_t)1 << 40, 32),
                 GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "overflow"));
}

/* the pool's result equals a single-range kernel call: same bits whatever the split */
/* a NaN or infinite activation makes its row's products non-finite for every weight format, as
 * a float matmul's are (the int8 path turned it into a code and gave finite garbage) */
Test(api, non_finite_activations_stay_non_finite) {
    static float w32[3 * 64], x[3 * 64], y[3 * 3];
    static uint8_t w[3 * 2 * 64 * 4];
    for (int i = 0; i < 3 * 64; i++) w32[i] = 0.5f - (float)(i % 7) / 8, x[i] = 1.0f;
    x[5] = NAN, x[64 + 70 - 64] = INFINITY; /* row 0 and row 1, the first block of each */
    for (int t = 0; t < GLLM_DTYPE_COUNT; t++) {
        cr_assert_eq(gllm_quantize((gllm_dtype)t, w32, w, 3, 64), GLLM_OK, "%s", gllm_last_error());
        for (size_t m = 1; m <= 3; m += 2) { /* the gemv, and the gemm's rows */
            cr_assert_eq(gllm_matmul((gllm_dtype)t, w, x, NULL, y, m, 3, 64), GLLM_OK, "%s", gllm_last_error());
            for (size_t r = 0; r < m; r++)
                for (int j = 0; j < 3; j++)
                    cr_assert(r == 2 ? isfinite(y[r * 3 + j]) : !isfinite(y[r * 3 + j]), "%s m=%zu y[%zu][%d] = %g",
                              gllm_dtype_name((gllm_dtype)t), m, r, j, y[r * 3 + j]);
        }
    }
}

/* block formats hold finite values within their f16 scales' reach: others are refused, not
 * written as inf or NaN scales; a row size that overflows is an error */
Test(api, quantize_refuses_what_blocks_cannot_hold) {
    static float x[64];
    static uint8_t y[64 * 4];
    for (int t = 0; t < GLLM_DTYPE_COUNT; t++) {
        const gllm_dtype d = (gllm_dtype)t;
        if (gllm_dtype_block_size(d) == 1) continue;
        for (int i = 0; i < 64; i++) x[i] = 0.25f;
        x[3] = NAN;
        cr_assert_eq(gllm_quantize(d, x, y, 1, 64), GLLM_E_INVALID_ARGUMENT, "%s: NaN", gllm_dtype_name(d));
        x[3] = -INFINITY;
        cr_assert_eq(gllm_quantize(d, x, y, 1, 64), GLLM_E_INVALID_ARGUMENT, "%s: -inf", gllm_dtype_name(d));
        for (int i = 0; i < 64; i++) x[i] = 3e38f;
        cr_assert_eq(gllm_quantize(d, x, y, 1, 64), GLLM_E_INVALID_ARGUMENT, "%s: 3e38", gllm_dtype_name(d));
        cr_assert(strstr(gllm_last_error(), "scales"), "%s", gllm_last_error());
        for (int i = 0; i < 64; i++) x[i] = 1000.0f - (float)i;
        cr_assert_eq(gllm_quantize(d, x, y, 1, 64), GLLM_OK, "%s: ordinary values", gllm_dtype_name(d));
    }
    size_t bytes;
    cr_assert_eq(gllm_row_size(GLLM_DTYPE_F32, (size_t)1 << 62, &bytes), GLLM_E_INVALID_ARGUMENT, "4 x 2^62 bytes");
    cr_assert_eq(gllm_row_size(GLLM_DTYPE_Q8_0, 64, &bytes), GLLM_OK);
    cr_assert_eq(bytes, 68u);
}

Test(api, matmul_deterministic_across_calls_and_shapes) {
    const size_t m = 37, n = 515, k = 320;
    float *x = malloc(m * k * 4), *w = malloc(n * k * 4), *y1 = malloc(m * n * 4), *y2 = malloc(m * n * 4);
    srand(7);
    for (size_t i = 0; i < m * k; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
    for (size_t i = 0; i < n * k; i++) w[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int t = 0; t < GLLM_DTYPE_COUNT; t++) {
        size_t row;
        cr_assert_eq(gllm_row_size((gllm_dtype)t, k, &row), GLLM_OK);
        void *wq = malloc(n * row);
        cr_assert_eq(gllm_quantize((gllm_dtype)t, w, wq, n, k), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(gllm_matmul((gllm_dtype)t, wq, x, NULL, y1, m, n, k), GLLM_OK);
        cr_assert_eq(gllm_matmul((gllm_dtype)t, wq, x, NULL, y2, m, n, k), GLLM_OK);
        cr_assert(memcmp(y1, y2, m * n * 4) == 0, "%s: two runs differ", gllm_dtype_name((gllm_dtype)t));
        free(wq);
    }
    free(x), free(w), free(y1), free(y2);
}

/* Criterion runs each test in its own process, so each sees a fresh init. */
Test(api, isa_cap_unknown_is_an_error) {
    setenv("GLLM_ISA", "sse9", 1);
    cr_assert_eq(gllm_init(), GLLM_E_UNSUPPORTED);
    cr_assert(strstr(gllm_last_error(), "unknown ISA"), "%s", gllm_last_error());
    cr_assert_eq(gllm_matmul(GLLM_DTYPE_F32, buf_w, buf_x, NULL, buf_y, 1, 4, 4), GLLM_E_UNSUPPORTED);
}

Test(api, isa_cap_missing_is_an_error) {
#if defined(__x86_64__)
    setenv("GLLM_ISA", "neon", 1);
#else
    setenv("GLLM_ISA", "avx512", 1);
#endif
    cr_assert_eq(gllm_init(), GLLM_E_UNSUPPORTED);
    cr_assert(strstr(gllm_last_error(), "does not support"), "%s", gllm_last_error());
}

Test(api, bad_thread_count_is_an_error) {
    setenv("GLLM_NUM_THREADS", "0", 1);
    cr_assert_eq(gllm_init(), GLLM_E_INVALID_ARGUMENT);
    cr_assert(strstr(gllm_last_error(), "GLLM_NUM_THREADS"));
}

#ifndef __SANITIZE_THREAD__ /* ThreadSanitizer cannot start threads in a multithreaded process's fork */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
/* a pre-forking server: the library initialised, its pool's workers running, then fork(): the
 * child, which has none of them, runs multithreaded matmuls (it waited for the missing workers
 * forever), with the parent's results */
Test(api, forked_child_runs_the_pool) {
    setenv("GLLM_NUM_THREADS", "3", 1);
    cr_assert_eq(gllm_init(), GLLM_OK);
    const size_t m = 9, n = 515, k = 256;
    float *x = malloc(m * k * 4), *w = malloc(n * k * 4), *y1 = malloc(m * n * 4), *y2 = malloc(m * n * 4);
    srand(5);
    for (size_t i = 0; i < m * k; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
    for (size_t i = 0; i < n * k; i++) w[i] = (float)rand() / RAND_MAX - 0.5f;
    cr_assert_eq(gllm_matmul(GLLM_DTYPE_F32, w, x, NULL, y1, m, n, k), GLLM_OK);
    const pid_t pid = fork();
    cr_assert(pid >= 0);
    if (!pid) {
        alarm(60);
        int ok = 1;
        for (int r = 0; r < 3 && ok; r++)
            ok = gllm_matmul(GLLM_DTYPE_F32, w, x, NULL, y2, m, n, k) == GLLM_OK && !memcmp(y1, y2, m * n * 4);
        _exit(ok ? 0 : 1);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child %s",
              WIFSIGNALED(status) ? "hung (killed by its alarm)" : "got other results");
    free(x), free(w), free(y1), free(y2);
}
#endif

#include "core/workspace.h"
#include "cpu/matmul.h"
#include "kernels.h"
#include <stdio.h>
#include <unistd.h>
static double rss_mib(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f && fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    if (f) fclose(f);
    return resident * (double)sysconf(_SC_PAGESIZE) / (1 << 20);
}

/* a thread's workspace given back when nothing holds it (the L3's frees call it: a batch of
 * thousands of tokens grew it to a gigabyte, kept until the thread ended) */
Test(api, workspace_trimmed) {
    const size_t mark = gllm_ws_mark(), bytes = (size_t)256 << 20;
    char *p = gllm_ws_alloc(bytes);
    cr_assert(p);
    memset(p, 1, bytes);
    const double held = rss_mib();
    gllm_ws_trim(); /* in use: kept */
    cr_assert(p[bytes - 1] == 1);
    gllm_ws_release(mark);
    gllm_ws_trim();
    const double after = rss_mib();
    cr_assert(held - after > 200, "%.0f MiB resident after the trim, %.0f before", after, held);
}

/* the pool's column split gives the same bits as one kernel call over all columns (the
 * gemv for 1 and 9 rows, the gemm for 33) */
Test(api, threads_do_not_change_results) {
    setenv("GLLM_NUM_THREADS", "3", 1);
    cr_assert_eq(gllm_init(), GLLM_OK);
    const size_t m = 33, n = 1531, k = 512, rm = 601, rn = 37; /* rm, rn: the row split's case below (past every gemv) */
    float *x = malloc(rm * k * 4), *w = malloc(n * k * 4), *y1 = malloc(m * n * 4), *y2 = malloc(m * n * 4);
    void *scratch = aligned_alloc(64, GLLM_SCRATCH_BYTES);
    srand(11);
    for (size_t i = 0; i < rm * k; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
    for (size_t i = 0; i < n * k; i++) w[i] = (float)rand() / RAND_MAX - 0.5f;
    const gllm_kernel_table *kt = gllm_kernel_tables[0];
    for (int i = 0; i < GLLM_ISA_COUNT; i++)
        if (gllm_kernel_tables[i] && !strcmp(gllm_kernel_tables[i]->isa, gllm_isa_name())) kt = gllm_kernel_tables[i];
    for (size_t mm = 1; mm <= m; mm += mm == 1 ? 8 : 24) {
        cr_assert_eq(gllm_matmul(GLLM_DTYPE_F32, w, x, NULL, y1, mm, n, k), GLLM_OK);
        const size_t mark = gllm_ws_mark();
        gllm_matmul_args a = {.w = w, .w_row_bytes = k * 4, .x = x, .ldx = k, .y = y2, .ldy = n, .m = mm, .n = n, .k = k};
        cr_assert_eq(gllm_cpu_matmul_prepare(GLLM_DTYPE_F32, x, mm, k, &a), GLLM_OK);
        (mm <= gllm_cpu_gemv_rows(GLLM_DTYPE_F32) ? kt->gemv : kt->gemm)[GLLM_DTYPE_F32](&a, 0, n, scratch);
        gllm_ws_release(mark);
        cr_assert(memcmp(y1, y2, mm * n * 4) == 0, "m=%zu: threaded result differs from one call", mm);
    }
    /* more rows than twice the columns: the pool splits the rows (a float and two block formats,
     * whose quantised activations are offset too) */
    const gllm_dtype rows_dts[3] = {GLLM_DTYPE_F32, GLLM_DTYPE_Q8_0, GLLM_DTYPE_Q4_1};
    cr_assert(gllm_cpu_matmul_split(GLLM_DTYPE_F32, rm, rn, k).by_rows, "a row split");
    for (int d = 0; d < 3; d++) {
        const gllm_dtype t = rows_dts[d];
        cr_assert(rm > gllm_cpu_gemv_rows(t), "%s: %zu rows are the gemv's here", gllm_dtype_name(t), rm);
        size_t row;
        cr_assert_eq(gllm_row_size(t, k, &row), GLLM_OK);
        void *wq = malloc(rn * row);
        cr_assert_eq(gllm_quantize(t, w, wq, rn, k), GLLM_OK);
        cr_assert_eq(gllm_matmul(t, wq, x, NULL, y1, rm, rn, k), GLLM_OK, "%s", gllm_last_error());
        const size_t mark = gllm_ws_mark();
        gllm_matmul_args a = {.w = wq, .w_row_bytes = row, .x = x, .ldx = k, .y = y2, .ldy = rn, .m = rm, .n = rn, .k = k};
        cr_assert_eq(gllm_cpu_matmul_prepare(t, x, rm, k, &a), GLLM_OK);
        kt->gemm[t](&a, 0, rn, scratch);
        gllm_ws_release(mark);
        cr_assert(memcmp(y1, y2, rm * rn * 4) == 0, "%s: row split differs from one call", gllm_dtype_name(t));
        free(wq);
    }
    free(x), free(w), free(y1), free(y2), free(scratch);
}
