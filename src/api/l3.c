/* The L3 API: backend, model, generator, KV cache with sequences, forward, batch, sampling.
 * Thin: validate, then route to the backend: the CPU, or a CUDA device (src/cuda), where
 * each public call makes the device's context current for its duration. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/dispatch.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "cpu/kv_cache.h"
#include "cuda/encoder.h"
#include "cuda/model.h"
#include "cuda/sample.h"
#include "cpu/sample.h"
#include "model/bert.h"
#include "model/llama.h"
#include "text/tokenizer.h"

#define MAX_SEQS 256
#define MAX_HISTORY 65536

struct gllm_backend {
    char device[160];
    int cuda, forced; /* on a CUDA device; asked for by name (else "auto" chose it) */
    gllm_cuda gpu;
};

struct gllm_model {
    gllm_gguf gguf;
    gllm_llama llama;
    gllm_tokenizer *tok;
    char arch[16];
};

struct gllm_logits {
    const float *data; /* CPU */
    gllm_generator *g; /* CUDA: rows at g->dlogits */
    size_t rows, vocab;
};

struct gllm_generator {
    gllm_backend *b;
    const gllm_model *m;
    size_t max_rows;
    float *logits; /* max_rows x vocab, the logits handle's storage */
    gllm_logits view;
    gllm_sampler sampler;
    gllm_plan plan;    /* CPU with GLLM_TILED=1: the model's plan over tiled weights (gllm_cpu_plan_tile) */
    void *tiled;
    gllm_cuda_model cm; /* CUDA: the model on the device, its logits and sampler */
    CUdeviceptr dlogits;
    gllm_cuda_sampler dsampler;
    int cuda;
};

struct gllm_kv_cache {
    gllm_generator *g;
    gllm_kv_pool pool;
    gllm_kv_seq seq[MAX_SEQS];
    int open[MAX_SEQS], protect[MAX_SEQS];
    unsigned long warm[MAX_SEQS], step; /* a sequence is warm when warm[s] == step (the latest forward) */
    void *swapped[MAX_SEQS];            /* host image of a swapped-out sequence's pages */
    size_t swapped_pages[MAX_SEQS];
    _Atomic int running;                /* a forward is in progress */
    gllm_cuda_kv dkv;                   /* CUDA: the pages and block tables on the device */
    int cuda;
    size_t dtable_pages[MAX_SEQS];      /* CUDA: table entries of each sequence already there */
    /* CUDA swaps run on the copy stream beside the kernels, ordered by events: a swap-out
     * after the sequence's last step, every step after the swaps before it (their pages
     * are reused, or must be back); images are page-locked, a swapped-in one freed once
     * its copies have passed. */
    CUevent written[MAX_SEQS];          /* CUDA: after each sequence's latest step (compute stream) */
    CUevent copied;                     /* CUDA: after the latest swap copies (copy stream) */
    int copy_wait;                      /* CUDA: the compute stream has not waited for `copied` yet */
    void *retired[MAX_SEQS];            /* CUDA: swapped-in images, their copies maybe in flight */
    int n_retired;                      /* CUDA: how many retired[] are set (steps reap only then) */
};

/* a generator on CUDA: the device's context (and turn) for one public call */
#define ENTER(g)                                                   \
    do {                                                           \
        if ((g)->cuda) {                                           \
            gllm_status entered = gllm_cuda_enter(&(g)->b->gpu);   \
            if (entered != GLLM_OK) return entered;                \
        }                                                          \
    } while (0)
static gllm_status leave(const gllm_generator *g, gllm_status st) {
    if (g->cuda) gllm_cuda_leave(&g->b->gpu);
    return st;
}

gllm_status gllm_backend_open(const char *name, gllm_backend **out) {
    gllm_status s = gllm_ensure_init();
    if (s != GLLM_OK) return s;
    if (!out) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_backend_open: NULL output");
    *out = NULL;
    const char *env = getenv("GLLM_DEVICE");
    const char *want = env && *env ? env : name ? name : "auto";
    int ordinal = -1;
    if (!strncmp(want, "cuda", 4)) {
        char *end;
        ordinal = want[4] == ':' ? (int)strtol(want + 5, &end, 10) : 0;
        if (want[4] && (want[4] != ':' || *end || end == want + 5 || ordinal < 0))
            return gllm_fail(GLLM_E_INVALID_ARGUMENT, "backend '%s': expected cuda:N with N >= 0", want);
    } else if (strcmp(want, "auto") && strcmp(want, "cpu")) {
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "backend '%s': expected auto, cpu or cuda:N", want);
    }
    gllm_backend *b = calloc(1, sizeof *b);
    if (!b) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "backend: no memory");
    b->forced = ordinal >= 0;
    if (!strcmp(want, "auto")) ordinal = 0; /* CUDA first, the CPU when there is no GPU */
    if (ordinal >= 0) {
        s = gllm_cuda_open(&b->gpu, ordinal);
        if (s != GLLM_OK && b->forced) { /* forced: an error, never a fallback */
            free(b);
            return s;
        }
        b->cuda = s == GLLM_OK;
    }
    if (b->cuda) {
        const gllm_cuda *c = &b->gpu;
        snprintf(b->device, sizeof b->device, "%s (sm_%d, driver %d.%d%s)", c->name, c->sm, c->drv.version / 1000,
                 c->drv.version % 1000 / 10, c->integrated ? ", integrated" : c->host_pages ? ", host page tables" : "");
    } else {
        snprintf(b->device, sizeof b->device, "CPU, %d threads", gllm_pool_threads());
    }
    *out = b;
    return GLLM_OK;
}

void gllm_backend_close(gllm_backend *b) {
    if (!b) return;
    if (b->cuda) gllm_cuda_close(&b->gpu);
    free(b);
}

gllm_status gllm_backend_get_info(const gllm_backend *b, gllm_backend_info *out) {
    if (!b || !out) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_backend_get_info: NULL argument");
    *out = (gllm_backend_info){b->cuda ? "cuda" : "cpu", b->device, b->cuda ? "sass" : gllm_kernels()->isa,
                               !b->cuda || b->gpu.map}; /* CUDA: mapped where UMA (a failed mapping copies, and says so) */
    return GLLM_OK;
}

