/* safetensors reader: mmapped, zero-copy; the JSON header and every offset checked
 * (length, dtype, shape x size == span, spans inside the data, no overlaps). */
#ifndef GLLM_FORMAT_SAFETENSORS_H
#define GLLM_FORMAT_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "format/gguf.h"

typedef struct {
    gllm_str name;
    gllm_dtype dtype;
    uint32_t n_dims;
    uint64_t dims[4]; /* as written: dims[0] outermost (rows) */
    size_t nbytes;
    const void *data;
} gllm_st_tensor;

typedef struct {
    const uint8_t *base;
    size_t size;
    int mapped;
    size_t n;
    gllm_st_tensor *t;
} gllm_safetensors;

gllm_status gllm_st_parse(const void *data, size_t size, gllm_safetensors *st);
gllm_status gllm_st_open(const char *path, gllm_safetensors *st);
void gllm_st_close(gllm_safetensors *st);
const gllm_st_tensor *gllm_st_find(const gllm_safetensors *st, const char *name);
#endif
