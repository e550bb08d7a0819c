/* The CPU backend's BERT-family encoder (src/model/bert.h): every sequence's rows in one
 * matrix through each projection, attention within each sequence (one f32 cache layer of
 * max_pos tokens, which every layer reuses), then pooling (embeddings) or the classifier
 * head (reranking). */
#ifndef GLLM_CPU_ENCODER_H
#define GLLM_CPU_ENCODER_H
#include "cpu/kv_cache.h"
#include "model/bert.h"

typedef struct {
    const gllm_bert *m;
    gllm_kv_pool kv;
    gllm_kv_seq seq;
} gllm_cpu_encoder;

gllm_status gllm_cpu_encoder_init(gllm_cpu_encoder *e, const gllm_bert *m);
void gllm_cpu_encoder_free(gllm_cpu_encoder *e);
/* rerank = 0: out[n_seq][dim], per sequence its last hidden states pooled (m->pooling: mean,
 * [CLS] or last token), L2-normalised where asked; rerank = 1: out[n_seq], the cross-encoder
 * scores ([CLS] q [SEP] d [SEP], token type 1 after the first [SEP]):
 * classifier(tanh(pooler(hidden state of [CLS]))), label 0. The sequences are checked
 * (gllm_bert_check). */
gllm_status gllm_cpu_encode(gllm_cpu_encoder *e, const int32_t *const *seqs, const size_t *lens, size_t n_seq, int rerank,
                            int normalize, float *out);
#endif