gllm_status gllm_model_open(const char *path, gllm_model **out) {
    gllm_status s = gllm_ensure_init();
    if (s != GLLM_OK) return s;
    if (!path || !out) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_model_open: NULL argument");
    *out = NULL;
    gllm_model *m = calloc(1, sizeof *m);
    if (!m) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "model: no memory");
    if ((s = gllm_gguf_open(path, &m->gguf)) != GLLM_OK) return free(m), s;
    if ((s = gllm_llama_load(&m->gguf, &m->llama)) != GLLM_OK) {
        gllm_gguf_close(&m->gguf);
        free(m);
        return s;
    }
    gllm_str a;
    gllm_gguf_str(&m->gguf, "general.architecture", &a);
    snprintf(m->arch, sizeof m->arch, "%.*s", (int)a.len, a.ptr);
    if (gllm_tokenizer_load(&m->gguf, &m->tok) != GLLM_OK) m->tok = NULL; /* ids-only clients need none */
    *out = m;
    return GLLM_OK;
}

void gllm_model_close(gllm_model *m) {
    if (!m) return;
    gllm_tokenizer_free(m->tok);
    gllm_llama_free(&m->llama);
    gllm_gguf_close(&m->gguf);
    free(m);
}

gllm_status gllm_model_get_info(const gllm_model *m, gllm_model_info *o) {
    if (!m || !o) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_model_get_info: NULL argument");
    const gllm_llama *l = &m->llama;
    *o = (gllm_model_info){m->arch, l->n_layers, l->dim, l->n_heads, l->n_kv_heads, l->head_dim, l->ffn, l->vocab, l->ctx};
    return GLLM_OK;
}

gllm_status gllm_model_tokenize(const gllm_model *m, const char *text, size_t len, int parse_special, int32_t *ids, size_t cap,
                                size_t *n) {
    if (!m || !m->tok) return gllm_fail(GLLM_E_UNSUPPORTED, "tokenize: the model has no tokenizer");
    return gllm_tokenize(m->tok, text, len, parse_special, ids, cap, n);
}

gllm_status gllm_model_detokenize(const gllm_model *m, const int32_t *ids, size_t n, char *out, size_t cap, size_t *len) {
    if (!m || !m->tok) return gllm_fail(GLLM_E_UNSUPPORTED, "detokenize: the model has no tokenizer");
    return gllm_detokenize(m->tok, ids, n, out, cap, len);
}

int32_t gllm_model_eos(const gllm_model *m) { return m && m->tok ? gllm_tokenizer_eos(m->tok) : -1; }
int gllm_model_is_eog(const gllm_model *m, int32_t id) { return m && m->tok && id >= 0 && gllm_tokenizer_is_eog(m->tok, id); }
int32_t gllm_model_bos(const gllm_model *m) { return m && m->tok ? gllm_tokenizer_bos(m->tok) : -1; }
int gllm_model_add_bos(const gllm_model *m) { return m && m->tok ? gllm_tokenizer_add_bos(m->tok) : 0; }

gllm_status gllm_generator_upload(gllm_backend *b, const gllm_model *m, size_t max_tokens, gllm_generator **out) {
    if (!b || !m || !out || !max_tokens) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_generator_upload: NULL or zero argument");
    *out = NULL;
    gllm_generator *g = calloc(1, sizeof *g);
    if (!g) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "generator: no memory");
    g->b = b, g->m = m, g->cuda = b->cuda;
    g->max_rows = max_tokens > MAX_SEQS ? max_tokens : MAX_SEQS;
    const gllm_llama *l = &m->llama;
    gllm_status s = GLLM_OK;
    if (g->cuda) { /* the model file once to the device; logits and sampling stay there */
        if ((s = gllm_cuda_enter(&b->gpu)) != GLLM_OK) return free(g), s;
        s = gllm_cuda_model_init(&g->cm, &b->gpu, &l->plan, m->gguf.base, m->gguf.size, g->max_rows, l->n_kv_heads * l->head_dim);
        /* logits rows: one per step, one per batch item (distinct sequences): MAX_SEQS at most */
        if (s == GLLM_OK) s = gllm_cuda_alloc(&b->gpu, MAX_SEQS * l->vocab * sizeof(float), &g->dlogits);
        if (s == GLLM_OK) s = gllm_cuda_sampler_init(&b->gpu, &g->dsampler, l->vocab, MAX_SEQS, MAX_HISTORY);
        if (s != GLLM_OK) {
            gllm_cuda_sampler_free(&b->gpu, &g->dsampler), gllm_cuda_free(&b->gpu, g->dlogits), gllm_cuda_model_free(&g->cm);
            g->dlogits = 0;
        }
        gllm_cuda_leave(&b->gpu);
        /* "auto" chose the GPU: a model it cannot hold (memory, head size) runs on the CPU */
        if (s != GLLM_OK && !b->forced) {
            fprintf(stderr, "gllm: %s; this generator runs on the CPU\n", gllm_last_error());
            g->cuda = 0;
        }
    }
    if (!g->cuda) {
        g->logits = malloc(g->max_rows * l->vocab * sizeof(float));
        s = g->logits ? gllm_sampler_init(&g->sampler, l->vocab, MAX_HISTORY)
                      : gllm_fail(GLLM_E_OUT_OF_MEMORY, "generator: no memory for the logits");
        /* The weights are the file's mapped pages (zero-copy). GLLM_TILED=1: a tiled copy of the
         * projections and the head instead (faster decode on ISAs with a tiled gemv; the copy
         * costs upload time, and the file pages it replaces are given back) */
        const char *tiling = getenv("GLLM_TILED");
        if (s == GLLM_OK && tiling && !strcmp(tiling, "1"))
            s = gllm_cpu_plan_tile(&l->plan, m->gguf.mapped ? m->gguf.base : NULL, m->gguf.size, &g->plan, &g->tiled);
    }
    if (s != GLLM_OK) return gllm_generator_free(g), s;
    *out = g;
    return GLLM_OK;
}

