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

/* the texts of inp (separated as llama.cpp's test files are) against out's lines: per text, one
 * line for each of the n_modes parse_special modes. roundtrip: the ids detokenize to the text
 * (SPM: but for its leading space) */
static void run_cases(const gllm_tokenizer *t, const char *name, const char *inp_path, const char *out_path,
                      const int *modes, int n_modes, int roundtrip) {
    size_t il, ol;
    char *inp = slurp(inp_path, &il), *out = slurp(out_path, &ol);
    const char *sep = "\n__ggml_vocab_test__\n";
    char *text = inp, *line = out;
    int cases = 0, bad = 0;
    static int32_t ids[8192];
    static char back[65536], got[65536];
    size_t none;
    cr_assert_eq(gllm_tokenize(t, "x", SIZE_MAX, 0, ids, 8192, &none), GLLM_E_INVALID_ARGUMENT, "a length whose buffers overflow");
    while (text && *line) {
        char *end = strstr(text, sep);
        const size_t tl = end ? (size_t)(end - text) : strlen(text);
        for (int m = 0; m < n_modes && *line; m++) {
            char *eol = strchr(line, '\n');
            if (eol) *eol = 0;
            size_t n;
            cr_assert_eq(gllm_tokenize(t, text, tl, modes[m], ids, 8192, &n), GLLM_OK, "%s", gllm_last_error());
            size_t k = 0;
            got[0] = 0;
            for (size_t i = 0; i < n; i++) k += (size_t)snprintf(got + k, sizeof got - k, " %d", ids[i]);
            cases++;
            if (strcmp(got, line)) {
                if (bad++ < 5)
                    cr_log_error("%s case %d (parse_special %d): '%.*s'\n  got:      %s\n  expected: %s", name, cases, modes[m],
                                 (int)tl, text, got, line);
            } else if (roundtrip) {
                size_t bl;
                cr_assert_eq(gllm_detokenize(t, ids, n, back, sizeof back, &bl), GLLM_OK);
                if (gllm_tokenizer_kind(t) == GLLM_TOK_SPM && bl && back[0] == ' ') memmove(back, back + 1, --bl); /* the prefix space */
                cr_assert(bl == tl && !memcmp(back, text, tl), "%s case %d: detokenised '%.*s' != '%.*s'", name, cases,
                          (int)bl, back, (int)tl, text);
            }
            line = eol ? eol + 1 : line + strlen(line);
        }
        text = end ? end + strlen(sep) : NULL;
    }
    cr_log_info("%s: %d of %d cases match", name, cases - bad, cases);
    cr_assert_eq(bad, 0, "%s: %d of %d cases differ", name, bad, cases);
    free(inp), free(out);
}

/* llama.cpp's test texts for the vocabulary in dir (without special tokens), then the texts with
 * special tokens (tests/data/tokenizers/special.inp, from tests/reference/tokenizer_special.py),
 * each with and without parse_special. add_bos: whether the vocabulary's prompts start with its
 * bos (llama.cpp's rule) */
