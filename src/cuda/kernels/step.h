/* The step header: a few ints in device memory that the host writes before each forward
 * (or graph replay) and the kernels read, so a captured graph never needs updating.
 * Plain C: included by the host runner and the kernels. */
#ifndef GLLM_CUDA_STEP_H
#define GLLM_CUDA_STEP_H
enum {
    GLLM_HDR_PREFIX, /* tokens of the sequence already cached: token i sits at position prefix + i */
    GLLM_HDR_SEQ,    /* the sequence's block table: tables + seq * table_stride */
    GLLM_HDR_TOKENS = 4 /* the step's token ids follow */
};
#endif
