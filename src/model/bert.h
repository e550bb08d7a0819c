/* BERT-family encoder (word + position + token-type embeddings, post-LayerNorm blocks,
 * GELU FFN, bidirectional attention): read from a Hugging Face directory (config.json,
 * model.safetensors, vocab.txt), weights used in place; its CPU forward to pooled vectors. */
#ifndef GLLM_MODEL_BERT_H
#define GLLM_MODEL_BERT_H
#include "cpu/kv_cache.h"
#include "format/safetensors.h"
#include "text/tokenizer.h"

typedef struct {
    const float *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo, *ln1_w, *ln1_b, *wi, *bi, *wd, *bd, *ln2_w, *ln2_b;
} gllm_bert_layer;

typedef struct {
    size_t n_layers, dim, n_heads, head_dim, ffn, vocab, max_pos, n_types;
    float eps;
    const float *word, *pos, *type, *ln_w, *ln_b;
    const float *pool_w, *pool_b, *cls_w, *cls_b; /* cross-encoders: pooler (tanh) and classifier, else NULL */
    size_t n_labels;
    gllm_bert_layer *layers;
    gllm_safetensors st;
    gllm_tokenizer *tok;
    gllm_kv_pool kv;   /* one layer, max_pos tokens: every layer's attention in turn */
    gllm_kv_seq kv_seq;
} gllm_bert;

gllm_status gllm_bert_open(const char *dir, gllm_bert *m);
void gllm_bert_close(gllm_bert *m);
/* out[n_seq][dim]: per sequence the mean of its last hidden states, optionally L2-normalised;
 * every sequence's rows go through each projection together (ids checked by the caller) */
gllm_status gllm_bert_embed(gllm_bert *m, const int32_t *const *seqs, const size_t *lens, size_t n_seq, int normalize,
                            float *out);
/* cross-encoder scores: per sequence ([CLS] q [SEP] d [SEP], token type 1 after the first [SEP])
 * classifier(tanh(pooler(hidden state of [CLS]))), label 0 */
gllm_status gllm_bert_rerank(gllm_bert *m, const int32_t *const *seqs, const size_t *lens, size_t n_seq, float *scores);
#endif
