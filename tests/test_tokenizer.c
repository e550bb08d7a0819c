/* Tokenizers against reference tokenisations from llama.cpp: tests/data/tokenizers, and the
 * larger vocabularies scripts/fetch_models.sh puts in models/tokenizers (skipped without them). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "gguf_writer.h"
#include "text/tokenizer.h"

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(*len + 1);
    cr_assert_eq(fread(b, 1, *len, f), *len);
    b[*len] = 0;
    fclose(f);
    return b;
}

/* add_bos: whether the vocabulary's prompts start with its bos (llama.cpp's rule) */
static void check_in(const char *dir, const char *name, int roundtrip, int add_bos) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", GLLM_SOURCE_DIR, dir, name);
    if (access(path, R_OK)) cr_skip_test("%s not fetched (bash scripts/fetch_models.sh)", path);
    gllm_gguf g;
    cr_assert_eq(gllm_gguf_open(path, &g), GLLM_OK, "%s", gllm_last_error());
    gllm_tokenizer *t;
    cr_assert_eq(gllm_tokenizer_load(&g, &t), GLLM_OK, "%s", gllm_last_error());
    gllm_gguf_close(&g); /* the tokenizer keeps its own copy */
    cr_assert_eq(gllm_tokenizer_add_bos(t), add_bos, "%s: add_bos", name);
    size_t il, ol;
    snprintf(path, sizeof path, "%s/%s/%s.inp", GLLM_SOURCE_DIR, dir, name);
    char *inp = slurp(path, &il);
    snprintf(path, sizeof path, "%s/%s/%s.out", GLLM_SOURCE_DIR, dir, name);
    char *out = slurp(path, &ol);
    const char *sep = "\n__ggml_vocab_test__\n";
    char *text = inp, *line = out;
    int cases = 0, bad = 0;
    static int32_t ids[8192];
    static char back[65536];
    while (text && *line) {
        char *end = strstr(text, sep), *eol = strchr(line, '\n');
        const size_t tl = end ? (size_t)(end - text) : strlen(text);
        if (eol) *eol = 0;
        size_t n;
        cr_assert_eq(gllm_tokenize(t, text, tl, ids, 8192, &n), GLLM_OK, "%s", gllm_last_error());
        char got[65536];
        size_t k = 0;
        got[0] = 0;
        for (size_t i = 0; i < n; i++) k += (size_t)snprintf(got + k, sizeof got - k, " %d", ids[i]);
        cases++;
        if (strcmp(got, line)) {
            if (bad++ < 5) cr_log_error("%s case %d: '%.*s'\n  got:      %s\n  expected: %s", name, cases, (int)tl, text, got, line);
        } else if (roundtrip) {
            size_t bl;
            cr_assert_eq(gllm_detokenize(t, ids, n, back, sizeof back, &bl), GLLM_OK);
            const char *want = text;
            size_t wl = tl;
            if (gllm_tokenizer_kind(t) == GLLM_TOK_SPM && bl && back[0] == ' ') memmove(back, back + 1, --bl); /* the prefix space */
            cr_assert(bl == wl && !memcmp(back, want, wl), "%s case %d: detokenised '%.*s' != '%.*s'", name, cases, (int)bl,
                      back, (int)wl, want);
        }
        text = end ? end + strlen(sep) : NULL;
        line = eol ? eol + 1 : line + strlen(line);
    }
    cr_log_info("%s: %d of %d cases match", name, cases - bad, cases);
    cr_assert_eq(bad, 0, "%s: %d of %d cases differ", name, bad, cases);
    free(inp), free(out);
    gllm_tokenizer_free(t);
}

static void check(const char *name, int roundtrip, int add_bos) { check_in("tests/data/tokenizers", name, roundtrip, add_bos); }

Test(tokenizer, gpt2_bpe) { check("ggml-vocab-gpt-2.gguf", 1, 0); }
/* Llama 3's pre-tokeniser (numbers in threes, a newline run its own piece) and Qwen2's (numbers one by one) */
Test(tokenizer, llama3_bpe) { check_in("models/tokenizers", "ggml-vocab-llama-bpe.gguf", 1, 1); }
Test(tokenizer, qwen2_bpe) { check_in("models/tokenizers", "ggml-vocab-qwen2.gguf", 1, 0); }
Test(tokenizer, llama_spm) { check("ggml-vocab-llama-spm.gguf", 1, 1); }
Test(tokenizer, bert_wordpiece) { check("ggml-vocab-bert-bge.gguf", 0, 0); } /* the encoders add [CLS] themselves */

/* a byte-level BPE vocabulary whose pre-tokeniser is none of ours: its texts are refused, naming
 * it (never split by another's rules); its ids still decode */
Test(tokenizer, unknown_pre_tokeniser_refused) {
    static const char *const tokens[] = {"a", "b", "ab"}, *const merges[] = {"a b"};
    const tw_kv kv[] = {{.key = "tokenizer.ggml.model", .type = GGUF_STRING, .s = "gpt2"},
                        {.key = "tokenizer.ggml.pre", .type = GGUF_STRING, .s = "falcon"},
                        {.key = "tokenizer.ggml.tokens", .type = GGUF_ARRAY, .strs = tokens, .arr_type = GGUF_STRING, .n = 3},
                        {.key = "tokenizer.ggml.merges", .type = GGUF_ARRAY, .strs = merges, .arr_type = GGUF_STRING, .n = 1}};
    size_t len, n;
    uint8_t *img = gguf_build(kv, 4, NULL, 0, 32, &len);
    gllm_gguf g;
    gllm_tokenizer *t;
    cr_assert_eq(gllm_gguf_parse(img, len, &g), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_tokenizer_load(&g, &t), GLLM_OK, "%s", gllm_last_error());
    int32_t ids[4];
    cr_assert_eq(gllm_tokenize(t, "ab", 2, ids, 4, &n), GLLM_E_UNSUPPORTED);
    cr_assert(strstr(gllm_last_error(), "falcon"), "%s", gllm_last_error());
    char text[8];
    const int32_t ab = 2;
    cr_assert_eq(gllm_detokenize(t, &ab, 1, text, sizeof text, &n), GLLM_OK, "%s", gllm_last_error());
    cr_assert(n == 2 && !memcmp(text, "ab", 2));
    gllm_tokenizer_free(t), gllm_gguf_close(&g), free(img);
}
