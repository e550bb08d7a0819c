/* The real default model (scripts/fetch_models.sh), when present: tokenizer, the next token
 * of a fixed prompt and its greedy continuation. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "gllm_kernels.h"

/* the last logits of a 33-token prompt (the chat prompt as plain text: through gemm in both
 * weight layouts, more rows than either gemv takes), then 8
 * greedy tokens after "The capital of France is" and the margin of each pick over the
 * runner-up, with GLLM_TILED as given (NULL: unset) */
static void run(const char *path, const char *tiled, float *first, size_t vocab, int32_t out[8], float margin[8]) {
    if (tiled) setenv("GLLM_TILED", tiled, 1);
    else unsetenv("GLLM_TILED");
    gllm_backend *b;
    gllm_model *m;
    gllm_generator *g;
    gllm_kv_cache *kv;
    cr_assert_eq(gllm_backend_open("auto", &b), GLLM_OK);
    cr_assert_eq(gllm_model_open(path, &m), GLLM_OK, "%s", gllm_last_error());
    cr_assert(!gllm_model_add_bos(m) && gllm_model_bos(m) == 1, "the file says add_bos_token false (bos 1)");
    cr_assert_eq(gllm_generator_upload(b, m, 64, &g), GLLM_OK);
    unsetenv("GLLM_TILED");
    cr_assert_eq(gllm_kv_cache_alloc(g, 16, 16, GLLM_DTYPE_F16, &kv), GLLM_OK);
    int seq;
    gllm_seq_open(kv, 256, &seq);
    const char *prompt = "The capital of France is";
    int32_t ids[64];
    size_t n;
    cr_assert_eq(gllm_model_tokenize(m, prompt, strlen(prompt), 0, ids, 64, &n), GLLM_OK);
    const int32_t want[5] = {504, 3575, 282, 4649, 314};
    cr_assert(n == 5 && !memcmp(ids, want, sizeof want), "prompt tokens");
    int32_t digits[16];
    cr_assert_eq(gllm_model_tokenize(m, " 2018", 5, 0, digits, 16, &n), GLLM_OK);
    cr_assert_eq(n, 5u, "SmolLM's pre-tokeniser splits digits one by one");
    /* U+5AD75 is F1 9A B5 B5, and the vocabulary has no token for the byte F1: dropped, as llama.cpp drops it */
    cr_assert_eq(gllm_model_tokenize(m, "\xf1\x9a\xb5\xb5", 4, 0, digits, 16, &n), GLLM_OK);
    cr_assert(n == 3 && digits[0] == 244 && digits[1] == 130 && digits[2] == 130, "a byte without a token: %zu ids", n);
    /* a chat prompt: its control tokens parsed, or plain text; the ids llama.cpp gives */
    const char *chat = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n";
    int32_t turn[40];
    const int32_t parsed[16] = {1, 4093, 198, 1780, 314, 216, 34, 27, 34, 47, 2, 198, 1, 520, 9531, 198};
    cr_assert_eq(gllm_model_tokenize(m, chat, strlen(chat), 1, turn, 40, &n), GLLM_OK, "%s", gllm_last_error());
    cr_assert(n == 16 && !memcmp(turn, parsed, sizeof parsed), "chat prompt, parse_special");
    cr_assert_eq(gllm_model_tokenize(m, chat, strlen(chat), 0, turn, 40, &n), GLLM_OK);
    cr_assert(n == 33 && turn[0] == 44 && turn[1] == 108, "chat prompt as text");
    for (int32_t id = 0; (size_t)id < vocab; id++) /* llama.cpp's end-of-generation set: <|endoftext|>, <|im_end|>, <reponame> */
        cr_assert_eq(gllm_model_is_eog(m, id), id == 0 || id == 2 || id == 4, "token %d", id);
    gllm_logits *l;
    int chat_seq;
    cr_assert_eq(gllm_seq_open(kv, 48, &chat_seq), GLLM_OK);
    cr_assert_eq(gllm_generator_forward(g, kv, chat_seq, turn, 33, NULL, &l), GLLM_OK);
    cr_assert_eq(gllm_logits_read(l, first, vocab), GLLM_OK);
    cr_assert_eq(gllm_generator_forward(g, kv, seq, ids, 5, NULL, &l), GLLM_OK);
    const gllm_sampling greedy = {.temperature = 0, .top_p = 1, .repetition_penalty = 1};
    float *row = malloc(vocab * sizeof(float));
    for (int i = 0; i < 8; i++) { /* decode steps: the gemv path */
        cr_assert_eq(gllm_sample(g, l, &greedy, NULL, 0, (uint64_t)i, &out[i]), GLLM_OK);
        cr_assert_eq(gllm_logits_read(l, row, vocab), GLLM_OK);
        float second = -INFINITY;
        for (size_t v = 0; v < vocab; v++)
            if ((int32_t)v != out[i] && row[v] > second) second = row[v];
        margin[i] = row[out[i]] - second;
        cr_assert_eq(gllm_generator_forward(g, kv, seq, &out[i], 1, NULL, &l), GLLM_OK);
    }
    free(row);
    cr_assert_eq(out[0], 7042, "next token ' Paris' (GLLM_TILED=%s)", tiled ? tiled : "unset");
    char text[256];
    size_t tl;
    cr_assert_eq(gllm_model_detokenize(m, out, 8, text, sizeof text, &tl), GLLM_OK);
    text[tl] = 0;
    cr_log_info("greedy continuation (GLLM_TILED=%s): '%s'", tiled ? tiled : "unset", text);
    cr_assert(!strncmp(text, " Paris.", 7), "continuation '%s'", text);
    gllm_kv_cache_free(kv), gllm_generator_free(g), gllm_model_close(m), gllm_backend_close(b);
}