static void check_in(const char *dir, const char *name, int roundtrip, int add_bos, const int32_t *eog, size_t n_eog) {
    char path[512], out[512];
    snprintf(path, sizeof path, "%s/%s/%s", GLLM_SOURCE_DIR, dir, name);
    if (access(path, R_OK)) cr_skip_test("%s not fetched (bash scripts/fetch_models.sh)", path);
    gllm_gguf g;
    cr_assert_eq(gllm_gguf_open(path, &g), GLLM_OK, "%s", gllm_last_error());
    gllm_tokenizer *t;
    cr_assert_eq(gllm_tokenizer_load(&g, &t), GLLM_OK, "%s", gllm_last_error());
    gllm_gguf_close(&g); /* the tokenizer keeps its own copy */
    cr_assert_eq(gllm_tokenizer_add_bos(t), add_bos, "%s: add_bos", name);
    size_t k = 0; /* the end-of-generation set, in id order */
    for (int32_t id = 0; (size_t)id < gllm_tokenizer_vocab(t); id++)
        if (gllm_tokenizer_is_eog(t, id)) {
            cr_assert(k < n_eog && eog[k] == id, "%s: token %d ends generation, llama.cpp's %zu-th does not", name, id, k);
            k++;
        }
    cr_assert_eq(k, n_eog, "%s: %zu tokens end generation, llama.cpp has %zu", name, k, n_eog);
    static const int plain[] = {0}, both[] = {1, 0};
    snprintf(path, sizeof path, "%s/%s/%s.inp", GLLM_SOURCE_DIR, dir, name);
    snprintf(out, sizeof out, "%s/%s/%s.out", GLLM_SOURCE_DIR, dir, name);
    run_cases(t, name, path, out, plain, 1, roundtrip);
    snprintf(path, sizeof path, "%s/tests/data/tokenizers/special.inp", GLLM_SOURCE_DIR);
    snprintf(out, sizeof out, "%s/tests/data/tokenizers/%s.special.out", GLLM_SOURCE_DIR, name);
    run_cases(t, name, path, out, both, 2, 0);
    gllm_tokenizer_free(t);
}

#define EOG(...) (const int32_t[]){__VA_ARGS__}, sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t)
static const char *const here = "tests/data/tokenizers", *const fetched = "models/tokenizers";

/* the end-of-generation sets are llama.cpp's (llama_vocab_is_eog) */
Test(tokenizer, gpt2_bpe) { check_in(here, "ggml-vocab-gpt-2.gguf", 1, 0, EOG(50256)); }
/* Llama 3's pre-tokeniser (numbers in threes, a newline run its own piece) and Qwen2's (numbers one by one) */
Test(tokenizer, llama3_bpe) { check_in(fetched, "ggml-vocab-llama-bpe.gguf", 1, 1, EOG(128001, 128009)); }
/* Qwen2's "</s>" is a normal token that llama.cpp makes control: its rule, followed */
Test(tokenizer, qwen2_bpe) { check_in(fetched, "ggml-vocab-qwen2.gguf", 1, 0, EOG(128247, 151643, 151645)); }
Test(tokenizer, llama_spm) { check_in(here, "ggml-vocab-llama-spm.gguf", 1, 1, EOG(2)); }
/* the encoders add [CLS] themselves; [PAD] is a fill-in-the-middle pad to llama.cpp, so ends generation */
Test(tokenizer, bert_wordpiece) { check_in(here, "ggml-vocab-bert-bge.gguf", 0, 0, EOG(0)); }

/* BERT's WordPiece against Hugging Face's tokenizers (tests/reference/wordpiece_hf.py), on the
 * GGUF vocabulary and, where fetched, on all-MiniLM's vocab.txt (the same vocabulary): lowercase,
 * accents stripped (NFD, nonspacing marks), Hangul as jamo, private-use characters dropped,
 * punctuation split after folding ("≠" is "=" then), special tokens read */
