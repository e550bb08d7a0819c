/* Small synthetic Llama-family models written as GGUF images (tests only). */
#ifndef GLLM_TEST_SYNTH_MODEL_H
#define GLLM_TEST_SYNTH_MODEL_H
#include <stddef.h>
#include <stdint.h>
#include "gllm_kernels.h"

/* model shape (the small default, or SmolLM2-135M's for one test) */
extern size_t DIM, NH, NKV, HD, FFN, VOCAB, LAYERS, CTX;
extern double BASE;
/* RoPE scaling, none unless set: ROPE_FREQS (HD/2 floats) as rope_freqs.weight, ROPE_SCALING as
 * <arch>.rope.scaling.type with ROPE_FACTOR as .factor */
extern const float *ROPE_FREQS;
extern const char *ROPE_SCALING;
extern float ROPE_FACTOR;
/* build: more <arch>.<key> numbers (ending at a NULL key), a u32 where is_int, else an f32 */
typedef struct {
    const char *key;
    int is_int;
    double value;
} synth_key;
extern const synth_key *EXTRA_KEYS;
/* build: one more tensor in every layer, blk.N.<EXTRA_TENSOR>, DIM f32 values (NULL: none) */
extern const char *EXTRA_TENSOR;
/* build_bert: bert.pooling_type when >= 0 (llama.cpp's: 1 mean, 2 cls, 3 last) */
extern int BERT_POOLING;
/* build_bert: tokenizer.ggml.model, "bert" (WordPiece, with its [CLS] and [SEP] ids) or "gpt2" (a
 * BPE with one merge, and no [CLS] or [SEP] ids) */
extern const char *BERT_TOKENIZER;

typedef struct {
    uint8_t *img;
    size_t len;
    void *bufs[512];
    int nb;
} model_file;

/* arch: "llama", "qwen2" (QKV bias), "qwen3" (QK-norm); weights random, in dtype t */
void build(model_file *f, const char *arch, gllm_dtype t);
/* the same with matrices rounded through t but stored as `store` (f32: a twin of a t model
 * whose weights have exactly the t model's values) */
void build_as(model_file *f, const char *arch, gllm_dtype t, gllm_dtype store);
/* a BERT-family encoder (GGUF, llama.cpp's bert names; DIM, NH heads, FFN, LAYERS, CTX
 * positions, two token types, a WordPiece vocabulary of VOCAB <= 64 words with [CLS] 2 and
 * [SEP] 3), matrices in t stored as store (as build_as); head: a pooler and a 3-label
 * classifier (a cross-encoder) */
void build_bert(model_file *f, gllm_dtype t, gllm_dtype store, int head);
/* the weights' random stream starts here (the same seed: the same weights) */
void synth_seed(uint64_t seed);
void drop(model_file *f);
/* writes the image to path and drops it; 0 on success */
int save(model_file *f, const char *path);
#endif
