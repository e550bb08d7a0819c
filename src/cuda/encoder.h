/* The CUDA backend's BERT-family encoder (src/model/bert.h on the device): the model file
 * uploaded once (or mapped, where the device reads host memory in place), every sequence's
 * rows in one matrix through each projection, attention within each sequence, then mean
 * pooling (embeddings) or the classifier head (reranking) there too: only token ids go up
 * and the pooled vectors or scores come down. Activations grow with the largest batch seen
 * and are kept. */
#ifndef GLLM_CUDA_ENCODER_H
#define GLLM_CUDA_ENCODER_H
#include "cuda/runtime.h"
#include "model/bert.h"

typedef struct {
    gllm_cuda *c;
    const gllm_bert *m;
    const uint8_t *host; /* the model file's image, and its copy on the device (or mapping) */
    size_t size;
    CUdeviceptr file, owned; /* owned: the f32 position / type tables (GGUF files widen them) */
    int mapped, registered;
    size_t rows_cap, seqs_cap; /* activations' capacity */
    CUdeviceptr x, q, k, v, a, f, hdr, out;
    CUdeviceptr scratch; /* tensor-core gemms: x rounded to 16 bits (gllm_cuda_gemm_scratch) */
    int32_t *hdr_host;
} gllm_cuda_encoder;

gllm_status gllm_cuda_encoder_init(gllm_cuda_encoder *e, gllm_cuda *c, const gllm_bert *m);
void gllm_cuda_encoder_free(gllm_cuda_encoder *e);
/* as gllm_cpu_encode (src/cpu/encoder.h; rerank 0: out[n_seq][dim], rerank 1: out[n_seq]
 * scores); the inputs checked as there */
gllm_status gllm_cuda_encode(gllm_cuda_encoder *e, const int32_t *const *seqs, const size_t *lens, size_t n_seq, int rerank,
                             int normalize, float *out);
#endif
