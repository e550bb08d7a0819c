/* Device-side helpers shared by the generated CUDA kernels (generated/cuda/). */
#ifndef GLLM_CUDA_COMMON_CUH
#define GLLM_CUDA_COMMON_CUH
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>
#include <stdint.h>
#include "quant_blocks.h"
#include "cuda/kernels/step.h"

/* a kernel's dynamic shared memory (the launch's byte count) as type name[] */
#ifndef GLLM_DYNAMIC_SHARED
#define GLLM_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

/* Programmatic dependent launch (sm_90; the host launches every kernel so there): a kernel may
 * start while the one before it in the stream still runs. Every kernel calls gllm_grid_begin
 * first: it lets the next kernel start launching (gllm_grid_trigger), then waits until the one
 * before has finished and its writes are visible (gllm_grid_wait). Only loads of what no kernel
 * writes (weights) may come before the wait; and in a decode step's attention, of the header,
 * the block tables and the cache's slots before the rows' own: the step's header upload is a
 * copy, which waits for every kernel before it, and no kernel since writes those. */
#ifndef GLLM_GRID_WAIT
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define GLLM_GRID_TRIGGER() asm volatile("griddepcontrol.launch_dependents;" ::: "memory")
#define GLLM_GRID_WAIT() asm volatile("griddepcontrol.wait;" ::: "memory")
#else
#define GLLM_GRID_TRIGGER() ((void)0)
#define GLLM_GRID_WAIT() ((void)0)
#endif
#endif
__device__ __forceinline__ void gllm_grid_trigger() { GLLM_GRID_TRIGGER(); }
__device__ __forceinline__ void gllm_grid_wait() { GLLM_GRID_WAIT(); }
__device__ __forceinline__ void gllm_grid_begin() { gllm_grid_trigger(), gllm_grid_wait(); }

/* a block's arrival at a count of blocks in global memory, by one thread after a barrier: the
 * count before it. Release and acquire at device scope in one atomic: whoever sees the arrival
 * sees the block's writes from before the barrier, and this block (after a barrier) those of the
 * blocks counted before it; lighter than a fence in every thread (a full fence, an L1
 * invalidation) before and after the atomic. */
__device__ __forceinline__ int gllm_arrive(int *count) {
#if defined(__CUDA_ARCH__)
    int old;
    asm volatile("atom.acq_rel.gpu.global.add.s32 %0, [%1], 1;" : "=r"(old) : "l"(__cvta_generic_to_global(count)) : "memory");
    return old;
#else
    __threadfence();
    return atomicAdd(count, 1);
#endif
}

/* the first 4 KB (a 128-byte line a lane) of weight rows rows[j] .. ends[j], j < count, fetched
 * into L2: called before gllm_grid_begin, the loads overlap the end of the kernel before */
__device__ __forceinline__ void gllm_prefetch_rows(const char *const *rows, const char *const *ends, int count, int lane) {
#if defined(__CUDA_ARCH__)
    for (int j = 0; j < count; j++)
        if (rows[j] + lane * 128 < ends[j]) asm volatile("prefetch.global.L2 [%0];" ::"l"(rows[j] + lane * 128));
#endif
}

/* this thread's warp's part (warp_bytes) of a ring in dynamic shared memory smem, after the
 * xbytes that hold x (rounded up to 16; decode_smem in src/cuda/model.c) */
__device__ __forceinline__ char *gllm_warp_ring(void *smem, size_t xbytes, int warp_bytes) {
    return (char *)smem + ((xbytes + 15) & ~(size_t)15) + (size_t)(threadIdx.x / 32) * warp_bytes;
}

/* Copies of 16 bytes from global to shared memory that run while the thread goes on (cp.async,
 * sm_80 and up), where `mine`: the first `bytes` (0 .. 16) of src, zeros after them
 * (gllm_copy16_async_some), or all 16 (gllm_copy16_async); src and dst 16-byte aligned
 * (predicated in PTX; ptxas may still branch around it). gllm_copies_commit closes the
 * thread's copies issued since the last commit into a group; gllm_copies_wait<N> returns once
 * at most N of its groups are in flight. The copies of other threads are seen after a barrier
 * (__syncwarp within a warp). */