void gllm_generator_free(gllm_generator *g) {
    if (!g) return;
    if (g->cuda && gllm_cuda_enter(&g->b->gpu) == GLLM_OK) { /* the backend must still be open */
        gllm_cuda_sampler_free(&g->b->gpu, &g->dsampler);
        gllm_cuda_free(&g->b->gpu, g->dlogits);
        gllm_cuda_model_free(&g->cm);
        gllm_cuda_leave(&g->b->gpu);
    }
    gllm_sampler_free(&g->sampler);
    if (g->plan.steps) gllm_cpu_plan_tile_free(&g->plan, g->tiled);
    free(g->logits);
    free(g);
}

gllm_status gllm_kv_cache_alloc(gllm_generator *g, size_t n_pages, size_t page_size, gllm_dtype dtype, gllm_kv_cache **out) {
    if (!g || !out) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_kv_cache_alloc: NULL argument");
    *out = NULL;
    gllm_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "KV cache: no memory");
    const gllm_llama *l = &g->m->llama;
    gllm_backend *b = g->b;
    gllm_status s = (g->cuda ? gllm_kv_pool_layout : gllm_kv_pool_init)(&kv->pool, dtype, l->n_layers, l->n_kv_heads,
                                                                         l->head_dim, page_size, n_pages);
    if (s != GLLM_OK) return free(kv), s;
    kv->g = g, kv->cuda = g->cuda;
    if (kv->cuda) { /* the pages live on the device; the pool keeps their bookkeeping */
        gllm_cuda_kv *d = &kv->dkv;
        *d = (gllm_cuda_kv){.dtype = dtype, .n_pages = n_pages, .n_kv = l->n_kv_heads, .head_dim = l->head_dim,
                            .page_shift = kv->pool.page_shift, .table_stride = n_pages,
                            .layer_bytes = n_pages * kv->pool.page_elems * kv->pool.esize};
        if ((s = gllm_cuda_enter(&b->gpu)) != GLLM_OK) return gllm_kv_cache_free(kv), s;
        s = gllm_cuda_alloc(&b->gpu, l->n_layers * d->layer_bytes, &d->k);
        if (s == GLLM_OK) s = gllm_cuda_alloc(&b->gpu, l->n_layers * d->layer_bytes, &d->v);
        if (s == GLLM_OK) s = gllm_cuda_alloc(&b->gpu, MAX_SEQS * n_pages * sizeof(int32_t), &d->tables);
        if (s == GLLM_OK) s = gllm_cuda_check(&b->gpu, b->gpu.drv.cuMemsetD32Async(d->tables, 0, MAX_SEQS * n_pages, b->gpu.stream), "clearing");
        if (s == GLLM_OK) s = gllm_cuda_check(&b->gpu, b->gpu.drv.cuEventCreate(&kv->copied, CU_EVENT_DISABLE_TIMING), "creating an event");
        if (s == GLLM_OK) s = gllm_cuda_sync(&b->gpu);
        gllm_cuda_leave(&b->gpu);
        if (s != GLLM_OK) return gllm_kv_cache_free(kv), s;
    }
    *out = kv;
    return GLLM_OK;
}

void gllm_kv_cache_free(gllm_kv_cache *kv) {
    if (!kv) return;
    gllm_backend *b = kv->cuda ? kv->g->b : NULL; /* CUDA: its generator must still be there */
    if (b && gllm_cuda_enter(&b->gpu) == GLLM_OK) {
        gllm_cuda *c = &b->gpu;
        c->drv.cuStreamSynchronize(c->copy), c->drv.cuStreamSynchronize(c->stream); /* no copy or step left on its memory */
        gllm_cuda_model_forget(&kv->g->cm, &kv->dkv);
        gllm_cuda_free(c, kv->dkv.k), gllm_cuda_free(c, kv->dkv.v), gllm_cuda_free(c, kv->dkv.tables);
        for (int i = 0; i < MAX_SEQS; i++) {
            gllm_cuda_host_free(c, kv->swapped[i]), gllm_cuda_host_free(c, kv->retired[i]);
            kv->swapped[i] = kv->retired[i] = NULL;
            if (kv->written[i]) c->drv.cuEventDestroy(kv->written[i]);
        }
        if (kv->copied) c->drv.cuEventDestroy(kv->copied);
        gllm_cuda_leave(c);
    }
    for (int i = 0; i < MAX_SEQS; i++) {
        if (kv->open[i]) gllm_kv_seq_release(&kv->pool, &kv->seq[i]);
        if (!kv->cuda) free(kv->swapped[i]);
    }
    gllm_kv_pool_free(&kv->pool);
    free(kv);
}

/* CUDA: free the swapped-in images whose copies have passed; all: wait for them (where even
 * the stream cannot be waited for, the device has stopped and nothing is in flight) */
static void reap(gllm_kv_cache *kv, gllm_cuda *c, int all) {
    if (!kv->n_retired) return;
    if (all) {
        if (c->drv.cuEventSynchronize(kv->copied) != CUDA_SUCCESS) c->drv.cuStreamSynchronize(c->copy);
    } else if (c->drv.cuEventQuery(kv->copied) != CUDA_SUCCESS) {
        return;
    }
    for (int i = 0; i < MAX_SEQS; i++) gllm_cuda_host_free(c, kv->retired[i]), kv->retired[i] = NULL;
    kv->n_retired = 0;
}

static gllm_status seq_of(gllm_kv_cache *kv, int seq, gllm_kv_seq **s) {
    if (!kv || seq < 0 || seq >= MAX_SEQS || !kv->open[seq]) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "no open sequence %d", seq);
    *s = &kv->seq[seq];
    return GLLM_OK;
}

