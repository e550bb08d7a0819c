/* GGUF reader: real vocabulary files, a synthetic model file, and hostile files
 * (every truncation, huge counts and lengths, bad offsets, overlaps, unknown types,
 * random mutations): always a clear error, never a crash (ASan/UBSan in CI); and the file
 * mapping under every model. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "format/gguf.h"
#include "format/mapfile.h"
#include "gguf_writer.h"
#include "text/tokenizer.h"

static uint8_t *valid(size_t *len) {
    static float f32[2 * 64];
    static uint8_t q40[3 * 18 * 2];
    for (int i = 0; i < 128; i++) f32[i] = (float)i;
    for (int i = 0; i < 108; i++) q40[i] = (uint8_t)i;
    static const char *const toks[] = {"<s>", "hello", "world"};
    const tw_kv kv[] = {{.key = "general.architecture", .type = GGUF_STRING, .s = "llama"},
                        {.key = "llama.block_count", .type = GGUF_U32, .u = 2},
                        {.key = "llama.rope.freq_base", .type = GGUF_F32, .f = 10000.0},
                        {.key = "tokenizer.ggml.tokens", .type = GGUF_ARRAY, .strs = toks, .n = 3}};
    const tw_tensor t[] = {{"token_embd.weight", 0, 2, {64, 2}, f32, sizeof f32},
                           {"blk.0.attn_q.weight", 2, 2, {96, 2}, q40, sizeof q40}};
    return gguf_build(kv, 4, t, 2, 32, len);
}

Test(gguf, synthetic_model) {
    size_t len;
    uint8_t *img = valid(&len);
    gllm_gguf g;
    cr_assert_eq(gllm_gguf_parse(img, len, &g), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(g.version, 3u);
    cr_assert_eq(g.n_tensors, 2u);
    uint64_t blocks;
    float base;
    gllm_str arch;
    cr_assert_eq(gllm_gguf_u64(&g, "llama.block_count", &blocks), GLLM_OK);
    cr_assert_eq(blocks, 2u);
    cr_assert_eq(gllm_gguf_f32(&g, "llama.rope.freq_base", &base), GLLM_OK);
    cr_assert_float_eq(base, 10000.0f, 0);
    cr_assert_eq(gllm_gguf_str(&g, "general.architecture", &arch), GLLM_OK);
    cr_assert(arch.len == 5 && !memcmp(arch.ptr, "llama", 5));
    gllm_str toks[3];
    cr_assert_eq(gllm_gguf_arr_strs(&g, gllm_gguf_find(&g, "tokenizer.ggml.tokens"), toks), GLLM_OK);
    cr_assert(toks[2].len == 5 && !memcmp(toks[2].ptr, "world", 5));
    const gllm_gguf_tensor *e = gllm_gguf_tensor_find(&g, "token_embd.weight"), *q = gllm_gguf_tensor_find(&g, "blk.0.attn_q.weight");
    cr_assert(e && q);
    cr_assert_eq(e->dtype, GLLM_DTYPE_F32);
    cr_assert_eq(q->dtype, GLLM_DTYPE_Q4_0);
    cr_assert_eq(q->nbytes, 108u);
    cr_assert_eq(((const float *)e->data)[65], 65.0f, "zero-copy data in place");
    cr_assert((const uint8_t *)e->data >= img && (const uint8_t *)e->data < img + len);
    cr_assert_eq(gllm_gguf_u64(&g, "missing.key", &blocks), GLLM_E_INVALID_ARGUMENT);
    cr_assert_eq(gllm_gguf_u64(&g, "general.architecture", &blocks), GLLM_E_INVALID_ARGUMENT, "a string is not an integer");
    gllm_gguf_close(&g);
    free(img);
}

Test(gguf, every_truncation_is_an_error) {
    size_t len;
    uint8_t *img = valid(&len);
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = malloc(n ? n : 1); /* exactly n bytes: ASan sees any over-read */
        memcpy(cut, img, n);
        gllm_gguf g;
        cr_assert_neq(gllm_gguf_parse(cut, n, &g), GLLM_OK, "a %zu-byte prefix of %zu parsed", n, len);
        cr_assert(strlen(gllm_last_error()) > 0);
        free(cut);
    }
    free(img);
}

/* patch a little-endian u64/u32 at the first occurrence of a marker */
static void patch(uint8_t *img, size_t len, size_t at, uint64_t v, int bytes) {
    cr_assert(at + (size_t)bytes <= len);
    memcpy(img + at, &v, (size_t)bytes);
}

static size_t find(const uint8_t *img, size_t len, const char *s) {
    const size_t n = strlen(s);
    for (size_t i = 0; i + n <= len; i++)
        if (!memcmp(img + i, s, n)) return i;
    cr_assert_fail("marker %s not found", s);
    return 0;
}

static void expect_error(uint8_t *img, size_t len, gllm_status want, const char *text) {
    gllm_gguf g;
    const gllm_status s = gllm_gguf_parse(img, len, &g);
    cr_assert_eq(s, want, "expected status %d (%s), got %d: %s", want, text, s, gllm_last_error());
    cr_assert(strstr(gllm_last_error(), text), "message '%s' lacks '%s'", gllm_last_error(), text);
}

