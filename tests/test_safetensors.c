/* safetensors and its JSON header: good files, every truncation, hostile headers, mutants. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "format/json.h"
#include "format/safetensors.h"

static uint8_t *image(const char *json, size_t body, size_t *len) {
    size_t h = strlen(json);
    *len = 8 + h + body;
    uint8_t *img = calloc(*len, 1);
    uint64_t hl = h;
    memcpy(img, &hl, 8), memcpy(img + 8, json, h);
    for (size_t i = 0; i < body; i++) img[8 + h + i] = (uint8_t)i;
    return img;
}

static const char *good =
    "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
    "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]}}";

Test(safetensors, good_file) {
    size_t len;
    uint8_t *img = image(good, 32, &len);
    gllm_safetensors st;
    cr_assert_eq(gllm_st_parse(img, len, &st), GLLM_OK, "%s", gllm_last_error());
    cr_assert_eq(st.n, 2u);
    const gllm_st_tensor *w = gllm_st_find(&st, "w"), *b = gllm_st_find(&st, "b");
    cr_assert(w && b && w->dims[0] == 2 && w->dims[1] == 3 && w->dtype == GLLM_DTYPE_F32 && b->dtype == GLLM_DTYPE_BF16);
    cr_assert_eq(((const uint8_t *)b->data)[0], 24, "zero-copy, in place");
    gllm_st_close(&st);
    for (size_t n = 0; n < len; n++) { /* every truncation: an error */
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, img, n);
        cr_assert_neq(gllm_st_parse(cut, n, &st), GLLM_OK, "a %zu-byte prefix parsed", n);
        free(cut);
    }
    free(img);
}

static void expect_bad(const char *json, size_t body, const char *text) {
    size_t len;
    uint8_t *img = image(json, body, &len);
    gllm_safetensors st;
    cr_assert_neq(gllm_st_parse(img, len, &st), GLLM_OK, "parsed: %s", json);
    cr_assert(strstr(gllm_last_error(), text), "message '%s' lacks '%s'", gllm_last_error(), text);
    free(img);
}

Test(safetensors, hostile_headers) {
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,2400]}}", 24, "outside");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24, "span");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1e15,1e15],\"data_offsets\":[0,24]}}", 24, "dimension");
    expect_bad("{\"w\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[0,24]}}", 24, "dtype");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 24, "overlap");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3]}}", 24, "data_offsets");
    expect_bad("{\"w\":", 24, "JSON");
    /* a header of 58 bytes: the floats would start 2 bytes off their alignment */
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}} ", 24, "aligned");
    expect_bad("[1,2,3]", 0, "object");
    char deep[300];
    memset(deep, '[', 200), deep[200] = 0;
    expect_bad(deep, 0, "JSON");
    gllm_json j;
    cr_assert_neq(gllm_json_parse("{\"x\":\0}", 7, &j), GLLM_OK, "a NUL byte is not a number");
    /* a key given twice (a hand-edited config.json): the last, as Python's json reads it */
    cr_assert_eq(gllm_json_parse("{\"n\":1,\"m\":[2],\"n\":3}", 21, &j), GLLM_OK);
    const gllm_json_node *n = gllm_json_get(&j, &j.node[0], "n");
    cr_assert(n && n->type == JSON_NUM && n->num == 3, "the first of two keys taken");
    gllm_json_free(&j);
    uint8_t huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    gllm_safetensors st;
    cr_assert_eq(gllm_st_parse(huge, 16, &st), GLLM_E_INVALID_ARGUMENT, "a header length past the file");
}

Test(safetensors, random_mutations_never_crash) {
    size_t len;
    uint8_t *img = image(good, 32, &len), *c = malloc(len);
    uint64_t s = 99;
    for (int it = 0; it < 20000; it++) {
        memcpy(c, img, len);
        for (int f = 0; f < 1 + it % 3; f++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            c[(s >> 33) % len] = (uint8_t)(s >> 13);
        }
        gllm_safetensors st;
        if (gllm_st_parse(c, len, &st) == GLLM_OK) gllm_st_close(&st);
    }
    free(c), free(img);
}
