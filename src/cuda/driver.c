#include "cuda/driver.h"
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include "core/error.h"

typedef CUresult (*get_proc_fn)(const char *symbol, void **pfn, int version, uint64_t flags, int *status);

static const struct {
    const char *name;
    int version; /* of the PFN_<name>_vNNNN typedef this project's signature matches */
    size_t offset;
} entries[] = {
#define E(name, v) {#name, v, offsetof(gllm_cuda_driver, name)}
    E(cuGetErrorString, 6000), E(cuInit, 2000), E(cuDriverGetVersion, 2020), E(cuDeviceGetCount, 2000),
    E(cuDeviceGet, 2000), E(cuDeviceGetName, 2000), E(cuDeviceGetAttribute, 2000), E(cuDevicePrimaryCtxRetain, 7000),
    E(cuDevicePrimaryCtxRelease, 11000), E(cuCtxPushCurrent, 4000), E(cuCtxPopCurrent, 4000),
    E(cuModuleLoadData, 2000), E(cuModuleUnload, 2000), E(cuModuleGetFunction, 2000), E(cuFuncSetAttribute, 9000), E(cuMemAlloc, 3020),
    E(cuMemFree, 3020), E(cuMemGetInfo, 3020), E(cuMemAllocHost, 3020), E(cuMemFreeHost, 2000),
    E(cuMemHostRegister, 6050), E(cuMemHostUnregister, 4000), E(cuMemHostGetDevicePointer, 3020), E(cuLaunchKernel, 4000), E(cuLaunchKernelEx, 11060), E(cuMemcpyHtoDAsync, 3020), E(cuMemcpyDtoHAsync, 3020),
    E(cuMemcpyDtoDAsync, 3020), E(cuMemcpy2DAsync, 3020), E(cuMemsetD32Async, 3020), E(cuStreamCreate, 2000), E(cuStreamDestroy, 4000),
    E(cuStreamSynchronize, 2000), E(cuEventCreate, 2000), E(cuEventDestroy, 4000), E(cuEventRecord, 2000),
    E(cuEventSynchronize, 2000), E(cuEventQuery, 2000), E(cuStreamWaitEvent, 3020), E(cuEventElapsedTime, 2000), E(cuStreamBeginCapture, 10010),
    E(cuStreamEndCapture, 10000), E(cuGraphInstantiateWithFlags, 11040), E(cuGraphLaunch, 10000),
    E(cuGraphExecDestroy, 10000), E(cuGraphDestroy, 10000),
#undef E
};

static gllm_status no_gpu(gllm_cuda_driver *d, CUresult r) {
    gllm_cuda_unload(d);
    return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA: no GPU (%s)",
                     r == CUDA_ERROR_STUB_LIBRARY ? "the link-only libcuda from the toolkit's lib64/stubs" : "no device");
}

gllm_status gllm_cuda_load(gllm_cuda_driver *d, const char *lib) {
    memset(d, 0, sizeof *d);
    const char *path = lib ? lib : "libcuda.so.1";
    /* the real driver stays mapped once initialised (its threads outlive a dlclose) */
    if (!(d->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL | (lib ? 0 : RTLD_NODELETE))))
        return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA: no GPU driver (%s cannot be loaded)", path);
    get_proc_fn get = (get_proc_fn)dlsym(d->lib, "cuGetProcAddress_v2");
    if (!get) {
        gllm_cuda_unload(d);
        return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA: %s has no cuGetProcAddress_v2 (driver too old)", path);
    }
    for (size_t i = 0; i < sizeof entries / sizeof *entries; i++) {
        void *fn = NULL;
        int status = 0;
        const CUresult r = get(entries[i].name, &fn, entries[i].version, 0, &status);
        if (r == CUDA_ERROR_STUB_LIBRARY) return no_gpu(d, r);
        if (r != CUDA_SUCCESS || !fn) {
            gllm_cuda_unload(d);
            return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA: the driver lacks %s (version %d)", entries[i].name, entries[i].version);
        }
        memcpy((char *)d + entries[i].offset, &fn, sizeof fn);
    }
    CUresult r = d->cuInit(0);
    if (r == CUDA_ERROR_STUB_LIBRARY || r == CUDA_ERROR_NO_DEVICE) return no_gpu(d, r);
    if (r != CUDA_SUCCESS) {
        const gllm_status s = gllm_fail(GLLM_E_UNSUPPORTED, "CUDA: cuInit failed (%s)", gllm_cuda_error(d, r));
        gllm_cuda_unload(d);
        return s;
    }
    if (d->cuDriverGetVersion(&d->version) != CUDA_SUCCESS || d->version < 13000) {
        const int v = d->version;
        gllm_cuda_unload(d);
        return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA: driver %d.%d, 13.0 or newer is needed", v / 1000, v % 1000 / 10);
    }
    return GLLM_OK;
}

