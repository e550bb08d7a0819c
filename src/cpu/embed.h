/* Embedding lookup and pooling (CPU backend). */
#ifndef GLLM_CPU_EMBED_H
#define GLLM_CPU_EMBED_H
#include <stddef.h>
#include <stdint.h>
#include "gllm_kernels.h"

/* out[i] = row ids[i] of table[vocab][dim] (any weight dtype), dequantised; ids checked */
gllm_status gllm_cpu_embed(gllm_dtype t, const void *table, size_t vocab, size_t dim, const int32_t *ids, size_t n,
                           float *out);

typedef enum {
    GLLM_POOL_MEAN, /* mean of the rows whose mask is set (all rows when mask is NULL) */
    GLLM_POOL_CLS,  /* the first row */
    GLLM_POOL_LAST, /* the last row whose mask is set */
} gllm_pooling;

/* out[dim] from h[n][dim]; l2: divide by the Euclidean norm (a zero vector stays zero) */
gllm_status gllm_cpu_pool(gllm_pooling kind, const float *h, const uint8_t *mask, size_t n, size_t dim, int l2,
                          float *out);
#endif
