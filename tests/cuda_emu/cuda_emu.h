/* The CUDA emulator's device side: what the generated kernels need from CUDA C++, for the host
 * compiler (force-included before generated/cuda/kernels.cu). A block runs as one fiber per
 * thread on one OS thread (libcuda_emu.cpp switches them): __shared__ is static (in a
 * section of its own, just before .bss, where templates' statics go: the race check maps
 * both anew for each block), a barrier or a warp collective yields until every live thread
 * it names has arrived. */
#ifndef GLLM_CUDA_EMU_H
#define GLLM_CUDA_EMU_H
#include <math.h>
#include <stdint.h>
#include <string.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static __attribute__((section("gllm_emu_shared")))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define GLLM_DYNAMIC_SHARED(type, name) type *name = (type *)gllm_emu_dynamic_shared()

struct uint3 {
    unsigned x, y, z;
};
struct alignas(8) float2 {
    float x, y;
};
static inline float2 make_float2(float x, float y) { return float2{x, y}; }
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
extern uint3 gllm_emu_thread, gllm_emu_block, gllm_emu_block_dim, gllm_emu_grid_dim;
#define threadIdx gllm_emu_thread
#define blockIdx gllm_emu_block
#define blockDim gllm_emu_block_dim
#define gridDim gllm_emu_grid_dim

void *gllm_emu_dynamic_shared();
/* a kernel's gllm_grid_wait: the emulator checks that every thread of a kernel launched as a
 * programmatic dependent calls it (the trigger does nothing: kernels run one after another) */
void gllm_emu_grid_wait();
#define GLLM_GRID_WAIT() gllm_emu_grid_wait()
#define GLLM_GRID_TRIGGER() ((void)0)
void __syncthreads();
void __syncwarp(unsigned mask = 0xffffffffu);
/* a warp exchange: every live lane posts v and gets lane src's post */
uint64_t gllm_emu_exchange(uint64_t v, int src);
/* every live lane posts v and gets the warp's 32 posts ([lane]; valid until its next warp
 * collective) and the live lanes' mask */
const uint64_t *gllm_emu_gather(uint64_t v, unsigned *live);
/* bytes from one lane into the live lanes' `to` (wmma's results, which the device keeps in
 * registers: not memory the race check watches) */
void gllm_emu_broadcast(void *const to[32], unsigned live, const void *from, size_t bytes);
/* the race check stops (1) or resumes (0) watching this thread's accesses */
void gllm_emu_unwatched(int on);
/* wait until the warp's live lanes are here: unlike __syncwarp, it orders no memory accesses */
void gllm_emu_converge();

static inline unsigned gllm_emu_lane() { return gllm_emu_thread.x % 32; }
template <class T> static inline T gllm_emu_shuffle(T v, int src) {
    static_assert(sizeof(T) <= 8, "shuffled values fit 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    b = gllm_emu_exchange(b, src & 31);
    T r;
    memcpy(&r, &b, sizeof r);
    return r;
}
template <class T> static inline T __shfl_sync(unsigned, T v, int src) { return gllm_emu_shuffle(v, src); }
template <class T> static inline T __shfl_xor_sync(unsigned, T v, int o) { return gllm_emu_shuffle(v, (int)gllm_emu_lane() ^ o); }
template <class T> static inline T __shfl_down_sync(unsigned, T v, unsigned o) {
    const unsigned l = gllm_emu_lane();
    return gllm_emu_shuffle(v, (int)(l + o < 32 ? l + o : l));
}
template <class T> static inline T __shfl_up_sync(unsigned, T v, unsigned o) {
    const unsigned l = gllm_emu_lane();
    return gllm_emu_shuffle(v, (int)(l >= o ? l - o : l));
}
static inline unsigned __ballot_sync(unsigned mask, int pred) {
    unsigned live;
    const uint64_t *all = gllm_emu_gather(pred != 0, &live);
    live &= mask;
    unsigned r = 0;
    for (int i = 0; i < 32; i++) r |= (live >> i & 1) && all[i] ? 1u << i : 0;
    return r;
}
#define GLLM_EMU_REDUCE(name, init, op)                                        \
    static inline unsigned name(unsigned mask, unsigned v) {                   \
        unsigned live;                                                         \
        const uint64_t *all = gllm_emu_gather(v, &live);                       \
        live &= mask;                                                          \
        unsigned r = init;                                                     \
        for (int i = 0; i < 32; i++)                                           \
            if (live >> i & 1) r = op(r, (unsigned)all[i]);                    \
        return r;                                                              \
    }
#define GLLM_EMU_ADD(a, b) ((a) + (b))
#define GLLM_EMU_MIN(a, b) ((a) < (b) ? (a) : (b))
#define GLLM_EMU_MAX(a, b) ((a) > (b) ? (a) : (b))
GLLM_EMU_REDUCE(__reduce_add_sync, 0u, GLLM_EMU_ADD)
GLLM_EMU_REDUCE(__reduce_min_sync, ~0u, GLLM_EMU_MIN)
GLLM_EMU_REDUCE(__reduce_max_sync, 0u, GLLM_EMU_MAX)

/* Atomics are relaxed, as on the device. For the race check a __threadfence orders this
 * thread's earlier accesses, and its later atomics, before every access after a
 * __threadfence (in any block): the split-K "last block adds the partials" handshake. */
void gllm_emu_atomic_done();
void __threadfence();
template <class T> static inline T atomicAdd(T *p, T v) {
    const T o = __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
    gllm_emu_atomic_done();
    return o;
}
template <class T, class Better> static inline T gllm_emu_atomic_pick(T *p, T v, Better better) {
    T o = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (better(v, o) && !__atomic_compare_exchange_n(p, &o, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    gllm_emu_atomic_done();
    return o;
}
template <class T> static inline T atomicMin(T *p, T v) {
    return gllm_emu_atomic_pick(p, v, [](T a, T b) { return a < b; });
}
template <class T> static inline T atomicMax(T *p, T v) {
    return gllm_emu_atomic_pick(p, v, [](T a, T b) { return a > b; });
}
template <class T> static inline T __ldcg(const T *p) { return *p; }

template <class T> static inline T min(T a, T b) { return a < b ? a : b; }
template <class T> static inline T max(T a, T b) { return a > b ? a : b; }
#define __expf(x) expf(x)
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* byte n of the result: byte (s >> 4n) & 7 of y:x */
static inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
    const unsigned long long v = (unsigned long long)y << 32 | x;
    unsigned r = 0;
    for (int n = 0; n < 4; n++) r |= (unsigned)(v >> 8 * ((s >> 4 * n) & 7) & 0xff) << 8 * n;
    return r;
}
static inline float __int_as_float(int v) { return __uint_as_float((unsigned)v); }
static inline int __float2int_rn(float v) { return (int)lrintf(v); } /* the default mode: to nearest even */
/* the four signed byte products of a and b, summed onto c */
static inline int __dp4a(int a, int b, int c) {
    for (int i = 0; i < 4; i++) c += (int)(int8_t)(a >> 8 * i) * (int)(int8_t)(b >> 8 * i);
    return c;
}
static inline int __popc(unsigned v) { return __builtin_popcount(v); }
static inline int __ffs(int v) { return __builtin_ffs(v); }
#endif
