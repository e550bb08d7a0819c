/* The default embedding model (all-MiniLM-L6-v2, scripts/fetch_models.sh), when present:
 * similarity ordering, batch vs one by one, bad input. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "gllm_kernels.h"

static double cosine(const float *a, const float *b, size_t n) {
    double d = 0, x = 0, y = 0;
    for (size_t i = 0; i < n; i++) d += (double)a[i] * b[i], x += (double)a[i] * a[i], y += (double)b[i] * b[i];
    return d / sqrt(x * y);
}

Test(minilm, similarities_batches_and_errors) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/models/all-MiniLM-L6-v2", GLLM_SOURCE_DIR);
    char probe[600];
    snprintf(probe, sizeof probe, "%s/model.safetensors", dir);
    if (access(probe, R_OK)) cr_skip_test("%s not fetched (bash scripts/fetch_models.sh)", dir);
    gllm_backend *b;
    gllm_embedder *e;
    cr_assert_eq(gllm_backend_open("auto", &b), GLLM_OK);
    cr_assert_eq(gllm_embedding_upload(b, dir, &e), GLLM_OK, "%s", gllm_last_error());
    const size_t dim = gllm_embedding_dim(e);
    cr_assert_eq(dim, 384u);
    static const char *const s[6] = {"A man is eating food.", "A man is eating a piece of bread.",
                                     "The new movie is awesome.", "The new film is so great.",
                                     "A cat sits on the mat.", "How do I bake sourdough bread?"};
    int32_t ids[6][64];
    const int32_t *seqs[6];
    size_t lens[6];
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(gllm_embedding_tokenize(e, s[i], strlen(s[i]), ids[i], 64, &lens[i]), GLLM_OK);
        seqs[i] = ids[i];
    }
    cr_assert_eq(ids[0][0], 101, "[CLS]");
    cr_assert_eq(ids[0][lens[0] - 1], 102, "[SEP]");
    float v[6 * 384], one[384];
    cr_assert_eq(gllm_embedding_forward(e, seqs, lens, 6, 1, v), GLLM_OK);
    const double food = cosine(v, v + dim, dim), movie = cosine(v + 2 * dim, v + 3 * dim, dim);
    cr_log_info("paraphrases: %.4f (food), %.4f (movie); unrelated: %.4f, %.4f", food, movie, cosine(v, v + 2 * dim, dim),
                cosine(v + dim, v + 4 * dim, dim));
    cr_assert(food > 0.6 && movie > 0.6, "paraphrases are close: %.3f %.3f", food, movie);
    for (int i = 0; i < 4; i += 2) /* the two paraphrase pairs: closer to each other than to anything else */
        for (int j = 0; j < 6; j++)
            if (j / 2 != i / 2)
                cr_assert(cosine(v + i * dim, v + j * dim, dim) < cosine(v + i * dim, v + (i + 1) * dim, dim) - 0.2,
                          "sentence %d is closer to %d than to its paraphrase", i, j);
    double norm = 0;
    for (size_t x = 0; x < dim; x++) norm += (double)v[x] * v[x];
    cr_assert(fabs(norm - 1) < 1e-5, "L2-normalised");
    for (int i = 0; i < 6; i++) { /* one by one: the same vectors */
        cr_assert_eq(gllm_embedding_forward(e, &seqs[i], &lens[i], 1, 1, one), GLLM_OK);
        for (size_t x = 0; x < dim; x++) cr_assert(fabsf(one[x] - v[i * dim + x]) <= 1e-5f, "batched vs alone");
    }
    const int32_t bad[3] = {101, 30522, 102};
    const int32_t *pb = bad;
    size_t lb = 3;
    cr_assert_eq(gllm_embedding_forward(e, &pb, &lb, 1, 1, one), GLLM_E_INVALID_ARGUMENT, "token id out of range");
    static int32_t longer[600];
    const int32_t *pl = longer;
    size_t ll = 600;
    cr_assert_eq(gllm_embedding_forward(e, &pl, &ll, 1, 1, one), GLLM_E_INVALID_ARGUMENT, "past the position table");
    size_t l0 = 0;
    cr_assert_eq(gllm_embedding_forward(e, &pb, &l0, 1, 1, one), GLLM_E_INVALID_ARGUMENT, "empty sequence");
    cr_assert(strstr(gllm_last_error(), "sequence 0 is empty"), "%s", gllm_last_error());
    const int32_t *none = NULL;
    cr_assert_eq(gllm_embedding_forward(e, &none, &lb, 1, 1, one), GLLM_E_INVALID_ARGUMENT, "NULL sequence");
    cr_assert(strstr(gllm_last_error(), "sequence 0 is NULL"), "%s", gllm_last_error());
    cr_assert_eq(gllm_embedding_forward(e, &pb, &lb, 0, 1, one), GLLM_E_INVALID_ARGUMENT, "no sequences");
    cr_assert(strstr(gllm_last_error(), "no sequences"), "%s", gllm_last_error());
    size_t nt;
    cr_assert_eq(gllm_embedding_tokenize(e, NULL, 4, ids[0], 64, &nt), GLLM_E_INVALID_ARGUMENT, "NULL text");
    gllm_embedder_free(e);
    gllm_backend_close(b);
}
