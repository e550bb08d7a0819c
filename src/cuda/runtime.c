#include "cuda/runtime.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"

gllm_status gllm_cuda_check(const gllm_cuda *c, CUresult r, const char *what) {
    if (r == CUDA_SUCCESS) return GLLM_OK;
    return gllm_fail(r == 2 ? GLLM_E_OUT_OF_MEMORY : GLLM_E_INTERNAL, "CUDA: %s: %s", what, gllm_cuda_error(&c->drv, r));
}

gllm_status gllm_cuda_open(gllm_cuda *c, int ordinal) {
    memset(c, 0, sizeof *c);
    gllm_status s = gllm_cuda_load(&c->drv, NULL);
    if (s != GLLM_OK) return s;
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&c->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    int count = 0, major = 0, minor = 0;
    if (c->drv.cuDeviceGetCount(&count) != CUDA_SUCCESS) count = 0;
    if (ordinal < 0 || ordinal >= count) return gllm_cuda_close(c), gllm_fail(GLLM_E_UNSUPPORTED, "CUDA: no device %d (%d present)", ordinal, count);
    c->drv.cuDeviceGet(&c->dev, ordinal);
    c->drv.cuDeviceGetName(c->name, sizeof c->name, c->dev);
    c->drv.cuDeviceGetAttribute(&major, CU_ATTR_CC_MAJOR, c->dev);
    c->drv.cuDeviceGetAttribute(&minor, CU_ATTR_CC_MINOR, c->dev);
    c->drv.cuDeviceGetAttribute(&c->integrated, CU_ATTR_INTEGRATED, c->dev);
    int pageable = 0;
    c->drv.cuDeviceGetAttribute(&pageable, CU_ATTR_PAGEABLE_MEMORY_ACCESS, c->dev);
    c->drv.cuDeviceGetAttribute(&c->host_pages, CU_ATTR_PAGEABLE_USES_HOST_PAGE_TABLES, c->dev);
    c->host_pages = c->host_pages && pageable;
    int pitch = 0;
    c->drv.cuDeviceGetAttribute(&pitch, CU_ATTR_MAX_PITCH, c->dev);
    c->max_pitch = pitch > 0 ? (size_t)pitch : 0;
    const char *map = getenv("GLLM_CUDA_MAP"); /* 1: map even over PCIe (tests), 0: always copy */
    c->map = map && *map ? strcmp(map, "0") != 0 : c->integrated || c->host_pages;
    c->drv.cuDeviceGetAttribute(&c->sms, CU_ATTR_MULTIPROCESSOR_COUNT, c->dev);
    int optin = 0;
    c->drv.cuDeviceGetAttribute(&optin, CU_ATTR_MAX_SHARED_PER_BLOCK_OPTIN, c->dev);
    c->smem_optin = optin > 48 * 1024 ? (unsigned)optin : 48 * 1024;
    const char *rows = getenv("GLLM_CUDA_GEMV_ROWS");
    c->gemv_rows = rows ? atoi(rows) : 0;
    const char *splits = getenv("GLLM_CUDA_ATTN_SPLITS");
    c->attn_splits = splits ? atoi(splits) : 0;
    const char *dl = getenv("GLLM_CUDA_DEPENDENT_LAUNCH");
    const char *tc = getenv("GLLM_CUDA_TENSOR_CORES");
    const char *i8 = getenv("GLLM_CUDA_INT8");
    c->tensor_cores = !(tc && !strcmp(tc, "0"));
    c->int8_gemv = c->tensor_cores && !(i8 && !strcmp(i8, "0"));
    const void *blob;
    size_t size;
    if ((s = gllm_cuda_blob(major, minor, &blob, &size, &c->sm)) != GLLM_OK || (s = gllm_cuda_blob_check(blob, size)) != GLLM_OK)
        return gllm_cuda_close(c), s;
    c->dependent_launch = c->sm >= 90 && dl && !strcmp(dl, "1"); /* measured slower on an H200: opt-in */
    if (c->drv.cuDevicePrimaryCtxRetain(&c->ctx, c->dev) != CUDA_SUCCESS) {
        c->ctx = NULL;
        gllm_cuda_close(c);
        return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA: no context on %s", c->name);
    }
    if ((s = gllm_cuda_enter(c)) != GLLM_OK) return gllm_cuda_close(c), s;
    CUresult r = c->drv.cuModuleLoadData(&c->mod, blob);
    if (r != CUDA_SUCCESS) {
        c->mod = NULL;
        s = gllm_fail(GLLM_E_UNSUPPORTED, "CUDA: loading the sm_%d kernels failed (%s)", c->sm, gllm_cuda_error(&c->drv, r));
    }
    if (s == GLLM_OK) s = gllm_cuda_check(c, c->drv.cuStreamCreate(&c->stream, CU_STREAM_NON_BLOCKING), "creating a stream");
    if (s == GLLM_OK) s = gllm_cuda_check(c, c->drv.cuStreamCreate(&c->copy, CU_STREAM_NON_BLOCKING), "creating the copy stream");
    gllm_cuda_leave(c);
    if (s != GLLM_OK) gllm_cuda_close(c);
    return s;
}

