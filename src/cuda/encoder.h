/* The CUDA backend's encoder runner: a plan with no cache (src/plan/plan.h: bidirectional
 * attention within each sequence, pooling) on the device. Its weights are uploaded once (or
 * mapped, where the device reads host memory in place); every sequence's rows go through each
 * projection as one matrix; only token ids and types go up, the output rows (pooled vectors,
 * scores) come down. Activations grow with the largest batch seen and are kept. */
#ifndef GLLM_CUDA_ENCODER_H
#define GLLM_CUDA_ENCODER_H
#include "cuda/runtime.h"
#include "plan/backend.h"

typedef struct {
    gllm_cuda *c;
    const gllm_plan *p;
    const uint8_t *host, *owned_host; /* the weights' two images on the host, and on the device */
    size_t size, owned_size;
    CUdeviceptr file, owned;
    int mapped, registered;
    size_t rows_cap, seqs_cap; /* activations' capacity */
    size_t run_rows;           /* tokens a run: GLLM_CUDA_ENCODE_ROWS, or fewer with that variable set (tests) */
    CUdeviceptr buf[BUF_COUNT], hdr;
    CUdeviceptr scratch; /* tensor-core gemms: x rounded to 16 bits (gllm_cuda_gemm_scratch) */
    int32_t *hdr_host;
} gllm_cuda_encoder;

/* as the backend table's encoder_open (src/plan/backend.h); a plan step this runner does not
 * take (the decoders' cache steps, a gated feed-forward) is refused here */
gllm_status gllm_cuda_encoder_init(gllm_cuda_encoder *e, gllm_cuda *c, const gllm_plan *p, const void *file, size_t file_size,
                                   const void *owned, size_t owned_size);
void gllm_cuda_encoder_free(gllm_cuda_encoder *e);
enum { GLLM_CUDA_ENCODE_ROWS = 65535 }; /* tokens of one run at most (a launch's grid height); the backend splits bigger batches */
gllm_status gllm_cuda_encode(gllm_cuda_encoder *e, const gllm_encoder_item *items, size_t n, int normalize, float *out);
#endif
