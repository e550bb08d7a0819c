/* Writes GGUF v3 images for tests (synthetic models, broken files). */
#ifndef GLLM_TEST_GGUF_WRITER_H
#define GLLM_TEST_GGUF_WRITER_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *key;
    uint32_t type;             /* GGUF_U32, GGUF_U64, GGUF_F32, GGUF_BOOL (u), GGUF_STRING, GGUF_ARRAY (of strings or of i32/f32) */
    uint64_t u;
    double f;
    const char *s;
    const char *const *strs;   /* GGUF_ARRAY of strings */
    const void *arr;           /* GGUF_ARRAY of arr_type scalars */
    uint32_t arr_type;
    size_t n;
} tw_kv;

typedef struct {
    const char *name;
    uint32_t ggml_type;
    uint32_t n_dims;
    uint64_t dims[4];
    const void *data;
    size_t nbytes;
} tw_tensor;

/* a malloc'd image; *len its size */
uint8_t *gguf_build(const tw_kv *kv, size_t nkv, const tw_tensor *t, size_t nt, size_t align, size_t *len);
#endif
