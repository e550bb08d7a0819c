/* gllm-kernels: the compute backend of an LLM inference stack (public C11 API).
 *
 * Every call returns a gllm_status; on failure gllm_last_error() describes it
 * (per thread, valid until the thread's next failing call). The library
 * initialises itself on first use; gllm_init() does it explicitly and reports
 * a bad GLLM_ISA / GLLM_NUM_THREADS setting. */
#ifndef GLLM_KERNELS_H
#define GLLM_KERNELS_H
#include <stddef.h>
#include <stdint.h>
#include "gllm_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define GLLM_API __attribute__((visibility("default")))
#else
#define GLLM_API
#endif

typedef enum gllm_status {
    GLLM_OK = 0,
    GLLM_E_INVALID_ARGUMENT, /* NULL, zero or inconsistent sizes, overlapping buffers */
    GLLM_E_UNSUPPORTED,      /* unknown dtype, ISA not available on this CPU */
    GLLM_E_OUT_OF_MEMORY,
    GLLM_E_INTERNAL,
} gllm_status;

GLLM_API const char *gllm_last_error(void);
GLLM_API const char *gllm_status_string(gllm_status s);

/* Library set-up (idempotent): detects the ISA (cpuid + xgetbv / getauxval),
 * honours GLLM_ISA=scalar|avx2|avx512|neon (a cap; one the CPU lacks is an
 * error), GLLM_NUM_THREADS (default: online cores) and GLLM_VERBOSE=1. */
GLLM_API gllm_status gllm_init(void);
GLLM_API const char *gllm_isa_name(void);      /* ISA in use, NULL before a successful init */
GLLM_API const char *gllm_isa_detected(void);  /* best ISA the CPU supports */
GLLM_API int gllm_num_threads(void);

/* Weight formats. Block formats hold 32 weights per block; a row of k
 * weights takes gllm_row_size(dtype, k) bytes (k a multiple of the block). */
GLLM_API const char *gllm_dtype_name(gllm_dtype t); /* NULL for an unknown dtype */
GLLM_API gllm_status gllm_dtype_from_name(const char *name, gllm_dtype *out);
GLLM_API size_t gllm_dtype_block_size(gllm_dtype t); /* 0 for an unknown dtype */
GLLM_API gllm_status gllm_row_size(gllm_dtype t, size_t k, size_t *bytes);

/* The name of the kernel the dispatch table holds for op ("gemv", "gemm",
 * "quantize", "dequantize") and dtype; NULL if there is none. */
GLLM_API const char *gllm_kernel_name(const char *op, gllm_dtype t);

/* Y[m][n] = X[m][k] . W[n][k]^T (+ bias[n]). W: n rows of dtype wtype (row
 * size gllm_row_size); X, Y, bias: f32, row-major, dense. m = 1 takes the
 * gemv (decode) kernel, m > 1 the gemm (prefill) kernel. Y must not overlap
 * W, X or bias. Multithreaded; results do not depend on the thread count. */
GLLM_API gllm_status gllm_matmul(gllm_dtype wtype, const void *w, const float *x, const float *bias,
                                 float *y, size_t m, size_t n, size_t k);

/* rows x k values, f32 <-> dtype (k a multiple of the block size). */
GLLM_API gllm_status gllm_quantize(gllm_dtype t, const float *x, void *y, size_t rows, size_t k);
GLLM_API gllm_status gllm_dequantize(gllm_dtype t, const void *x, float *y, size_t rows, size_t k);

/* ---- L3: text generation ------------------------------------------------------------ */

typedef struct gllm_backend gllm_backend;
typedef struct gllm_model gllm_model;
typedef struct gllm_generator gllm_generator;
typedef struct gllm_kv_cache gllm_kv_cache;
typedef struct gllm_logits gllm_logits;

/* "auto" (CUDA when built and present, else the CPU), "cpu" or "cuda:N"; GLLM_DEVICE,
 * when set, overrides name. A forced backend that cannot start is an error. Objects may be
 * closed or freed in any order: each keeps what it was made from (a generator its backend
 * and model, a cache its generator, an embedder or reranker its backend) until it is freed
 * itself. Calls from several threads take turns on one device (the CPU is one): each call is
 * whole, but a logits handle is overwritten by the generator's next forward, whoever makes it:
 * reading, shaping or sampling the logits of a thread's forward after another thread's forward
 * on that generator is refused (never rows it did not size its buffers for). */
