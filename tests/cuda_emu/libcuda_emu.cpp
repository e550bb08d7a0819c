/* A CUDA driver for machines without a GPU: libcuda.so.1 with the entry points the backend
 * resolves (cuGetProcAddress_v2 and what src/cuda/driver.c asks it for), running the
 * generated kernels, compiled for the host, in place of the cubin's SASS.
 *
 * - Device memory is host memory (filled with 0xff bytes, NaN as floats, when allocated, so a
 *   kernel that reads what nobody wrote shows it).
 * - Every stream runs its work when it is enqueued: one legal order of the real
 *   asynchronous one. Captured work is recorded, with copies of its arguments, and a graph
 *   launch replays it.
 * - A block runs one fiber per thread (x86-64 stack switching) on the calling thread; __syncthreads and the
 *   warp collectives switch fibers until every live thread they name has arrived. A barrier
 *   that can never complete aborts with the kernel's name. Between barriers the threads run
 *   first to last, or last to first (GLLM_EMU_ORDER=reverse): a missing barrier shows as a
 *   result that differs between the two.
 * The device reports itself as compute capability 9.0, discrete; GLLM_EMU_INTEGRATED=1 makes
 * it integrated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <functional>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>
#include "cuda_emu.h"

/* ---- the kernels, built for the host ---- */
#include "cuda/kernels.cu"

typedef int CUresult;
enum { OK = 0, E_INVALID_VALUE = 1, E_OUT_OF_MEMORY = 2, E_INVALID_IMAGE = 200, E_NOT_FOUND = 500, E_NOT_READY = 600,
       E_CAPTURE = 900 };

typedef std::function<void()> Work;

/* the driver's CUDA_MEMCPY2D (v2) */
struct CUDA_MEMCPY2D {
    size_t srcXInBytes, srcY;
    int srcMemoryType;
    const void *srcHost;
    unsigned long long srcDevice;
    void *srcArray;
    size_t srcPitch;
    size_t dstXInBytes, dstY;
    int dstMemoryType;
    void *dstHost;
    unsigned long long dstDevice;
    void *dstArray;
    size_t dstPitch;
    size_t WidthInBytes, Height;
};

/* a kernel's launcher: its parameters copied out of the args array, bound to it */
struct Kernel {
    const char *name;
    Work (*bind)(void **args);
};
template <class... A, size_t... I> static Work bind_args(void (*f)(A...), void **args, std::index_sequence<I...>) {
    auto values = std::make_tuple(*static_cast<std::decay_t<A> *>(args[I])...);
    return [f, values] { std::apply(f, values); };
}
template <class... A> static Work bind_kernel(void (*f)(A...), void **args) {
    return bind_args(f, args, std::index_sequence_for<A...>{});
}
#define GLLM_EMU_KERNEL(name) {#name, [](void **a) { return bind_kernel(name, a); }},
static const Kernel registry[] = {
#include "kernel_list.inc"
};

/* ---- fibers ---- */
uint3 gllm_emu_thread, gllm_emu_block, gllm_emu_block_dim, gllm_emu_grid_dim;

/* switch stacks: the callee-saved registers onto this stack, its pointer to *from, then the
 * registers of the stack at `to` and return there */
extern "C" void gllm_emu_switch(void **from, void *to);
asm(".text\n"
    ".globl gllm_emu_switch\n"
    ".hidden gllm_emu_switch\n"
    "gllm_emu_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n");

