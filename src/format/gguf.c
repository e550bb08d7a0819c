#include "format/gguf.h"
#include <stdlib.h>
#include <string.h>
#include "core/dtype_traits.h"
#include "core/error.h"
#include "format/mapfile.h"

#define MAX_ALIGNMENT 65536

/* a bounds-checked cursor over the file image */
typedef struct {
    const uint8_t *p, *end;
} cur;

static int take(cur *c, size_t n, const uint8_t **at) {
    if ((size_t)(c->end - c->p) < n) return 0;
    *at = c->p;
    c->p += n;
    return 1;
}
static int u32(cur *c, uint32_t *v) {
    const uint8_t *a;
    if (!take(c, 4, &a)) return 0;
    memcpy(v, a, 4);
    return 1;
}
static int u64(cur *c, uint64_t *v) {
    const uint8_t *a;
    if (!take(c, 8, &a)) return 0;
    memcpy(v, a, 8);
    return 1;
}
static int str(cur *c, gllm_str *s) {
    uint64_t n;
    const uint8_t *a;
    if (!u64(c, &n) || n > (uint64_t)(c->end - c->p) || !take(c, (size_t)n, &a)) return 0;
    s->ptr = (const char *)a, s->len = (size_t)n;
    return 1;
}

static size_t scalar_size(uint32_t t) {
    static const size_t sz[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < GGUF_TYPE_COUNT ? sz[t] : 0;
}

/* skip one value of type t (arrays of scalars in one step, arrays of strings one by one) */
static int skip_value(cur *c, uint32_t t, uint32_t *arr_type, uint64_t *arr_n) {
    const uint8_t *a;
    if (t == GGUF_STRING) {
        gllm_str s;
        return str(c, &s);
    }
    if (t == GGUF_ARRAY) {
        uint32_t et;
        uint64_t n;
        if (!u32(c, &et) || !u64(c, &n) || et == GGUF_ARRAY || et >= GGUF_TYPE_COUNT) return 0;
        *arr_type = et, *arr_n = n;
        if (et == GGUF_STRING) {
            if (n > (uint64_t)(c->end - c->p) / 8) return 0; /* each string needs >= 8 bytes */
            for (uint64_t i = 0; i < n; i++)
                if (!skip_value(c, GGUF_STRING, NULL, NULL)) return 0;
            return 1;
        }
        const size_t es = scalar_size(et);
        if (n > (uint64_t)(c->end - c->p) / es) return 0;
        return take(c, (size_t)n * es, &a);
    }
    const size_t s = scalar_size(t);
    return s && take(c, s, &a);
}

static gllm_dtype dtype_of(uint32_t ggml_type) {
    for (int t = 0; t < GLLM_DTYPE_COUNT; t++)
        if (gllm_dtype_traits_table[t].gguf_type >= 0 && (uint32_t)gllm_dtype_traits_table[t].gguf_type == ggml_type)
            return (gllm_dtype)t;
    return GLLM_DTYPE_COUNT;
}

static gllm_status bad(gllm_gguf *g, const char *what) {
    gllm_gguf_close(g);
    return gllm_fail(GLLM_E_INVALID_ARGUMENT, "GGUF: %s", what);
}

gllm_status gllm_gguf_parse(const void *data, size_t size, gllm_gguf *g) {
    memset(g, 0, sizeof *g);
    if (!data) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "GGUF: no data");
    g->base = data, g->size = size, g->alignment = 32;
    cur c = {g->base, g->base + size};
    const uint8_t *magic;
    uint64_t n_tensors, n_kv;
    if (!take(&c, 4, &magic) || memcmp(magic, "GGUF", 4)) return bad(g, "not a GGUF file (bad magic)");
    if (!u32(&c, &g->version)) return bad(g, "truncated header");
    if (g->version != 2 && g->version != 3) {
        gllm_gguf_close(g);
        return gllm_fail(GLLM_E_UNSUPPORTED, "GGUF: version %u (2 and 3 are read)", g->version);
    }
    if (!u64(&c, &n_tensors) || !u64(&c, &n_kv)) return bad(g, "truncated header");
    /* each KV takes >= 8 + 4 bytes and each tensor info >= 8 + 4 + 8 + 4 + 8: no count can outrun the file */
    if (n_kv > (uint64_t)(c.end - c.p) / 12 || n_tensors > (uint64_t)(c.end - c.p) / 32)
        return bad(g, "counts larger than the file");
    g->n_kv = (size_t)n_kv, g->n_tensors = (size_t)n_tensors;
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) {
        gllm_gguf_close(g);
        return gllm_fail(GLLM_E_OUT_OF_MEMORY, "GGUF: no memory for the directory");
    }
    for (size_t i = 0; i < g->n_kv; i++) {
        gllm_gguf_kv *kv = &g->kv[i];
        if (!str(&c, &kv->key) || !u32(&c, &kv->type) || kv->type >= GGUF_TYPE_COUNT) return bad(g, "bad metadata entry");
        kv->val = c.p;
        if (!skip_value(&c, kv->type, &kv->arr_type, &kv->arr_n)) return bad(g, "metadata value past the end of the file");
        if (kv->type == GGUF_ARRAY) kv->val += 12; /* past the element type and count */
    }
    uint64_t align;
    if (gllm_gguf_u64(g, "general.alignment", &align) == GLLM_OK) {
        if (!align || align > MAX_ALIGNMENT || (align & (align - 1))) return bad(g, "general.alignment not a power of two <= 65536");
        g->alignment = (size_t)align;
    }
    for (size_t i = 0; i < g->n_tensors; i++) {
        gllm_gguf_tensor *t = &g->tensors[i];
        if (!str(&c, &t->name) || !u32(&c, &t->n_dims)) return bad(g, "truncated tensor info");
        if (t->n_dims < 1 || t->n_dims > 4) return bad(g, "tensor with 0 or more than 4 dimensions");
        for (uint32_t d = 0; d < t->n_dims; d++)
            if (!u64(&c, &t->dims[d]) || !t->dims[d]) return bad(g, "truncated tensor info or zero dimension");
        if (!u32(&c, &t->ggml_type) || !u64(&c, &t->offset)) return bad(g, "truncated tensor info");
    }
    const size_t header = (size_t)(c.p - g->base), data_off = (header + g->alignment - 1) / g->alignment * g->alignment;
    if (data_off > size && g->n_tensors) return bad(g, "no data section");
    const size_t data_size = data_off > size ? 0 : size - data_off;
    for (size_t i = 0; i < g->n_tensors; i++) {
        gllm_gguf_tensor *t = &g->tensors[i];
        t->dtype = dtype_of(t->ggml_type);
        if (t->dtype == GLLM_DTYPE_COUNT) {
            const int len = t->name.len > 200 ? 200 : (int)t->name.len;
            gllm_status s = gllm_fail(GLLM_E_UNSUPPORTED, "GGUF: unsupported tensor type %u in tensor %.*s", t->ggml_type,
                                      len, t->name.ptr);
            gllm_gguf_close(g);
            return s;
        }
        const gllm_dtype_traits *tr = &gllm_dtype_traits_table[t->dtype];
        if (t->dims[0] % (uint64_t)tr->block) return bad(g, "tensor row not a whole number of blocks");
        uint64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if (__builtin_mul_overflow(n, t->dims[d], &n)) return bad(g, "tensor size overflows");
        uint64_t bytes;
        if (__builtin_mul_overflow(n / (uint64_t)tr->block, (uint64_t)tr->block_bytes, &bytes)) return bad(g, "tensor size overflows");
        if (t->offset % g->alignment) return bad(g, "tensor offset not aligned");
        if (t->offset > data_size || bytes > data_size - t->offset) return bad(g, "tensor data past the end of the file");
        t->nbytes = (size_t)bytes;
        t->data = g->base + data_off + t->offset;
        /* the kernels load floats and blocks' 16-bit scales in place (a general.alignment of 1 or 2 can break it) */
        if ((uintptr_t)t->data % (t->dtype == GLLM_DTYPE_F32 ? 4 : 2)) return bad(g, "tensor data not aligned to its elements");
    }
    const int overlap = gllm_spans_overlap(g->tensors, g->n_tensors, sizeof *g->tensors, offsetof(gllm_gguf_tensor, data),
                                           offsetof(gllm_gguf_tensor, nbytes));
    if (overlap < 0) {
        gllm_gguf_close(g);
        return gllm_fail(GLLM_E_OUT_OF_MEMORY, "GGUF: no memory");
    }
    return overlap ? bad(g, "tensors overlap") : GLLM_OK;
}

