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
 *   first to last, or last to first (GLLM_EMU_ORDER=reverse), a warp on through its warp
 *   collectives before the next: a missing barrier shows as a result that differs between the
 *   two.
 * - Built with ThreadSanitizer, it reports data races between device threads (see "the race
 *   check" below).
 * The device reports itself as compute capability 9.0, discrete; GLLM_EMU_INTEGRATED=1 makes
 * it integrated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <link.h>
#include <sys/mman.h>
#include <time.h>
#include <atomic>
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
/* the device it plays: an H100 (sm_90: 227 KB of shared memory a block once opted in, 132
 * SMs), or with GLLM_EMU_SM=86 an sm_86 card (99 KB, 84 SMs, no dependent launches): the host's
 * choices per architecture */
struct Device {
    int major, minor, optin, sms;
};
const Device device = [] {
    const char *e = getenv("GLLM_EMU_SM");
    return e && !strcmp(e, "86") ? Device{8, 6, 99 * 1024, 84} : Device{9, 0, 227 * 1024, 132};
}();

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
#if defined(__SANITIZE_THREAD__)
/* the race check's own test (tests/tsan/race_check.c): each kernel with (ordered) and without
 * the order it needs. 64 threads a block. */
__global__ void gllm_emu_race_block(float *out, int ordered) { /* threads exchange through shared memory */
    __shared__ float s[64];
    gllm_emu_grid_wait();
    s[threadIdx.x] = (float)threadIdx.x;
    if (ordered) __syncthreads();
    out[threadIdx.x] = s[63 - threadIdx.x];
}
__global__ void gllm_emu_race_grid(float *out, int ordered) { /* blocks write one element, or their own */
    gllm_emu_grid_wait();
    if (threadIdx.x == 0) out[ordered ? blockIdx.x : 0] = (float)blockIdx.x;
}
__global__ void gllm_emu_race_dependent(float *out, int ordered) { /* reads the kernel before's out[0..63] */
    float v = 0.0f;
    if (!ordered) v = out[threadIdx.x];
    gllm_emu_grid_wait();
    if (ordered) v = out[threadIdx.x];
    out[64 + threadIdx.x] = v;
}
#define GLLM_EMU_RACE_KERNELS \
    GLLM_EMU_KERNEL(gllm_emu_race_block) GLLM_EMU_KERNEL(gllm_emu_race_grid) GLLM_EMU_KERNEL(gllm_emu_race_dependent)
#else
#define GLLM_EMU_RACE_KERNELS
#endif

#define GLLM_EMU_KERNEL(name) {#name, [](void **a) { return bind_kernel(name, a); }},
static const Kernel registry[] = {
#include "kernel_list.inc"
    GLLM_EMU_RACE_KERNELS
};

/* ---- the race check ----
 * Built with -fsanitize=thread (GLLM_TSAN), ThreadSanitizer sees each emulated thread as a
 * fiber of its own, and a switch between fibers orders nothing. Only what orders threads on
 * the device does:
 *   - a block's __syncthreads, a warp's __syncwarp;
 *   - a __threadfence before an atomic, and one after it (see cuda_emu.h);
 *   - the host's work before a launch;
 *   - the end of a kernel before the next one starts, or, for a programmatic dependent, before
 *     it returns from gllm_grid_wait.
 * So two device threads that touch the same bytes, one of them writing, with none of these
 * between them, are reported: within a block, between blocks of a grid (consecutive blocks
 * run on different fibers), and between a dependent kernel and the one before it. The
 * emulator's own bookkeeping is not watched (no_sanitize_thread). */
#if defined(__SANITIZE_THREAD__)
extern "C" {
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
void AnnotateIgnoreWritesBegin(const char *f, int l);
void AnnotateIgnoreWritesEnd(const char *f, int l);
}
#define UNWATCHED __attribute__((no_sanitize_thread))
namespace race {
constexpr bool on = true;
inline void *fiber() { return __tsan_create_fiber(0); }
inline void *self() { return __tsan_get_current_fiber(); }
inline void to(void *fiber) { __tsan_switch_to_fiber(fiber, 1 /* orders nothing */); }
inline void release(void *sync) { __tsan_release(sync); }
inline void acquire(void *sync) { __tsan_acquire(sync); }
inline void unwatched_begin() { AnnotateIgnoreWritesBegin(__FILE__, __LINE__); }
inline void unwatched_end() { AnnotateIgnoreWritesEnd(__FILE__, __LINE__); }
} // namespace race
#else
#define UNWATCHED
namespace race {
constexpr bool on = false;
inline void *fiber() { return nullptr; }
inline void *self() { return nullptr; }
inline void to(void *) {}
inline void release(void *) {}
inline void acquire(void *) {}
inline void unwatched_begin() {}
inline void unwatched_end() {}
} // namespace race
#endif
extern "C" char gllm_emu_shared_begin[]; /* static __shared__ from here (shared_begin.c) */

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
/* a device thread: a fiber that runs the body of one block's thread after another */
struct Fiber {
    void *sp;     /* where it waits, or 0 before its first block */
    void *race;   /* its ThreadSanitizer fiber */
    State state;
    bool begun;   /* called gllm_grid_wait */
    bool fenced;  /* called __threadfence */
    unsigned syncs, warp_syncs; /* barriers passed in this block: their parity picks the sync object */
    unsigned grid, waited; /* the last grid it ran in, and waited in (gllm_grid_wait), + 1 */
    bool flush;    /* its next task: give its order to the next grid */
};
/* Consecutive blocks alternate between two sets of fibers, so that the race check sees no
 * order between them (a fiber's own history is ordered). */
constexpr unsigned MAX_THREADS = 1024, SETS = 2;
constexpr size_t STACK = 64 << 10; /* the suites' threads use at most 16 KiB, sanitizers included */
Fiber fibers[SETS][MAX_THREADS];
unsigned set;        /* the set running the current block */
char *stacks;        /* STACK bytes per fiber */
void *scheduler, *scheduler_race;
/* dynamic shared memory: the launch's bytes (+16) on the heap, where AddressSanitizer sees a
 * read past them; for the race check, pages of their own */
#if defined(__SANITIZE_THREAD__)
constexpr size_t DYNAMIC_PAGES = 256 << 10; /* more than any device's opt-in */
struct {
    unsigned char *at;
    size_t bytes;
    unsigned char *data() { return at; }
    void assign(size_t n, unsigned char v) {
        if (n > DYNAMIC_PAGES) fprintf(stderr, "CUDA emulator: %zu bytes of dynamic shared memory\n", n), abort();
        if (!at) at = (unsigned char *)mmap(nullptr, DYNAMIC_PAGES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (at == MAP_FAILED) fprintf(stderr, "CUDA emulator: no memory for shared memory\n"), abort();
        bytes = n;
        race::unwatched_begin();
        memset(at, v, n);
        race::unwatched_end();
    }
} dynamic_shared;

/* pages mapped anew: the race check forgets every access to them (their bytes are kept) */
void remap(void *at, size_t bytes) {
    static std::vector<unsigned char> *keep = new std::vector<unsigned char>; /* these pages may hold its pointer */
    keep->resize(bytes);
    unsigned char *copy = keep->data();
    race::unwatched_begin();
    memcpy(copy, at, bytes);
    if (mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
        fprintf(stderr, "CUDA emulator: cannot map shared memory anew\n"), abort();
    for (size_t page = 0; page < bytes; page += 4096) { /* all-zero pages stay unmapped until touched */
        const size_t n = bytes - page < 4096 ? bytes - page : 4096;
        if (copy[page] || memcmp(copy + page, copy + page + 1, n - 1)) memcpy((char *)at + page, copy + page, n);
    }
    race::unwatched_end();
}

/* the end of the writable segment that holds static __shared__: after the section comes
 * .bss, where the compiler puts the __shared__ variables of templates */
char *shared_end() {
    static char *end;
    if (!end)
        dl_iterate_phdr(
            [](dl_phdr_info *info, size_t, void *) {
                for (int i = 0; i < info->dlpi_phnum; i++) {
                    const ElfW(Phdr) &h = info->dlpi_phdr[i];
                    char *at = (char *)(info->dlpi_addr + h.p_vaddr);
                    if (h.p_type == PT_LOAD && at <= gllm_emu_shared_begin && gllm_emu_shared_begin < at + h.p_memsz)
                        return end = at + h.p_memsz, 1;
                }
                return 0;
            },
            nullptr);
    if (!end) fprintf(stderr, "CUDA emulator: no segment holds shared memory\n"), abort();
    return end;
}

/* a block's shared memory starts with no accesses: an earlier block's are not this one's. The
 * emulator's own zero-initialised data is mapped anew with it, so its sync objects and mutex
 * live on the heap. */
void fresh_shared() {
    const uintptr_t end = ((uintptr_t)shared_end() + 4095) & ~(uintptr_t)4095;
    remap(gllm_emu_shared_begin, end - (uintptr_t)gllm_emu_shared_begin);
    remap(dynamic_shared.at, dynamic_shared.bytes);
}
#else
std::vector<unsigned char> dynamic_shared;
void fresh_shared() {}
#endif
unsigned current;
const Work *body;
const char *running; /* the kernel's name, for a deadlock report */
bool dependent;      /* launched as a programmatic dependent: every thread must call gllm_grid_wait */
/* warp collectives: each lane's post, and the lanes live at the release; two buffers a warp */
struct Posts {
    uint64_t v[32];
    unsigned live;
} posts[2][32];
unsigned releases[32]; /* per warp: its releases so far */
/* the race check's sync objects: only their addresses matter, on the heap (fresh_shared maps
 * this library's zero-initialised data anew, and would forget them there) */
struct Syncs {
    char launched;       /* released by the host before each grid */
    char finished[2];    /* by every thread at its end, alternating between grids */
    char fenced_atomics; /* by a fenced thread's atomics */
    char block[SETS][2], warp[SETS][32][2];
} &syncs = *new Syncs;
unsigned grids; /* grids run: the parity of the current one picks finished[] */

UNWATCHED Fiber &self() { return fibers[set][current]; }

/* GLLM_EMU_ORDER=reverse: between barriers, threads run last to first. A block whose threads
 * share memory without the barrier they need gets a result that depends on this order, so
 * the suites run in both. */
const bool reverse = [] {
    const char *e = getenv("GLLM_EMU_ORDER");
    return e && !strcmp(e, "reverse");
}();

/* The block's threads run in order: position i is thread i, or n - 1 - i in reverse. A thread
 * that waits hands over to the next READY one itself, the last back to the scheduler; the last
 * of a warp to reach a warp collective releases the warp and hands over to its first lane, so a
 * warp runs on to its next barrier before the next warp starts (fewer threads' stacks in the
 * cache), one legal order of the device's. */
unsigned round_n, round_pos;
UNWATCHED unsigned at(unsigned pos) { return reverse ? round_n - 1 - pos : pos; } /* its own inverse */

UNWATCHED void resume(void **from, unsigned pos) {
    const unsigned t = at(pos);
    round_pos = pos, current = t, gllm_emu_thread = {t, 0, 0};
    race::to(fibers[set][t].race);
    gllm_emu_switch(from, fibers[set][t].sp);
}

/* warp w's live lanes, if they all wait at a warp collective, go on: 1, else 0 */
UNWATCHED bool release_warp(unsigned w) {
    Fiber *f = fibers[set];
    const unsigned end = round_n < w * 32 + 32 ? round_n : w * 32 + 32;
    unsigned lanes = 0;
    for (unsigned t = w * 32; t < end; t++)
        if (f[t].state == AT_WARP) lanes |= 1u << t % 32;
        else if (f[t].state != DONE) return false;
    if (!lanes) return false;
    for (unsigned t = w * 32; t < end; t++)
        if (lanes >> t % 32 & 1) f[t].state = READY;
    posts[releases[w]++ % 2][w].live = lanes;
    return true;
}

UNWATCHED void wait(State s) {
    Fiber &f = self();
    if ((char *)__builtin_frame_address(0) < stacks + ((size_t)set * MAX_THREADS + current) * STACK + STACK / 2)
        fprintf(stderr, "CUDA emulator: %s, thread %u: over half of its stack in use\n", running, current), abort();
    f.state = s;
    if (round_n) { /* in a block (not a fiber's flush at the end of a grid) */
        /* the positions of this thread's warp: [p0, p1] */
        const unsigned w = current / 32, last = round_n < w * 32 + 32 ? round_n - 1 : w * 32 + 31;
        const unsigned p0 = reverse ? at(last) : w * 32, p1 = reverse ? at(w * 32) : last;
        unsigned i = round_pos + 1;
        while (i <= p1 && fibers[set][at(i)].state != READY) i++;
        if (i > p1 && s != AT_BLOCK && release_warp(w))
            for (i = p0; fibers[set][at(i)].state != READY;) i++;
        while (i < round_n && fibers[set][at(i)].state != READY) i++;
        if (i < round_n) return resume(&f.sp, i);
    }
    race::to(scheduler_race);
    gllm_emu_switch(&f.sp, scheduler);
}

/* a fiber's life: each time it is switched to, one thread of a block, or (flush) the end of
 * its part in a grid; then back. It takes the host's order at its first block of a grid, and
 * gives its own to the next grid once, after its last block. */
UNWATCHED void entry() {
    for (;;) {
        Fiber &f = self();
        if (f.flush) {
            race::release(&syncs.finished[grids % 2]);
            f.flush = false;
        } else {
            if (f.grid != grids + 1) f.grid = grids + 1, race::acquire(&syncs.launched);
            (*body)();
            if (dependent && !f.begun) {
                fprintf(stderr, "CUDA emulator: %s, block (%u,%u,%u) thread %u: launched as a dependent, ended without gllm_grid_wait\n",
                        running, gllm_emu_block.x, gllm_emu_block.y, gllm_emu_block.z, current);
                abort();
            }
        }
        wait(DONE);
    }
}

/* a fresh stack that gllm_emu_switch enters at entry(), as if entry had been called. Fiber i's
 * stack starts i % 64 cache lines below its top: stacks a power of two apart would put every
 * fiber's frames in the same cache sets. */
UNWATCHED void *fresh_stack(size_t i) {
    void **top = (void **)(stacks + (i + 1) * STACK - i % 64 * 64);
    top[-1] = nullptr;          /* entry's return address: it never returns */
    top[-2] = (void *)entry;    /* where the switch returns to */
    for (int r = 3; r <= 8; r++) top[-r] = nullptr; /* rbp rbx r12 .. r15 */
    return top - 8;
}

/* every thread of one block to its end */
UNWATCHED void run_block(unsigned n) {
    Fiber *f = fibers[set];
    if (!stacks) {
        stacks = (char *)mmap(nullptr, SETS * MAX_THREADS * STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (stacks == MAP_FAILED) fprintf(stderr, "CUDA emulator: no memory for the fibers' stacks\n"), abort();
        madvise(stacks, SETS * MAX_THREADS * STACK, MADV_HUGEPAGE); /* one TLB entry for 32 stacks */
    }
    for (unsigned t = 0; t < n; t++) {
        if (!f[t].sp) f[t].sp = fresh_stack((size_t)set * MAX_THREADS + t), f[t].race = race::fiber();
        f[t].state = READY, f[t].begun = f[t].fenced = false, f[t].syncs = f[t].warp_syncs = 0;
    }
    fresh_shared();
    round_n = n;
    for (;;) {
        for (unsigned i = 0; i < n; i++)
            if (f[at(i)].state == READY) {
                resume(&scheduler, i);
                break;
            }
        /* everyone waits or is done: release a warp whose live lanes all wait at a warp
         * collective, else the block if every live thread waits at __syncthreads */
        bool released = false, live = false, all_block = true;
        for (unsigned t = 0; t < n; t++)
            if (f[t].state != DONE) live = true, all_block &= f[t].state == AT_BLOCK;
        for (unsigned w = 0; w * 32 < n; w++) released |= release_warp(w);
        if (!live) return;
        if (released) continue;
        if (!all_block) {
            fprintf(stderr, "CUDA emulator: %s, block (%u,%u,%u): threads wait at different barriers\n", running,
                    gllm_emu_block.x, gllm_emu_block.y, gllm_emu_block.z);
            abort();
        }
        for (unsigned t = 0; t < n; t++)
            if (f[t].state == AT_BLOCK) f[t].state = READY;
    }
}

UNWATCHED void run_grid(const char *name, unsigned gx, unsigned gy, unsigned gz, unsigned threads, unsigned smem, const Work &w,
                        bool dep) {
    if (threads > MAX_THREADS) fprintf(stderr, "CUDA emulator: %u threads a block\n", threads), abort();
    dynamic_shared.assign(smem + 16, 0xff);
    body = &w, running = name, dependent = dep;
    scheduler_race = race::self();
    gllm_emu_block_dim = {threads, 1, 1}, gllm_emu_grid_dim = {gx, gy, gz};
    race::release(&syncs.launched);
    for (unsigned z = 0; z < gz; z++)
        for (unsigned y = 0; y < gy; y++)
            for (unsigned x = 0; x < gx; x++) gllm_emu_block = {x, y, z}, run_block(threads), set = (set + 1) % SETS;
    if (race::on) { /* the fibers that ran this grid flush */
        const unsigned next = set;
        round_n = 0;
        for (unsigned s = 0; s < SETS; s++)
            for (unsigned t = 0; t < threads; t++)
                if (Fiber &f = fibers[s][t]; f.grid == grids + 1) {
                    set = s, current = t, f.flush = true;
                    race::to(f.race);
                    gllm_emu_switch(&scheduler, f.sp);
                }
        set = next;
    }
    grids++;
}

/* kernels run, kept until the host waits for them: their threads read the bound arguments,
 * and a free before that wait would be a race (the emulator's, not the kernels') */
std::vector<Work> retired;
void retire(Work &w) { retired.push_back(std::move(w)); }

/* the host waits for every kernel so far (the race check: their accesses come before its) */
void host_sync() {
    race::acquire(&syncs.finished[0]);
    race::acquire(&syncs.finished[1]);
    retired.clear();
}
} // namespace

void *gllm_emu_dynamic_shared() { return dynamic_shared.data(); }
/* runs in order: the kernel before has finished. The race check orders a fiber after it at
 * its first block of a grid (so code before the wait shows in one block of each thread index
 * and parity) */
UNWATCHED void gllm_emu_grid_wait() {
    Fiber &f = self();
    f.begun = true;
    if (f.waited != grids + 1) f.waited = grids + 1, race::acquire(&syncs.finished[(grids + 1) % 2]);
}
UNWATCHED void __syncthreads() {
    char *s = &syncs.block[set][self().syncs++ % 2];
    race::release(s);
    wait(AT_BLOCK);
    race::acquire(s);
}
UNWATCHED void __syncwarp(unsigned) {
    char *s = &syncs.warp[set][current / 32][self().warp_syncs++ % 2];
    race::release(s);
    wait(AT_WARP);
    race::acquire(s);
}
UNWATCHED void gllm_emu_converge() { wait(AT_WARP); }
UNWATCHED void gllm_emu_atomic_done() {
    if (self().fenced) race::release(&syncs.fenced_atomics);
}
UNWATCHED void __threadfence() {
    self().fenced = true;
    race::acquire(&syncs.fenced_atomics);
}
void gllm_emu_unwatched(int on) { on ? race::unwatched_begin() : race::unwatched_end(); }
UNWATCHED void gllm_emu_broadcast(void *const to[32], unsigned live, const void *from, size_t bytes) {
    race::unwatched_begin();
    for (int l = 0; l < 32; l++)
        if (live >> l & 1) memcpy(to[l], from, bytes);
    race::unwatched_end();
}

/* A warp collective posts into the buffer of its release's parity and reads it after the
 * release: the next collective posts into the other one, and the one after that can begin only
 * once every lane has passed the next, so has read. */
UNWATCHED const Posts &post(uint64_t v) {
    const unsigned w = current / 32;
    Posts &p = posts[releases[w] % 2][w];
    p.v[current % 32] = v;
    wait(AT_WARP);
    return p;
}

UNWATCHED uint64_t gllm_emu_exchange(uint64_t v, int src) { return post(v).v[src]; }

UNWATCHED const uint64_t *gllm_emu_gather(uint64_t v, unsigned *live) {
    const Posts &p = post(v);
    *live = p.live;
    return p.v;
}

/* ---- the driver API ---- */
namespace {
/* one call at a time: the fibers' state is global (on the heap: see Syncs) */
std::recursive_mutex &lock = *new std::recursive_mutex;
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

/* run now, or record into the stream's capture: a kernel, or the host's work (a copy, a
 * memset, an event), which comes after every kernel before it */
CUresult enqueue_kernel(void *stream, Work w) {
    Stream *s = (Stream *)stream;
    if (s && s->capturing) s->graph->push_back(std::move(w));
    else w(), retire(w);
    return OK;
}
CUresult enqueue(void *stream, Work w) {
    return enqueue_kernel(stream, [w] { host_sync(), w(); });
}

CUresult emu_cuGetErrorString(CUresult r, const char **s) {
    switch (r) {
    case OK: *s = "no error"; break;
    case E_INVALID_VALUE: *s = "invalid argument"; break;
    case E_OUT_OF_MEMORY: *s = "out of memory"; break;
    case E_INVALID_IMAGE: *s = "device kernel image is invalid"; break;
    case E_NOT_FOUND: *s = "named symbol not found"; break;
    case E_NOT_READY: *s = "device not ready"; break;
    case 701: *s = "too many resources requested for launch"; break;
    case 900: *s = "operation not supported when stream is capturing"; break;
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
    case 75: *v = device.major; break; /* compute capability */
    case 76: *v = device.minor; break;
    case 18: *v = integrated && !strcmp(integrated, "1"); break;
    case 11: *v = 0x7fffffff; break; /* the largest pitch of a 2-D copy */
    case 16: *v = device.sms; break;   /* multiprocessors */
    case 97: *v = device.optin; break; /* a block's shared memory, opted in */
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
    host_sync(); /* the caller may read mapped host memory next */
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
/* the dynamic shared memory each kernel may take past 48 KB, as cuFuncSetAttribute allowed it */
std::map<const Kernel *, int> shared_optin;
CUresult emu_cuFuncSetAttribute(const Kernel *f, int attr, int v) {
    if (attr != 8 || v < 0 || v > device.optin) return E_INVALID_VALUE; /* CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES only */
    std::lock_guard<std::recursive_mutex> g(lock);
    shared_optin[f] = v;
    return OK;
}
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
    host_sync();
    allocated_bytes -= it->second, allocated.erase(it);
    return free((void *)(uintptr_t)p), OK;
}
CUresult emu_cuMemAllocHost(void **p, size_t bytes) { /* page-aligned, as the driver's */
    return (*p = aligned_alloc(4096, (bytes + 4095) / 4096 * 4096)) ? OK : E_OUT_OF_MEMORY;
}
CUresult emu_cuMemFreeHost(void *p) { return host_sync(), free(p), OK; }
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
std::atomic<long> launches{0}, fail_from{-1}; /* kernel launches so far; the first to fail (tests), -1 none */
CUresult launch(const Kernel *k, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem,
                void *stream, void **args, void **extra, bool dependent) {
    const long nth = launches++, bad = fail_from.load();
    if (bad >= 0 && nth >= bad) return 701; /* CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES */
    if (!k || !args || extra || by != 1 || bz != 1 || !bx || bx > 1024 || !gx || !gy || !gz || gx > 0x7fffffffu || gy > 65535 ||
        gz > 65535)
        return E_INVALID_VALUE;
    {
        std::lock_guard<std::recursive_mutex> g(lock);
        const auto it = shared_optin.find(k); /* past 48 KB, only as far as cuFuncSetAttribute allowed */
        if (smem > (it != shared_optin.end() && it->second > 48 * 1024 ? (unsigned)it->second : 48u * 1024)) return E_INVALID_VALUE;
    }
    Work w = k->bind(args);
    const char *name = k->name;
    return enqueue_kernel(stream, [=] {
        std::lock_guard<std::recursive_mutex> g(lock);
        if (!dependent) host_sync(); /* else its threads wait in gllm_grid_wait */
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
CUresult emu_cuStreamSynchronize(Stream *s) { return s && s->capturing ? E_CAPTURE : (host_sync(), OK); }
CUresult emu_cuEventCreate(Event **e, unsigned) { return *e = new Event, OK; }
CUresult emu_cuEventDestroy(Event *e) { return delete e, OK; }
CUresult emu_cuEventRecord(Event *e, Stream *s) { return enqueue(s, [=] { e->when = now_ms(); }); }
CUresult emu_cuEventSynchronize(Event *) { return host_sync(), OK; }
CUresult emu_cuEventQuery(Event *) { return OK; }
CUresult emu_cuStreamWaitEvent(Stream *, Event *, unsigned) { return OK; }
CUresult emu_cuEventElapsedTime(float *ms, Event *a, Event *b) { return *ms = (float)(b->when - a->when), OK; }
std::atomic<bool> fail_capture{false}; /* the next capture fails (tests) */
CUresult emu_cuStreamBeginCapture(Stream *s, int) {
    if (fail_capture.exchange(false)) return 900; /* CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED */
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
CUresult emu_cuGraphExecDestroy(Graph *g) { return host_sync(), delete g, OK; }
CUresult emu_cuGraphDestroy(Graph *g) { return host_sync(), delete g, OK; }

const struct {
    const char *name;
    void *fn;
} entries[] = {
#define E(n) {#n, (void *)emu_##n}
    E(cuGetErrorString), E(cuInit), E(cuDriverGetVersion), E(cuDeviceGetCount), E(cuDeviceGet), E(cuDeviceGetName),
    E(cuDeviceGetAttribute), E(cuDevicePrimaryCtxRetain), E(cuDevicePrimaryCtxRelease), E(cuCtxPushCurrent),
    E(cuCtxPopCurrent), E(cuModuleLoadData), E(cuModuleUnload), E(cuModuleGetFunction), E(cuFuncSetAttribute), E(cuMemAlloc), E(cuMemFree), E(cuMemGetInfo),
    E(cuMemAllocHost), E(cuMemFreeHost), E(cuMemHostRegister), E(cuMemHostUnregister), E(cuMemHostGetDevicePointer),
    E(cuLaunchKernel), E(cuLaunchKernelEx), E(cuMemcpyHtoDAsync), E(cuMemcpyDtoHAsync), E(cuMemcpyDtoDAsync), E(cuMemcpy2DAsync), E(cuMemsetD32Async),
    E(cuStreamCreate), E(cuStreamDestroy), E(cuStreamSynchronize), E(cuEventCreate), E(cuEventDestroy), E(cuEventRecord),
    E(cuEventSynchronize), E(cuEventQuery), E(cuStreamWaitEvent), E(cuEventElapsedTime), E(cuStreamBeginCapture),
    E(cuStreamEndCapture), E(cuGraphInstantiateWithFlags), E(cuGraphLaunch), E(cuGraphExecDestroy), E(cuGraphDestroy),
#undef E
};
} // namespace

/* for tests, found with dlsym: the kernel launches so far; from which one on launches fail (-1:
 * none); the next stream capture fails */
extern "C" __attribute__((visibility("default"))) long gllm_emu_launches(void) { return launches.load(); }
extern "C" __attribute__((visibility("default"))) void gllm_emu_fail_launches_from(long n) { fail_from.store(n); }
extern "C" __attribute__((visibility("default"))) void gllm_emu_fail_next_capture(void) { fail_capture.store(true); }

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