gllm_status gllm_seq_open(gllm_kv_cache *kv, size_t max_tokens, int *seq) {
    if (!kv || !seq || !max_tokens) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_seq_open: NULL or zero argument");
    for (int i = 0; i < MAX_SEQS; i++)
        if (!kv->open[i]) {
            gllm_status s = gllm_kv_seq_init(&kv->seq[i], &kv->pool, max_tokens);
            if (s != GLLM_OK) return s;
            kv->open[i] = 1, kv->warm[i] = (unsigned long)-1, kv->protect[i] = 0, kv->dtable_pages[i] = 0, *seq = i;
            return GLLM_OK;
        }
    return gllm_fail(GLLM_E_INVALID_ARGUMENT, "KV cache: all %d sequences are open", MAX_SEQS);
}

gllm_status gllm_seq_close(gllm_kv_cache *kv, int seq) {
    gllm_kv_seq *s = NULL;
    gllm_status st = seq_of(kv, seq, &s);
    if (st != GLLM_OK) return st;
    if (kv->cuda) { /* its pages may be swapped into next: the copies go after its last step */
        gllm_cuda *c = &kv->g->b->gpu;
        if ((st = gllm_cuda_enter(c)) != GLLM_OK) return st;
        if (kv->written[seq] && c->drv.cuStreamWaitEvent(c->copy, kv->written[seq], 0) != CUDA_SUCCESS)
            c->drv.cuEventSynchronize(kv->written[seq]); /* no wait enqueued: the step itself is over */
        if (kv->swapped[seq]) c->drv.cuStreamSynchronize(c->copy); /* its swap-out copies */
        gllm_cuda_host_free(c, kv->swapped[seq]);
        reap(kv, c, 0);
        gllm_cuda_leave(c);
    } else {
        free(kv->swapped[seq]);
    }
    gllm_kv_seq_release(&kv->pool, s);
    kv->swapped[seq] = NULL, kv->open[seq] = 0, kv->protect[seq] = 0;
    return GLLM_OK;
}

gllm_status gllm_seq_length(const gllm_kv_cache *kv, int seq, size_t *len) {
    gllm_kv_seq *s = NULL;
    gllm_status st = seq_of((gllm_kv_cache *)kv, seq, &s);
    if (st != GLLM_OK) return st;
    if (!len) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_seq_length: NULL output");
    *len = s->len;
    return GLLM_OK;
}

/* one sequence's step into logits rows at row0 */
/* everything one sequence's step needs, checked (and its KV reserved) before anything runs */
static gllm_status check_step(gllm_generator *g, gllm_kv_cache *kv, int seq, const int32_t *tokens, size_t n,
                              size_t rows_end, gllm_kv_seq **s) {
    gllm_status st = seq_of(kv, seq, s);
    if (st != GLLM_OK) return st;
    if (!tokens || !n) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: no tokens");
    if (kv->swapped[seq]) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: sequence %d is swapped out", seq);
    if (n > g->max_rows) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: %zu tokens, the generator takes %zu", n, g->max_rows);
    if (rows_end > g->max_rows) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: more logits rows than the generator holds");
    const gllm_llama *m = &g->m->llama;
    if ((*s)->len + n > m->ctx) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: %zu positions exceed the context of %zu", (*s)->len + n, m->ctx);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (size_t)tokens[i] >= m->vocab)
            return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: token id %d outside the vocabulary of %zu", tokens[i], m->vocab);
    return gllm_kv_reserve(&kv->pool, *s, (*s)->len + n);
}

/* CUDA: a step of n items (distinct sequences, checked) as one forward on the device, their
 * logits in rows row0 .. row0 + n - 1 (a tree: every token's, from row 0) */
static gllm_status cuda_step(gllm_generator *g, gllm_kv_cache *kv, const gllm_batch_item *items, size_t n,
                             const gllm_topology *topo, size_t row0) {
    gllm_cuda *c = &g->b->gpu;
    gllm_cuda_item dev[MAX_SEQS];
    gllm_status st = GLLM_OK;
    if (kv->copy_wait) { /* after the swaps enqueued so far */
        st = gllm_cuda_check(c, c->drv.cuStreamWaitEvent(c->stream, kv->copied, 0), "ordering a step after KV swaps");
        kv->copy_wait = st != GLLM_OK;
    }
    for (size_t b = 0; b < n && st == GLLM_OK; b++) { /* each sequence's new block-table entries */
        const int q = items[b].seq;
        gllm_kv_seq *s = &kv->seq[q];
        const size_t have = kv->dtable_pages[q];
        kv->warm[q] = kv->step;
        if (!kv->written[q]) st = gllm_cuda_check(c, c->drv.cuEventCreate(&kv->written[q], CU_EVENT_DISABLE_TIMING), "creating an event");
        if (st == GLLM_OK) st = gllm_cuda_upload(c, kv->dkv.tables + ((size_t)q * kv->dkv.table_stride + have) * sizeof(int32_t),
                                          s->table + have, (s->n_pages - have) * sizeof(int32_t));
        if (st == GLLM_OK) kv->dtable_pages[q] = s->n_pages;
        dev[b] = (gllm_cuda_item){q, s->len, items[b].n, items[b].tokens};
    }
    if (st != GLLM_OK) return st;
    const int32_t *position = topo ? topo->position : NULL;
    for (size_t i = 0; position && i < items[0].n && st == GLLM_OK; i++)
        if (position[i] < 0 || (size_t)position[i] >= g->m->llama.ctx)
            st = gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: position %d of token %zu outside the context of %zu", position[i], i,
                           g->m->llama.ctx);
    if (st == GLLM_OK)
        st = gllm_cuda_forward(&g->cm, &kv->dkv, dev, n, position, topo && topo->parent ? topo->parent : NULL,
                               g->dlogits + row0 * g->m->llama.vocab * sizeof(float), 1);
    gllm_status rec = GLLM_OK; /* after whatever the step enqueued, failed or not: swaps of its pages go after it */
    for (size_t b = 0; b < n; b++) {
        if (st == GLLM_OK) kv->seq[items[b].seq].len += items[b].n;
        if (rec == GLLM_OK) rec = gllm_cuda_check(c, c->drv.cuEventRecord(kv->written[items[b].seq], c->stream), "recording a step");
    }
    if (rec != GLLM_OK) c->drv.cuStreamSynchronize(c->stream);
    reap(kv, c, 0);
    return st != GLLM_OK ? st : rec;
}

