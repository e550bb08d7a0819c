/* Embedding lookup (every dtype) and pooling against references. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/dispatch.h"
#include "core/dtype_traits.h"
#include "cpu/embed.h"
#include "ref/ref.h"

Test(embed, lookup_every_dtype) {
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    const size_t vocab = 37, dim = 96;
    float *w = malloc(vocab * dim * 4), *out = malloc(5 * dim * 4);
    for (size_t i = 0; i < vocab * dim; i++) w[i] = sinf((float)i * 0.37f);
    const int32_t ids[5] = {0, 36, 5, 5, 17};
    double ref[96];
    for (int t = 0; t < GLLM_DTYPE_COUNT; t++) {
        const size_t row = gllm_row_bytes((gllm_dtype)t, dim);
        void *table = malloc(vocab * row);
        cr_assert_eq(gllm_quantize((gllm_dtype)t, w, table, vocab, dim), GLLM_OK);
        cr_assert_eq(gllm_cpu_embed((gllm_dtype)t, table, vocab, dim, ids, 5, out), GLLM_OK);
        for (size_t i = 0; i < 5; i++) {
            gllm_ref_dequantize((gllm_dtype)t, (char *)table + (size_t)ids[i] * row, ref, dim);
            for (size_t x = 0; x < dim; x++)
                cr_assert(fabs(out[i * dim + x] - ref[x]) <= 1e-6 * fabs(ref[x]) + 1e-7, "%s row %zu", gllm_dtype_name((gllm_dtype)t), i);
        }
        const int32_t bad[2] = {3, 37};
        cr_assert_eq(gllm_cpu_embed((gllm_dtype)t, table, vocab, dim, bad, 2, out), GLLM_E_INVALID_ARGUMENT);
        cr_assert(strstr(gllm_last_error(), "outside the vocabulary"));
        const int32_t neg[1] = {-1};
        cr_assert_eq(gllm_cpu_embed((gllm_dtype)t, table, vocab, dim, neg, 1, out), GLLM_E_INVALID_ARGUMENT);
        free(table);
    }
    free(w), free(out);
}

Test(embed, pooling) {
    cr_assert_eq(gllm_ensure_init(), GLLM_OK);
    const size_t n = 6, dim = 19;
    float h[6 * 19], out[19];
    for (size_t i = 0; i < n * dim; i++) h[i] = cosf((float)i);
    const uint8_t mask[6] = {1, 1, 0, 1, 0, 0}; /* padding after token 3 */
    double want[19], ss = 0;
    for (size_t x = 0; x < dim; x++) want[x] = (h[x] + h[dim + x] + h[3 * dim + x]) / 3.0, ss += want[x] * want[x];
    cr_assert_eq(gllm_cpu_pool(GLLM_POOL_MEAN, h, mask, n, dim, 0, out), GLLM_OK);
    for (size_t x = 0; x < dim; x++) cr_assert(fabs(out[x] - want[x]) < 1e-6);
    cr_assert_eq(gllm_cpu_pool(GLLM_POOL_MEAN, h, mask, n, dim, 1, out), GLLM_OK);
    for (size_t x = 0; x < dim; x++) cr_assert(fabs(out[x] - want[x] / sqrt(ss)) < 1e-6);
    cr_assert_eq(gllm_cpu_pool(GLLM_POOL_CLS, h, mask, n, dim, 0, out), GLLM_OK);
    cr_assert(memcmp(out, h, dim * 4) == 0);
    cr_assert_eq(gllm_cpu_pool(GLLM_POOL_LAST, h, mask, n, dim, 0, out), GLLM_OK);
    cr_assert(memcmp(out, h + 3 * dim, dim * 4) == 0, "the last unpadded token");
    cr_assert_eq(gllm_cpu_pool(GLLM_POOL_LAST, h, NULL, n, dim, 0, out), GLLM_OK);
    cr_assert(memcmp(out, h + 5 * dim, dim * 4) == 0);
    const uint8_t none[6] = {0};
    cr_assert_eq(gllm_cpu_pool(GLLM_POOL_MEAN, h, none, n, dim, 0, out), GLLM_E_INVALID_ARGUMENT);
    /* padding never changes a sequence's result */
    float padded[8 * 19], out2[19];
    memcpy(padded, h, sizeof h);
    for (size_t i = n * dim; i < 8 * dim; i++) padded[i] = 1e6f;
    const uint8_t mask2[8] = {1, 1, 0, 1, 0, 0, 0, 0};
    gllm_cpu_pool(GLLM_POOL_MEAN, h, mask, n, dim, 1, out);
    gllm_cpu_pool(GLLM_POOL_MEAN, padded, mask2, 8, dim, 1, out2);
    cr_assert(memcmp(out, out2, dim * 4) == 0);
}
