/* The CUDA backend's decoder: a plan (src/plan) run on the device. The model file is
 * uploaded once; activations, the step header and the logits live on the device; the
 * paged KV cache is resident. A step runs the rows of one or more sequences together (a
 * batch: every projection one gemm over all rows). A decode step (one token per sequence)
 * is captured once per row count as a CUDA Graph and replayed: only the step header
 * (sequences, slots, token ids) goes up before each replay. */
#ifndef GLLM_CUDA_MODEL_H
#define GLLM_CUDA_MODEL_H
#include "cuda/runtime.h"
#include "plan/plan.h"

typedef struct {
    CUdeviceptr k, v;     /* [n_layers][n_pages][n_kv][page_size][head_dim] each */
    CUdeviceptr tables;   /* block tables: [sequence][table_stride] */
    gllm_dtype dtype;
    size_t n_pages, n_kv, head_dim, page_shift, table_stride, layer_bytes;
    size_t first_layer; /* the model layer of the cache's first (0, or an L2 block's one layer) */
} gllm_cuda_kv;

enum { GLLM_CUDA_GRAPHS = 8 }; /* decode graphs kept (one per batch size) */

typedef struct {
    gllm_cuda *c;
    const gllm_plan *p;
    const uint8_t *host; /* the model file's image and its copy on the device */
    CUdeviceptr weights;
    int mapped, registered; /* weights: the host's pages used in place (gllm_cuda_map), else a device copy */
    size_t max_rows;
    CUdeviceptr buf[BUF_COUNT], k, v, up, inv_freq, hdr;
    CUdeviceptr rope; /* the step's rows' rotation tables, [max_rows][rot] (gllm_rope_table_row) */
    CUdeviceptr scratch; /* gemms on tensor cores: their rounded x (gllm_cuda_gemm_scratch); 0 without */
    CUdeviceptr part, count; /* decode attention: per-split partials, splits done per head */
    int32_t *hdr_host;
    CUevent hdr_copied; /* the last upload from hdr_host ran: it may be rewritten */
    size_t attn_tiles, attn_rows; /* the header's attention: tiles on tensor cores, rows on CUDA cores */
    int decode;                   /* the header's step is one row per item: RoPE and the KV write in the attention
                                   * (which reads the cache before waiting for the kernel before: no kernel of
                                   * the step may write the cache ahead of it; common.cuh) */
    struct {
        CUgraphExec exec; /* a decode step of `rows` sequences into cache k, logits rows at logits */
        size_t rows;
        CUdeviceptr k, logits;
    } graph[GLLM_CUDA_GRAPHS];
    unsigned graph_next; /* the entry the next capture replaces once all are used */
    int graphs;        /* 0: eager only (GLLM_CUDA_GRAPHS=0) */
    int profile; /* GLLM_CUDA_PROFILE=1: decode steps eager, device time per step kind */
    double prof_ms[8];
    unsigned long prof_steps;
} gllm_cuda_model;

/* rows per warp of a decode gemv of n outputs: 4, or 2, while every SM still gets a block of 8
 * warps, else 1 (c->gemv_rows forces one); then halved until it divides `unit` and is at most
 * `most` */
int gllm_cuda_gemv_rows(const gllm_cuda *c, size_t n, size_t unit, int most);

/* how many blocks the decode attention splits each row's keys over, `blocks` blocks a row and split */
int gllm_cuda_attn_splits(const gllm_cuda *c, size_t rows, size_t blocks);

/* one row: y[n] = W . rmsnorm(x; nw) (+ bias), or y += that (accumulate); nw 0: x as it is;
 * rows_per_warp 1, 2 or 4 (0: gllm_cuda_gemv_rows) */
gllm_status gllm_cuda_gemv(gllm_cuda *c, gllm_dtype t, CUdeviceptr w, CUdeviceptr bias, CUdeviceptr x, CUdeviceptr y, size_t n,
                           size_t k, CUdeviceptr nw, float eps, int accumulate, int rows_per_warp);

/* one weight of a gemm: y[m][n] = x[m][k] . W^T (+ bias), W[n][k] (rows packed) */
typedef struct {
    CUdeviceptr w, bias, y;
    size_t n;
} gllm_cuda_mm;

/* bytes of the scratch a tensor-core gemm of m rows of width k needs: x rounded to 16 bits, rows
 * padded to 64, and a scale exponent per row */
size_t gllm_cuda_gemm_scratch(size_t m, size_t k);

