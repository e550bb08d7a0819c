/* The CUDA backend's parts that need no GPU (driver loading against the toolkit's stub,
 * blob checks, architecture selection, backend selection), and, where a GPU is present,
 * every gemv kernel against the CPU kernels (skipped, and saying why, elsewhere). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/dispatch.h"
#include "cuda/driver.h"
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
    cr_assert_str_eq(bi.backend, "cpu");
    gllm_backend_close(b);
}

/* with a GPU: every gemv kernel against the CPU kernels on the same weights */
Test(cuda, gemv_kernels_match_the_cpu) {
    gllm_cuda_driver d;
    if (gllm_cuda_load(&d, NULL) != GLLM_OK) cr_skip_test("no GPU: %s", gllm_last_error());
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    int major, minor, sm;
    const void *blob;
    size_t size;
    d.cuDeviceGet(&dev, 0);
    d.cuDeviceGetAttribute(&major, CU_ATTR_CC_MAJOR, dev), d.cuDeviceGetAttribute(&minor, CU_ATTR_CC_MINOR, dev);
    if (gllm_cuda_blob(major, minor, &blob, &size, &sm) != GLLM_OK) cr_skip_test("%s", gllm_last_error());
    cr_assert_eq(d.cuDevicePrimaryCtxRetain(&ctx, dev), CUDA_SUCCESS);
    d.cuCtxPushCurrent(ctx);
    cr_assert_eq(d.cuModuleLoadData(&mod, blob), CUDA_SUCCESS);
    const int n = 1027, k = 4096;
    float *w32 = malloc((size_t)n * k * 4), *x = malloc(k * 4), *y = malloc(n * 4), *ref = malloc(n * 4);
    for (int i = 0; i < n * k; i++) w32[i] = sinf((float)i * 0.37f);
    for (int i = 0; i < k; i++) x[i] = cosf((float)i * 0.11f);
    for (int t = 0; t < GLLM_DTYPE_COUNT; t++) {
        size_t row;
        gllm_row_size((gllm_dtype)t, k, &row);
        void *w = malloc(n * row);
        gllm_quantize((gllm_dtype)t, w32, w, n, k);
        /* the CPU reference: dequantised weights times x in f32 (no int8 activations) */
        float *deq = malloc((size_t)k * 4);
        for (int j = 0; j < n; j++) {
            gllm_dequantize((gllm_dtype)t, (char *)w + j * row, deq, 1, k);
            double s = 0;
            for (int i = 0; i < k; i++) s += (double)deq[i] * x[i];
            ref[j] = (float)s;
        }
        free(deq);
        CUdeviceptr dw, dx, dy;
        d.cuMemAlloc(&dw, n * row), d.cuMemAlloc(&dx, k * 4), d.cuMemAlloc(&dy, n * 4);
        d.cuMemcpyHtoD(dw, w, n * row), d.cuMemcpyHtoD(dx, x, k * 4);
        char name[64];
        snprintf(name, sizeof name, "gllm_gemv_%s_cuda", gllm_dtype_name((gllm_dtype)t));
        CUfunction f;
        cr_assert_eq(d.cuModuleGetFunction(&f, mod, name), CUDA_SUCCESS, "%s", name);
        const void *nul = NULL;
        void *args[] = {&dw, &row, &dx, &nul, &dy, (void *)&n, (void *)&k};
        cr_assert_eq(d.cuLaunchKernel(f, (unsigned)(n + 7) / 8, 1, 1, 256, 1, 1, 0, NULL, args, NULL), CUDA_SUCCESS);
        d.cuMemcpyDtoH(y, dy, n * 4);
        for (int j = 0; j < n; j++) cr_assert(fabsf(y[j] - ref[j]) <= 1e-3f * (1 + fabsf(ref[j])), "%s row %d: %g vs %g", name, j, y[j], ref[j]);
        d.cuMemFree(dw), d.cuMemFree(dx), d.cuMemFree(dy);
        free(w);
    }
    free(w32), free(x), free(y), free(ref);
    d.cuModuleUnload(mod);
    CUcontext popped;
    d.cuCtxPopCurrent(&popped);
    d.cuDevicePrimaryCtxRelease(dev);
    gllm_cuda_unload(&d);
}