Test(gguf, hostile_headers) {
    size_t len;
    uint8_t *img = valid(&len), *c = malloc(len);
#define FRESH memcpy(c, img, len)
    FRESH, c[0] = 'X', expect_error(c, len, GLLM_E_INVALID_ARGUMENT, "magic");
    FRESH, patch(c, len, 4, 1, 4), expect_error(c, len, GLLM_E_UNSUPPORTED, "version");
    FRESH, patch(c, len, 8, 1ull << 60, 8), expect_error(c, len, GLLM_E_INVALID_ARGUMENT, "counts");   /* tensors */
    FRESH, patch(c, len, 16, 1ull << 40, 8), expect_error(c, len, GLLM_E_INVALID_ARGUMENT, "counts");  /* kv */
    FRESH, patch(c, len, 24, 1ull << 50, 8), expect_error(c, len, GLLM_E_INVALID_ARGUMENT, "metadata"); /* key length */
    const size_t arr = find(c, len, "tokenizer.ggml.tokens") + strlen("tokenizer.ggml.tokens") + 4 + 4;
    FRESH, patch(c, len, arr, 1ull << 62, 8), expect_error(c, len, GLLM_E_INVALID_ARGUMENT, "metadata"); /* array count */
    FRESH, patch(c, len, arr - 4, 9, 4), expect_error(c, len, GLLM_E_INVALID_ARGUMENT, "metadata"); /* nested array */
    const size_t ti = find(c, len, "blk.0.attn_q.weight") + strlen("blk.0.attn_q.weight");
    FRESH, patch(c, len, ti, 5, 4), expect_error(c, len, GLLM_E_INVALID_ARGUMENT, "dimensions");
    FRESH, patch(c, len, ti + 4, 0, 8), expect_error(c, len, GLLM_E_INVALID_ARGUMENT, "zero dimension");
    FRESH, patch(c, len, ti + 4, 95, 8), expect_error(c, len, GLLM_E_INVALID_ARGUMENT, "blocks");
    FRESH, patch(c, len, ti + 4, 1ull << 62, 8), expect_error(c, len, GLLM_E_INVALID_ARGUMENT, "");
    FRESH, patch(c, len, ti + 20, 14, 4), expect_error(c, len, GLLM_E_UNSUPPORTED, "unsupported tensor type 14 in tensor blk.0.attn_q.weight");
    FRESH, patch(c, len, ti + 24, 1ull << 40, 8), expect_error(c, len, GLLM_E_INVALID_ARGUMENT, "past the end");
    FRESH, patch(c, len, ti + 24, 4, 8), expect_error(c, len, GLLM_E_INVALID_ARGUMENT, "aligned");
    FRESH, patch(c, len, ti + 24, 0, 8), expect_error(c, len, GLLM_E_INVALID_ARGUMENT, "overlap");
    free(c), free(img);
    /* general.alignment 1: an f16 then an f32 tensor, the header 0 to 3 bytes longer; data that
     * starts off its elements' alignment is refused (one in four layouts has both aligned) */
    static const uint8_t bytes[8];
    const tw_tensor pair[] = {{"a", 1, 1, {1}, bytes, 2}, {"b", 0, 1, {1}, bytes + 2, 4}};
    int parsed = 0;
    for (int pad = 0; pad < 4; pad++) {
        const tw_kv kv2[] = {{.key = "general.alignment", .type = GGUF_U32, .u = 1}, {.key = "x", .type = GGUF_STRING, .s = "abc" + 3 - pad}};
        img = gguf_build(kv2, 2, pair, 2, 1, &len);
        gllm_gguf g;
        if (gllm_gguf_parse(img, len, &g) == GLLM_OK) parsed++, gllm_gguf_close(&g);
        else cr_assert(strstr(gllm_last_error(), "aligned"), "%s", gllm_last_error());
        free(img);
    }
    cr_assert_eq(parsed, 1, "%d of 4 layouts parsed", parsed);
}

Test(gguf, random_mutations_never_crash) {
    size_t len;
    uint8_t *img = valid(&len), *c = malloc(len);
    uint64_t s = 12345;
    int ok = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(c, img, len);
        for (int f = 0; f < 1 + it % 4; f++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            c[(s >> 33) % len] = (uint8_t)(s >> 13);
        }
        gllm_gguf g;
        if (gllm_gguf_parse(c, len, &g) == GLLM_OK) ok++, gllm_gguf_close(&g);
    }
    cr_log_info("%d of 20000 mutants still parse", ok);
    free(c), free(img);
}

