#include "format/safetensors.h"
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "format/json.h"
#include "format/mapfile.h"

#define MAX_HEADER (100u << 20)

static gllm_status bad(gllm_safetensors *st, gllm_json *j, const char *what) {
    gllm_json_free(j);
    gllm_st_close(st);
    return gllm_fail(GLLM_E_INVALID_ARGUMENT, "safetensors: %s", what);
}

gllm_status gllm_st_parse(const void *data, size_t size, gllm_safetensors *st) {
    memset(st, 0, sizeof *st);
    gllm_json j = {0};
    st->base = data, st->size = size;
    uint64_t hl;
    if (!data || size < 8) return bad(st, &j, "file shorter than its header length");
    memcpy(&hl, data, 8);
    if (hl > size - 8 || hl > MAX_HEADER || hl < 2) return bad(st, &j, "header length past the end of the file");
    gllm_status s = gllm_json_parse((const char *)st->base + 8, (size_t)hl, &j);
    if (s != GLLM_OK) return gllm_st_close(st), s;
    const gllm_json_node *root = &j.node[0];
    if (root->type != JSON_OBJ) return bad(st, &j, "header is not a JSON object");
    const uint8_t *body = st->base + 8 + hl;
    const size_t body_size = size - 8 - (size_t)hl;
    st->t = calloc(root->n / 2 + 1, sizeof *st->t);
    if (!st->t) return bad(st, &j, "no memory");
    const gllm_json_node *key = root->n ? &j.node[root->first] : NULL, *v;
    for (size_t i = 0; i + 1 < root->n; i += 2, key = gllm_json_next(&j, v)) {
        v = gllm_json_next(&j, key);
        if (gllm_json_is(key, "__metadata__")) continue;
        const gllm_json_node *dt = gllm_json_get(&j, v, "dtype"), *shape = gllm_json_get(&j, v, "shape"),
                             *off = gllm_json_get(&j, v, "data_offsets");
        if (!dt || !shape || shape->type != JSON_ARR || !off || off->type != JSON_ARR || off->n != 2 || shape->n > 4)
            return bad(st, &j, "tensor entry without dtype, shape (<= 4 dims) or data_offsets");
        gllm_st_tensor *t = &st->t[st->n];
        size_t esize;
        if (gllm_json_is(dt, "F32")) t->dtype = GLLM_DTYPE_F32, esize = 4;
        else if (gllm_json_is(dt, "F16")) t->dtype = GLLM_DTYPE_F16, esize = 2;
        else if (gllm_json_is(dt, "BF16")) t->dtype = GLLM_DTYPE_BF16, esize = 2;
        else if (gllm_json_is(dt, "I64") || gllm_json_is(dt, "I32")) continue; /* e.g. position_ids buffers: unused */
        else return bad(st, &j, "unsupported tensor dtype (F32, F16, BF16 are read)");
        uint64_t n = 1;
        t->n_dims = (uint32_t)shape->n;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            const gllm_json_node *x = gllm_json_at(&j, shape, d);
            if (!x || x->type != JSON_NUM || x->num < 1 || x->num > 1e12) return bad(st, &j, "bad tensor dimension");
            t->dims[d] = (uint64_t)x->num;
            if (__builtin_mul_overflow(n, t->dims[d], &n)) return bad(st, &j, "tensor size overflows");
        }
        const gllm_json_node *b0 = gllm_json_at(&j, off, 0), *b1 = gllm_json_at(&j, off, 1);
        if (b0->type != JSON_NUM || b1->type != JSON_NUM || b0->num < 0 || b1->num < b0->num || b1->num > (double)body_size)
            return bad(st, &j, "tensor data_offsets outside the data");
        const size_t begin = (size_t)b0->num, end = (size_t)b1->num;
        if (n > SIZE_MAX / esize || end - begin != n * esize) return bad(st, &j, "tensor span does not match its shape");
        if ((uintptr_t)(body + begin) % esize) return bad(st, &j, "tensor data not aligned to its elements (used in place)");
        t->name.ptr = key->s, t->name.len = key->len, t->nbytes = end - begin, t->data = body + begin;
        st->n++;
    }
    const int overlap = gllm_spans_overlap(st->t, st->n, sizeof *st->t, offsetof(gllm_st_tensor, data), offsetof(gllm_st_tensor, nbytes));
    if (overlap) return bad(st, &j, overlap < 0 ? "no memory" : "tensors overlap");
    gllm_json_free(&j); /* names point into the mapping, not into the JSON nodes */
    return GLLM_OK;
}

gllm_status gllm_st_open(const char *path, gllm_safetensors *st) {
    memset(st, 0, sizeof *st);
    const void *map;
    size_t size;
    gllm_status s = gllm_map_file(path, "safetensors", &map, &size);
    if (s != GLLM_OK) return s;
    if ((s = gllm_st_parse(map, size, st)) != GLLM_OK) return gllm_unmap_file(map, size), s;
    st->mapped = 1;
    return GLLM_OK;
}

void gllm_st_close(gllm_safetensors *st) {
    if (st->mapped) gllm_unmap_file(st->base, st->size);
    free(st->t);
    memset(st, 0, sizeof *st);
}

const gllm_st_tensor *gllm_st_find(const gllm_safetensors *st, const char *name) {
    for (size_t i = 0; i < st->n; i++)
        if (st->t[i].name.len == strlen(name) && !memcmp(st->t[i].name.ptr, name, st->t[i].name.len)) return &st->t[i];
    return NULL;
}
