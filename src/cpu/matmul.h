/* Matmul on the pool (CPU backend), below the public API's validation. */
#ifndef GLLM_CPU_MATMUL_H
#define GLLM_CPU_MATMUL_H
#include "gllm_kernels.h"
#include "kernels.h"

/* Y[m][n] = X[m][k] . W[n][k]^T (+ bias): X prepared (gllm_cpu_matmul_prepare), then column or row ranges on the pool (gllm_cpu_matmul_split);
 * tiled: W in the tiled layout (src/core/kernel_abi.h, gllm_cpu_tile) */
gllm_status gllm_cpu_matmul(gllm_dtype t, int tiled, const void *w, const float *x, const float *bias, float *y, size_t m,
                            size_t n, size_t k);
/* X as the kernel of a matmul of m rows of t reads it besides the f32 rows, set in a: quantised
 * to q8 (a->xq: the block formats' int8 path) or rounded to bf16 (a->xb, a->ldxb: the AMX gemm;
 * for f32 and f16 weights also a->xb_lo, what that rounding left), once for every thread and
 * projection; nothing for the others.
 * In the workspace (the caller's mark releases it); rows on the pool. */
gllm_status gllm_cpu_matmul_prepare(gllm_dtype t, const float *x, size_t m, size_t k, gllm_matmul_args *a);
/* Up to this many activation rows of weights of type t (a batched decode step, a short
 * prompt), gemv, which reads the weights once for all of them, beats the gemm, whose panel
 * packing costs as much as a few rows' products. Measured, 4096 x 4096, 2 threads: 16 for
 * the float formats, whose panels are widened to f32 (AVX2 f16 at 16 rows 7.0 vs 12.6 ms;
 * AVX-512 230 vs 145 GFLOPS) or, under AMX, split into two bf16 parts (1 thread, 16 rows: f32
 * gemv 8.3 ms, gemm 7.5; f16 5.1 and 6.1; 24: 11.8 and 11.7, 7.6 and 8.0), but 8 for bf16 under
 * AMX (1 thread, 8 rows: 2.9 and 3.5 ms; 12: 4.1 and 3.4); for the block ones 8 on AVX2, 4 on AVX-512 for those without a
 * gemv_lanes (q2_0, q1_0), whose gemm dots int8 with vpdpbusd (Sapphire Rapids class, 6 rows:
 * gemm 195-231 GFLOPS, gemv 161-224). Where gemv_lanes takes a vector's lanes of weight rows at
 * once (in tiles, or gathered from rows): on AVX-512 32 for q8_0, 48 for q4_0, 64 for q4_1
 * (gathered, weights from the L3, 1 thread, 1536 x 576 / 4096 x 4096: q8_0 32 rows 0.46 / 6.5 ms,
 * gemm 0.50 / 7.4, 48 rows 0.69 / 11.1 and 0.58 / 10.0; q4_0 48 rows 0.52 / 8.7 both ways, 64 rows
 * 0.85 / 11.3 and 0.66 / 10.5; q4_1 64 rows 0.63 / 11.2 and 0.68 / 11.7, 96 rows 0.90 and 0.85;
 * it was 16, from weights in the L2: SmolLM2 batches of 24 / 32 / 56 sequences 31.4-32.5 /
 * 37.9-38.2 / 48.5-53.9 -> 21.6 / 28.5 / 44.4-48.3 ms a step); under AMX, whose gemv_lanes dots
 * int8 on tiles in groups of up to 32 rows and whose gemm dequantises every weight to bf16 once a
 * call, 64 for q4_0 and 96 for q8_0 and q4_1 (1 thread, weights from the L3, 1536 x 576 / 4096 x
 * 4096, lanes against gemm: q4_0 64 rows 0.39 / 6.7 and 0.45 / 8.6 ms, 96 rows 0.60 / 9.4 and
 * 0.50 / 9.5; q4_1 96 rows 0.57 / 10.0 and 0.58 / 10.3, 128 rows 0.74 / 13.8 and 0.58 / 13.1; q8_0
 * alike; it was 32 for all three, past which AVX-512's lanes took them: SmolLM2 batches of 40 / 64
 * / 96 sequences 35.7-36.2 / 52.4-54.0 / 62.0-66.2 -> 28.4-29.2 / 40.7-41.2 / 58.6-60.7 ms a step), on AVX2, whose gemm (vpmaddubsw, no VNNI) it
 * outruns, 128 for q8_0 and 512 for q4_0 and q4_1 (1 thread, weights from the L3, lanes against
 * gemm, 1536 x 576 / 4096 x 4096: q8_0 128 rows 2.70 / 53.5 and 2.79 / 57.9 ms, 192 rows 4.13 / 78.5 and
 * 3.94 / 81.4; q4_1 512 rows 7.3 / 136 and 7.9 / 176, 1024 rows 17.7 and 16.4; it was 64: SmolLM2
 * under GLLM_ISA=avx2, batches of 80 / 128 sequences 144-150 / 210-226 -> 113-118 / 184-199 ms a
 * step, prefill of 200 / 512 tokens 260 / 698-710 -> 217-222 / 637-668 ms); q2_0 and q1_0 under AMX 6 (1 thread, 6 rows: q2_0 1.83 against 2.89 ms, q1_0
 * 2.83 and 2.90). */
size_t gllm_cpu_gemv_rows(gllm_dtype t);
/* the kernel computing column ranges of one matmul: gemv (gemv_lanes over tiled weights) for
 * up to gllm_cpu_gemv_rows(t) rows, gemm otherwise */
gllm_matmul_fn gllm_cpu_matmul_kernel(gllm_dtype t, size_t m, int tiled);
/* Tiled weights: whether this ISA reads t tiled (it has a gemv_lanes for t) and n rows fit
 * whole tiles; gllm_cpu_tile writes W (n rows of k) tiled into dst (as many bytes). */
int gllm_cpu_tileable(gllm_dtype t, size_t n);
void gllm_cpu_tile(gllm_dtype t, const void *w, void *dst, size_t n, size_t k);
/* A matmul's tasks on the pool: column ranges (one per thread for gemm, each packing its
 * weight panels once; smaller for gemv), or row ranges, one per thread, where the activations
 * outweigh the weights (m >= 2n: each thread then reads its own rows once and all the weights,
 * not all the rows). Each row and column is computed alike either way. */
typedef struct {
    size_t chunk, tasks;
    int by_rows;
} gllm_mm_split;
gllm_mm_split gllm_cpu_matmul_split(gllm_dtype t, size_t m, size_t n, size_t k);
/* task `task` of split s of matmul a */
void gllm_cpu_matmul_part(gllm_matmul_fn fn, const gllm_matmul_args *a, const gllm_mm_split *s, size_t task, void *scratch);
#endif