gllm_status gllm_gguf_open(const char *path, gllm_gguf *g) {
    memset(g, 0, sizeof *g);
    const void *map;
    size_t size;
    gllm_status s = gllm_map_file(path, "GGUF", &map, &size);
    if (s != GLLM_OK) return s;
    if ((s = gllm_gguf_parse(map, size, g)) != GLLM_OK) return gllm_unmap_file(map, size), s;
    g->mapped = 1;
    return GLLM_OK;
}

void gllm_gguf_close(gllm_gguf *g) {
    if (g->mapped) gllm_unmap_file(g->base, g->size);
    free(g->kv), free(g->tensors);
    memset(g, 0, sizeof *g);
}

static int key_is(gllm_str s, const char *k) { return strlen(k) == s.len && !memcmp(s.ptr, k, s.len); }

const gllm_gguf_kv *gllm_gguf_find(const gllm_gguf *g, const char *key) {
    for (size_t i = 0; i < g->n_kv; i++)
        if (key_is(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const gllm_gguf_tensor *gllm_gguf_tensor_find(const gllm_gguf *g, const char *name) {
    for (size_t i = 0; i < g->n_tensors; i++)
        if (key_is(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

gllm_status gllm_gguf_u64(const gllm_gguf *g, const char *key, uint64_t *out) {
    const gllm_gguf_kv *kv = gllm_gguf_find(g, key);
    if (!kv) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "GGUF: missing key %s", key);
    const uint8_t *v = kv->val;
    int64_t s;
    switch (kv->type) {
    case GGUF_U8: *out = v[0]; return GLLM_OK;
    case GGUF_U16: { uint16_t x; memcpy(&x, v, 2); *out = x; return GLLM_OK; }
    case GGUF_U32: { uint32_t x; memcpy(&x, v, 4); *out = x; return GLLM_OK; }
    case GGUF_U64: memcpy(out, v, 8); return GLLM_OK;
    case GGUF_I8: s = (int8_t)v[0]; break;
    case GGUF_I16: { int16_t x; memcpy(&x, v, 2); s = x; break; }
    case GGUF_I32: { int32_t x; memcpy(&x, v, 4); s = x; break; }
    case GGUF_I64: memcpy(&s, v, 8); break;
    default: return gllm_fail(GLLM_E_INVALID_ARGUMENT, "GGUF: key %s is not an integer", key);
    }
    if (s < 0) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "GGUF: key %s is negative", key);
    *out = (uint64_t)s;
    return GLLM_OK;
}

gllm_status gllm_gguf_f32(const gllm_gguf *g, const char *key, float *out) {
    const gllm_gguf_kv *kv = gllm_gguf_find(g, key);
    if (!kv) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "GGUF: missing key %s", key);
    if (kv->type == GGUF_F32) return memcpy(out, kv->val, 4), GLLM_OK;
    if (kv->type == GGUF_F64) {
        double d;
        memcpy(&d, kv->val, 8);
        *out = (float)d;
        return GLLM_OK;
    }
    return gllm_fail(GLLM_E_INVALID_ARGUMENT, "GGUF: key %s is not a float", key);
}

gllm_status gllm_gguf_str(const gllm_gguf *g, const char *key, gllm_str *out) {
    const gllm_gguf_kv *kv = gllm_gguf_find(g, key);
    if (!kv || kv->type != GGUF_STRING)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "GGUF: key %s %s", key, kv ? "is not a string" : "missing");
    cur c = {kv->val, g->base + g->size}; /* checked at parse time */
    return str(&c, out) ? GLLM_OK : gllm_fail(GLLM_E_INTERNAL, "GGUF: key %s", key);
}

gllm_status gllm_gguf_arr_strs(const gllm_gguf *g, const gllm_gguf_kv *kv, gllm_str *out) {
    if (!kv || kv->type != GGUF_ARRAY || kv->arr_type != GGUF_STRING)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "GGUF: %.*s is not an array of strings", kv ? (int)kv->key.len : 4,
                         kv ? kv->key.ptr : "(no key)");
    cur c = {kv->val, g->base + g->size}; /* checked at parse time */
    for (uint64_t i = 0; i < kv->arr_n; i++)
        if (!str(&c, &out[i])) return gllm_fail(GLLM_E_INTERNAL, "GGUF: array string %llu", (unsigned long long)i);
    return GLLM_OK;
}