Test(gguf, real_vocabulary_files) {
    static const char *const files[] = {"ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-spm.gguf", "ggml-vocab-bert-bge.gguf"};
    for (size_t i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/tokenizers/%s", GLLM_TESTDATA, files[i]);
        if (access(path, R_OK)) cr_skip_test("test data not found at %s", path);
        gllm_gguf g;
        cr_assert_eq(gllm_gguf_open(path, &g), GLLM_OK, "%s: %s", files[i], gllm_last_error());
        const gllm_gguf_kv *toks = gllm_gguf_find(&g, "tokenizer.ggml.tokens");
        cr_assert(toks && toks->type == GGUF_ARRAY && toks->arr_n > 1000, "%s: tokens", files[i]);
        gllm_str *all = malloc(toks->arr_n * sizeof *all);
        cr_assert_eq(gllm_gguf_arr_strs(&g, toks, all), GLLM_OK);
        free(all);
        gllm_gguf_close(&g);
    }
}

/* the fuzzing corpus: good seeds parse, broken ones get an error */
Test(gguf, corpus_files) {
    static const struct { const char *file; int ok; } files[] = {
        {"model.gguf", 1}, {"vocab_only.gguf", 1}, {"truncated.gguf", 0}, {"huge_count.gguf", 0}};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/tests/fuzz/corpus/gguf/%s", GLLM_SOURCE_DIR, files[i].file);
        gllm_gguf g;
        const gllm_status s = gllm_gguf_open(path, &g);
        cr_assert_eq(s == GLLM_OK, files[i].ok, "%s: %s", files[i].file, gllm_last_error());
        if (s == GLLM_OK) gllm_gguf_close(&g);
    }
}

/* a BPE vocabulary without an unknown token: a piece it cannot spell is dropped, never id -1 */
Test(gguf, bpe_without_unknown_token) {
    static const char *const toks[] = {"a", "b", "ab"}, *const merges[] = {"a b"};
    const tw_kv kv[] = {{.key = "tokenizer.ggml.model", .type = GGUF_STRING, .s = "gpt2"},
                        {.key = "tokenizer.ggml.tokens", .type = GGUF_ARRAY, .strs = toks, .n = 3},
                        {.key = "tokenizer.ggml.merges", .type = GGUF_ARRAY, .strs = merges, .n = 1},
                        {.key = "tokenizer.ggml.unknown_token_id", .type = GGUF_U32, .u = 7}}; /* past the vocabulary: none */
    size_t len, n;
    uint8_t *img = gguf_build(kv, 4, NULL, 0, 32, &len);
    gllm_gguf g;
    cr_assert_eq(gllm_gguf_parse(img, len, &g), GLLM_OK, "%s", gllm_last_error());
    gllm_tokenizer *t;
    cr_assert_eq(gllm_tokenizer_load(&g, &t), GLLM_OK, "%s", gllm_last_error());
    int32_t ids[8];
    cr_assert_eq(gllm_tokenize(t, "abc", 3, 0, ids, 8, &n), GLLM_OK);
    cr_assert_eq(n, 1, "'c' has no token: dropped (got %zu ids)", n);
    cr_assert_eq(ids[0], 2);
    gllm_tokenizer_free(t);
    gllm_gguf_close(&g);
    free(img);
}

/* the mapping every model file goes through: at a 2 MiB boundary (huge pages where the page
 * cache holds them), the file's bytes as they are; a missing or empty file is an error */
Test(mapfile, aligned_and_exact) {
    char path[] = "/tmp/gllm_mapXXXXXX";
    const int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const size_t n = (1u << 20) + 12345; /* under 2 MiB: Linux aligns larger file mappings itself */
    uint8_t *bytes = malloc(n);
    for (size_t i = 0; i < n; i++) bytes[i] = (uint8_t)(i * 2654435761u >> 13);
    cr_assert_eq(write(fd, bytes, n), (ssize_t)n);
    const void *data;
    size_t size;
    cr_assert_eq(gllm_map_file(path, "test", &data, &size), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(size, n);
    cr_assert_eq((uintptr_t)data % (2u << 20), 0, "mapped at a 2 MiB boundary");
    cr_assert(memcmp(data, bytes, n) == 0, "the file's bytes");
    gllm_unmap_file(data, size);
    cr_assert_eq(ftruncate(fd, 0), 0);
    cr_assert_eq(gllm_map_file(path, "test", &data, &size), GLLM_E_INVALID_ARGUMENT, "an empty file");
    close(fd);
    unlink(path);
    cr_assert_eq(gllm_map_file(path, "test", &data, &size), GLLM_E_INVALID_ARGUMENT, "a missing file");
    free(bytes);
}

/* a FIFO (whose open would wait for a writer) and a directory: refused at once */
Test(mapfile, not_a_regular_file, .timeout = 20) {
    char dir[] = "/tmp/gllm_fifoXXXXXX", fifo[64];
    cr_assert(mkdtemp(dir));
    snprintf(fifo, sizeof fifo, "%s/model.gguf", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    const void *data;
    size_t size;
    cr_assert_eq(gllm_map_file(fifo, "test", &data, &size), GLLM_E_INVALID_ARGUMENT, "a FIFO");
    cr_assert(strstr(gllm_last_error(), "not a regular file"), "%s", gllm_last_error());
    cr_assert_eq(gllm_map_file(dir, "test", &data, &size), GLLM_E_INVALID_ARGUMENT, "a directory");
    unlink(fifo);
    rmdir(dir);
}
