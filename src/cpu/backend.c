/* The CPU backend (src/plan/backend.h): plans run through the generated kernel table on the
 * thread pool; weights are the model file's mapped pages; KV pages, logits and the sampler
 * in host memory. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/dispatch.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "cpu/decoder.h"
#include "cpu/embed.h"
#include "cpu/plan_run.h"
#include "cpu/sample.h"
#include "plan/backend.h"

struct gllm_decoder {
    const gllm_llama *m;
    float *logits; /* max_rows x vocab */
    gllm_sampler sampler;
    gllm_plan plan; /* GLLM_TILED=1: the model's plan over tiled weights (gllm_cpu_plan_tile) */
    void *tiled;
};

struct gllm_kv_pages {
    gllm_decoder *d;
    gllm_kv_pool *pool;
    void *image[GLLM_MAX_SEQS]; /* swapped-out sequences' pages */
};

struct gllm_encoder {
    const gllm_plan *p;
    gllm_kv_pool kv; /* one sequence's keys and values, staged for attention */
    gllm_kv_seq seq;
};

static gllm_status open_(int ordinal, gllm_device **dev) {
    *dev = NULL;
    return GLLM_OK;
}

static void close_(gllm_device *dev) {}

static void describe(const gllm_device *dev, char *name, size_t cap, const char **isa, int *zero_copy) {
    snprintf(name, cap, "CPU, %d threads", gllm_pool_threads());
    *isa = gllm_kernels()->isa, *zero_copy = 1;
}

/* The CPU is one device: calls from several threads take turns on it (recursive, as CUDA's
 * context lock). fork() waits for the call in flight; the child's lock is a new one. */
static pthread_mutex_t turn;
static pthread_once_t turn_once = PTHREAD_ONCE_INIT;

static void turn_make(void) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&turn, &attr);
    pthread_mutexattr_destroy(&attr);
}

static void turn_hold(void) { pthread_mutex_lock(&turn); }
static void turn_free(void) { pthread_mutex_unlock(&turn); }

static void turn_init(void) {
    turn_make();
    (void)pthread_atfork(turn_hold, turn_free, turn_make);
}

static gllm_status enter(gllm_device *dev) {
    pthread_once(&turn_once, turn_init);
    pthread_mutex_lock(&turn);
    return GLLM_OK;
}

static void leave(gllm_device *dev) { pthread_mutex_unlock(&turn); }

static void decoder_close(gllm_decoder *d) {
    if (!d) return;
    gllm_sampler_free(&d->sampler);
    if (d->plan.steps) gllm_cpu_plan_tile_free(&d->plan, d->tiled);
    free(d->logits);
    free(d);
}

static gllm_status decoder_open(gllm_device *dev, const gllm_llama *m, const gllm_gguf *file, size_t max_rows, gllm_decoder **out) {
    gllm_decoder *d = calloc(1, sizeof *d);
    if (!d) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "generator: no memory");
    d->m = m;
    /* a step's logits rows: one a batch item, or a tree step's tokens; never max_rows, which is
     * the activations' room (up to 2^20 tokens: 192 GB of logits for SmolLM2's vocabulary) */
    _Static_assert(GLLM_MAX_TREE <= GLLM_MAX_SEQS, "a tree step's logits fit the batch's rows");
    d->logits = malloc((max_rows < GLLM_MAX_SEQS ? max_rows : GLLM_MAX_SEQS) * m->vocab * sizeof(float));
    gllm_status s = d->logits ? gllm_sampler_init(&d->sampler, m->vocab, GLLM_MAX_HISTORY)
                              : gllm_fail(GLLM_E_OUT_OF_MEMORY, "generator: no memory for the logits");
    /* The weights are the file's mapped pages (zero-copy). GLLM_TILED=1: a tiled copy of the
     * projections and the head instead (faster decode on ISAs with a tiled gemv; the copy
     * costs upload time, and the file pages it replaces are given back) */
    const char *tiling = getenv("GLLM_TILED");
    if (s == GLLM_OK && tiling && !strcmp(tiling, "1"))
        s = gllm_cpu_plan_tile(&m->plan, file->mapped ? file->base : NULL, file->size, &d->plan, &d->tiled);
    if (s != GLLM_OK) return decoder_close(d), s;
    *out = d;
    return GLLM_OK;
}

