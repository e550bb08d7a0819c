/* Per-dtype facts (generated table, see generated/dtype_traits.c). */
#ifndef GLLM_DTYPE_TRAITS_H
#define GLLM_DTYPE_TRAITS_H
#include <stddef.h>
#include "gllm_dtype.h"

typedef struct {
    const char *name;
    int block;        /* elements per block (1: element-wise) */
    int block_bytes;  /* bytes per block */
    int bits;         /* bits per element (block kinds: per code; the f16 scales lead the block) */
    int gguf_type;    /* GGML type id, -1 if ours */
    int int8_path;    /* matmul takes activations quantised to q8x */
    float tol;        /* matmul tolerance relative to sum|w||x| */
    float roundtrip;  /* quantise round trip bound relative to the block's max|x| */
} gllm_dtype_traits;

extern const gllm_dtype_traits gllm_dtype_traits_table[GLLM_DTYPE_COUNT];

static inline size_t gllm_row_bytes(gllm_dtype t, size_t k) {
    const gllm_dtype_traits *tr = &gllm_dtype_traits_table[t];
    return k / (size_t)tr->block * (size_t)tr->block_bytes;
}
#endif