const char *gllm_cuda_error(const gllm_cuda_driver *d, CUresult r) {
    const char *msg = NULL;
    return d->cuGetErrorString && d->cuGetErrorString(r, &msg) == CUDA_SUCCESS && msg ? msg : "unknown CUDA error";
}

void gllm_cuda_unload(gllm_cuda_driver *d) {
    if (d->lib) dlclose(d->lib);
    memset(d, 0, sizeof *d);
}

/* the cubins, embedded by src/cuda/blobs.S */
#define BLOB(sm) extern const unsigned char gllm_cubin_sm##sm##_start[], gllm_cubin_sm##sm##_end[];
BLOB(80) BLOB(86) BLOB(89) BLOB(90)
#undef BLOB

/* SASS runs on its own major version at the same or a later minor: the newest built one that fits */
gllm_status gllm_cuda_blob(int major, int minor, const void **data, size_t *size, int *sm) {
#define PICK(s)                                                                                   \
    if (major == s / 10 && minor >= s % 10) {                                                     \
        *data = gllm_cubin_sm##s##_start, *size = (size_t)(gllm_cubin_sm##s##_end - gllm_cubin_sm##s##_start); \
        *sm = s;                                                                                  \
        return GLLM_OK;                                                                           \
    }
    PICK(90) PICK(89) PICK(86) PICK(80)
#undef PICK
    return gllm_fail(GLLM_E_UNSUPPORTED, "CUDA: compute capability %d.%d has no kernels (sm_80, 86, 89, 90 are built)", major, minor);
}

gllm_status gllm_cuda_blob_check(const void *data, size_t size) {
    const unsigned char *p = data;
    if (size < 64 || memcmp(p, "\x7f" "ELF", 4) || p[4] != 2)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "CUDA blob: not a 64-bit ELF");
    uint16_t machine, shnum, shstrndx;
    uint64_t shoff;
    memcpy(&machine, p + 18, 2), memcpy(&shoff, p + 40, 8), memcpy(&shnum, p + 60, 2), memcpy(&shstrndx, p + 62, 2);
    if (machine != 190) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "CUDA blob: ELF machine %u is not CUDA (190)", machine);
    if (shoff > size || shnum > (size - shoff) / 64 || shstrndx >= shnum)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "CUDA blob: section table outside the blob");
    uint64_t stroff, strsize;
    memcpy(&stroff, p + shoff + (uint64_t)shstrndx * 64 + 24, 8), memcpy(&strsize, p + shoff + (uint64_t)shstrndx * 64 + 32, 8);
    if (stroff > size || strsize > size - stroff) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "CUDA blob: bad section names");
    for (uint16_t i = 0; i < shnum; i++) {
        uint32_t name;
        memcpy(&name, p + shoff + (uint64_t)i * 64, 4);
        if (name >= strsize) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "CUDA blob: bad section name");
        const char *s = (const char *)p + stroff + name;
        if (strstr(s, "ptx") || strstr(s, "PTX")) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "CUDA blob: PTX section %s", s);
    }
    return GLLM_OK;
}