static gllm_status kv_open(gllm_decoder *d, gllm_kv_pool *pool, gllm_dtype dtype, size_t page_size, size_t n_pages,
                           gllm_kv_pages **out) {
    const gllm_llama *m = d->m;
    gllm_kv_pages *kv = calloc(1, sizeof *kv);
    if (!kv) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "KV cache: no memory");
    gllm_status s = gllm_kv_pool_init(pool, dtype, m->n_layers, m->n_kv_heads, m->head_dim, page_size, n_pages);
    if (s != GLLM_OK) return free(kv), s;
    kv->d = d, kv->pool = pool;
    *out = kv;
    return GLLM_OK;
}

static void kv_close(gllm_kv_pages *kv) {
    for (int i = 0; i < GLLM_MAX_SEQS; i++) free(kv->image[i]);
    free(kv);
}

/* one forward through the decoder's plan: every matmul over all the items' rows, so each
 * weight is read once a step */
static gllm_status step(gllm_kv_pages *kv, const gllm_step_item *items, size_t n, const gllm_topology *topo, size_t row0) {
    const gllm_decoder *d = kv->d;
    gllm_plan_seq seqs[GLLM_MAX_SEQS];
    for (size_t b = 0; b < n; b++) seqs[b] = (gllm_plan_seq){.s = items[b].s, .tokens = items[b].tokens, .n = items[b].n};
    const int tree = topo && topo->parent;
    return gllm_cpu_forward_seqs(d->m, d->plan.steps ? &d->plan : &d->m->plan, kv->pool, seqs, n, topo ? topo->position : NULL,
                                 tree ? topo->parent : NULL, tree, d->logits + row0 * d->m->vocab);
}

static gllm_status accept(gllm_kv_pages *kv, int seq, gllm_kv_seq *s, size_t step_start, const uint32_t *path, size_t n) {
    return gllm_kv_compact(kv->pool, s, step_start, path, n);
}

static void cut(gllm_kv_pages *kv, int seq, gllm_kv_seq *s, size_t len) {
    s->len = len;
    gllm_kv_trim(kv->pool, s);
}

static void seq_close(gllm_kv_pages *kv, int seq) { free(kv->image[seq]), kv->image[seq] = NULL; }

static gllm_status swap_out(gllm_kv_pages *kv, int seq, gllm_kv_seq *s) {
    void *img = malloc(gllm_kv_swap_bytes(kv->pool, s->n_pages) + 1);
    if (!img) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "swap: no host memory for %zu pages", s->n_pages);
    gllm_status st = gllm_kv_swap_out(kv->pool, s, img, NULL, NULL);
    if (st != GLLM_OK) return free(img), st;
    kv->image[seq] = img;
    return GLLM_OK;
}

static gllm_status swap_in(gllm_kv_pages *kv, int seq, gllm_kv_seq *s, size_t n_pages) {
    gllm_status st = gllm_kv_swap_in(kv->pool, s, kv->image[seq], n_pages, NULL, NULL);
    if (st == GLLM_OK) seq_close(kv, seq);
    return st;
}

static gllm_status pressure(gllm_kv_pages *kv, float *used) { return GLLM_OK; } /* host memory is not ours to count */

static gllm_status logits_read(gllm_decoder *d, size_t rows, float *out) {
    memcpy(out, d->logits, rows * d->m->vocab * sizeof(float));
    return GLLM_OK;
}

