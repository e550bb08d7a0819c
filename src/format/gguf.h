/* GGUF (v2, v3) reader: the file is mmapped and never copied; metadata values and
 * tensor data point into the mapping. Every count, length and offset is checked
 * against the bytes that exist before it is used: a hostile file gets an error,
 * never a crash or an allocation sized from its numbers. */
#ifndef GLLM_FORMAT_GGUF_H
#define GLLM_FORMAT_GGUF_H
#include <stddef.h>
#include <stdint.h>
#include "gllm_kernels.h"

enum { /* metadata value types */
    GGUF_U8, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL, GGUF_STRING, GGUF_ARRAY,
    GGUF_U64, GGUF_I64, GGUF_F64, GGUF_TYPE_COUNT
};

typedef struct {
    const char *ptr; /* not NUL-terminated */
    size_t len;
} gllm_str;

typedef struct {
    gllm_str key;
    uint32_t type;
    uint32_t arr_type; /* GGUF_ARRAY: element type */
    uint64_t arr_n;    /* GGUF_ARRAY: element count */
    const uint8_t *val; /* the value's bytes (for an array: its first element) */
} gllm_gguf_kv;

typedef struct {
    gllm_str name;
    uint32_t n_dims;
    uint64_t dims[4];   /* dims[0] is the innermost (row length) */
    uint32_t ggml_type;
    gllm_dtype dtype;
    uint64_t offset;    /* from the start of the data section */
    size_t nbytes;
    const void *data;
} gllm_gguf_tensor;

typedef struct {
    const uint8_t *base;
    size_t size;
    int mapped;         /* the mapping is ours to unmap */
    uint32_t version;
    size_t alignment;
    size_t n_kv, n_tensors;
    gllm_gguf_kv *kv;
    gllm_gguf_tensor *tensors;
} gllm_gguf;

/* parse a file image in memory (kept by the caller for the reader's lifetime) */
gllm_status gllm_gguf_parse(const void *data, size_t size, gllm_gguf *g);
/* mmap a file and parse it */
gllm_status gllm_gguf_open(const char *path, gllm_gguf *g);
void gllm_gguf_close(gllm_gguf *g);

const gllm_gguf_kv *gllm_gguf_find(const gllm_gguf *g, const char *key);
const gllm_gguf_tensor *gllm_gguf_tensor_find(const gllm_gguf *g, const char *name);
/* typed getters: GLLM_E_INVALID_ARGUMENT naming the key when it is missing or of another type */
gllm_status gllm_gguf_u64(const gllm_gguf *g, const char *key, uint64_t *out); /* any integer type >= 0 */
gllm_status gllm_gguf_f32(const gllm_gguf *g, const char *key, float *out);    /* f32 or f64 */
gllm_status gllm_gguf_str(const gllm_gguf *g, const char *key, gllm_str *out);
/* every element of a string array into out[kv->arr_n] (the count is bounded by the file size) */
gllm_status gllm_gguf_arr_strs(const gllm_gguf *g, const gllm_gguf_kv *kv, gllm_str *out);
#endif
