/* One CUDA device as the backend uses it: driver, primary context, the module of our
 * cubin, two non-blocking streams (kernels, KV swap copies); kernels looked up by name; every driver error turned into
 * a gllm_status with the driver's message. */
#ifndef GLLM_CUDA_RUNTIME_H
#define GLLM_CUDA_RUNTIME_H
#include <pthread.h>
#include "cuda/driver.h"

/* page-locked host blocks kept for reuse: this many, this many bytes in all */
enum { GLLM_CUDA_SPARES = 8 };
#define GLLM_CUDA_SPARE_BYTES ((size_t)1 << 30)

typedef struct {
    gllm_cuda_driver drv;
    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    CUstream stream; /* ours, non-blocking: every launch and copy but the KV swaps */
    CUstream copy;   /* ours, non-blocking: KV swap copies, beside the kernels */
    int sm, integrated;
    int host_pages; /* reads pageable host memory through the host's page tables (Grace Hopper class) */
    int map;        /* weights used in place, not copied: integrated or host_pages (GLLM_CUDA_MAP=0/1 overrides) */
    int tensor_cores; /* prefill gemm on tensor cores (GLLM_CUDA_TENSOR_CORES=0: CUDA cores, f32 activations) */
    int int8_gemv;    /* decode gemvs over block formats round x to int8 as the CPU does (GLLM_CUDA_INT8=0, or
                       * GLLM_CUDA_TENSOR_CORES=0: f32 x) */
    int sms;          /* streaming multiprocessors */
    int dependent_launch; /* sm_90, GLLM_CUDA_DEPENDENT_LAUNCH=1: kernels launched as programmatic dependents,
                           * each starting while the one before finishes (default: one after the other) */
    int attn_splits;  /* decode attention's splits of a row's keys, forced (GLLM_CUDA_ATTN_SPLITS), 0: chosen */
    int gemv_rows;    /* decode gemv rows per warp, forced (GLLM_CUDA_GEMV_ROWS=1/2/4), 0: chosen per matrix */
    size_t max_pitch; /* of a 2-D copy */
    unsigned smem_optin; /* a block's dynamic shared memory where a kernel asks for more than 48 KB */
    struct {
        void *p; /* page-locked blocks freed and kept for the next gllm_cuda_host_alloc */
        size_t bytes;
    } spare[GLLM_CUDA_SPARES];
    size_t spare_bytes;
    char name[96];
    struct {
        const char *name;
        CUfunction fn;
        unsigned smem; /* the dynamic shared memory it may take: 48 KB, more once asked for */
    } kernels[96];
    int n_kernels;
    pthread_mutex_t lock; /* recursive: one thread at a time between enter and leave */
} gllm_cuda;

/* device `ordinal`: driver (>= 13.0), the cubin of its capability (CUDA ELF, no PTX),
 * primary context, module, streams. Errors name what failed. */
gllm_status gllm_cuda_open(gllm_cuda *c, int ordinal);
void gllm_cuda_close(gllm_cuda *c);

/* the context current on the calling thread for one public call, the device held by that
 * thread until leave (calls from several threads take turns: they share the streams) */
gllm_status gllm_cuda_enter(gllm_cuda *c);
void gllm_cuda_leave(gllm_cuda *c);

/* a driver result as a status ("CUDA: <what>: <driver message>") */
gllm_status gllm_cuda_check(const gllm_cuda *c, CUresult r, const char *what);
/* a kernel of the module by name (names are string literals: looked up once, then cached) */
gllm_status gllm_cuda_kernel(gllm_cuda *c, const char *name, CUfunction *f);
/* launch on the compute stream: grid (gx, gy, gz), block threads, smem dynamic shared bytes (as a
 * programmatic dependent where c->dependent_launch: the kernel calls gllm_grid_begin first) */
gllm_status gllm_cuda_launch(gllm_cuda *c, CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned block, unsigned smem,
                             void **args);
/* the same, the kernel by name */
gllm_status gllm_cuda_run(gllm_cuda *c, const char *name, unsigned gx, unsigned gy, unsigned gz, unsigned block, unsigned smem,
                          void **args);

gllm_status gllm_cuda_alloc(gllm_cuda *c, size_t bytes, CUdeviceptr *p);
void gllm_cuda_free(gllm_cuda *c, CUdeviceptr p);
/* host -> device, ordered on the compute stream (src must stay valid until the next sync) */
gllm_status gllm_cuda_upload(gllm_cuda *c, CUdeviceptr dst, const void *src, size_t bytes);
/* device -> host after the compute stream's work: returns when the bytes are there */
gllm_status gllm_cuda_download(gllm_cuda *c, void *dst, CUdeviceptr src, size_t bytes);
gllm_status gllm_cuda_sync(gllm_cuda *c);
/* host memory the kernels read in place (map): pageable memory as it is where the device walks
 * the host's page tables, else registered read-only and mapped. *dev its device address;
 * *registered whether gllm_cuda_unmap must unregister it */
gllm_status gllm_cuda_map(gllm_cuda *c, const void *host, size_t bytes, CUdeviceptr *dev, int *registered);
void gllm_cuda_unmap(gllm_cuda *c, const void *host, int registered);
/* page-locked host memory, which copies on the copy stream need to run beside the kernels. Pinning
 * is slow (the driver maps every page), so freed blocks are kept (GLLM_CUDA_SPARES, up to
 * GLLM_CUDA_SPARE_BYTES in all) and the smallest that fits is handed out again; they go back to
 * the driver at close */
gllm_status gllm_cuda_host_alloc(gllm_cuda *c, size_t bytes, void **p);
void gllm_cuda_host_free(gllm_cuda *c, void *p);
#endif