/* CPU: the same, as one forward through the generator's plan (every matmul over all the items'
 * rows, so each weight is read once a step) */
static gllm_status cpu_step(gllm_generator *g, gllm_kv_cache *kv, const gllm_batch_item *items, size_t n,
                            const gllm_topology *topo, size_t row0) {
    gllm_plan_seq seqs[MAX_SEQS];
    for (size_t b = 0; b < n; b++) {
        seqs[b] = (gllm_plan_seq){&kv->seq[items[b].seq], items[b].tokens, items[b].n};
        kv->warm[items[b].seq] = kv->step;
    }
    const int tree = topo && topo->parent;
    return gllm_llama_forward_seqs(&g->m->llama, g->plan.steps ? &g->plan : &g->m->llama.plan, &kv->pool, seqs, n,
                                   topo ? topo->position : NULL, tree ? topo->parent : NULL, tree,
                                   g->logits + row0 * g->m->llama.vocab);
}

static gllm_status run_step(gllm_generator *g, gllm_kv_cache *kv, int seq, const int32_t *tokens, size_t n,
                            const gllm_topology *topo, size_t row0) {
    return (g->cuda ? cuda_step : cpu_step)(g, kv, &(gllm_batch_item){seq, tokens, n}, 1, topo, row0);
}

gllm_status gllm_generator_forward(gllm_generator *g, gllm_kv_cache *kv, int seq, const int32_t *tokens, size_t n,
                                   const gllm_topology *topo, gllm_logits **out) {
    if (!g || !kv || !out || kv->g != g) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_generator_forward: bad handles");
    const size_t rows = topo && topo->parent ? n : 1;
    gllm_kv_seq *s;
    ENTER(g);
    atomic_store(&kv->running, 1);
    kv->step++;
    gllm_status st = check_step(g, kv, seq, tokens, n, rows, &s);
    if (st == GLLM_OK) st = run_step(g, kv, seq, tokens, n, topo, 0);
    atomic_store(&kv->running, 0);
    if (leave(g, st) != GLLM_OK) return st;
    g->view = (gllm_logits){g->logits, g, rows, g->m->llama.vocab};
    *out = &g->view;
    return GLLM_OK;
}

gllm_status gllm_seq_accept(gllm_kv_cache *kv, int seq, size_t step_start, const uint32_t *path, size_t n) {
    gllm_kv_seq *s = NULL;
    gllm_status st = seq_of(kv, seq, &s);
    if (st != GLLM_OK) return st;
    if (!path && n) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_seq_accept: NULL path");
    if (step_start > s->len) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_seq_accept: step starts past the sequence");
    for (size_t i = 0; i < n; i++)
        if (step_start + path[i] >= s->len) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_seq_accept: path token %zu is not in the step", i);
    if (kv->swapped[seq]) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_seq_accept: sequence %d is swapped out", seq);
    if (!kv->cuda) return gllm_kv_compact(&kv->pool, s, step_start, path, n);
    if ((st = gllm_kv_compact_check(&kv->pool, s, step_start, path, n)) != GLLM_OK) return st;
    gllm_cuda *c = &kv->g->b->gpu; /* the moves go after the step on the compute stream, and swaps after them */
    if ((st = gllm_cuda_enter(c)) != GLLM_OK) return st;
    if (kv->copy_wait) { /* after the swaps enqueued so far (a swap-in may still be writing these pages) */
        st = gllm_cuda_check(c, c->drv.cuStreamWaitEvent(c->stream, kv->copied, 0), "ordering a compaction after KV swaps");
        kv->copy_wait = st != GLLM_OK;
    }
    if (st == GLLM_OK) st = gllm_cuda_kv_compact(&kv->g->cm, &kv->dkv, kv->g->m->llama.n_layers, seq, step_start, path, n);
    if (kv->written[seq]) {
        const gllm_status rec = gllm_cuda_check(c, c->drv.cuEventRecord(kv->written[seq], c->stream), "recording a compaction");
        if (rec != GLLM_OK) c->drv.cuStreamSynchronize(c->stream);
        if (st == GLLM_OK) st = rec;
    }
    gllm_cuda_leave(c);
    s->len = st == GLLM_OK ? step_start + n : step_start; /* a failed move drops the whole step, never a mix */
    return st;
}

gllm_status gllm_batch_forward(gllm_generator *g, gllm_kv_cache *kv, const gllm_batch_item *items, size_t n, gllm_logits **out) {
    if (!g || !kv || !items || !n || !out || kv->g != g) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_batch_forward: bad arguments");
    if (n > g->max_rows) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "batch: %zu sequences, room for %zu", n, g->max_rows);
    ENTER(g);
    atomic_store(&kv->running, 1);
    kv->step++;
    for (size_t i = 0; i < n; i++) { /* every item checked, and its KV reserved, before any runs */
        gllm_kv_seq *s;
        gllm_status st = check_step(g, kv, items[i].seq, items[i].tokens, items[i].n, i + 1, &s);
        for (size_t j = 0; j < i && st == GLLM_OK; j++)
            if (items[j].seq == items[i].seq) st = gllm_fail(GLLM_E_INVALID_ARGUMENT, "batch: sequence %d appears twice", items[i].seq);
        if (st != GLLM_OK) return atomic_store(&kv->running, 0), leave(g, st);
    }
    gllm_status st = GLLM_OK;
    for (size_t i = 0, first = 0, rows = 0; i <= n && st == GLLM_OK; i++) { /* as many items per forward as it holds */
        if (i == n || rows + items[i].n > g->max_rows)
            st = (g->cuda ? cuda_step : cpu_step)(g, kv, items + first, i - first, NULL, first), first = i, rows = 0;
        if (i < n) rows += items[i].n;
    }
    if (st != GLLM_OK) return atomic_store(&kv->running, 0), leave(g, st);
    atomic_store(&kv->running, 0);
    leave(g, GLLM_OK);
    g->view = (gllm_logits){g->logits, g, n, g->m->llama.vocab};
    *out = &g->view;
    return GLLM_OK;
}

