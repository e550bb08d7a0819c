/* Tokenizers against reference tokenisations (tests/data/tokenizers, from llama.cpp). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void check(const char *name, int roundtrip) {
    char path[512];
    snprintf(path, sizeof path, "%s/tests/data/tokenizers/%s", GLLM_SOURCE_DIR, name);
    gllm_gguf g;
    cr_assert_eq(gllm_gguf_open(path, &g), GLLM_OK, "%s", gllm_last_error());
    gllm_tokenizer *t;
    cr_assert_eq(gllm_tokenizer_load(&g, &t), GLLM_OK, "%s", gllm_last_error());
    gllm_gguf_close(&g); /* the tokenizer keeps its own copy */
    size_t il, ol;
    snprintf(path, sizeof path, "%s/tests/data/tokenizers/%s.inp", GLLM_SOURCE_DIR, name);
    char *inp = slurp(path, &il);
    snprintf(path, sizeof path, "%s/tests/data/tokenizers/%s.out", GLLM_SOURCE_DIR, name);
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

Test(tokenizer, gpt2_bpe) { check("ggml-vocab-gpt-2.gguf", 1); }
Test(tokenizer, llama_spm) { check("ggml-vocab-llama-spm.gguf", 1); }
Test(tokenizer, bert_wordpiece) { check("ggml-vocab-bert-bge.gguf", 0); }