GLLM_API gllm_status gllm_backend_open(const char *name, gllm_backend **out);
GLLM_API void gllm_backend_close(gllm_backend *b);
typedef struct {
    const char *backend; /* "cpu" or "cuda" */
    const char *device;  /* e.g. "AMD EPYC (2 threads)" */
    const char *isa;     /* CPU: "scalar", "avx2", "avx512", "neon"; CUDA: "sass" */
    int uma;             /* weights used in place (mapped; GLLM_TILED=1: partly a tiled copy), not copied to a device */
} gllm_backend_info;
GLLM_API gllm_status gllm_backend_get_info(const gllm_backend *b, gllm_backend_info *out);

/* a GGUF model, mmapped (weights are used in place) */
GLLM_API gllm_status gllm_model_open(const char *path, gllm_model **out);
GLLM_API void gllm_model_close(gllm_model *m);
typedef struct {
    const char *arch;
    size_t n_layers, dim, n_heads, n_kv_heads, head_dim, ffn, vocab, context;
} gllm_model_info;
GLLM_API gllm_status gllm_model_get_info(const gllm_model *m, gllm_model_info *out);
/* text <-> token ids with the model's tokenizer, none added (no bos: see gllm_model_add_bos).
 * parse_special: control tokens written in the text ("<|im_start|>", "<s>") become their ids,
 * as llama.cpp's parse_special (user-defined tokens always do); 0: they are plain text.
 * Special tokens detokenize to their text. */
GLLM_API gllm_status gllm_model_tokenize(const gllm_model *m, const char *text, size_t len, int parse_special, int32_t *ids,
                                         size_t cap, size_t *n);
GLLM_API gllm_status gllm_model_detokenize(const gllm_model *m, const int32_t *ids, size_t n, char *out, size_t cap,
                                           size_t *len);
GLLM_API int32_t gllm_model_eos(const gllm_model *m);
GLLM_API int32_t gllm_model_bos(const gllm_model *m);
/* 1 when id ends generation, as llama.cpp's end-of-generation set: the eos, eot and eom tokens
 * and the tokens whose text ends a turn (<|im_end|>, <|eot_id|>, <end_of_turn>, ...) */
GLLM_API int gllm_model_is_eog(const gllm_model *m, int32_t id);
/* 1 when a prompt should start with gllm_model_bos (GGUF tokenizer.ggml.add_bos_token, else
 * llama.cpp's default: SentencePiece and Llama 3 vocabularies yes, other BPE no) */
GLLM_API int gllm_model_add_bos(const gllm_model *m);

/* weights handed to the backend once (the CPU uses the mapping, which the generator keeps; with
 * GLLM_TILED=1 it copies the projection and head weights that its ISA reads faster tiled, once,
 * and gives their file pages back. CUDA copies the file to the device); max_tokens: the most tokens
 * the backend takes in one step, its activations' room (at most 2^20, on CUDA 65535; raised to 256
 * where lower, so that a batch of 256 one-token items fits). A longer forward of one sequence runs
 * in steps of max_tokens; a tree step or a batch item must fit in one.
 * A model that a GPU chosen by "auto" cannot hold runs on the CPU. */
GLLM_API gllm_status gllm_generator_upload(gllm_backend *b, const gllm_model *m, size_t max_tokens,
                                           gllm_generator **out);
GLLM_API void gllm_generator_free(gllm_generator *g);

/* a paged KV cache of n_pages pages of page_size tokens (a power of two >= 16), dtype f32,
 * f16 or bf16, allocated here once; sequences take pages as they grow */
GLLM_API gllm_status gllm_kv_cache_alloc(gllm_generator *g, size_t n_pages, size_t page_size, gllm_dtype dtype,
                                         gllm_kv_cache **out);
GLLM_API void gllm_kv_cache_free(gllm_kv_cache *kv);
/* a new sequence of up to max_tokens; *seq its id */
GLLM_API gllm_status gllm_seq_open(gllm_kv_cache *kv, size_t max_tokens, int *seq);
GLLM_API gllm_status gllm_seq_close(gllm_kv_cache *kv, int seq);
GLLM_API gllm_status gllm_seq_length(const gllm_kv_cache *kv, int seq, size_t *len);

/* A tree step (speculative decoding, at most 256 tokens): per token its parent in the step
 * (-1: a child of the cached prefix; else an earlier token) and its position (NULL: the
 * sequence's length plus the token's depth in the tree). NULL topology = the tokens continue
 * the sequence. */