static gllm_status sample(gllm_decoder *d, size_t rows, const gllm_sampling *cfg, const int32_t *history, size_t n_history,
                          uint64_t step_no, int32_t *out_ids) {
    for (size_t r = 0; r < rows; r++) {
        gllm_status s = gllm_sample_row(&d->sampler, d->logits + r * d->m->vocab, cfg, history, n_history, step_no, &out_ids[r]);
        if (s != GLLM_OK) return s;
    }
    return GLLM_OK;
}

static gllm_status block(gllm_decoder *d, gllm_block_kind kind, size_t layer, const int32_t *tokens, const float *x, size_t n,
                         float *out) {
    const gllm_llama *m = d->m;
    if (kind == GLLM_BLOCK_EMBED) return gllm_cpu_embed(m->tok_embd->dtype, m->tok_embd->data, m->vocab, m->dim, tokens, n, out);
    if (kind == GLLM_BLOCK_HEAD) return gllm_cpu_head(m, x, n, out);
    const size_t bytes = n * m->dim * sizeof(float);
    float *work = malloc(bytes); /* the backend's copy: L2 calls copy in and out */
    if (!work) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "block: no memory for %zu tokens", n);
    memcpy(work, x, bytes);
    gllm_status st = gllm_cpu_block(m, layer, kind == GLLM_BLOCK_FFN, work, n);
    if (st == GLLM_OK) memcpy(out, work, bytes);
    free(work);
    return st;
}

static void encoder_close(gllm_encoder *e) {
    if (e->seq.table) gllm_kv_seq_release(&e->kv, &e->seq);
    gllm_kv_pool_free(&e->kv);
    free(e);
}

static gllm_status encoder_open(gllm_device *dev, const gllm_plan *p, const void *file, size_t file_size, const void *owned,
                                size_t owned_size, size_t max_len, gllm_encoder **out) {
    gllm_encoder *e = calloc(1, sizeof *e);
    if (!e) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "encoder: no memory");
    e->p = p; /* the weights are used where they are */
    const size_t hd = p->width[BUF_Q] / p->n_heads, pages = (max_len + 15) / 16;
    gllm_status s = gllm_kv_pool_init(&e->kv, GLLM_DTYPE_F32, 1, p->width[BUF_K] / hd, hd, 16, pages);
    if (s == GLLM_OK && (s = gllm_kv_seq_init(&e->seq, &e->kv, max_len)) == GLLM_OK) s = gllm_kv_reserve(&e->kv, &e->seq, max_len);
    if (s != GLLM_OK) return encoder_close(e), s;
    *out = e;
    return GLLM_OK;
}

static gllm_status encode(gllm_encoder *e, const gllm_encoder_item *items, size_t n, int normalize, float *out) {
    gllm_plan_seq *seqs = malloc(n * sizeof *seqs);
    if (!seqs) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "encoder: no memory");
    for (size_t b = 0; b < n; b++) seqs[b] = (gllm_plan_seq){.s = &e->seq, .tokens = items[b].tokens, .types = items[b].types, .n = items[b].n};
    gllm_status s = gllm_cpu_plan_run(e->p, 0, e->p->n_steps, &e->kv, seqs, n, NULL, NULL, NULL, normalize ? GLLM_RUN_NORMALIZE : 0, out);
    free(seqs);
    return s;
}

const gllm_backend_ops gllm_cpu_backend = {
    .name = "cpu", .open = open_, .close = close_, .describe = describe, .enter = enter, .leave = leave,
    .decoder_open = decoder_open, .decoder_close = decoder_close, .kv_open = kv_open, .kv_close = kv_close, .step = step,
    .accept = accept, .cut = cut, .seq_close = seq_close, .swap_out = swap_out, .swap_in = swap_in, .pressure = pressure,
    .logits_read = logits_read, .sample = sample, .block = block,
    .encoder_open = encoder_open, .encoder_close = encoder_close, .encode = encode,
};