gllm_status gllm_logits_shape(const gllm_logits *l, size_t *rows, size_t *vocab) {
    if (!l || !rows || !vocab) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_logits_shape: NULL argument");
    *rows = l->rows, *vocab = l->vocab;
    return GLLM_OK;
}

gllm_status gllm_logits_read(const gllm_logits *l, float *out, size_t cap) {
    if (!l || !out) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_logits_read: NULL argument");
    if (cap < l->rows * l->vocab) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_logits_read: %zu floats needed", l->rows * l->vocab);
    const gllm_generator *g = l->g;
    if (!g->cuda) return memcpy(out, l->data, l->rows * l->vocab * sizeof(float)), GLLM_OK;
    ENTER(g);
    return leave(g, gllm_cuda_download(&g->b->gpu, out, g->dlogits, l->rows * l->vocab * sizeof(float)));
}

gllm_status gllm_sample(gllm_generator *g, const gllm_logits *l, const gllm_sampling *cfg, const int32_t *history,
                        size_t n_history, uint64_t step_no, int32_t *out_ids) {
    if (!g || !l || !cfg || !out_ids) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_sample: NULL argument");
    if (l->g != g) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_sample: logits of another generator");
    if (g->cuda) { /* on the device: only the ids come back */
        ENTER(g);
        return leave(g, gllm_cuda_sample(&g->b->gpu, &g->dsampler, g->dlogits, l->rows, cfg, history, n_history, step_no, out_ids));
    }
    for (size_t r = 0; r < l->rows; r++) {
        gllm_status s = gllm_sample_row(&g->sampler, l->data + r * l->vocab, cfg, history, n_history, step_no, &out_ids[r]);
        if (s != GLLM_OK) return s;
    }
    return GLLM_OK;
}

/* ---- scheduling ----------------------------------------------------------------------------- */

gllm_status gllm_memory_pressure(const gllm_kv_cache *kv, float *out) {
    if (!kv || !out) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_memory_pressure: NULL argument");
    *out = (float)(kv->pool.n_pages - kv->pool.n_free) / (float)kv->pool.n_pages;
    if (!kv->cuda) return GLLM_OK;
    gllm_cuda *c = &kv->g->b->gpu;
    size_t free_bytes = 0, total = 0;
    gllm_status st = gllm_cuda_enter(c);
    if (st != GLLM_OK) return st;
    st = gllm_cuda_check(c, c->drv.cuMemGetInfo(&free_bytes, &total), "reading the device's free memory");
    gllm_cuda_leave(c);
    if (st != GLLM_OK || !total) return st;
    const size_t page_bytes = kv->dkv.layer_bytes / kv->dkv.n_pages * 2 * kv->g->m->llama.n_layers; /* K and V, every layer */
    const size_t pool_free = kv->pool.n_free * page_bytes;
    const size_t used = total - free_bytes > pool_free ? total - free_bytes - pool_free : 0;
    if ((float)used / (float)total > *out) *out = (float)used / (float)total;
    return GLLM_OK;
}

gllm_status gllm_page_states(const gllm_kv_cache *kv, gllm_page_info *out, size_t cap, size_t *n) {
    if (!kv || !n || (!out && cap)) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_page_states: NULL argument");
    const size_t np = kv->pool.n_pages;
    size_t k = 0;
    for (size_t p = 0; p < np; p++, k++)
        if (k < cap) out[k] = (gllm_page_info){(uint32_t)p, GLLM_PAGE_FREE};
    for (int q = 0; q < MAX_SEQS; q++) {
        if (!kv->open[q]) continue;
        const gllm_page_state st = kv->protect[q] ? GLLM_PAGE_PROTECTED : kv->warm[q] == kv->step ? GLLM_PAGE_WARM : GLLM_PAGE_ACTIVE;
        for (size_t i = 0; i < kv->seq[q].n_pages; i++)
            if ((size_t)kv->seq[q].table[i] < cap) out[kv->seq[q].table[i]].state = st;
    }
    for (int q = 0; q < MAX_SEQS; q++)
        for (size_t i = 0; kv->swapped[q] && i < kv->swapped_pages[q]; i++, k++)
            if (k < cap) out[k] = (gllm_page_info){(uint32_t)k, GLLM_PAGE_SWAPPED};
    *n = k;
    return k > cap && cap ? gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_page_states: %zu entries, room for %zu", k, cap) : GLLM_OK;
}

gllm_status gllm_seq_protect(gllm_kv_cache *kv, int seq, int on) {
    gllm_kv_seq *s = NULL;
    gllm_status st = seq_of(kv, seq, &s);
    if (st != GLLM_OK) return st;
    kv->protect[seq] = on != 0;
    return GLLM_OK;
}

static gllm_status swappable(gllm_kv_cache *kv, int seq, gllm_kv_seq **s) {
    gllm_status st = seq_of(kv, seq, s);
    if (st != GLLM_OK) return st;
    if (atomic_load(&kv->running)) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "swap: a forward is running");
    if (kv->protect[seq]) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "swap: sequence %d is protected (hot)", seq);
    return GLLM_OK;
}

/* out: the sequence's pages to a new host image, their pool pages freed; in: back into free
 * pages. On CUDA the copies are enqueued on the copy stream and the call returns at once. */
