#include "gguf_writer.h"
#include <stdlib.h>
#include <string.h>
#include "format/gguf.h"

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf;

static void put(buf *b, const void *d, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s) { put_u64(b, strlen(s)), put(b, s, strlen(s)); }

uint8_t *gguf_build(const tw_kv *kv, size_t nkv, const tw_tensor *t, size_t nt, size_t align, size_t *len) {
    buf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, nt), put_u64(&b, nkv);
    for (size_t i = 0; i < nkv; i++) {
        put_str(&b, kv[i].key);
        put_u32(&b, kv[i].type);
        switch (kv[i].type) {
        case GGUF_U32: put_u32(&b, (uint32_t)kv[i].u); break;
        case GGUF_U64: put_u64(&b, kv[i].u); break;
        case GGUF_F32: { float f = (float)kv[i].f; put(&b, &f, 4); break; }
        case GGUF_STRING: put_str(&b, kv[i].s); break;
        case GGUF_BOOL: { uint8_t v = kv[i].u != 0; put(&b, &v, 1); break; }
        case GGUF_ARRAY:
            put_u32(&b, kv[i].strs ? GGUF_STRING : kv[i].arr_type);
            put_u64(&b, kv[i].n);
            for (size_t k = 0; k < kv[i].n; k++)
                if (kv[i].strs) put_str(&b, kv[i].strs[k]);
                else put(&b, (const char *)kv[i].arr + 4 * k, 4);
            break;
        }
    }
    size_t off = 0;
    for (size_t i = 0; i < nt; i++) {
        put_str(&b, t[i].name);
        put_u32(&b, t[i].n_dims);
        for (uint32_t d = 0; d < t[i].n_dims; d++) put_u64(&b, t[i].dims[d]);
        put_u32(&b, t[i].ggml_type);
        put_u64(&b, off);
        off = (off + t[i].nbytes + align - 1) / align * align;
    }
    const size_t data = (b.len + align - 1) / align * align;
    uint8_t zero[64] = {0};
    while (b.len < data) put(&b, zero, data - b.len < 64 ? data - b.len : 64);
    off = 0;
    for (size_t i = 0; i < nt; i++) {
        put(&b, t[i].data, t[i].nbytes);
        const size_t next = (off + t[i].nbytes + align - 1) / align * align;
        while (i + 1 < nt && b.len < data + next) put(&b, zero, data + next - b.len < 64 ? data + next - b.len : 64);
        off = next; /* no padding after the last tensor */
    }
    *len = b.len;
    return b.p;
}