void gllm_cuda_close(gllm_cuda *c) {
    if (c->ctx && gllm_cuda_enter(c) == GLLM_OK) {
        for (int i = 0; i < GLLM_CUDA_SPARES; i++)
            if (c->spare[i].p) c->drv.cuMemFreeHost(c->spare[i].p);
        if (c->stream) c->drv.cuStreamDestroy(c->stream);
        if (c->copy) c->drv.cuStreamDestroy(c->copy);
        if (c->mod) c->drv.cuModuleUnload(c->mod);
        gllm_cuda_leave(c);
    }
    if (c->ctx) c->drv.cuDevicePrimaryCtxRelease(c->dev);
    if (c->drv.lib) gllm_cuda_unload(&c->drv), pthread_mutex_destroy(&c->lock);
    memset(c, 0, sizeof *c);
}

gllm_status gllm_cuda_enter(gllm_cuda *c) {
    pthread_mutex_lock(&c->lock);
    const gllm_status s = gllm_cuda_check(c, c->drv.cuCtxPushCurrent(c->ctx), "making the context current");
    if (s != GLLM_OK) pthread_mutex_unlock(&c->lock);
    return s;
}

void gllm_cuda_leave(gllm_cuda *c) {
    CUcontext popped;
    c->drv.cuCtxPopCurrent(&popped);
    pthread_mutex_unlock(&c->lock);
}

/* the kernel and its cache entry (*at: -1 where the cache is full) */
static gllm_status kernel_at(gllm_cuda *c, const char *name, CUfunction *f, int *at) {
    for (int i = 0; i < c->n_kernels; i++)
        if (c->kernels[i].name == name || !strcmp(c->kernels[i].name, name)) return *f = c->kernels[i].fn, *at = i, GLLM_OK;
    const CUresult r = c->drv.cuModuleGetFunction(f, c->mod, name);
    if (r != CUDA_SUCCESS) return gllm_fail(GLLM_E_INTERNAL, "CUDA: kernel %s not in the sm_%d cubin (%s)", name, c->sm, gllm_cuda_error(&c->drv, r));
    *at = -1;
    if (c->n_kernels < (int)(sizeof c->kernels / sizeof *c->kernels))
        *at = c->n_kernels, c->kernels[c->n_kernels].name = name, c->kernels[c->n_kernels].smem = 48 * 1024, c->kernels[c->n_kernels++].fn = *f;
    return GLLM_OK;
}

gllm_status gllm_cuda_kernel(gllm_cuda *c, const char *name, CUfunction *f) {
    int at;
    return kernel_at(c, name, f, &at);
}

gllm_status gllm_cuda_launch(gllm_cuda *c, CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned block, unsigned smem,
                             void **args) {
    if (!gx || !gy || !gz) return GLLM_OK; /* nothing to do */
    if (!c->dependent_launch)
        return gllm_cuda_check(c, c->drv.cuLaunchKernel(f, gx, gy, gz, block, 1, 1, smem, c->stream, args, NULL), "launching a kernel");
    CUlaunchAttribute a = {.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION,
                           .value.programmatic_stream_serialization_allowed = 1};
    const CUlaunchConfig cfg = {gx, gy, gz, block, 1, 1, smem, c->stream, &a, 1};
    return gllm_cuda_check(c, c->drv.cuLaunchKernelEx(&cfg, f, args, NULL), "launching a kernel");
}

gllm_status gllm_cuda_run(gllm_cuda *c, const char *name, unsigned gx, unsigned gy, unsigned gz, unsigned block, unsigned smem,
                          void **args) {
    CUfunction f;
    int at;
    gllm_status s = kernel_at(c, name, &f, &at);
    if (s == GLLM_OK && smem > (at >= 0 ? c->kernels[at].smem : 48 * 1024)) { /* more than 48 KB is asked for, once */
        if (smem > c->smem_optin)
            return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA: kernel %s needs %u bytes of shared memory (%s: %u)", name, smem, c->name, c->smem_optin);
        s = gllm_cuda_check(c, c->drv.cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)smem), "shared memory");
        if (s == GLLM_OK && at >= 0) c->kernels[at].smem = smem;
    }
    return s == GLLM_OK ? gllm_cuda_launch(c, f, gx, gy, gz, block, smem, args) : s;
}