typedef struct {
    const int32_t *parent;
    const int32_t *position;
} gllm_topology;

/* n tokens of one sequence through the model; their K/V enter the cache. The logits handle
 * holds one row per token for a tree step, else the last token's row; it stays valid until
 * the generator's next forward (one that fails after it ran leaves it without rows: reading or
 * sampling it is an error). Bad ids, a full cache or a sequence past the context are
 * errors that leave the cache as it was. */
GLLM_API gllm_status gllm_generator_forward(gllm_generator *g, gllm_kv_cache *kv, int seq, const int32_t *tokens,
                                            size_t n, const gllm_topology *topo, gllm_logits **out);
/* keep an accepted path of the last tree step: step tokens path[0..n) (increasing indices)
 * become the next positions of the sequence; the rest are dropped, and pages left empty go
 * back to the pool */
GLLM_API gllm_status gllm_seq_accept(gllm_kv_cache *kv, int seq, size_t step_start, const uint32_t *path, size_t n);

typedef struct {
    int seq;
    const int32_t *tokens;
    size_t n;
} gllm_batch_item;
/* several independent sequences; the logits handle holds one row per item, in order. All or
 * nothing: a batch that fails, even in its backend after some forwards ran, leaves every
 * sequence as it was */
GLLM_API gllm_status gllm_batch_forward(gllm_generator *g, gllm_kv_cache *kv, const gllm_batch_item *items, size_t n,
                                        gllm_logits **out);

GLLM_API gllm_status gllm_logits_shape(const gllm_logits *l, size_t *rows, size_t *vocab);
/* copies rows x vocab floats out (for tests and `gllmk logits`; generation never needs it) */
GLLM_API gllm_status gllm_logits_read(const gllm_logits *l, float *out, size_t cap);

/* ---- L2 block calls: for tests and debugging (host buffers, copied in and out each call;
 * never in a generation loop) --------------------------------------------------------------- */

/* x[n][dim]: the token embeddings */
GLLM_API gllm_status gllm_embed_block(const gllm_generator *g, const int32_t *tokens, size_t n, float *x);
/* out = x + attention(norm(x)) of one layer, causal over positions 0 .. n-1 */
GLLM_API gllm_status gllm_attention_block(const gllm_generator *g, size_t layer, const float *x, size_t n, float *out);
/* out = x + ffn(norm(x)) of one layer */
GLLM_API gllm_status gllm_ffn_block(const gllm_generator *g, size_t layer, const float *x, size_t n, float *out);
/* logits[n][vocab] from the last layer's output */
GLLM_API gllm_status gllm_head_block(const gllm_generator *g, const float *x, size_t n, float *logits);

/* ---- L3: embeddings (BERT-family encoders) ------------------------------------------------- */

typedef struct gllm_embedder gllm_embedder;
/* path: a Hugging Face model directory (config.json, model.safetensors, vocab.txt, and
 * sentence-transformers' 1_Pooling/config.json if any) or a GGUF file (llama.cpp's bert names),
 * mmapped */
GLLM_API gllm_status gllm_embedding_upload(gllm_backend *b, const char *path, gllm_embedder **out);
GLLM_API void gllm_embedder_free(gllm_embedder *e);
GLLM_API size_t gllm_embedding_dim(const gllm_embedder *e);
/* [CLS] text [SEP] as ids (special tokens written in the text, "[SEP]", become their ids, as
 * Hugging Face's tokenizers read them). A long text's end is cut, as sentence-transformers cuts
 * it: at most its max_seq_length ids (sentence_bert_config.json), else the tokenizer's
 * model_max_length, else the model's positions. */
GLLM_API gllm_status gllm_embedding_tokenize(const gllm_embedder *e, const char *text, size_t len, int32_t *ids,
                                             size_t cap, size_t *n);
/* one vector per sequence (its last hidden states pooled as the model says: the mean over its
 * own tokens, the default; [CLS]; or the last token), L2-normalised when normalize != 0:
 * out[n][dim]; sequences of different lengths in one call */
GLLM_API gllm_status gllm_embedding_forward(gllm_embedder *e, const int32_t *const *seqs, const size_t *lens, size_t n,
                                            int normalize, float *out);

/* ---- L3: reranking (BERT-family cross-encoders with a classification head) ------------------ */

