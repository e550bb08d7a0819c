/* Tokenizers from GGUF metadata, for the CLI and tests (clients may tokenize
 * themselves): SentencePiece BPE ("llama"), GPT-2 byte-level BPE ("gpt2") and
 * WordPiece ("bert", llama.cpp's vocabulary form: word-initial pieces start
 * with U+2581). The tokenizer copies what it needs: the GGUF may be closed. */
#ifndef GLLM_TEXT_TOKENIZER_H
#define GLLM_TEXT_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>
#include "format/gguf.h"

typedef enum { GLLM_TOK_SPM, GLLM_TOK_BPE, GLLM_TOK_WPM } gllm_tok_kind;

typedef struct gllm_tokenizer gllm_tokenizer;

gllm_status gllm_tokenizer_load(const gllm_gguf *g, gllm_tokenizer **out);
/* a WordPiece tokenizer from a BERT vocab.txt (one piece a line, "##" continuations); lowercase:
 * text lowercased without accents first (Hugging Face's do_lower_case), else kept as written */
gllm_status gllm_tokenizer_wordpiece(const char *vocab, size_t len, int lowercase, gllm_tokenizer **out);
void gllm_tokenizer_free(gllm_tokenizer *t);
gllm_tok_kind gllm_tokenizer_kind(const gllm_tokenizer *t);
size_t gllm_tokenizer_vocab(const gllm_tokenizer *t);
/* special ids, -1 when the vocabulary has none */
int32_t gllm_tokenizer_bos(const gllm_tokenizer *t);
int32_t gllm_tokenizer_eos(const gllm_tokenizer *t);
int32_t gllm_tokenizer_cls(const gllm_tokenizer *t);
int32_t gllm_tokenizer_sep(const gllm_tokenizer *t);
/* 1 when id ends generation: the eos, eot and eom tokens, and the tokens whose text llama.cpp
 * takes to end a turn (<|im_end|>, <|eot_id|>, <end_of_turn>, ...) */
int gllm_tokenizer_is_eog(const gllm_tokenizer *t, int32_t id);
/* 1 when the model's prompts start with its bos token (which it has) */
int gllm_tokenizer_add_bos(const gllm_tokenizer *t);

/* text -> ids, none added (no bos); *n gets the count (at most cap are written;
 * GLLM_E_INVALID_ARGUMENT when cap is too small, with *n the count needed). As llama.cpp: the
 * text is first split where user-defined tokens occur, and, with parse_special, control and
 * unknown ones ("<|im_start|>", "<s>", "[SEP]"), each one id; the pieces between are tokenized
 * apart (SPM: each with its leading space, unless add_space_prefix is false) */
gllm_status gllm_tokenize(const gllm_tokenizer *t, const char *text, size_t len, int parse_special, int32_t *ids, size_t cap,
                          size_t *n);
/* ids -> UTF-8 bytes (special tokens: their text; SPM: U+2581 -> space, <0xXX> -> the byte; BPE:
 * the byte mapping undone; WPM: pieces joined, word-initial ones with a space); *len as above;
 * an id out of range is an error */
gllm_status gllm_detokenize(const gllm_tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap,
                            size_t *len);
#endif
