/* A backend: chosen once (layer 1 of the dispatch), a table of entry points that the L3 API
 * (src/api/l3.c) routes to after validating each call. The CPU's (src/cpu/backend.c) runs
 * plans through the generated kernel table; a CUDA device's (src/cuda/backend.c) launches
 * cubin kernels, replays graphs and keeps the KV pages, logits and sampler on the device.
 * The L3 API keeps what both share: sequences, their pages' bookkeeping (the pool), which
 * sequences are swapped out, warm or protected. Every entry point but open runs between the
 * device's enter and leave. */
#ifndef GLLM_PLAN_BACKEND_H
#define GLLM_PLAN_BACKEND_H
#include "cpu/kv_cache.h"
#include "format/gguf.h"
#include "model/llama.h"

enum { GLLM_MAX_SEQS = 256 };       /* sequences of a KV cache, and logits rows of a batch */
enum { GLLM_MAX_HISTORY = 65536 }; /* tokens of a sampler's history (penalties) */

typedef struct gllm_device gllm_device;     /* CUDA: the context and streams; the CPU has none (NULL) */
typedef struct gllm_decoder gllm_decoder;   /* a decoder's plan ready to run, its logits and sampler */
typedef struct gllm_kv_pages gllm_kv_pages; /* a KV cache's pages and swapped-out images */
typedef struct gllm_encoder gllm_encoder;   /* an encoder's plan ready to run */

/* one sequence's part of a step: its tokens to slots s->len .. of cache sequence `seq` */
typedef struct {
    int seq;
    gllm_kv_seq *s;
    const int32_t *tokens;
    size_t n;
} gllm_step_item;

/* one sequence of an encoder run: its ids and their types (NULL: all 0) */
typedef struct {
    const int32_t *tokens, *types;
    size_t n;
} gllm_encoder_item;

typedef enum { GLLM_BLOCK_EMBED, GLLM_BLOCK_ATTENTION, GLLM_BLOCK_FFN, GLLM_BLOCK_HEAD } gllm_block_kind;

typedef struct {
    const char *name; /* gllm_backend_info.kind */
    /* the device: ordinal N of cuda:N; describe: its name, the kernels' ISA, weights used in place */
    gllm_status (*open)(int ordinal, gllm_device **dev);
    void (*close)(gllm_device *dev);
    void (*describe)(const gllm_device *dev, char *name, size_t cap, const char **isa, int *zero_copy);
    gllm_status (*enter)(gllm_device *dev); /* the device current for one public call */
    void (*leave)(gllm_device *dev);

    /* generation: a decoder of up to max_rows tokens a step, logits for up to GLLM_MAX_SEQS rows */
    gllm_status (*decoder_open)(gllm_device *dev, const gllm_llama *m, const gllm_gguf *file, size_t max_rows,
                                gllm_decoder **out);
    void (*decoder_close)(gllm_decoder *d);
    /* its KV cache: the pool laid out (its pages wherever this backend keeps them) */
    gllm_status (*kv_open)(gllm_decoder *d, gllm_kv_pool *pool, gllm_dtype dtype, size_t page_size, size_t n_pages,
                           gllm_kv_pages **out);
    void (*kv_close)(gllm_kv_pages *kv); /* after the copies and steps in flight; its images freed */
    /* n items (distinct sequences, checked, their pages reserved) as one forward; each item's
     * last logits row at row0 + b, or every token's from row 0 for a tree (topo->parent) */
    gllm_status (*step)(gllm_kv_pages *kv, const gllm_step_item *items, size_t n, const gllm_topology *topo, size_t row0);
    /* a tree step's path kept: slots step_start + path[i] move to step_start + i, s->len set */
    gllm_status (*accept)(gllm_kv_pages *kv, int seq, gllm_kv_seq *s, size_t step_start, const uint32_t *path, size_t n);
    /* the sequence cut back to len tokens (a path accepted, a failed forward undone), its pages
     * past them back to the pool (taken again only after the work enqueued on them) */
    void (*cut)(gllm_kv_pages *kv, int seq, gllm_kv_seq *s, size_t len);
    void (*seq_close)(gllm_kv_pages *kv, int seq); /* before its pages go back: its image and device state dropped */
    /* swap sequence seq's pages out to an image on the host (their pool pages freed), or back in */
    gllm_status (*swap_out)(gllm_kv_pages *kv, int seq, gllm_kv_seq *s);
    gllm_status (*swap_in)(gllm_kv_pages *kv, int seq, gllm_kv_seq *s, size_t n_pages);
    /* the device's own memory in use, as a fraction (the pool's free pages counted free): at least *used */
    gllm_status (*pressure)(gllm_kv_pages *kv, float *used);
    gllm_status (*logits_read)(gllm_decoder *d, size_t rows, float *out);
    gllm_status (*sample)(gllm_decoder *d, size_t rows, const gllm_sampling *cfg, const int32_t *history, size_t n_history,
                          uint64_t step_no, int32_t *out_ids);
    /* L2: one sub-block on n rows (tokens checked): embed tokens -> out, or x -> out (logits for the head) */
    gllm_status (*block)(gllm_decoder *d, gllm_block_kind kind, size_t layer, const int32_t *tokens, const float *x, size_t n,
                         float *out);

    /* encoders: a plan with no cache (its attention within each sequence, of up to max_len
     * tokens), its weights in the file's image [file, file + file_size) or in [owned, owned +
     * owned_size); encode: n sequences (checked), the plan's output rows (one per sequence after
     * its POOL) into out, the pooled rows L2-normalised when normalize != 0 */
    gllm_status (*encoder_open)(gllm_device *dev, const gllm_plan *p, const void *file, size_t file_size, const void *owned,
                                size_t owned_size, size_t max_len, gllm_encoder **out);
    void (*encoder_close)(gllm_encoder *e);
    gllm_status (*encode)(gllm_encoder *e, const gllm_encoder_item *items, size_t n, int normalize, float *out);
} gllm_backend_ops;

extern const gllm_backend_ops gllm_cpu_backend, gllm_cuda_backend;
#endif