typedef struct gllm_reranker gllm_reranker;
/* path: a Hugging Face cross-encoder directory (config.json, model.safetensors with pooler and
 * classifier, vocab.txt) or a GGUF file (cls and cls.output tensors) */
GLLM_API gllm_status gllm_reranker_upload(gllm_backend *b, const char *path, gllm_reranker **out);
GLLM_API void gllm_reranker_free(gllm_reranker *r);
/* [CLS] query [SEP] document [SEP] as ids (special tokens in the texts as above), cut as
 * sentence-transformers' CrossEncoder cuts a pair: at the tokenizer's model_max_length, else the
 * model's positions, "longest_first" (the shorter text whole where the longer can give up
 * enough, else half the room each) */
GLLM_API gllm_status gllm_rerank_tokenize(const gllm_reranker *r, const char *query, const char *doc, int32_t *ids,
                                          size_t cap, size_t *n);
/* one score per pair sequence (token type 1 after the first [SEP]): the classifier's first logit */
GLLM_API gllm_status gllm_rerank_forward(gllm_reranker *r, const int32_t *const *pairs, const size_t *lens, size_t n,
                                         float *scores);

/* ---- scheduling (the client's scheduler) ---------------------------------------------- */

/* used / total pages of the KV pool, in [0, 1]; on CUDA the larger of that and the device's memory
 * in use (cuMemGetInfo), the pool's free pages counted as free: a device filling up from
 * elsewhere (other caches, other processes) shows too */
GLLM_API gllm_status gllm_memory_pressure(const gllm_kv_cache *kv, float *out);
typedef enum {
    GLLM_PAGE_FREE,      /* in the pool, unused */
    GLLM_PAGE_ACTIVE,    /* holds a sequence's tokens */
    GLLM_PAGE_WARM,      /* holds a sequence the latest forward used */
    GLLM_PAGE_PROTECTED, /* holds a sequence the client protected */
    GLLM_PAGE_SWAPPED,   /* a sequence's page held in host storage outside the pool */
} gllm_page_state;
typedef struct {
    uint32_t page_id; /* pool pages: 0 .. n_pages-1; swapped pages: n_pages + k */
    gllm_page_state state;
} gllm_page_info;
/* every pool page, then every swapped page; *n the count. cap 0 asks for the count; a cap short
 * of it is an error (the first cap written) */
GLLM_API gllm_status gllm_page_states(const gllm_kv_cache *kv, gllm_page_info *out, size_t cap, size_t *n);
/* protect a sequence's pages from swapping (hot), or lift it */
GLLM_API gllm_status gllm_seq_protect(gllm_kv_cache *kv, int seq, int on);
/* move a sequence's K/V pages out of the pool into host storage (its pool pages are freed), and
 * back (into whatever pages are free), bit-exact. A swap-out is refused for a protected or warm
 * sequence (one asked for while a forward runs waits for it, then sees its sequences warm); a
 * protected sequence swaps in (protection keeps its pages in the pool). A swapped sequence
 * cannot run until swapped in. On CUDA the copies are enqueued on a copy stream and the call
 * returns at once: they overlap the step in flight, and later steps wait for them. */
GLLM_API gllm_status gllm_swap_out_pages(gllm_kv_cache *kv, int seq);
GLLM_API gllm_status gllm_swap_in_pages(gllm_kv_cache *kv, int seq);

typedef struct {
    float temperature;        /* <= 0: greedy */
    int top_k;                /* <= 0: off */
    float top_p;              /* >= 1: off; <= 0: the best token only */
    float min_p;              /* <= 0: off */
    float repetition_penalty; /* 1 (or <= 0): off */
    float frequency_penalty, presence_penalty;
    uint64_t seed;            /* with the step, the draw: (seed, step) reproduces it */
} gllm_sampling;
/* one id per logits row: penalties over history, temperature, top-k, top-p, min-p, a draw (history:
 * the ids the penalties count, at most 65536, each in the vocabulary; not read when every penalty
 * is off). The
 * order of Hugging Face transformers and vLLM: top-p and min-p cut the tempered probabilities.
 * llama.cpp's default chain applies the temperature last, so at a temperature other than 1 it
 * keeps another set of tokens. */
GLLM_API gllm_status gllm_sample(gllm_generator *g, const gllm_logits *l, const gllm_sampling *cfg,
                                 const int32_t *history, size_t n_history, uint64_t step, int32_t *out_ids);

#ifdef __cplusplus
}
#endif
#endif
