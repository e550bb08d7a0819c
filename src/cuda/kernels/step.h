/* The step header: a few ints in device memory that the host writes before each forward
 * (or graph replay) and the kernels read, so a captured graph never needs updating.
 * A step's rows are the tokens of one or more sequences (a batch), each sequence's rows
 * consecutive. Plain C: included by the host runner and the kernels. */
#ifndef GLLM_CUDA_STEP_H
#define GLLM_CUDA_STEP_H
enum {
    GLLM_HDR_SEQS,  /* where row i's sequence is, hdr[hdr[SEQS] + i]: its block table is tables + seq * table_stride */
    GLLM_HDR_SLOTS, /* where row i's cache slot is, hdr[hdr[SLOTS] + i]: its K/V go there, it attends to slots
                     * 0 .. slot of its sequence */
    GLLM_HDR_POS,   /* 0, or where row i's position is (hdr[hdr[POS] + i]; else its slot) */
    GLLM_HDR_TREE,  /* 0 (causal), or where a tree step's ancestor rows start (one sequence, row i at slot
                     * slot[0] + i): row i sees step row j when bit j of its row is set ((n + 31) / 32 words) */
    GLLM_HDR_LAST,  /* where the row whose logits item b gets is, hdr[hdr[LAST] + b] */
    GLLM_HDR_TILES, /* where tile t of tensor-core attention is: hdr[hdr[TILES] + 2t] its first row, + 1 its row
                     * count (up to 32, all of one item, at consecutive slots) */
    GLLM_HDR_ROWS,  /* 0: CUDA-core attention takes every row (grid row i is row i); else where the rows it
                     * takes are listed (those of no tile) */
    GLLM_HDR_TOKENS /* the step's token ids follow */
};

/* A decode step's attention given the rows' own K and V as the projections left them (k NULL:
 * RoPE and the cache write ran before): the attention applies RoPE (and the q/k norms, qn and
 * kn, both or neither) to q and to that key itself, uses them for the row's own slot, and one
 * of its blocks writes them to the cache. Passed by value. */
typedef struct {
    const float *k, *v;   /* [rows][n_kv][hd] */
    const float *rope;     /* [rows][rot]: the rows' rotation tables (gllm_rope_table_row) */
    const float *qn, *kn;
    int rot, neox;
    float norm_eps;
} gllm_fresh_kv;

/* attention: query heads of one GQA group per block, for head dims up to 128 (attn_g8) and up
 * to 256 (attn); a larger group takes ceil(group / heads) blocks; a row's keys split over up to
 * GLLM_ATTN_SPLITS blocks, as many as give each GLLM_ATTN_SPLIT_KEYS keys or more */
enum { GLLM_ATTN_HEADS = 8, GLLM_ATTN_HEADS_WIDE = 4, GLLM_ATTN_SPLITS = 64, GLLM_ATTN_SPLIT_KEYS = 64 };

/* the decode gemvs over block formats on the int8 path stage their weight rows through shared
 * memory: a warp of `rows` rows (1, 2 or 4) copies each GLLM_STAGE_BLOCKS(bb, rows) blocks of bb
 * bytes at a time (a multiple of 8 blocks, 128 bytes or more for 4 rows, that times 4 / rows for
 * fewer: a stage is as long whatever the rows; 16-byte pieces from a row's start on), into a ring
 * of GLLM_STAGES slots of GLLM_STAGE_BYTES(bb, rows) a row (16 more: a row starts anywhere in a
 * piece) */
enum { GLLM_STAGES = 4 };
#define GLLM_STAGE_BLOCKS(bb, rows) (8 * ((16 + (bb) - 1) / (bb)) * (4 / (rows)))
#define GLLM_STAGE_BYTES(bb, rows) (GLLM_STAGE_BLOCKS(bb, rows) * (bb) + 16)
#endif
