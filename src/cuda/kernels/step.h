/* The step header: a few ints in device memory that the host writes before each forward
 * (or graph replay) and the kernels read, so a captured graph never needs updating.
 * Plain C: included by the host runner and the kernels. */
#ifndef GLLM_CUDA_STEP_H
#define GLLM_CUDA_STEP_H
enum {
    GLLM_HDR_PREFIX, /* tokens of the sequence already cached: token i sits at position prefix + i */
    GLLM_HDR_SEQ,    /* the sequence's block table: tables + seq * table_stride */
    GLLM_HDR_POS,    /* 0, or where in the header token i's position is (hdr[hdr[POS] + i]; else prefix + i) */
    GLLM_HDR_TREE,   /* 0 (causal), or where the tree step's ancestor rows start: token i sees step token
                      * j when bit j of row i is set (rows of (n + 31) / 32 words) */
    GLLM_HDR_TOKENS /* the step's token ids follow */
};
#endif