/* the matmuls of count weights of dtype t that share x[m][k], on the device: one row by the
 * gemv; from 32 rows of non-f32 weights, given scratch (gllm_cuda_gemm_scratch(m, k) bytes) and
 * unless c->tensor_cores is 0, on tensor cores (gllm_cuda_gemm_tc); else by the CUDA-core gemm
 * in f32 (8 tokens a warp). k = 0 is refused; m = 0, or a weight of n = 0, does nothing. */
gllm_status gllm_cuda_gemms(gllm_cuda *c, gllm_dtype t, CUdeviceptr x, size_t m, size_t k, CUdeviceptr scratch,
                            const gllm_cuda_mm *mm, size_t count);
gllm_status gllm_cuda_gemm(gllm_cuda *c, gllm_dtype t, CUdeviceptr w, CUdeviceptr bias, CUdeviceptr x, CUdeviceptr y, size_t m,
                           size_t n, size_t k, CUdeviceptr scratch);

/* the same on tensor cores, any m: x rounded once into scratch (to f16, each row scaled by a power
 * of two that the result undoes; to bf16 for bf16 weights), then every weight's gemm (16-bit
 * tiles, products summed in f32); t not f32, scratch 16-byte aligned (as cuMemAlloc's are) */
gllm_status gllm_cuda_gemm_tc(gllm_cuda *c, gllm_dtype t, CUdeviceptr x, size_t m, size_t k, CUdeviceptr scratch,
                              const gllm_cuda_mm *mm, size_t count);

/* host..host+size: the mapped model file every weight of the plan points into */
gllm_status gllm_cuda_model_init(gllm_cuda_model *cm, gllm_cuda *c, const gllm_plan *p, const void *host, size_t size,
                                 size_t max_rows, size_t kv_width);
void gllm_cuda_model_free(gllm_cuda_model *cm);

/* a KV swap copy (gllm_kv_copy_fn, src/cpu/kv_cache.h) of one page's K or V part in every layer:
 * one 2-D copy (a copy per layer past the device's largest pitch), enqueued on the copy stream;
 * ctx a gllm_cuda_kv_copy_ctx; host must be page-locked (gllm_cuda_host_alloc) */
typedef struct {
    gllm_cuda *c;
    const gllm_cuda_kv *kv;
} gllm_cuda_kv_copy_ctx;
gllm_status gllm_cuda_kv_copy(void *ctx, int v, size_t off, size_t pitch, void *host, size_t host_pitch, size_t bytes, size_t rows,
                              int out);

/* a cache is going away: drop the decode graphs captured for it */
void gllm_cuda_model_forget(gllm_cuda_model *cm, const gllm_cuda_kv *kv);


/* one sequence's part of a step: n tokens going to slots prefix .. prefix + n - 1 */
typedef struct {
    int seq; /* its block table on the device */
    size_t prefix, n;
    const int32_t *tokens;
} gllm_cuda_item;

/* a step of n_items sequences (distinct; their tables uploaded, their pages reserved): every
 * item's K/V into its slots, and its last token's logits into row b of `logits` (device).
 * position: the tokens' positions (NULL: their slots; checked by the caller); parent: a tree
 * step (parent[i] -1 or < i; token i attends to the prefix and its ancestors), every token's
 * logits; both take one item. replay: a plain decode step (one token per item) may replay (or
 * capture) the decode graph of its row count. */
gllm_status gllm_cuda_forward(gllm_cuda_model *cm, const gllm_cuda_kv *kv, const gllm_cuda_item *items, size_t n_items,
                              const int32_t *position, const int32_t *parent, CUdeviceptr logits, int replay);

/* L2 blocks (tests, debugging; allocates): the plan's steps first .. last - 1 over n rows, on the
 * rows of x (host, [n][dim]: the residual stream; NULL where the range starts with the embedding
 * of tokens), attention causal over positions 0 .. n - 1 in a fresh f32 cache of its one layer;
 * out (host): the residual stream, or every row's logits where the range ends with the head */
gllm_status gllm_cuda_block(gllm_cuda_model *cm, size_t first, size_t last, const int32_t *tokens, const float *x, size_t n,
                            float *out);

/* a tree step's accepted path: slots base + from[i] move to base + i (i < n), every layer, K and
 * V of sequence seq (its block table on the device), by one kernel on the compute stream */
gllm_status gllm_cuda_kv_compact(gllm_cuda_model *cm, const gllm_cuda_kv *kv, size_t n_layers, int seq, size_t base,
                                 const uint32_t *from, size_t n);
#endif