namespace {
enum State { READY, AT_WARP, AT_BLOCK, DONE };
struct Fiber {
    void *sp;
    State state;
    bool begun; /* called gllm_grid_begin */
};
constexpr size_t STACK = 256 << 10;
void *scheduler;
std::vector<Fiber> fibers;
char *stacks; /* STACK bytes per fiber, mapped as touched */
size_t n_stacks;
std::vector<unsigned char> dynamic_shared;
unsigned current;
const Work *body;
const char *running; /* the kernel's name, for a deadlock report */
bool dependent;      /* launched as a programmatic dependent: every thread must call gllm_grid_begin */
uint64_t posts[32][32]; /* warp collectives: [warp][lane] */

void wait(State s) {
    fibers[current].state = s;
    gllm_emu_switch(&fibers[current].sp, scheduler);
}

void entry() {
    (*body)();
    if (dependent && !fibers[current].begun) {
        fprintf(stderr, "CUDA emulator: %s, block (%u,%u,%u) thread %u: launched as a dependent, ended without gllm_grid_begin\n",
                running, gllm_emu_block.x, gllm_emu_block.y, gllm_emu_block.z, current);
        abort();
    }
    fibers[current].state = DONE;
    gllm_emu_switch(&fibers[current].sp, scheduler);
}

/* a fresh stack that gllm_emu_switch enters at entry(), as if entry had been called */
void *fresh_stack(char *base) {
    void **top = (void **)(base + STACK);
    top[-1] = nullptr;          /* entry's return address: it never returns */
    top[-2] = (void *)entry;    /* where the switch returns to */
    for (int r = 3; r <= 8; r++) top[-r] = nullptr; /* rbp rbx r12 .. r15 */
    return top - 8;
}

/* GLLM_EMU_ORDER=reverse: between barriers, threads run last to first. A block whose threads
 * share memory without the barrier they need gets a result that depends on this order, so
 * the suites run in both. */
const bool reverse = [] {
    const char *e = getenv("GLLM_EMU_ORDER");
    return e && !strcmp(e, "reverse");
}();

/* every thread of one block to its end */
void run_block(unsigned n) {
    for (unsigned t = 0; t < n; t++) {
        fibers[t].sp = fresh_stack(stacks + (size_t)t * STACK);
        fibers[t].state = READY, fibers[t].begun = false;
    }
    for (;;) {
        for (unsigned i = 0; i < n; i++)
            if (const unsigned t = reverse ? n - 1 - i : i; fibers[t].state == READY) {
                current = t, gllm_emu_thread = {t, 0, 0};
                gllm_emu_switch(&scheduler, fibers[t].sp);
            }
        /* everyone waits or is done: release a warp whose live lanes all wait at a warp
         * collective, else the block if every live thread waits at __syncthreads */
        bool released = false, live = false, all_block = true;
        for (unsigned w = 0; w * 32 < n; w++) {
            bool warp_live = false, all_warp = true;
            for (unsigned t = w * 32; t < n && t < w * 32 + 32; t++)
                if (fibers[t].state != DONE) warp_live = true, all_warp &= fibers[t].state == AT_WARP,
                                             all_block &= fibers[t].state == AT_BLOCK;
            live |= warp_live;
            if (warp_live && all_warp) {
                for (unsigned t = w * 32; t < n && t < w * 32 + 32; t++)
                    if (fibers[t].state == AT_WARP) fibers[t].state = READY;
                released = true;
            }
        }
        if (!live) return;
        if (released) continue;
        if (!all_block) {
            fprintf(stderr, "CUDA emulator: %s, block (%u,%u,%u): threads wait at different barriers\n", running,
                    gllm_emu_block.x, gllm_emu_block.y, gllm_emu_block.z);
            abort();
        }
        for (unsigned t = 0; t < n; t++)
            if (fibers[t].state == AT_BLOCK) fibers[t].state = READY;
    }
}

void run_grid(const char *name, unsigned gx, unsigned gy, unsigned gz, unsigned threads, unsigned smem, const Work &w, bool dep) {
    if (n_stacks < threads) {
        if (stacks) munmap(stacks, n_stacks * STACK);
        stacks = (char *)mmap(nullptr, threads * STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (stacks == MAP_FAILED) fprintf(stderr, "CUDA emulator: no memory for %u fiber stacks\n", threads), abort();
        n_stacks = threads, fibers.resize(threads);
    }
    dynamic_shared.assign(smem + 16, 0xff);
    body = &w, running = name, dependent = dep;
    gllm_emu_block_dim = {threads, 1, 1}, gllm_emu_grid_dim = {gx, gy, gz};
    for (unsigned z = 0; z < gz; z++)
        for (unsigned y = 0; y < gy; y++)
            for (unsigned x = 0; x < gx; x++) gllm_emu_block = {x, y, z}, run_block(threads);
}
} // namespace

void *gllm_emu_dynamic_shared() { return dynamic_shared.data(); }
void gllm_emu_grid_begin() { fibers[current].begun = true; } /* runs in order: the kernel before has finished */
void __syncthreads() { wait(AT_BLOCK); }
void __syncwarp(unsigned) { wait(AT_WARP); }

uint64_t gllm_emu_exchange(uint64_t v, int src) {
    uint64_t *mine = posts[current / 32];
    mine[current % 32] = v;
    wait(AT_WARP);
    const uint64_t r = mine[src];
    wait(AT_WARP); /* everyone has read before anyone posts again */
    return r;
}

unsigned gllm_emu_gather(uint64_t v, uint64_t all[32]) {
    const unsigned w = current / 32;
    posts[w][current % 32] = v;
    wait(AT_WARP);
    unsigned live = 0;
    for (unsigned l = 0; l < 32 && w * 32 + l < fibers.size(); l++) {
        all[l] = posts[w][l];
        if (w * 32 + l < gllm_emu_block_dim.x && fibers[w * 32 + l].state != DONE) live |= 1u << l;
    }
    wait(AT_WARP);
    return live;
}

/* ---- the driver API ---- */
namespace {
std::recursive_mutex lock; /* one call at a time: the fibers' state is global */
struct Stream {
    bool capturing = false;
    std::vector<Work> *graph = nullptr;
};
struct Event {
    double when = 0;
};
struct Graph {
    std::vector<Work> work;
};
struct Registration {
    const char *host;
    size_t bytes;
};
std::vector<Registration> registered;
int context_depth;

double now_ms() {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* run now, or record into the stream's capture */
CUresult enqueue(void *stream, Work w) {
    Stream *s = (Stream *)stream;
    if (s && s->capturing) s->graph->push_back(std::move(w));
    else w();
    return OK;
}

CUresult emu_cuGetErrorString(CUresult r, const char **s) {
    switch (r) {
    case OK: *s = "no error"; break;
    case E_INVALID_VALUE: *s = "invalid argument"; break;
    case E_OUT_OF_MEMORY: *s = "out of memory"; break;
    case E_INVALID_IMAGE: *s = "device kernel image is invalid"; break;
    case E_NOT_FOUND: *s = "named symbol not found"; break;
    case E_NOT_READY: *s = "device not ready"; break;
    default: *s = "operation not permitted when stream is capturing"; break;
    }
    return OK;
}
CUresult emu_cuInit(unsigned) { return OK; }
CUresult emu_cuDriverGetVersion(int *v) { return *v = 13000, OK; }
CUresult emu_cuDeviceGetCount(int *n) { return *n = 1, OK; }
CUresult emu_cuDeviceGet(int *d, int ordinal) { return ordinal ? E_INVALID_VALUE : (*d = 0, OK); }
CUresult emu_cuDeviceGetName(char *name, int len, int) {
    snprintf(name, (size_t)len, "CUDA emulator (host CPU)");
    return OK;
}
CUresult emu_cuDeviceGetAttribute(int *v, int attr, int) {
    const char *integrated = getenv("GLLM_EMU_INTEGRATED");
    switch (attr) {
    case 75: *v = 9; break; /* compute capability 9.0 */
    case 76: *v = 0; break;
    case 18: *v = integrated && !strcmp(integrated, "1"); break;
    case 11: *v = 0x7fffffff; break; /* the largest pitch of a 2-D copy */
    case 16: *v = 132; break;        /* multiprocessors, as an H100 SXM */
    default: *v = 0; break;
    }
    return OK;
}
CUresult emu_cuDevicePrimaryCtxRetain(void **ctx, int) { return *ctx = (void *)&context_depth, OK; }
CUresult emu_cuDevicePrimaryCtxRelease(int) { return OK; }
CUresult emu_cuCtxPushCurrent(void *) {
    lock.lock();
    context_depth++;
    return OK;
}
CUresult emu_cuCtxPopCurrent(void **ctx) {
    if (!context_depth) return E_INVALID_VALUE;
    context_depth--;
    if (ctx) *ctx = (void *)&context_depth;
    lock.unlock();
    return OK;
}
CUresult emu_cuModuleLoadData(void **mod, const void *image) {
    if (memcmp(image, "\x7f" "ELF", 4)) return E_INVALID_IMAGE;
    return *mod = (void *)registry, OK;
}
CUresult emu_cuModuleUnload(void *) { return OK; }
CUresult emu_cuModuleGetFunction(const void **f, void *, const char *name) {
    for (const Kernel &k : registry)
        if (!strcmp(k.name, name)) return *f = &k, OK;
    return E_NOT_FOUND;
}
/* device memory in use (cuMemGetInfo); GLLM_EMU_MEMORY: the device's bytes (default 80 GiB) */
std::map<uintptr_t, size_t> allocated;
size_t allocated_bytes;
size_t device_bytes() {
    const char *e = getenv("GLLM_EMU_MEMORY");
    return e && *e ? (size_t)strtoull(e, NULL, 10) : (size_t)80 << 30;
}
CUresult emu_cuMemAlloc(unsigned long long *p, size_t bytes) {
    std::lock_guard<std::recursive_mutex> g(lock);
    if (allocated_bytes + bytes > device_bytes()) return E_OUT_OF_MEMORY;
    void *m = NULL; /* exactly bytes: under AddressSanitizer a read past the end is reported */
    if (posix_memalign(&m, 256, bytes ? bytes : 1)) return E_OUT_OF_MEMORY;
    memset(m, 0xff, bytes);
    *p = (uintptr_t)m;
    allocated[(uintptr_t)m] = bytes, allocated_bytes += bytes;
    return OK;
}
CUresult emu_cuMemGetInfo(size_t *free_bytes, size_t *total) {
    std::lock_guard<std::recursive_mutex> g(lock);
    *total = device_bytes(), *free_bytes = *total - allocated_bytes;
    return OK;
}
CUresult emu_cuMemFree(unsigned long long p) {
    std::lock_guard<std::recursive_mutex> g(lock);
    auto it = allocated.find((uintptr_t)p);
    if (it == allocated.end()) return E_INVALID_VALUE;
    allocated_bytes -= it->second, allocated.erase(it);
    return free((void *)(uintptr_t)p), OK;
}
CUresult emu_cuMemAllocHost(void **p, size_t bytes) { /* page-aligned, as the driver's */
    return (*p = aligned_alloc(4096, (bytes + 4095) / 4096 * 4096)) ? OK : E_OUT_OF_MEMORY;
}
CUresult emu_cuMemFreeHost(void *p) { return free(p), OK; }
CUresult emu_cuMemHostRegister(void *p, size_t bytes, unsigned) {
    for (const Registration &r : registered)
        if ((const char *)p < r.host + r.bytes && r.host < (const char *)p + bytes) return 712; /* already registered */
    registered.push_back({(const char *)p, bytes});
    return OK;
}
CUresult emu_cuMemHostUnregister(void *p) {
    for (size_t i = 0; i < registered.size(); i++)
        if (registered[i].host == p) return registered.erase(registered.begin() + (long)i), OK;
    return 713; /* not registered */
}
CUresult emu_cuMemHostGetDevicePointer(unsigned long long *d, void *p, unsigned) {
    for (const Registration &r : registered)
        if ((const char *)p >= r.host && (const char *)p < r.host + r.bytes) return *d = (uintptr_t)p, OK;
    return E_INVALID_VALUE;
}
CUresult launch(const Kernel *k, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem,
                void *stream, void **args, void **extra, bool dependent) {
    if (!k || !args || extra || by != 1 || bz != 1 || !bx || bx > 1024 || !gx || !gy || !gz || gx > 0x7fffffffu || gy > 65535 ||
        gz > 65535)
        return E_INVALID_VALUE;
    if (smem > 48 * 1024) return E_INVALID_VALUE; /* needs an opt-in the backend never asks for */
    Work w = k->bind(args);
    const char *name = k->name;
    return enqueue(stream, [=] {
        std::lock_guard<std::recursive_mutex> g(lock);
        run_grid(name, gx, gy, gz, bx, smem, w, dependent);
    });
}
CUresult emu_cuLaunchKernel(const Kernel *k, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                            unsigned smem, void *stream, void **args, void **extra) {
    return launch(k, gx, gy, gz, bx, by, bz, smem, stream, args, extra, false);
}
/* the driver's CUlaunchConfig and CUlaunchAttribute; of the attributes, programmatic stream
 * serialization (6) only */
struct LaunchAttribute {
    int id;
    char pad[4];
    union {
        char bytes[64];
        int value;
    };
};
struct LaunchConfig {
    unsigned gx, gy, gz, bx, by, bz, smem;
    void *stream;
    LaunchAttribute *attrs;
    unsigned n_attrs;
};
CUresult emu_cuLaunchKernelEx(const LaunchConfig *c, const Kernel *k, void **args, void **extra) {
    bool dependent = false;
    for (unsigned i = 0; c && i < c->n_attrs; i++) {
        if (c->attrs[i].id != 6) return E_INVALID_VALUE;
        dependent = c->attrs[i].value != 0;
    }
    return c ? launch(k, c->gx, c->gy, c->gz, c->bx, c->by, c->bz, c->smem, c->stream, args, extra, dependent) : E_INVALID_VALUE;
}
CUresult emu_cuMemcpyHtoDAsync(unsigned long long d, const void *h, size_t n, void *s) {
    return enqueue(s, [=] { memcpy((void *)(uintptr_t)d, h, n); });
}
CUresult emu_cuMemcpyDtoHAsync(void *h, unsigned long long d, size_t n, void *s) {
    return enqueue(s, [=] { memcpy(h, (const void *)(uintptr_t)d, n); });
}
CUresult emu_cuMemcpyDtoDAsync(unsigned long long d, unsigned long long src, size_t n, void *s) {
    return enqueue(s, [=] { memmove((void *)(uintptr_t)d, (const void *)(uintptr_t)src, n); });
}
/* host or device memory on either side (device memory is host memory here); no arrays */
CUresult emu_cuMemcpy2DAsync(const CUDA_MEMCPY2D *m, void *s) {
    if (!m || m->srcArray || m->dstArray || m->WidthInBytes > m->srcPitch || m->WidthInBytes > m->dstPitch ||
        m->srcPitch > 0x7fffffff || m->dstPitch > 0x7fffffff)
        return E_INVALID_VALUE;
    const char *src = (m->srcMemoryType == 1 ? (const char *)m->srcHost : (const char *)(uintptr_t)m->srcDevice) +
                      m->srcY * m->srcPitch + m->srcXInBytes;
    char *dst = (m->dstMemoryType == 1 ? (char *)m->dstHost : (char *)(uintptr_t)m->dstDevice) + m->dstY * m->dstPitch + m->dstXInBytes;
    const CUDA_MEMCPY2D c = *m;
    return enqueue(s, [=] {
        for (size_t r = 0; r < c.Height; r++) memcpy(dst + r * c.dstPitch, src + r * c.srcPitch, c.WidthInBytes);
    });
}
CUresult emu_cuMemsetD32Async(unsigned long long d, unsigned v, size_t n, void *s) {
    return enqueue(s, [=] {
        for (size_t i = 0; i < n; i++) memcpy((char *)(uintptr_t)d + 4 * i, &v, 4);
    });
}
CUresult emu_cuStreamCreate(Stream **s, unsigned) { return *s = new Stream, OK; }
CUresult emu_cuStreamDestroy(Stream *s) { return delete s, OK; }
CUresult emu_cuStreamSynchronize(Stream *s) { return s && s->capturing ? E_CAPTURE : OK; }
CUresult emu_cuEventCreate(Event **e, unsigned) { return *e = new Event, OK; }
CUresult emu_cuEventDestroy(Event *e) { return delete e, OK; }
CUresult emu_cuEventRecord(Event *e, Stream *s) { return enqueue(s, [=] { e->when = now_ms(); }); }
CUresult emu_cuEventSynchronize(Event *) { return OK; }
CUresult emu_cuEventQuery(Event *) { return OK; }
CUresult emu_cuStreamWaitEvent(Stream *, Event *, unsigned) { return OK; }
CUresult emu_cuEventElapsedTime(float *ms, Event *a, Event *b) { return *ms = (float)(b->when - a->when), OK; }
CUresult emu_cuStreamBeginCapture(Stream *s, int) {
    if (!s || s->capturing) return E_INVALID_VALUE;
    s->capturing = true, s->graph = new std::vector<Work>;
    return OK;
}
CUresult emu_cuStreamEndCapture(Stream *s, Graph **g) {
    if (!s || !s->capturing) return E_INVALID_VALUE;
    *g = new Graph{std::move(*s->graph)};
    delete s->graph;
    s->capturing = false, s->graph = nullptr;
    return OK;
}
CUresult emu_cuGraphInstantiateWithFlags(Graph **exec, Graph *g, unsigned long long) { return *exec = new Graph(*g), OK; }
CUresult emu_cuGraphLaunch(Graph *exec, Stream *s) {
    if (s && s->capturing) return E_CAPTURE;
    for (const Work &w : exec->work) w();
    return OK;
}
CUresult emu_cuGraphExecDestroy(Graph *g) { return delete g, OK; }
CUresult emu_cuGraphDestroy(Graph *g) { return delete g, OK; }

const struct {
    const char *name;
    void *fn;
} entries[] = {
#define E(n) {#n, (void *)emu_##n}
    E(cuGetErrorString), E(cuInit), E(cuDriverGetVersion), E(cuDeviceGetCount), E(cuDeviceGet), E(cuDeviceGetName),
    E(cuDeviceGetAttribute), E(cuDevicePrimaryCtxRetain), E(cuDevicePrimaryCtxRelease), E(cuCtxPushCurrent),
    E(cuCtxPopCurrent), E(cuModuleLoadData), E(cuModuleUnload), E(cuModuleGetFunction), E(cuMemAlloc), E(cuMemFree), E(cuMemGetInfo),
    E(cuMemAllocHost), E(cuMemFreeHost), E(cuMemHostRegister), E(cuMemHostUnregister), E(cuMemHostGetDevicePointer),
    E(cuLaunchKernel), E(cuLaunchKernelEx), E(cuMemcpyHtoDAsync), E(cuMemcpyDtoHAsync), E(cuMemcpyDtoDAsync), E(cuMemcpy2DAsync), E(cuMemsetD32Async),
    E(cuStreamCreate), E(cuStreamDestroy), E(cuStreamSynchronize), E(cuEventCreate), E(cuEventDestroy), E(cuEventRecord),
    E(cuEventSynchronize), E(cuEventQuery), E(cuStreamWaitEvent), E(cuEventElapsedTime), E(cuStreamBeginCapture),
    E(cuStreamEndCapture), E(cuGraphInstantiateWithFlags), E(cuGraphLaunch), E(cuGraphExecDestroy), E(cuGraphDestroy),
#undef E
};
} // namespace

extern "C" __attribute__((visibility("default"))) CUresult cuGetProcAddress_v2(const char *name, void **fn, int, unsigned long long,
                                                                                 int *status) {
    for (const auto &e : entries)
        if (!strcmp(e.name, name)) {
            if (status) *status = 0;
            return *fn = e.fn, OK;
        }
    if (status) *status = 1;
    *fn = nullptr;
    return E_NOT_FOUND;
}
