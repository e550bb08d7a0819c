/* ggml (llama.cpp's tensor library) as a benchmark peer, loaded at run time: see peer_ggml.c. */
#ifndef GLLM_BENCH_PEER_GGML_H
#define GLLM_BENCH_PEER_GGML_H
#include <stddef.h>

#include "gllm_kernels.h"

/* loads ggml from $GLLM_GGML_LIB; a printable name, or NULL when not available */
const char *gllm_peer_ggml_load(int threads);
/* best seconds of ggml_mul_mat on the same shape and values (0: not loaded, or no ggml twin of t) */
double gllm_peer_ggml_matmul(gllm_dtype t, const float *w32, const float *x, size_t m, size_t n, size_t k, double budget);
/* best seconds of ggml_flash_attn_ext: nq causal queries at the end of ctx_len f16 keys (0: not loaded) */
double gllm_peer_ggml_attention(size_t nq, size_t ctx_len, size_t nh, size_t kvh, size_t hd, int reps);
#endif