static gllm_status swap(gllm_kv_cache *kv, int seq, gllm_kv_seq *s, int out) {
    const size_t n = out ? s->n_pages : kv->swapped_pages[seq];
    if (!kv->cuda) {
        if (!out) return gllm_kv_swap_in(&kv->pool, s, kv->swapped[seq], n, NULL, NULL);
        void *img = malloc(gllm_kv_swap_bytes(&kv->pool, n) + 1);
        if (!img) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "swap: no host memory for %zu pages", n);
        gllm_status st = gllm_kv_swap_out(&kv->pool, s, img, NULL, NULL);
        if (st != GLLM_OK) return free(img), st;
        kv->swapped[seq] = img;
        return GLLM_OK;
    }
    gllm_cuda *c = &kv->g->b->gpu;
    gllm_status st = gllm_cuda_enter(c);
    if (st != GLLM_OK) return st;
    reap(kv, c, !out && kv->retired[seq]); /* this slot's last image must be gone first */
    gllm_cuda_kv_copy_ctx x = {c, &kv->dkv};
    void *img = kv->swapped[seq];
    if (out && (st = gllm_cuda_host_alloc(c, gllm_kv_swap_bytes(&kv->pool, n), &img)) != GLLM_OK) return gllm_cuda_leave(c), st;
    if (out && kv->written[seq]) /* after the step that last wrote its pages */
        st = gllm_cuda_check(c, c->drv.cuStreamWaitEvent(c->copy, kv->written[seq], 0), "ordering a swap after a step");
    if (st == GLLM_OK)
        st = out ? gllm_kv_swap_out(&kv->pool, s, img, gllm_cuda_kv_copy, &x) : gllm_kv_swap_in(&kv->pool, s, img, n, gllm_cuda_kv_copy, &x);
    /* whatever was enqueued, later steps wait for it (a failed swap-in's pages are free again);
     * where that cannot be recorded, the copies are waited for here */
    if (c->drv.cuEventRecord(kv->copied, c->copy) == CUDA_SUCCESS) kv->copy_wait = 1;
    else c->drv.cuStreamSynchronize(c->copy);
    if (st != GLLM_OK && out) c->drv.cuStreamSynchronize(c->copy), gllm_cuda_host_free(c, img);
    if (st == GLLM_OK && out) kv->swapped[seq] = img;
    if (st == GLLM_OK && !out) kv->retired[seq] = img, kv->n_retired++, kv->swapped[seq] = NULL, kv->dtable_pages[seq] = 0;
    gllm_cuda_leave(c);
    return st;
}

gllm_status gllm_swap_out_pages(gllm_kv_cache *kv, int seq) {
    gllm_kv_seq *s = NULL;
    gllm_status st = swappable(kv, seq, &s);
    if (st != GLLM_OK) return st;
    if (kv->warm[seq] == kv->step) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "swap: sequence %d is warm (used by the latest forward)", seq);
    if (kv->swapped[seq]) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "swap: sequence %d is already swapped out", seq);
    const size_t n = s->n_pages;
    if ((st = swap(kv, seq, s, 1)) != GLLM_OK) return st;
    kv->swapped_pages[seq] = n;
    return GLLM_OK;
}

gllm_status gllm_swap_in_pages(gllm_kv_cache *kv, int seq) {
    gllm_kv_seq *s = NULL;
    gllm_status st = swappable(kv, seq, &s);
    if (st != GLLM_OK) return st;
    if (!kv->swapped[seq]) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "swap: sequence %d is not swapped out", seq);
    if ((st = swap(kv, seq, s, 0)) != GLLM_OK) return st;
    if (!kv->cuda) free(kv->swapped[seq]);
    kv->swapped[seq] = NULL, kv->swapped_pages[seq] = 0;
    return GLLM_OK;
}

/* ---- L2 block calls -------------------------------------------------------------------------- */

#include "cpu/embed.h"

/* on CUDA each call runs its plan steps on the device (gllm_cuda_block) */
gllm_status gllm_embed_block(const gllm_generator *g, const int32_t *tokens, size_t n, float *x) {
    if (!g || !tokens || !x || !n) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_embed_block: NULL or empty input");
    const gllm_llama *m = &g->m->llama;
    if (!g->cuda) return gllm_cpu_embed(m->tok_embd->dtype, m->tok_embd->data, m->vocab, m->dim, tokens, n, x);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (size_t)tokens[i] >= m->vocab)
            return gllm_fail(GLLM_E_INVALID_ARGUMENT, "embed: token id %d at %zu outside the vocabulary of %zu", tokens[i], i, m->vocab);
    ENTER(g);
    return leave(g, gllm_cuda_block((gllm_cuda_model *)&g->cm, 0, m->plan.layer_steps[0][0], tokens, NULL, n, x));
}

static gllm_status block(const gllm_generator *g, size_t layer, int ffn, const float *x, size_t n, float *out) {
    if (!g || !x || !out || !n) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "block: NULL or empty input");
    const gllm_llama *m = &g->m->llama;
    if (layer >= m->n_layers) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "block: layer %zu of %zu", layer, m->n_layers);
    if (n > m->ctx) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "block: %zu tokens exceed the context of %zu", n, m->ctx);
    if (g->cuda) {
        const size_t first = m->plan.layer_steps[layer][ffn], last = ffn ? m->plan.layer_steps[layer + 1][0] : m->plan.layer_steps[layer][1];
        ENTER(g);
        return leave(g, gllm_cuda_block((gllm_cuda_model *)&g->cm, first, last, NULL, x, n, out));
    }
    const size_t bytes = n * m->dim * sizeof(float);
    float *dev = malloc(bytes); /* the backend's copy: L2 calls copy in and out */
    if (!dev) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "block: no memory for %zu tokens", n);
    memcpy(dev, x, bytes);
    gllm_status st = gllm_llama_block(m, layer, ffn, dev, n);
    if (st == GLLM_OK) memcpy(out, dev, bytes);
    free(dev);
    return st;
}

gllm_status gllm_attention_block(const gllm_generator *g, size_t layer, const float *x, size_t n, float *out) {
    return block(g, layer, 0, x, n, out);
}

gllm_status gllm_ffn_block(const gllm_generator *g, size_t layer, const float *x, size_t n, float *out) {
    return block(g, layer, 1, x, n, out);
}

gllm_status gllm_head_block(const gllm_generator *g, const float *x, size_t n, float *logits) {
    if (!g || !x || !logits || !n) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_head_block: NULL or empty input");
    const gllm_plan *p = &g->m->llama.plan;
    if (!g->cuda) return gllm_llama_head(&g->m->llama, x, n, logits);
    ENTER(g);
    return leave(g, gllm_cuda_block((gllm_cuda_model *)&g->cm, p->n_steps - 2, p->n_steps, NULL, x, n, logits));
}

