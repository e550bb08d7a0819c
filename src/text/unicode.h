/* Unicode helpers for the tokenizers: UTF-8 decoding and the generated tables
 * (generated/unicode_tables.c). */
#ifndef GLLM_TEXT_UNICODE_H
#define GLLM_TEXT_UNICODE_H
#include <stddef.h>
#include <stdint.h>

enum { UC_LETTER = 1, UC_NUMBER = 2, UC_PUNCT = 4, UC_SYMBOL = 8, UC_SPACE = 16, UC_MARK = 32, UC_CONTROL = 64 };

typedef struct {
    uint32_t first, last;
    uint8_t cls;
} gllm_uc_range;
typedef struct {
    uint32_t from, to;
} gllm_uc_map;
typedef struct {
    uint32_t from, to[3];
} gllm_uc_map3;

extern const gllm_uc_range gllm_uc_ranges[];
extern const size_t gllm_uc_n_ranges;
extern const gllm_uc_map gllm_uc_fold1[];
extern const gllm_uc_map3 gllm_uc_fold3[];
extern const size_t gllm_uc_n_fold1, gllm_uc_n_fold3;

unsigned gllm_uc_class(uint32_t cp);
/* BERT's normalisation of one code point (Hugging Face's BertNormalizer, lowercasing and
 * stripping accents): lowercased, canonically decomposed (Hangul syllables into their jamo),
 * nonspacing marks dropped. Writes 0 to 3 code points to out; returns how many */
size_t gllm_uc_fold(uint32_t cp, uint32_t out[3]);

/* decode one UTF-8 sequence at s (n bytes left): its length (>= 1); invalid bytes decode
 * as themselves with length 1 and *cp = 0xFFFD */
size_t gllm_utf8_decode(const char *s, size_t n, uint32_t *cp);
/* encode cp into out (4 bytes room): the length */
size_t gllm_utf8_encode(uint32_t cp, char *out);
#endif