Test(tokenizer, bert_wordpiece_as_hugging_face) {
    char inp[512], out[512], path[512];
    snprintf(inp, sizeof inp, "%s/tests/data/tokenizers/wordpiece-hf.inp", GLLM_SOURCE_DIR);
    snprintf(out, sizeof out, "%s/tests/data/tokenizers/ggml-vocab-bert-bge.gguf.hf.out", GLLM_SOURCE_DIR);
    snprintf(path, sizeof path, "%s/tests/data/tokenizers/ggml-vocab-bert-bge.gguf", GLLM_SOURCE_DIR);
    static const int parse[] = {1};
    gllm_gguf g;
    gllm_tokenizer *t;
    cr_assert_eq(gllm_gguf_open(path, &g), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(gllm_tokenizer_load(&g, &t), GLLM_OK, "%s", gllm_last_error());
    gllm_gguf_close(&g);
    run_cases(t, "bert-bge (GGUF)", inp, out, parse, 1, 0);
    gllm_tokenizer_free(t);
    snprintf(path, sizeof path, "%s/models/all-MiniLM-L6-v2/vocab.txt", GLLM_SOURCE_DIR);
    if (access(path, R_OK)) {
        cr_log_info("%s not fetched: the vocab.txt form not checked", path);
        return;
    }
    size_t len;
    char *v = slurp(path, &len);
    cr_assert_eq(gllm_tokenizer_wordpiece(v, len, 1, &t), GLLM_OK, "%s", gllm_last_error());
    free(v);
    run_cases(t, "all-MiniLM (vocab.txt)", inp, out, parse, 1, 0);
    gllm_tokenizer_free(t);
}

/* do_lower_case false (a cased model): the text as written, accents kept; true: folded */
Test(tokenizer, wordpiece_cased_and_uncased) {
    static const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nHello\nhello\nWorld\nworld\nCaf\xc3\xa9\ncafe\n,\n##s\n";
    static const char text[] = "Hello World, Caf\xc3\xa9 hellos";
    static const int32_t cased[6] = {4, 6, 10, 8, 5, 11}, uncased[6] = {5, 7, 10, 9, 5, 11};
    for (int lower = 0; lower < 2; lower++) {
        gllm_tokenizer *t;
        cr_assert_eq(gllm_tokenizer_wordpiece(vocab, sizeof vocab - 1, lower, &t), GLLM_OK, "%s", gllm_last_error());
        int32_t ids[16];
        size_t n;
        cr_assert_eq(gllm_tokenize(t, text, sizeof text - 1, 1, ids, 16, &n), GLLM_OK, "%s", gllm_last_error());
        cr_assert_eq(n, 6u);
        for (int i = 0; i < 6; i++) cr_assert_eq(ids[i], (lower ? uncased : cased)[i], "lowercase %d, id %d: %d", lower, i, ids[i]);
        gllm_tokenizer_free(t);
    }
}

/* a piece listed twice takes the id of its last line, as Hugging Face's vocab.txt reader and
 * llama.cpp's token map give it (the first was kept) */
Test(tokenizer, duplicate_pieces_take_the_last_id) {
    static const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nworld\nhello\nworld\n";
    gllm_tokenizer *t;
    cr_assert_eq(gllm_tokenizer_wordpiece(vocab, sizeof vocab - 1, 1, &t), GLLM_OK, "%s", gllm_last_error());
    int32_t ids[8];
    size_t n;
    cr_assert_eq(gllm_tokenize(t, "hello world", 11, 0, ids, 8, &n), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(n, 2u);
    cr_assert_eq(ids[0], 5);
    cr_assert_eq(ids[1], 6, "world: %d", ids[1]);
    gllm_tokenizer_free(t);
}

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
    cr_assert_eq(gllm_tokenize(t, "ab", 2, 0, ids, 4, &n), GLLM_E_UNSUPPORTED);
    cr_assert(strstr(gllm_last_error(), "falcon"), "%s", gllm_last_error());
    char text[8];
    const int32_t ab = 2;
    cr_assert_eq(gllm_detokenize(t, &ab, 1, text, sizeof text, &n), GLLM_OK, "%s", gllm_last_error());
    cr_assert(n == 2 && !memcmp(text, "ab", 2));
    gllm_tokenizer_free(t), gllm_gguf_close(&g), free(img);
}

/* a SentencePiece vocabulary of six tokens, <|x|> user-defined; space_prefix: -1 unsaid, else
 * tokenizer.ggml.add_space_prefix; n_types: how many token types the file gives */
static gllm_status spm_vocab(int space_prefix, size_t n_types, uint32_t types_as, gllm_tokenizer **t) {
    static const char *const tokens[] = {"<unk>", "<s>", "</s>", "a", "\xe2\x96\x81" "a", "<|x|>"};
    static const float scores[] = {0, 0, 0, -1, -2, 0};
    static const int32_t types[] = {2, 3, 3, 1, 1, 4};
    const tw_kv kv[] = {{.key = "tokenizer.ggml.model", .type = GGUF_STRING, .s = "llama"},
                        {.key = "tokenizer.ggml.tokens", .type = GGUF_ARRAY, .strs = tokens, .n = 6},
                        {.key = "tokenizer.ggml.scores", .type = GGUF_ARRAY, .arr = scores, .arr_type = GGUF_F32, .n = 6},
                        {.key = "tokenizer.ggml.token_type", .type = GGUF_ARRAY, .arr = types, .arr_type = types_as, .n = n_types},
                        {.key = "tokenizer.ggml.add_space_prefix", .type = GGUF_BOOL, .u = (uint64_t)space_prefix}};
    size_t len;
    uint8_t *img = gguf_build(kv, space_prefix < 0 ? 4 : 5, NULL, 0, 32, &len);
    gllm_gguf g;
    cr_assert_eq(gllm_gguf_parse(img, len, &g), GLLM_OK, "%s", gllm_last_error());
    const gllm_status st = gllm_tokenizer_load(&g, t);
    gllm_gguf_close(&g), free(img);
    return st;
}

static void expect_ids(const gllm_tokenizer *t, const char *text, int parse_special, const int32_t *want, size_t n_want) {
    int32_t ids[16];
    size_t n;
    cr_assert_eq(gllm_tokenize(t, text, strlen(text), parse_special, ids, 16, &n), GLLM_OK, "%s", gllm_last_error());
    cr_assert(n == n_want && !memcmp(ids, want, n * sizeof *ids), "'%s' (parse_special %d): %zu ids, first %d", text,
              parse_special, n, n ? ids[0] : -1);
}

/* a SentencePiece text piece starts with a space unless add_space_prefix is false; a
 * user-defined token splits the text even without parse_special, control ones only with it */
Test(tokenizer, space_prefix_and_special_tokens) {
    gllm_tokenizer *t;
    cr_assert_eq(spm_vocab(-1, 6, GGUF_I32, &t), GLLM_OK, "%s", gllm_last_error());
    expect_ids(t, "a", 0, (const int32_t[]){4}, 1);
    expect_ids(t, "a<|x|>a", 0, (const int32_t[]){4, 5, 4}, 3);
    expect_ids(t, "<s>a", 1, (const int32_t[]){1, 4}, 2);
    gllm_tokenizer_free(t);
    cr_assert_eq(spm_vocab(0, 6, GGUF_I32, &t), GLLM_OK, "%s", gllm_last_error());
    expect_ids(t, "a", 0, (const int32_t[]){3}, 1);
    expect_ids(t, "a<|x|>a</s>", 1, (const int32_t[]){3, 5, 3, 2}, 4);
    char text[16];
    size_t n;
    cr_assert_eq(gllm_detokenize(t, (const int32_t[]){1, 3, 5, 4}, 4, text, sizeof text, &n), GLLM_OK);
    cr_assert(n == 11 && !memcmp(text, "<s>a<|x|> a", 11), "special tokens detokenize to their text: '%.*s'", (int)n, text);
    gllm_tokenizer_free(t);
}

/* token types of another length or type: refused, saying so */
Test(tokenizer, malformed_token_types) {
    gllm_tokenizer *t = NULL;
    cr_assert_eq(spm_vocab(-1, 5, GGUF_I32, &t), GLLM_E_INVALID_ARGUMENT);
    cr_assert(!t && strstr(gllm_last_error(), "token_type"), "%s", gllm_last_error());
    cr_assert_eq(spm_vocab(-1, 6, GGUF_F32, &t), GLLM_E_INVALID_ARGUMENT);
    cr_assert(!t && strstr(gllm_last_error(), "token_type"), "%s", gllm_last_error());
}
