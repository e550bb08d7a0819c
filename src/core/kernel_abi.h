/* The contract between src/ and the generated kernels (generated/cpu/<isa>/).
 *
 * Matmul (gemv and gemm share it): Y[m][n] = X[m][k] . W[n][k]^T (+ bias[n]).
 *   W: n rows of w_row_bytes, each row k elements of the weight dtype (block
 *      formats: k/32 blocks, k a multiple of the block size).
 *   X: f32 rows with stride ldx (float formats), or xq: the same rows
 *      quantised by act_quant into k/32 gllm_q8x blocks each (block formats), or xb
 *      (the AMX gemm): the same rows rounded to bf16 (as gllm_f32_to_bf16), ldxb apart, k
 *      padded with zeros to ldxb, a multiple of 32; 31 rows past the last readable (tiles of
 *      32 rows read them; their sums are dropped); and for f32 and f16 weights xb_lo, laid
 *      out alike: what that rounding left (x - xb), rounded to bf16.
 *   A kernel call computes columns [j0, j1) of every row of Y; each output
 *   element is accumulated in a fixed k order, so results do not depend on
 *   how the columns are split between threads.
 *   scratch: GLLM_SCRATCH_BYTES, 64-byte aligned, owned by the calling thread.
 *   tiled (block formats, n a multiple of GLLM_TILE_ROWS): W is stored in tiles of 16
 *      rows, each in the bytes its 16 rows would take (so row offsets j * w_row_bytes
 *      stay valid for j a multiple of 16). A tile holds, per block b in order: the
 *      blocks' code bytes in 4-byte groups, group g of rows 0..15 (64 bytes), then each
 *      f16 field of the block for rows 0..15 (32 bytes each). The gemv_lanes kernels
 *      read one tile's block as 16 rows in 16 lanes, or (AVX2) 8 rows in 8 lanes at a
 *      time (untiled, they gather a vector's rows' blocks into the same vectors); the gemm
 *      kernels copy its code groups into their panels as they are. Column ranges stay
 *      multiples of 16.
 * Kernels are pure: no allocation, no environment, no feature probing.
 */
#ifndef GLLM_KERNEL_ABI_H
#define GLLM_KERNEL_ABI_H
#include <stddef.h>
#include <stdint.h>

/* Activations quantised for the int8-dot path: x[t] ~= d*qs[t]; s = d*sum(qs). */
typedef struct {
    float d;
    float s;
    int8_t qs[32];
} gllm_q8x;

typedef struct {
    const void *w;
    size_t w_row_bytes;
    const float *x;
    size_t ldx;
    const gllm_q8x *xq;
    const uint16_t *xb, *xb_lo;
    size_t ldxb;
    const float *bias;
    float *y;
    size_t ldy;
    size_t m, n, k;
    int tiled; /* W in tiles of GLLM_TILE_ROWS rows (above) */
} gllm_matmul_args;

#define GLLM_TILE_ROWS 16

typedef void (*gllm_matmul_fn)(const gllm_matmul_args *a, size_t j0, size_t j1, void *scratch);
/* one row of k elements: f32 -> dtype, dtype -> f32 */
typedef void (*gllm_quantize_fn)(const float *x, void *y, size_t k);
typedef void (*gllm_dequantize_fn)(const void *x, float *y, size_t k);

/* Attention (flash, online softmax) over one KV head of a paged cache.
 *   q: rows x hd query rows (f32), hd a multiple of 16 up to 256; scores are scale * q.k.
 *   Key/value t lives in page pages[t >> page_shift], slot s = t & (P - 1), P = 2^page_shift
 *   (a multiple of the kernel's key block), in the KV dtype:
 *     K, dim-major in a page:   element (t, i) = k[page * page_elems + head_offset + i * P + s]
 *     V, token-major in a page: element (t, i) = v[page * page_elems + head_offset + s * hd + i]
 *   Row r sees key t when t < n_contig[r], or when bits != NULL, bits_start <= t <
 *   bits_start + bits_len and bit (t - bits_start) of row r's bitmap (bits + r * bits_stride) is set.
 * The kernel sets o (rows x hd, not yet divided by l), m (running max) and l (sum of
 * exp(s - m)) for keys [t0, t1); partial results over key ranges combine exactly as
 * in flash-decoding. A row that sees no key gets m = -inf, l = 0, o = 0. */
typedef struct {
    const float *q;
    size_t rows, hd;
    float scale;
    const void *k, *v;
    size_t page_elems, head_offset;
    unsigned page_shift;
    const int32_t *pages;
    const uint32_t *n_contig;
    const uint8_t *bits;
    size_t bits_start, bits_len, bits_stride;
    void *work; /* attn_tiles: GLLM_ATTN_WORK bytes, 64-byte aligned, the calling thread's */
} gllm_attn_args;
#define GLLM_ATTN_WORK ((size_t)304 << 10)
typedef void (*gllm_attn_fn)(const gllm_attn_args *a, size_t t0, size_t t1, float *o, float *m, float *l);
/* whether row r sees key t (the rule above) */
static inline int gllm_attn_visible(const gllm_attn_args *a, size_t r, size_t t) {
    if (t < a->n_contig[r]) return 1;
    if (!a->bits || t < a->bits_start || t - a->bits_start >= a->bits_len) return 0;
    const size_t s = t - a->bits_start;
    return (a->bits[r * a->bits_stride + s / 8] >> (s % 8)) & 1;
}
#endif
