#include "cpu/embed.h"
#include <string.h>
#include "core/dispatch.h"
#include "core/dtype_traits.h"
#include "core/error.h"
#include "core/threadpool.h"

typedef struct {
    gllm_dequantize_fn dq;
    const char *table;
    size_t row, dim;
    const int32_t *ids;
    float *out;
} embed_job;

static void embed_task(void *ctx, size_t i, void *scratch) {
    (void)scratch;
    const embed_job *j = ctx;
    j->dq(j->table + (size_t)j->ids[i] * j->row, j->out + i * j->dim, j->dim);
}

gllm_status gllm_cpu_embed(gllm_dtype t, const void *table, size_t vocab, size_t dim, const int32_t *ids, size_t n,
                           float *out) {
    gllm_status st = gllm_ensure_init();
    if (st != GLLM_OK) return st;
    if (!table || !ids || !out || !n || !dim) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "embed: NULL or empty input");
    if ((unsigned)t >= GLLM_DTYPE_COUNT || dim % (size_t)gllm_dtype_traits_table[t].block)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "embed: dtype %d with dim %zu", (int)t, dim);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= vocab)
            return gllm_fail(GLLM_E_INVALID_ARGUMENT, "embed: token id %d at %zu outside the vocabulary of %zu", ids[i],
                             i, vocab);
    embed_job j = {gllm_kernels()->dequantize[t], table, gllm_row_bytes(t, dim), dim, ids, out};
    gllm_pool_run(n, embed_task, &j);
    return GLLM_OK;
}

gllm_status gllm_cpu_pool(gllm_pooling kind, const float *h, const uint8_t *mask, size_t n, size_t dim, int l2,
                          float *out) {
    gllm_status st = gllm_ensure_init();
    if (st != GLLM_OK) return st;
    if (!h || !out || !n || !dim) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "pool: NULL or empty input");
    const gllm_kernel_table *kt = gllm_kernels();
    size_t used = 0;
    if (kind == GLLM_POOL_CLS) {
        memcpy(out, h, dim * sizeof(float)), used = 1;
    } else if (kind == GLLM_POOL_LAST) {
        for (size_t i = n; i > 0 && !used; i--)
            if (!mask || mask[i - 1]) memcpy(out, h + (i - 1) * dim, dim * sizeof(float)), used = 1;
    } else {
        used = kt->mean_rows(h, mask, n, dim, out);
    }
    if (!used) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "pool: the mask selects no token");
    if (l2) kt->l2norm(out, out, dim);
    return GLLM_OK;
}