__device__ __forceinline__ void gllm_copy16_async_some(void *dst, const void *src, int bytes, bool mine) {
#if defined(__CUDA_ARCH__)
    asm volatile("{\n\t.reg .pred p;\n\tsetp.ne.b32 p, %3, 0;\n\t@p cp.async.cg.shared.global [%0], [%1], 16, %2;\n\t}" ::"r"(
                     (unsigned)__cvta_generic_to_shared(dst)),
                 "l"(src), "r"(bytes), "r"((int)mine)
                 : "memory");
#else
    for (int i = 0; mine && i < 16; i++) ((char *)dst)[i] = i < bytes ? ((const char *)src)[i] : 0;
#endif
}
__device__ __forceinline__ void gllm_copy16_async(void *dst, const void *src, bool mine) {
#if defined(__CUDA_ARCH__)
    asm volatile("{\n\t.reg .pred p;\n\tsetp.ne.b32 p, %2, 0;\n\t@p cp.async.cg.shared.global [%0], [%1], 16;\n\t}" ::"r"(
                     (unsigned)__cvta_generic_to_shared(dst)),
                 "l"(src), "r"((int)mine)
                 : "memory");
#else
    for (int i = 0; mine && i < 16; i++) ((char *)dst)[i] = ((const char *)src)[i];
#endif
}
__device__ __forceinline__ void gllm_copies_commit() {
#if defined(__CUDA_ARCH__)
    asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void gllm_copies_wait() {
#if defined(__CUDA_ARCH__)
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
#endif
}

/* a warp's R weight rows row0 .. row0 + R - 1 of w (those below n; the others empty, at row
 * n - 1): rows[j] .. ends[j] */
template <int R>
__device__ __forceinline__ void gllm_weight_rows(const void *w, size_t row_bytes, int n, int row0, const char **rows,
                                                 const char **ends) {
#pragma unroll
    for (int j = 0; j < R; j++) {
        rows[j] = (const char *)w + (size_t)min(row0 + j, n - 1) * row_bytes;
        ends[j] = row0 + j < n ? rows[j] + row_bytes : rows[j];
    }
}

/* a decode gemv's outputs, by lane 0: y[row0 + j] = s[j] (+ bias[row0 + j]), or y[row0 + j] +=
 * that (accumulate), for the rows j < rows (4 at most) below n; every load before a store (a
 * store between loads would make each wait for the one before) */
__device__ __forceinline__ void gllm_gemv_store(const float *s, int rows, const float *bias, float *y, int n, int accumulate, int row0,
                                                int lane) {
    float v[4];
#pragma unroll
    for (int j = 0; j < 4; j++)
        if (lane == 0 && j < rows && row0 + j < n) {
            v[j] = s[j] + (bias ? bias[row0 + j] : 0.0f);
            if (accumulate) v[j] = y[row0 + j] + v[j];
        }
#pragma unroll
    for (int j = 0; j < 4; j++)
        if (lane == 0 && j < rows && row0 + j < n) y[row0 + j] = v[j];
}

/* R weight rows of blocks of BB bytes staged through a warp's ring in shared memory (step.h):
 * GLLM_STAGES slots of R rows of SB bytes, stage g (blocks g GB .. g GB + GB - 1 of each row)
 * in slot g % GLLM_STAGES. A row is copied in 16-byte pieces from its start rounded down to 16
 * bytes (it begins in its slot at the remainder, shift[j]); piece i = lane + 32 t of the R rows'
 * PIECES each is this lane's, held as its stage-0 source, the bytes of its row left from there
 * and its place in a slot. Stages before `whole` lie within every row, copied 16 bytes a piece;
 * the others stop at each row's end (zeros after it: nothing past a row is read, and a block
 * past it is all zeros). Bytes before a row's start are read from its buffer, which must start
 * 16-byte aligned (device allocations and mapped files do). */
template <int R, int BB> struct gllm_row_stager {
    enum { GB = GLLM_STAGE_BLOCKS(BB, R), SB = GLLM_STAGE_BYTES(BB, R), PIECES = SB / 16, T = (R * PIECES + 31) / 32, STAGE = GB * BB };
    const char *src[T];
    int left[T], dst[T], shift[R];
    int stages, whole, lane;
    char *ring;

    /* rows[j] .. ends[j] (ends[j] = rows[j]: none, only after the others) of width k into
     * warp_ring (GLLM_STAGES R SB bytes); the first GLLM_STAGES - 1 stages sent for (before
     * gllm_grid_begin: the weights need nothing from the kernel before) */
    __device__ __forceinline__ void begin(const char *const *rows, const char *const *ends, int k, char *warp_ring, int l) {
        const int row_bytes = k / 32 * BB;
        /* none for a warp past the last row (its first row empty): it leaves no copy in flight */
        stages = ends[0] > rows[0] ? (k / 32 + GB - 1) / GB : 0, lane = l, ring = warp_ring;
        /* stage g reads up to g STAGE + SB bytes past a row's start rounded down */
        whole = ends[R - 1] > rows[R - 1] && row_bytes >= SB ? (row_bytes - SB) / STAGE + 1 : 0;
#pragma unroll
        for (int j = 0; j < R; j++) shift[j] = (int)((uintptr_t)rows[j] & 15);
#pragma unroll
        for (int t = 0; t < T; t++) {
            const int i = lane + 32 * t, j = min(i / PIECES, R - 1), p = i % PIECES;
            const char *row = rows[0], *end = ends[0];
#pragma unroll
            for (int r = 1; r < R; r++) /* rows[j] and ends[j] by selects: indexed, the arrays would live in memory */
                if (j == r) row = rows[r], end = ends[r];
            src[t] = (const char *)((uintptr_t)row & ~(uintptr_t)15) + 16 * p;
            left[t] = (int)(end - src[t]), dst[t] = j * SB + 16 * p;
        }
#pragma unroll
        for (int g = 0; g < GLLM_STAGES - 1; g++) send(g, g);
    }
    /* stage g's copies into slot s (none past the last stage), one commit group */
    __device__ __forceinline__ void send(int g, int s) const {
        if (g < stages) {
            char *slot = ring + s * R * SB;
            if (g < whole)
#pragma unroll
                for (int t = 0; t < T; t++) gllm_copy16_async(slot + dst[t], src[t] + (size_t)g * STAGE, t < T - 1 || lane + 32 * t < R * PIECES);
            else
#pragma unroll
                for (int t = 0; t < T; t++)
                    gllm_copy16_async_some(slot + dst[t], src[t] + (size_t)g * STAGE, min(max(left[t] - g * STAGE, 0), 16),
                                           t < T - 1 || lane + 32 * t < R * PIECES);
        }
        gllm_copies_commit();
    }
    /* stage g in slot s = g % GLLM_STAGES: stage g + GLLM_STAGES - 1 sent for into the slot read
     * at g - 1, then the warp's copies of stage g waited for */
    __device__ __forceinline__ const char *at(int g, int s) const {
        __syncwarp();
        send(g + GLLM_STAGES - 1, (s + GLLM_STAGES - 1) % GLLM_STAGES);
        gllm_copies_wait<GLLM_STAGES - 1>();
        __syncwarp();
        return ring + s * R * SB;
    }
};

__device__ __forceinline__ float gllm_f16_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float gllm_bf16_to_f32(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }

/* f32 -> KV cache element, rounding to nearest even as the CPU cache does */
__device__ __forceinline__ uint16_t gllm_f32_to_f16(float v) { return __half_as_ushort(__float2half_rn(v)); }
__device__ __forceinline__ uint16_t gllm_f32_to_bf16(float v) {
    const uint32_t u = __float_as_uint(v);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* a small integer (|v| < 2^22) as a float by an integer and a float add: v added to the bits of
 * 1.5 * 2^23 (where floats step by 1), then 1.5 * 2^23 taken off. Exact; the conversion
 * instruction runs at a quarter of the adders' rate or less, short of what a quantised gemv needs */
__device__ __forceinline__ float gllm_i2f(int v) { return __int_as_float(0x4B400000 + v) - 12582912.0f; }

/* byte i of 16-bit words w as T (int8_t or uint8_t), picked with __byte_perm: with a shift and
 * a mask the compiler narrows a word's load back to a byte */
template <typename T, typename Words> __device__ __forceinline__ T gllm_code_byte(const Words &w, int i) {
    return (T)__byte_perm(w[i >> 1], 0, 0x4440 | (i & 1));
}

/* a block's code bytes read through 16-bit loads (blocks are only 2-byte aligned): q.qs[i] is
 * code byte i, and the compiler loads each word once for its two bytes */
template <typename T> struct gllm_codes16 {
    struct {
        const uint16_t *w;
        __device__ __forceinline__ T operator[](int i) const { return gllm_code_byte<T>(w, i); }
    } qs;
};

/* a block held in registers: its f16 fields (d, and m where the format has that offset field)
 * and its N code bytes as 16-bit words; qs[i] is code byte i */
template <typename T, int N> struct gllm_block_held {
    uint16_t d, m;
    struct {
        uint16_t w[N / 2];
        __device__ __forceinline__ T operator[](int i) const { return gllm_code_byte<T>(w, i); }
    } qs;
};

__device__ __forceinline__ float gllm_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* every lane gets the sum */
__device__ __forceinline__ float gllm_warp_allsum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float gllm_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

/* paged KV cache, per layer [page][kv_head][slot][head_dim] for K and V: the element offset
 * of slot j's row for KV head kvh, slot j living in page table[j >> page_shift] */
__device__ __forceinline__ size_t gllm_kv_page_offset(int page, int j, int kvh, int n_kv, int hd, int page_shift) {
    return ((((size_t)page * n_kv + kvh) << page_shift) + (size_t)(j & ((1 << page_shift) - 1))) * hd;
}
__device__ __forceinline__ size_t gllm_kv_offset(const int *table, int j, int kvh, int n_kv, int hd, int page_shift) {
    return gllm_kv_page_offset(table[j >> page_shift], j, kvh, n_kv, hd, page_shift);
}

/* row i's rotation table, as the CPU's gllm_rope_cos_sin: cs[p] and cs[rot/2 + p] the cosine and
 * sine of pos * inv_freq[p] (the angle in double), pos the header's position of row i (else its
 * slot); the block's threads over the pairs. Made once per step, read by every layer. */
__device__ __forceinline__ void gllm_rope_table_row(const int *hdr, int i, int rot, const float *inv_freq, float *cs) {
    const double pos = hdr[GLLM_HDR_POS] ? hdr[hdr[GLLM_HDR_POS] + i] : hdr[hdr[GLLM_HDR_SLOTS] + i];
    for (int p = threadIdx.x; p < rot / 2; p += blockDim.x) {
        double sd, cd;
        sincos(pos * inv_freq[p], &sd, &cd);
        cs[p] = (float)cd, cs[rot / 2 + p] = (float)sd;
    }
}

/* the rotation of dim d (< rot) in a row's table cs: its pair's (2p, 2p + 1, or p, p + rot/2 when
 * neox) cosine and sine */
__device__ __forceinline__ void gllm_rope_cs(const float *cs, int d, int rot, int neox, float *c, float *s) {
    const int p = neox ? d % (rot / 2) : d / 2;
    *c = cs[p], *s = cs[rot / 2 + p];
}

/* element d of head x after RoPE by (c, s) of gllm_rope_cs (dims from rot on as they are), x
 * first scaled by sc * w (a q/k norm) when w */
__device__ __forceinline__ float gllm_rope_dim(const float *x, int d, int rot, int neox, float c, float s, float sc, const float *w) {
    const float xd = w ? x[d] * sc * w[d] : x[d];
    if (d >= rot) return xd;
    const int half = rot / 2, first = neox ? d < half : !(d & 1), partner = neox ? (first ? d + half : d - half) : d ^ 1;
    const float xp = w ? x[partner] * sc * w[partner] : x[partner];
    return first ? xd * c - xp * s : xp * s + xd * c;
}

/* a block-wide max (is_max) or sum; every thread gets it; red: 32 floats of shared memory */
__device__ __forceinline__ float gllm_block_reduce(float v, float *red, int is_max) {
    v = is_max ? gllm_warp_max(v) : gllm_warp_sum(v);
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    float r = red[0];
    for (int w = 1; w < (int)blockDim.x / 32; w++) r = is_max ? fmaxf(r, red[w]) : r + red[w];
    __syncthreads();
    return r;
}

/* the first GLLM_X_KEPT values of x (and of nw) a thread takes in a block-wide pass over k values,
 * x[threadIdx.x + blockDim.x j], loaded at once and kept for a second pass: a short x (up to
 * 2048 at 256 threads) takes one round trip to memory, not one for the norm's sum and another
 * for the values (zeros, and nw's ones, past k) */
enum { GLLM_X_KEPT = 8 };
__device__ __forceinline__ void gllm_x_kept(const float *x, const float *nw, int k, float *xv, float *wv) {
#pragma unroll
    for (int j = 0; j < GLLM_X_KEPT; j++) {
        const int i = threadIdx.x + blockDim.x * j;
        xv[j] = i < k ? x[i] : 0.0f, wv[j] = nw && i < k ? nw[i] : 1.0f;
    }
}

/* 1 / sqrt(mean(x^2) + eps) over the block, xv the thread's kept values of x, the rest loaded */
__device__ __forceinline__ float gllm_rms_scale(const float *x, const float *xv, int k, float eps, float *red) {
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < GLLM_X_KEPT; j++) ss += xv[j] * xv[j];
    for (int i = threadIdx.x + blockDim.x * GLLM_X_KEPT; i < k; i += blockDim.x) ss += x[i] * x[i];
    return rsqrtf(gllm_block_reduce(ss, red, 0) / (float)k + eps);
}

/* x itself (nw NULL), or x / sqrt(mean(x^2) + eps) * nw written to xs[k] (shared); every thread
 * of the block calls it */
__device__ __forceinline__ const float *gllm_rmsnorm_to_shared(const float *x, const float *nw, float eps, int k, float *xs,
                                                               float *red) {
    if (!nw) return x;
    float xv[GLLM_X_KEPT], wv[GLLM_X_KEPT];
    gllm_x_kept(x, nw, k, xv, wv);
    const float scale = gllm_rms_scale(x, xv, k, eps, red);
#pragma unroll
    for (int j = 0; j < GLLM_X_KEPT; j++)
        if (threadIdx.x + blockDim.x * j < k) xs[threadIdx.x + blockDim.x * j] = xv[j] * scale * wv[j];
    for (int i = threadIdx.x + blockDim.x * GLLM_X_KEPT; i < k; i += blockDim.x) xs[i] = x[i] * scale * nw[i];
    __syncthreads();
    return xs;
}
/* x (after the RMSNorm when nw) rounded as the CPU's int8 path (act_quant): per 32 values,
 * d = max|x| / 127, codes round(x / d) to nearest even in xq, xd[b] = {d, d * the sum of block
 * b's codes}; a block holding an inf or NaN: codes 0, d NaN. A warp per block of 32: block
 * warp + warps j is x[threadIdx.x + blockDim.x j], the thread's kept values (gllm_x_kept) for
 * j < GLLM_X_KEPT; past them 4 blocks a warp at a time, their loads in flight together. Every
 * thread of the block calls it */
__device__ __forceinline__ void gllm_quantize_x_to_shared(const float *x, const float *nw, float eps, int k, int8_t *xq,
                                                          float2 *xd, float *red) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32, nb = k / 32;
    float xv[GLLM_X_KEPT], wv[GLLM_X_KEPT];
    gllm_x_kept(x, nw, k, xv, wv);
    const float scale = nw ? gllm_rms_scale(x, xv, k, eps, red) : 1.0f;
    auto round_block = [&](int b, float v) { /* v: this lane's value of block b */
        const unsigned amax = __reduce_max_sync(0xffffffffu, __float_as_uint(v) & 0x7fffffffu);
        const float d = __fdiv_rn(__uint_as_float(amax), 127.0f), id = d >= 1.17549435e-38f ? __fdiv_rn(1.0f, d) : 0.0f;
        const int finite = amax < 0x7f800000u, q = finite ? __float2int_rn(fminf(fmaxf(v * id, -127.0f), 127.0f)) : 0;
        xq[b * 32 + lane] = (int8_t)q;
        const int sum = (int)__reduce_add_sync(0xffffffffu, (unsigned)q);
        const float dd = finite ? d : __uint_as_float(0x7fc00000u);
        if (lane == 0) xd[b] = make_float2(dd, dd * (float)sum);
    };
#pragma unroll
    for (int j = 0; j < GLLM_X_KEPT; j++) {
        if (warp + warps * j >= nb) break;
        round_block(warp + warps * j, nw ? xv[j] * scale * wv[j] : xv[j]);
    }
    for (int b0 = warp + warps * GLLM_X_KEPT; b0 < nb; b0 += 4 * warps) {
        float v[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const int i = (b0 + u * warps) * 32 + lane;
            v[u] = b0 + u * warps < nb ? (nw ? x[i] * scale * nw[i] : x[i]) : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < 4; u++) {
            if (b0 + u * warps >= nb) break;
            round_block(b0 + u * warps, v[u]);
        }
    }
    __syncthreads();
}
#endif