gllm_status gllm_cuda_alloc(gllm_cuda *c, size_t bytes, CUdeviceptr *p) {
    *p = 0;
    const CUresult r = c->drv.cuMemAlloc(p, bytes ? bytes : 4);
    if (r == CUDA_SUCCESS) return GLLM_OK;
    *p = 0;
    return gllm_fail(GLLM_E_OUT_OF_MEMORY, "CUDA: %zu bytes of device memory not available (%s)", bytes, gllm_cuda_error(&c->drv, r));
}

void gllm_cuda_free(gllm_cuda *c, CUdeviceptr p) {
    if (p) c->drv.cuMemFree(p);
}

gllm_status gllm_cuda_upload(gllm_cuda *c, CUdeviceptr dst, const void *src, size_t bytes) {
    return bytes ? gllm_cuda_check(c, c->drv.cuMemcpyHtoDAsync(dst, src, bytes, c->stream), "copying to the device") : GLLM_OK;
}

gllm_status gllm_cuda_download(gllm_cuda *c, void *dst, CUdeviceptr src, size_t bytes) {
    gllm_status s = bytes ? gllm_cuda_check(c, c->drv.cuMemcpyDtoHAsync(dst, src, bytes, c->stream), "copying from the device") : GLLM_OK;
    return s == GLLM_OK ? gllm_cuda_sync(c) : s;
}

gllm_status gllm_cuda_sync(gllm_cuda *c) { return gllm_cuda_check(c, c->drv.cuStreamSynchronize(c->stream), "running the kernels"); }

/* a block starts with its size; the caller's memory follows, 64-byte aligned */
enum { HOST_HEAD = 64 };

gllm_status gllm_cuda_host_alloc(gllm_cuda *c, size_t bytes, void **p) {
    *p = NULL;
    int best = -1;
    for (int i = 0; i < GLLM_CUDA_SPARES; i++)
        if (c->spare[i].p && c->spare[i].bytes >= bytes && (best < 0 || c->spare[i].bytes < c->spare[best].bytes)) best = i;
    if (best >= 0) {
        *p = (char *)c->spare[best].p + HOST_HEAD, c->spare_bytes -= c->spare[best].bytes, c->spare[best].p = NULL;
        return GLLM_OK;
    }
    void *b = NULL;
    const CUresult r = c->drv.cuMemAllocHost(&b, HOST_HEAD + bytes);
    if (r != CUDA_SUCCESS)
        return gllm_fail(GLLM_E_OUT_OF_MEMORY, "CUDA: %zu bytes of page-locked host memory not available (%s)", bytes,
                         gllm_cuda_error(&c->drv, r));
    *(size_t *)b = bytes, *p = (char *)b + HOST_HEAD;
    return GLLM_OK;
}

void gllm_cuda_host_free(gllm_cuda *c, void *p) {
    if (!p) return;
    void *b = (char *)p - HOST_HEAD;
    const size_t bytes = *(size_t *)b;
    for (int i = 0; i < GLLM_CUDA_SPARES && c->spare_bytes + bytes <= GLLM_CUDA_SPARE_BYTES; i++)
        if (!c->spare[i].p) {
            c->spare[i].p = b, c->spare[i].bytes = bytes, c->spare_bytes += bytes;
            return;
        }
    c->drv.cuMemFreeHost(b);
}

gllm_status gllm_cuda_map(gllm_cuda *c, const void *host, size_t bytes, CUdeviceptr *dev, int *registered) {
    *registered = 0;
    if (c->host_pages) return *dev = (CUdeviceptr)(uintptr_t)host, GLLM_OK;
    void *p = (void *)(uintptr_t)host; /* read-only where the device supports it (a read-only file mapping needs it) */
    CUresult r = c->drv.cuMemHostRegister(p, bytes, CU_MEMHOSTREGISTER_DEVICEMAP | CU_MEMHOSTREGISTER_READ_ONLY);
    if (r != CUDA_SUCCESS) r = c->drv.cuMemHostRegister(p, bytes, CU_MEMHOSTREGISTER_DEVICEMAP);
    gllm_status s = gllm_cuda_check(c, r, "mapping the weights for the device");
    if (s != GLLM_OK) return s;
    if ((s = gllm_cuda_check(c, c->drv.cuMemHostGetDevicePointer(dev, p, 0), "mapping the weights for the device")) != GLLM_OK)
        return c->drv.cuMemHostUnregister(p), s;
    *registered = 1;
    return GLLM_OK;
}

void gllm_cuda_unmap(gllm_cuda *c, const void *host, int registered) {
    if (registered) c->drv.cuMemHostUnregister((void *)(uintptr_t)host);
}