/* zero-copy weights (the default), then the tiled copy (GLLM_TILED=1): the 33-token prompt's logits
 * differ by float summation order only (both through gemm; the 5-token prompt runs the
 * gemv in the mapped layout, as decode does). Decode runs a different gemv in each,
 * and with int8 activations a rounding flip in one layer moves later logits by up to ~4 % of the
 * largest (decode and prefill of the same tokens differ as much, in either mode): so the same
 * greedy tokens up to the first pick whose margin is inside that, where the runs may part. */
Test(smollm2, paris) {
    char path[512];
    snprintf(path, sizeof path, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", GLLM_SOURCE_DIR);
    if (access(path, R_OK)) cr_skip_test("%s not fetched (bash scripts/fetch_models.sh)", path);
    enum { VOCAB = 49152 };
    static float a[VOCAB], t[VOCAB];
    int32_t oa[8], ot[8];
    float ma[8], mt[8];
    run(path, NULL, a, VOCAB, oa, ma);
    run(path, "1", t, VOCAB, ot, mt);
    float top = 0, worst = 0;
    for (size_t v = 0; v < VOCAB; v++) /* a NaN counts as the worst (fmaxf would skip it) */
        top = fmaxf(top, fabsf(a[v])), worst = isfinite(a[v] - t[v]) ? fmaxf(worst, fabsf(a[v] - t[v])) : INFINITY;
    cr_log_info("largest logit difference after the 33-token prompt, mapped vs tiled: %.3g of %.3g", worst, top);
    cr_assert(worst <= 1e-3f * top, "mapped vs tiled logits differ by %g (largest logit %g)", worst, top);
    for (int i = 0; i < 8 && oa[i] == ot[i]; i++) /* the same picks, or parting at a near-tie */
        if (i + 1 < 8 && oa[i + 1] != ot[i + 1]) {
            cr_log_info("the runs part at token %d: margins %.3g / %.3g", i + 1, ma[i + 1], mt[i + 1]);
            cr_assert(fminf(ma[i + 1], mt[i + 1]) <= 0.05f * top, "token %d differs with margins %g / %g", i + 1, ma[i + 1], mt[i + 1]);
        }
    cr_assert_eq(oa[0], ot[0], "the first token");
}

/* the documented room, 2^20 tokens a step: the logits are sized for a step's rows (a batch's or a
 * tree's 256), not for max_tokens (192 GB: "no memory for the logits") */
Test(smollm2, generator_takes_2_20_tokens_a_step) {
    char path[512];
    snprintf(path, sizeof path, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", GLLM_SOURCE_DIR);
    if (access(path, R_OK)) cr_skip_test("%s not fetched (bash scripts/fetch_models.sh)", path);
    gllm_backend *b;
    gllm_model *m;
    gllm_generator *g;
    gllm_kv_cache *kv;
    gllm_logits *l;
    int seq;
    size_t rows, vocab;
    const int32_t ids[5] = {504, 3575, 282, 4649, 314};
    cr_assert_eq(gllm_backend_open("cpu", &b), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_model_open(path, &m), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_generator_upload(b, m, (size_t)1 << 20, &g), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_kv_cache_alloc(g, 4, 16, GLLM_DTYPE_F16, &kv), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_seq_open(kv, 16, &seq), GLLM_OK);
    cr_assert_eq(gllm_generator_forward(g, kv, seq, ids, 5, NULL, &l), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_logits_shape(l, &rows, &vocab), GLLM_OK);
    cr_assert(rows == 1 && vocab == 49152);
    gllm_kv_cache_free(kv), gllm_generator_free(g), gllm_model_close(m), gllm_backend_close(b);
}
