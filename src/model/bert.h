/* BERT-family encoder (word + position + token-type embeddings, post-LayerNorm blocks,
 * GELU FFN, bidirectional attention): read from a Hugging Face directory (config.json,
 * model.safetensors, vocab.txt) or a GGUF file (llama.cpp's bert names), weights used in
 * place. Its forward is recorded as a plan (src/plan/plan.h) that any backend runs. */
#ifndef GLLM_MODEL_BERT_H
#define GLLM_MODEL_BERT_H
#include "cpu/embed.h"
#include "plan/plan.h"
#include "format/safetensors.h"
#include "text/tokenizer.h"

typedef struct {
    const void *wq, *wk, *wv, *wo, *wi, *wd; /* matrices [out][in] in the model's matrix dtype */
    const float *bq, *bk, *bv, *bo, *ln1_w, *ln1_b, *bi, *bd, *ln2_w, *ln2_b;
} gllm_bert_layer;

typedef struct {
    size_t n_layers, dim, n_heads, head_dim, ffn, vocab, max_pos, n_types;
    size_t max_len;  /* where tokenizing cuts a text (sentence-transformers): its max_seq_length, else
                        the tokenizer's model_max_length, never past max_pos */
    size_t pair_len; /* where it cuts a pair (CrossEncoder): the tokenizer's model_max_length, never past max_pos */
    float eps;
    gllm_dtype mdt, edt, hdt; /* dtypes: layer matrices, word embeddings, head matrices */
    const void *word;
    const float *pos, *type, *ln_w, *ln_b;
    float *owned;             /* position / type tables widened to f32 (GGUF f16 files) */
    const void *pool_w, *cls_w; /* cross-encoders: pooler (tanh) and classifier, else NULL */
    const float *pool_b, *cls_b;
    size_t n_labels;
    gllm_pooling pooling; /* embeddings: the model's (sentence-transformers' 1_Pooling, GGUF
                             bert.pooling_type), mean when it names none */
    gllm_gguf gguf;
    gllm_bert_layer *layers;
    gllm_safetensors st;
    gllm_tokenizer *tok;
} gllm_bert;

/* path: a directory (safetensors) or a .gguf file */
gllm_status gllm_bert_open(const char *path, gllm_bert *m);
void gllm_bert_close(gllm_bert *m);
/* the sequences are non-empty, within the positions and the vocabulary; *rows their total */
gllm_status gllm_bert_check(const gllm_bert *m, const int32_t *const *seqs, const size_t *lens, size_t n_seq, size_t *rows);
/* types[len] of one sequence: 0, or with pairs 1 after its first [SEP] (0 where the model has
 * one type only) */
/* the forward as a plan: embeddings, the layers, pooling by the model's kind (its output: one
 * row of dim per sequence); rerank: the [CLS] row through the pooler's tanh and the classifier
 * (one row of n_labels per sequence) */
gllm_status gllm_bert_plan(const gllm_bert *m, int rerank, gllm_plan *p);
void gllm_bert_types(const gllm_bert *m, const int32_t *seq, size_t len, int pairs, int32_t *types);
#endif
