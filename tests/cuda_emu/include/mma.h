/* The CUDA emulator's mma.h: nvcuda::wmma on 16x16x16 tiles. A fragment is opaque in CUDA, so
 * here every lane holds the whole tile (as floats); the kernels only load, multiply, fill and
 * store whole fragments. Each lane loads the whole tile (so every element must be written
 * before any lane of the warp loads it) and stores its share, one element in 32 (so no lane
 * may read what the others store before the warp syncs). Loads and stores check CUDA's rules
 * (32-byte aligned pointers, ldm a multiple of 16 bytes). */
#ifndef GLLM_EMU_MMA_H
#define GLLM_EMU_MMA_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <type_traits>
#include "cuda_bf16.h"
#include "cuda_fp16.h"

namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    static constexpr int rows = std::is_same<Use, matrix_b>::value ? K : M;
    static constexpr int cols = std::is_same<Use, matrix_a>::value ? K : N;
    float v[rows * cols]; /* [row][col] of the tile: A m x k, B k x n, C m x n */
};

static inline float gllm_emu_value(float x) { return x; }
static inline float gllm_emu_value(__half x) { return __half2float(x); }
static inline float gllm_emu_value(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T> static inline void gllm_emu_check(const T *p, unsigned ldm) {
    if ((uintptr_t)p % 32 || (ldm * sizeof(T)) % 16) {
        fprintf(stderr, "CUDA emulator: wmma pointer %p or ldm %u breaks the alignment rules\n", (const void *)p, ldm);
        abort();
    }
}

template <class Use, int M, int N, int K, class T, class Layout, class S>
static inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout> &f, const S *p, unsigned ldm) {
    gllm_emu_check(p, ldm);
    typedef fragment<Use, M, N, K, T, Layout> F;
    for (int r = 0; r < F::rows; r++)
        for (int c = 0; c < F::cols; c++)
            f.v[r * F::cols + c] = gllm_emu_value(std::is_same<Layout, col_major>::value ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c]);
}

/* an accumulator from memory (f32, row- or column-major). The race check watches a lane read
 * the share it would store (a lane holds the same elements of an accumulator loaded and
 * stored), so a warp may store a tile it loaded without a sync. */
template <int M, int N, int K>
static inline void load_matrix_sync(fragment<accumulator, M, N, K, float> &f, const float *p, unsigned ldm, layout_t layout) {
    gllm_emu_check(p, ldm);
    for (int pass = 0; pass < 2; pass++) {
        if (pass) gllm_emu_unwatched(1);
        for (int e = 0; e < M * N; e++)
            if ((e % 32 == (int)gllm_emu_lane()) != pass) {
                const int r = e / N, c = e % N;
                f.v[e] = p[layout == mem_row_major ? (size_t)r * ldm + c : (size_t)c * ldm + r];
            }
        if (pass) gllm_emu_unwatched(0);
    }
}

template <int M, int N, int K, class T> static inline void fill_fragment(fragment<accumulator, M, N, K, T> &f, float x) {
    for (float &e : f.v) e = x;
}

/* warp-collective, as on the device: the first live lane computes the tile from its fragments
 * (every lane holds the same ones) into every live lane's d */
template <int M, int N, int K, class TA, class LA, class LB>
static inline void mma_sync(fragment<accumulator, M, N, K, float> &d, const fragment<matrix_a, M, N, K, TA, LA> &a,
                            const fragment<matrix_b, M, N, K, TA, LB> &b, const fragment<accumulator, M, N, K, float> &c) {
    unsigned live;
    const uint64_t *all = gllm_emu_gather((uint64_t)(uintptr_t)&d, &live);
    if (gllm_emu_lane() == (unsigned)__builtin_ctz(live)) {
        float out[M * N];
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                float s = c.v[i * N + j];
                for (int e = 0; e < K; e++) s += a.v[i * K + e] * b.v[e * N + j];
                out[i * N + j] = s;
            }
        void *to[32];
        for (int l = 0; l < 32; l++) to[l] = (void *)(uintptr_t)all[l];
        gllm_emu_broadcast(to, live, out, sizeof out);
    }
    gllm_emu_converge(); /* the results are in before any lane reads them */
}

template <int M, int N, int K>
static inline void store_matrix_sync(float *p, const fragment<accumulator, M, N, K, float> &f, unsigned ldm, layout_t layout) {
    gllm_emu_check(p, ldm);
    for (int e = (int)gllm_emu_lane(); e < M * N; e += 32) {
        const int r = e / N, c = e % N;
        p[layout == mem_row_major ? (size_t)r * ldm + c : (size_t)c * ldm + r] = f.v[e];
    }
}
} // namespace wmma
} // namespace nvcuda
#endif