/* ---- embeddings ----------------------------------------------------------------------------- */

/* an embedder or a reranker: the encoder on the host (tokenizer, weights' image, CPU forward),
 * and on a CUDA backend its copy on the device */
typedef struct {
    gllm_bert m;
    gllm_backend *b;
    int cuda;
    gllm_cuda_encoder dev;
} encoder;

struct gllm_embedder {
    encoder e;
};

struct gllm_reranker {
    encoder e;
};

/* both wrap an encoder; a reranker also needs the classifier head */
static gllm_status encoder_open(gllm_backend *b, const char *path, const char *what, int head, encoder **out) {
    *out = NULL;
    encoder *e = calloc(1, sizeof *e);
    if (!e) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "%s: no memory", what);
    gllm_status s = gllm_bert_open(path, &e->m);
    if (s == GLLM_OK && head && !e->m.cls_w) s = gllm_fail(GLLM_E_UNSUPPORTED, "%s: %s has no classifier head", what, path), gllm_bert_close(&e->m);
    if (s != GLLM_OK) return free(e), s;
    e->b = b, e->cuda = b->cuda;
    if (e->cuda && (s = gllm_cuda_enter(&b->gpu)) == GLLM_OK) {
        s = gllm_cuda_encoder_init(&e->dev, &b->gpu, &e->m);
        gllm_cuda_leave(&b->gpu);
    }
    if (s != GLLM_OK && !b->forced) { /* "auto" chose the GPU: a model it cannot hold runs on the CPU */
        fprintf(stderr, "gllm: %s; this %s runs on the CPU\n", gllm_last_error(), what);
        e->cuda = 0, s = GLLM_OK;
    }
    if (s != GLLM_OK) return gllm_bert_close(&e->m), free(e), s;
    *out = e;
    return GLLM_OK;
}

static void encoder_free(encoder *e) {
    if (e->cuda && gllm_cuda_enter(&e->b->gpu) == GLLM_OK) { /* the backend must still be open */
        gllm_cuda_encoder_free(&e->dev);
        gllm_cuda_leave(&e->b->gpu);
    }
    gllm_bert_close(&e->m);
    free(e);
}

static gllm_status encoder_forward(encoder *e, const int32_t *const *seqs, const size_t *lens, size_t n, int rerank,
                                   int normalize, float *out) {
    if (!e->cuda) return rerank ? gllm_bert_rerank(&e->m, seqs, lens, n, out) : gllm_bert_embed(&e->m, seqs, lens, n, normalize, out);
    gllm_status s = gllm_cuda_enter(&e->b->gpu);
    if (s != GLLM_OK) return s;
    s = gllm_cuda_encode(&e->dev, seqs, lens, n, rerank, normalize, out);
    gllm_cuda_leave(&e->b->gpu);
    return s;
}

gllm_status gllm_embedding_upload(gllm_backend *b, const char *path, gllm_embedder **out) {
    if (!b || !path || !out) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_embedding_upload: NULL argument");
    encoder *e;
    gllm_status s = encoder_open(b, path, "embedder", 0, &e);
    *out = (gllm_embedder *)e; /* the wrapper's only member */
    return s;
}

void gllm_embedder_free(gllm_embedder *e) {
    if (e) encoder_free(&e->e);
}

size_t gllm_embedding_dim(const gllm_embedder *e) { return e ? e->e.m.dim : 0; }

gllm_status gllm_embedding_tokenize(const gllm_embedder *e, const char *text, size_t len, int32_t *ids, size_t cap,
                                    size_t *n) {
    if (!e || (!text && len) || !n || cap < 2 || !ids) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_embedding_tokenize: bad arguments");
    size_t k = 0;
    gllm_status s = gllm_tokenize(e->e.m.tok, text, len, 1, ids + 1, cap - 2, &k);
    *n = k + 2;
    if (s != GLLM_OK) return s;
    ids[0] = gllm_tokenizer_cls(e->e.m.tok), ids[k + 1] = gllm_tokenizer_sep(e->e.m.tok);
    return GLLM_OK;
}

gllm_status gllm_embedding_forward(gllm_embedder *e, const int32_t *const *seqs, const size_t *lens, size_t n,
                                   int normalize, float *out) {
    if (!e) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_embedding_forward: NULL embedder");
    return encoder_forward(&e->e, seqs, lens, n, 0, normalize, out);
}

/* ---- reranking -------------------------------------------------------------------------------- */

gllm_status gllm_reranker_upload(gllm_backend *b, const char *path, gllm_reranker **out) {
    if (!b || !path || !out) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_reranker_upload: NULL argument");
    encoder *e;
    gllm_status s = encoder_open(b, path, "reranker", 1, &e);
    *out = (gllm_reranker *)e; /* the wrapper's only member */
    return s;
}

void gllm_reranker_free(gllm_reranker *r) {
    if (r) encoder_free(&r->e);
}

gllm_status gllm_rerank_tokenize(const gllm_reranker *r, const char *query, const char *doc, int32_t *ids, size_t cap,
                                 size_t *n) {
    if (!r || !query || !doc || !ids || !n || cap < 3) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_rerank_tokenize: bad arguments");
    size_t a, b;
    gllm_status s = gllm_tokenize(r->e.m.tok, query, strlen(query), 1, ids + 1, cap - 3, &a);
    if (s != GLLM_OK) return *n = a + 3, s;
    s = gllm_tokenize(r->e.m.tok, doc, strlen(doc), 1, ids + a + 2, cap - 3 - a, &b);
    *n = a + b + 3;
    if (s != GLLM_OK) return s;
    ids[0] = gllm_tokenizer_cls(r->e.m.tok), ids[a + 1] = ids[a + b + 2] = gllm_tokenizer_sep(r->e.m.tok);
    return GLLM_OK;
}

gllm_status gllm_rerank_forward(gllm_reranker *r, const int32_t *const *pairs, const size_t *lens, size_t n, float *scores) {
    if (!r) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_rerank_forward: NULL reranker");
    return encoder_forward(&r->e, pairs, lens, n, 1, 0, scores);
}
