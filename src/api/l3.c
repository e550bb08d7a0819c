/* The L3 API: backend, model, generator, KV cache with sequences, forward, batch, sampling.
 * Thin: validate, keep the sequences' bookkeeping, then route to the backend's table of entry
 * points (src/plan/backend.h): the CPU's, or a CUDA device's, which each public call makes
 * current for its duration. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/dispatch.h"
#include "core/error.h"
#include "core/workspace.h"
#include "model/bert.h"
#include "plan/backend.h"
#include "text/tokenizer.h"

#define MAX_SEQS GLLM_MAX_SEQS
enum { MAX_FORWARD_TOKENS = 1 << 20 }; /* a generator's rows: their buffers' sizes cannot overflow */

/* Objects that others use (a backend, a model, a generator) live until the last user lets go:
 * the caller's close or free is one release, each object built on them holds one more. So
 * they may be freed in any order. */
struct gllm_backend {
    _Atomic int refs;
    char device[160];
    const char *isa;
    int zero_copy;
    int forced; /* asked for by name (else "auto" chose it) */
    const gllm_backend_ops *ops;
    gllm_device *dev;
};

struct gllm_model {
    _Atomic int refs;
    gllm_gguf gguf;
    gllm_llama llama;
    gllm_tokenizer *tok;
    char arch[16];
    char no_tok[256]; /* why it has no tokenizer */
};

struct gllm_logits {
    gllm_generator *g; /* the rows live in its decoder */
    size_t rows, vocab;
};

struct gllm_generator {
    _Atomic int refs;
    gllm_backend *b;             /* held, as m */
    const gllm_backend_ops *ops; /* b's, or the CPU's where "auto" chose a GPU that cannot hold the model */
    gllm_device *dev;
    gllm_model *m;
    size_t max_rows;
    gllm_logits view;
    unsigned long id, forwards; /* a number no other generator has; its forwards so far */
    gllm_decoder *dec;
};

struct gllm_kv_cache {
    gllm_generator *g; /* held */
    gllm_kv_pool pool;
    gllm_kv_seq seq[MAX_SEQS];
    int open[MAX_SEQS], protect[MAX_SEQS], swapped[MAX_SEQS];
    unsigned long warm[MAX_SEQS], step; /* a sequence is warm when warm[s] == step (the latest forward) */
    size_t swapped_pages[MAX_SEQS];
    const gllm_backend_ops *ops;        /* its generator's backend */
    gllm_device *dev;
    gllm_kv_pages *pages;               /* the backend's pages and swapped-out images */
};

/* returns expr, evaluated between the enter and leave of the device that x (a generator, a
 * cache, an encoder) runs on: calls from several threads take turns there, so a call's reads
 * and writes of x's state (a cache's sequences and pages too) are never interleaved */
#define TURN(x, expr)                                                   \
    do {                                                                \
        gllm_status entered = (x)->ops->enter((x)->dev);                \
        if (entered != GLLM_OK) return entered;                         \
        gllm_status done = (expr);                                      \
        (x)->ops->leave((x)->dev);                                      \
        return done;                                                    \
    } while (0)

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
    b->refs = 1;
    b->forced = ordinal >= 0, b->ops = &gllm_cpu_backend;
    if (!strcmp(want, "auto")) ordinal = 0; /* CUDA first, the CPU when there is no GPU */
    if (ordinal >= 0) {
        s = gllm_cuda_backend.open(ordinal, &b->dev);
        if (s != GLLM_OK && b->forced) { /* forced: an error, never a fallback */
            free(b);
            return s;
        }
        if (s == GLLM_OK) b->ops = &gllm_cuda_backend;
    }
    b->ops->describe(b->dev, b->device, sizeof b->device, &b->isa, &b->zero_copy);
    *out = b;
    return GLLM_OK;
}

static gllm_backend *backend_hold(gllm_backend *b) { return atomic_fetch_add(&b->refs, 1), b; }

void gllm_backend_close(gllm_backend *b) {
    if (!b || atomic_fetch_sub(&b->refs, 1) != 1) return;
    b->ops->close(b->dev);
    free(b);
    gllm_ws_trim();
}

/* a backend object's close between the device's enter and leave (a device that cannot be
 * entered has failed: the object's host memory is freed all the same) */
#define CLOSE(ops, dev, call)                                 \
    do {                                                      \
        const int entered = (ops)->enter(dev) == GLLM_OK;     \
        (ops)->call;                                          \
        if (entered) (ops)->leave(dev);                       \
    } while (0)

gllm_status gllm_backend_get_info(const gllm_backend *b, gllm_backend_info *out) {
    if (!b || !out) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_backend_get_info: NULL argument");
    *out = (gllm_backend_info){b->ops->name, b->device, b->isa, b->zero_copy};
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
    m->refs = 1;
    gllm_str a;
    gllm_gguf_str(&m->gguf, "general.architecture", &a);
    snprintf(m->arch, sizeof m->arch, "%.*s", (int)a.len, a.ptr);
    if (gllm_tokenizer_load(&m->gguf, &m->tok) != GLLM_OK) /* ids-only clients need none: told why at the first tokenize */
        m->tok = NULL, snprintf(m->no_tok, sizeof m->no_tok, "%s", gllm_last_error());
    *out = m;
    return GLLM_OK;
}

void gllm_model_close(gllm_model *m) {
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1) return;
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
    if (!m) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "tokenize: NULL model");
    if (!m->tok) return gllm_fail(GLLM_E_UNSUPPORTED, "tokenize: the model has no tokenizer (%s)", m->no_tok);
    return gllm_tokenize(m->tok, text, len, parse_special, ids, cap, n);
}

gllm_status gllm_model_detokenize(const gllm_model *m, const int32_t *ids, size_t n, char *out, size_t cap, size_t *len) {
    if (!m) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "detokenize: NULL model");
    if (!m->tok) return gllm_fail(GLLM_E_UNSUPPORTED, "detokenize: the model has no tokenizer (%s)", m->no_tok);
    return gllm_detokenize(m->tok, ids, n, out, cap, len);
}

int32_t gllm_model_eos(const gllm_model *m) { return m && m->tok ? gllm_tokenizer_eos(m->tok) : -1; }
int gllm_model_is_eog(const gllm_model *m, int32_t id) { return m && m->tok && id >= 0 && gllm_tokenizer_is_eog(m->tok, id); }
int32_t gllm_model_bos(const gllm_model *m) { return m && m->tok ? gllm_tokenizer_bos(m->tok) : -1; }
int gllm_model_add_bos(const gllm_model *m) { return m && m->tok ? gllm_tokenizer_add_bos(m->tok) : 0; }

gllm_status gllm_generator_upload(gllm_backend *b, const gllm_model *m, size_t max_tokens, gllm_generator **out) {
    if (!b || !m || !out || !max_tokens) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_generator_upload: NULL or zero argument");
    if (max_tokens > MAX_FORWARD_TOKENS)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_generator_upload: %zu tokens a forward, at most %d", max_tokens, MAX_FORWARD_TOKENS);
    *out = NULL;
    gllm_generator *g = calloc(1, sizeof *g);
    if (!g) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "generator: no memory");
    static _Atomic unsigned long ids;
    g->refs = 1;
    g->id = atomic_fetch_add(&ids, 1) + 1;
    g->m = (gllm_model *)m, g->ops = b->ops, g->dev = b->dev; /* m: held, its counter the one field written */
    g->max_rows = max_tokens > MAX_SEQS ? max_tokens : MAX_SEQS;
    gllm_status s = g->ops->enter(g->dev);
    if (s == GLLM_OK) {
        s = g->ops->decoder_open(g->dev, &m->llama, &m->gguf, g->max_rows, &g->dec);
        g->ops->leave(g->dev);
    }
    /* "auto" chose the GPU: a model it cannot hold (memory, head size) runs on the CPU */
    if (s != GLLM_OK && !b->forced && g->ops != &gllm_cpu_backend) {
        fprintf(stderr, "gllm: %s; this generator runs on the CPU\n", gllm_last_error());
        g->ops = &gllm_cpu_backend, g->dev = NULL;
        s = g->ops->decoder_open(NULL, &m->llama, &m->gguf, g->max_rows, &g->dec);
    }
    if (s != GLLM_OK) return free(g), s;
    atomic_fetch_add(&g->m->refs, 1), g->b = backend_hold(b);
    *out = g;
    return GLLM_OK;
}

void gllm_generator_free(gllm_generator *g) {
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1) return;
    CLOSE(g->ops, g->dev, decoder_close(g->dec));
    gllm_model_close(g->m), gllm_backend_close(g->b);
    free(g);
    gllm_ws_trim();
}

gllm_status gllm_kv_cache_alloc(gllm_generator *g, size_t n_pages, size_t page_size, gllm_dtype dtype, gllm_kv_cache **out) {
    if (!g || !out) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_kv_cache_alloc: NULL argument");
    *out = NULL;
    gllm_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "KV cache: no memory");
    kv->g = g, kv->ops = g->ops, kv->dev = g->dev;
    gllm_status s = g->ops->enter(g->dev);
    if (s == GLLM_OK) {
        s = g->ops->kv_open(g->dec, &kv->pool, dtype, page_size, n_pages, &kv->pages);
        g->ops->leave(g->dev);
    }
    if (s != GLLM_OK) return free(kv), s;
    atomic_fetch_add(&g->refs, 1);
    *out = kv;
    return GLLM_OK;
}

void gllm_kv_cache_free(gllm_kv_cache *kv) {
    if (!kv) return;
    CLOSE(kv->ops, kv->dev, kv_close(kv->pages));
    for (int i = 0; i < MAX_SEQS; i++)
        if (kv->open[i]) gllm_kv_seq_release(&kv->pool, &kv->seq[i]);
    gllm_kv_pool_free(&kv->pool);
    gllm_generator_free(kv->g);
    free(kv);
}

static gllm_status seq_of(gllm_kv_cache *kv, int seq, gllm_kv_seq **s) {
    if (!kv || seq < 0 || seq >= MAX_SEQS || !kv->open[seq]) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "no open sequence %d", seq);
    *s = &kv->seq[seq];
    return GLLM_OK;
}

static gllm_status seq_open(gllm_kv_cache *kv, size_t max_tokens, int *seq) {
    for (int i = 0; i < MAX_SEQS; i++)
        if (!kv->open[i]) {
            gllm_status s = gllm_kv_seq_init(&kv->seq[i], &kv->pool, max_tokens);
            if (s != GLLM_OK) return s;
            kv->open[i] = 1, kv->warm[i] = (unsigned long)-1, kv->protect[i] = 0, *seq = i;
            return GLLM_OK;
        }
    return gllm_fail(GLLM_E_INVALID_ARGUMENT, "KV cache: all %d sequences are open", MAX_SEQS);
}

gllm_status gllm_seq_open(gllm_kv_cache *kv, size_t max_tokens, int *seq) {
    if (!kv || !seq || !max_tokens) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_seq_open: NULL or zero argument");
    TURN(kv, seq_open(kv, max_tokens, seq));
}

static gllm_status seq_close(gllm_kv_cache *kv, int seq) {
    gllm_kv_seq *s = NULL;
    gllm_status st = seq_of(kv, seq, &s);
    if (st != GLLM_OK) return st;
    kv->ops->seq_close(kv->pages, seq);
    gllm_kv_seq_release(&kv->pool, s);
    kv->swapped[seq] = 0, kv->swapped_pages[seq] = 0, kv->open[seq] = 0, kv->protect[seq] = 0;
    return GLLM_OK;
}

gllm_status gllm_seq_close(gllm_kv_cache *kv, int seq) {
    if (!kv) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_seq_close: NULL cache");
    TURN(kv, seq_close(kv, seq));
}

static gllm_status seq_length(gllm_kv_cache *kv, int seq, size_t *len) {
    gllm_kv_seq *s = NULL;
    gllm_status st = seq_of(kv, seq, &s);
    if (st == GLLM_OK) *len = s->len;
    return st;
}

gllm_status gllm_seq_length(const gllm_kv_cache *kv, int seq, size_t *len) {
    if (!kv || !len) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_seq_length: NULL argument");
    TURN(kv, seq_length((gllm_kv_cache *)kv, seq, len));
}

/* everything one sequence's forward needs, checked before anything runs (whole: in one step) */
static gllm_status check_step(gllm_generator *g, gllm_kv_cache *kv, int seq, const int32_t *tokens, size_t n,
                              size_t rows_end, int whole) {
    gllm_kv_seq *s = NULL;
    gllm_status st = seq_of(kv, seq, &s);
    if (st != GLLM_OK) return st;
    if (!tokens || !n) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: no tokens");
    if (kv->swapped[seq]) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: sequence %d is swapped out", seq);
    if (whole && n > g->max_rows) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: %zu tokens, the generator takes %zu", n, g->max_rows);
    if (rows_end > MAX_SEQS) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: more logits rows than the generator holds");
    const gllm_llama *m = &g->m->llama;
    if (n > m->ctx - s->len) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: %zu + %zu positions exceed the context of %zu", s->len, n, m->ctx);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (size_t)tokens[i] >= m->vocab)
            return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: token id %d outside the vocabulary of %zu", tokens[i], m->vocab);
    return GLLM_OK;
}

/* the checked items' KV pages, all or none: a cache that cannot hold them all is left as it was */
static gllm_status reserve(gllm_kv_cache *kv, const gllm_batch_item *items, size_t n) {
    size_t had[MAX_SEQS];
    for (size_t i = 0; i < n; i++) {
        gllm_kv_seq *s = &kv->seq[items[i].seq];
        had[i] = s->n_pages;
        const gllm_status st = gllm_kv_reserve(&kv->pool, s, s->len + items[i].n);
        if (st == GLLM_OK) continue;
        while (i-- > 0) gllm_kv_unreserve(&kv->pool, &kv->seq[items[i].seq], had[i]);
        return st;
    }
    return GLLM_OK;
}

/* a forward's end: done, its items the latest forward's (warm); failed after steps ran, undone:
 * each item's sequence back to its length before, lens[i], its pages with it (a batch over
 * several forwards is all or nothing), and the generator's logits no longer a forward's */
static gllm_status settle(gllm_generator *g, gllm_kv_cache *kv, const gllm_batch_item *items, size_t n, const size_t *lens,
                          gllm_status st) {
    if (st == GLLM_OK) kv->step++;
    for (size_t i = 0; i < n; i++) {
        if (st == GLLM_OK) kv->warm[items[i].seq] = kv->step;
        else kv->ops->cut(kv->pages, items[i].seq, &kv->seq[items[i].seq], lens[i]);
    }
    if (st != GLLM_OK) g->view.rows = 0;
    return st;
}

/* n items (distinct sequences, checked) as one forward of the backend, their logits in rows
 * row0 .. row0 + n - 1 (a tree: every token's, from row 0) */
static gllm_status step(gllm_generator *g, gllm_kv_cache *kv, const gllm_batch_item *items, size_t n, const gllm_topology *topo,
                        size_t row0) {
    gllm_step_item it[MAX_SEQS];
    for (size_t b = 0; b < n; b++) it[b] = (gllm_step_item){items[b].seq, &kv->seq[items[b].seq], items[b].tokens, items[b].n};
    return g->ops->step(kv->pages, it, n, topo, row0);
}

/* The latest forwards of this thread, on up to 4 generators: the one a logits handle shows is
 * another thread's when the generator has run forwards since, and reading or sampling it is
 * refused (its rows are not those this thread sized its buffers for). */
static _Thread_local struct {
    unsigned long id, forwards;
} mine[4];
static _Thread_local unsigned next_mine;

static int overwritten(const gllm_generator *g) {
    for (int i = 0; i < 4; i++)
        if (mine[i].id == g->id) return mine[i].forwards != g->forwards;
    return 0; /* none by this thread (the handle came from another): its caller orders them */
}

/* a forward's outcome: the logits view on success; the call leaves the device either way */
static gllm_status finish(gllm_generator *g, gllm_status st, size_t rows, gllm_logits **out) {
    if (st == GLLM_OK) {
        g->view = (gllm_logits){g, rows, g->m->llama.vocab}, *out = &g->view;
        int i = 0;
        while (i < 4 && mine[i].id != g->id) i++;
        if (i == 4) i = (int)(next_mine++ % 4);
        mine[i].id = g->id, mine[i].forwards = ++g->forwards;
    }
    g->ops->leave(g->dev);
    return st;
}

gllm_status gllm_generator_forward(gllm_generator *g, gllm_kv_cache *kv, int seq, const int32_t *tokens, size_t n,
                                   const gllm_topology *topo, gllm_logits **out) {
    if (!g || !kv || !out || kv->g != g) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_generator_forward: bad handles");
    const size_t rows = topo && topo->parent ? n : 1;
    const int32_t *position = topo ? topo->position : NULL;
    const gllm_batch_item item = {seq, tokens, n};
    gllm_status st = g->ops->enter(g->dev);
    if (st != GLLM_OK) return st;
    const int32_t *parent = topo ? topo->parent : NULL;
    st = parent && n > GLLM_MAX_TREE ? gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: a tree step of %zu tokens (%d at most)", n, GLLM_MAX_TREE)
                                     : check_step(g, kv, seq, tokens, n, rows, parent != NULL);
    for (size_t i = 0; parent && i < n && st == GLLM_OK; i++)
        if (parent[i] < -1 || parent[i] >= (int32_t)i)
            st = gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: token %zu's parent %d is not -1 or an earlier token of the step", i, parent[i]);
    const size_t len = st == GLLM_OK ? kv->seq[seq].len : 0;
    int32_t depth[GLLM_MAX_TREE]; /* a tree without positions: the length plus each token's depth */
    if (st == GLLM_OK && parent && !position) {
        for (size_t i = 0; i < n; i++) depth[i] = parent[i] < 0 ? (int32_t)len : depth[parent[i]] + 1;
        position = depth;
    }
    for (size_t i = 0; position && i < n && st == GLLM_OK; i++)
        if (position[i] < 0 || (size_t)position[i] >= g->m->llama.ctx)
            st = gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: position %d of token %zu outside the context of %zu", position[i], i,
                           g->m->llama.ctx);
    if (st == GLLM_OK && (st = reserve(kv, &item, 1)) == GLLM_OK) { /* past the generator's rows: in steps of them */
        for (size_t at = 0, part; at < n && st == GLLM_OK; at += part) {
            part = n - at < g->max_rows ? n - at : g->max_rows;
            const gllm_batch_item it = {seq, tokens + at, part};
            const gllm_topology t = {parent, position ? position + at : NULL};
            st = step(g, kv, &it, 1, topo ? &t : NULL, 0);
        }
        st = settle(g, kv, &item, 1, &len, st);
    }
    return finish(g, st, rows, out);
}

static gllm_status seq_accept(gllm_kv_cache *kv, int seq, size_t step_start, const uint32_t *path, size_t n) {
    gllm_kv_seq *s = NULL;
    gllm_status st = seq_of(kv, seq, &s);
    if (st != GLLM_OK) return st;
    if (!path && n) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_seq_accept: NULL path");
    if (step_start > s->len) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_seq_accept: step starts past the sequence");
    for (size_t i = 0; i < n; i++)
        if (step_start + path[i] >= s->len) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_seq_accept: path token %zu is not in the step", i);
    if (kv->swapped[seq]) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_seq_accept: sequence %d is swapped out", seq);
    st = kv->ops->accept(kv->pages, seq, s, step_start, path, n);
    kv->ops->cut(kv->pages, seq, s, s->len); /* the dropped tokens' pages back to the pool */
    return st;
}

gllm_status gllm_seq_accept(gllm_kv_cache *kv, int seq, size_t step_start, const uint32_t *path, size_t n) {
    if (!kv) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_seq_accept: NULL cache");
    TURN(kv, seq_accept(kv, seq, step_start, path, n));
}

gllm_status gllm_batch_forward(gllm_generator *g, gllm_kv_cache *kv, const gllm_batch_item *items, size_t n, gllm_logits **out) {
    if (!g || !kv || !items || !n || !out || kv->g != g) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_batch_forward: bad arguments");
    if (n > g->max_rows) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "batch: %zu sequences, room for %zu", n, g->max_rows);
    gllm_status st = g->ops->enter(g->dev);
    if (st != GLLM_OK) return st;
    for (size_t i = 0; i < n && st == GLLM_OK; i++) { /* every item checked, then their KV reserved, before any runs */
        st = check_step(g, kv, items[i].seq, items[i].tokens, items[i].n, i + 1, 1);
        for (size_t j = 0; j < i && st == GLLM_OK; j++)
            if (items[j].seq == items[i].seq) st = gllm_fail(GLLM_E_INVALID_ARGUMENT, "batch: sequence %d appears twice", items[i].seq);
    }
    size_t lens[MAX_SEQS];
    for (size_t i = 0; i < n && st == GLLM_OK; i++) lens[i] = kv->seq[items[i].seq].len;
    if (st == GLLM_OK && (st = reserve(kv, items, n)) == GLLM_OK) {
        for (size_t i = 0, first = 0, rows = 0; i <= n && st == GLLM_OK; i++) { /* as many items per forward as it holds */
            if (i == n || rows + items[i].n > g->max_rows) st = step(g, kv, items + first, i - first, NULL, first), first = i, rows = 0;
            if (i < n) rows += items[i].n;
        }
        st = settle(g, kv, items, n, lens, st);
    }
    return finish(g, st, n, out);
}

/* The logits as a call sees them, on the device's turn (another thread's forward changes them):
 * their rows, or an error */
static gllm_status logits_rows(const gllm_logits *l, const char *call, size_t *rows) {
    *rows = 0;
    if (overwritten(l->g))
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "%s: the logits were overwritten by another thread's forward", call);
    if (!l->rows) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "%s: the generator's latest forward failed: no logits", call);
    *rows = l->rows;
    return GLLM_OK;
}

static gllm_status logits_shape(const gllm_logits *l, size_t *rows, size_t *vocab) {
    const gllm_status st = logits_rows(l, "gllm_logits_shape", rows);
    *vocab = l->vocab;
    return st;
}

gllm_status gllm_logits_shape(const gllm_logits *l, size_t *rows, size_t *vocab) {
    if (!l || !rows || !vocab) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_logits_shape: NULL argument");
    *rows = 0;
    TURN(l->g, logits_shape(l, rows, vocab));
}

static gllm_status logits_read(const gllm_logits *l, float *out, size_t cap) {
    size_t rows;
    const gllm_status st = logits_rows(l, "gllm_logits_read", &rows);
    if (st != GLLM_OK) return st;
    if (cap < rows * l->vocab) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_logits_read: %zu floats needed", rows * l->vocab);
    return l->g->ops->logits_read(l->g->dec, rows, out);
}

gllm_status gllm_logits_read(const gllm_logits *l, float *out, size_t cap) {
    if (!l || !out) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_logits_read: NULL argument");
    TURN(l->g, logits_read(l, out, cap));
}

static gllm_status sample(gllm_generator *g, const gllm_logits *l, const gllm_sampling *c, const int32_t *history,
                          size_t n_history, uint64_t step_no, int32_t *out_ids) {
    size_t rows;
    const gllm_status st = logits_rows(l, "gllm_sample", &rows);
    return st != GLLM_OK ? st : g->ops->sample(g->dec, rows, c, history, n_history, step_no, out_ids);
}

gllm_status gllm_sample(gllm_generator *g, const gllm_logits *l, const gllm_sampling *cfg, const int32_t *history,
                        size_t n_history, uint64_t step_no, int32_t *out_ids) {
    if (!g || !l || !cfg || !out_ids) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_sample: NULL argument");
    if (l->g != g) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_sample: logits of another generator");
    const float knobs[6] = {cfg->temperature, cfg->top_p, cfg->min_p, cfg->repetition_penalty, cfg->frequency_penalty,
                            cfg->presence_penalty};
    static const char *const names[6] = {"temperature", "top_p", "min_p", "repetition_penalty", "frequency_penalty", "presence_penalty"};
    for (int i = 0; i < 6; i++)
        if (!isfinite(knobs[i])) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_sample: %s is %g", names[i], knobs[i]);
    gllm_sampling c = *cfg;
    if (c.temperature > 0 && isinf(1.0f / c.temperature)) c.temperature = 0; /* colder than 1/FLT_MAX: greedy, its limit */
    if (c.top_p <= 0) c.top_k = 1; /* no mass kept: the best token, as llama.cpp keeps one */
    if (c.repetition_penalty <= 0) c.repetition_penalty = 1; /* off, as 1 is */
    if (c.repetition_penalty == 1 && c.frequency_penalty == 0 && c.presence_penalty == 0)
        history = NULL, n_history = 0; /* read by the penalties alone: with none on, neither read nor checked */
    TURN(g, sample(g, l, &c, history, n_history, step_no, out_ids));
}

/* ---- scheduling ----------------------------------------------------------------------------- */

static gllm_status memory_pressure(const gllm_kv_cache *kv, float *out) {
    *out = (float)(kv->pool.n_pages - kv->pool.n_free) / (float)kv->pool.n_pages;
    return kv->ops->pressure(kv->pages, out);
}

gllm_status gllm_memory_pressure(const gllm_kv_cache *kv, float *out) {
    if (!kv || !out) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_memory_pressure: NULL argument");
    TURN(kv, memory_pressure(kv, out));
}

static gllm_status page_states(const gllm_kv_cache *kv, gllm_page_info *out, size_t cap, size_t *n) {
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

gllm_status gllm_page_states(const gllm_kv_cache *kv, gllm_page_info *out, size_t cap, size_t *n) {
    if (!kv || !n || (!out && cap)) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_page_states: NULL argument");
    TURN(kv, page_states(kv, out, cap, n));
}

static gllm_status seq_protect(gllm_kv_cache *kv, int seq, int on) {
    gllm_kv_seq *s = NULL;
    gllm_status st = seq_of(kv, seq, &s);
    if (st == GLLM_OK) kv->protect[seq] = on != 0;
    return st;
}

gllm_status gllm_seq_protect(gllm_kv_cache *kv, int seq, int on) {
    if (!kv) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_seq_protect: NULL cache");
    TURN(kv, seq_protect(kv, seq, on));
}

/* out: the sequence's pages to a new host image, their pool pages freed; in: back into free
 * pages. On CUDA the copies are enqueued on the copy stream and the call returns at once. */
static gllm_status swap_out(gllm_kv_cache *kv, int seq) {
    gllm_kv_seq *s = NULL;
    gllm_status st = seq_of(kv, seq, &s);
    if (st != GLLM_OK) return st;
    if (kv->protect[seq]) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "swap: sequence %d is protected (hot)", seq);
    if (kv->warm[seq] == kv->step) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "swap: sequence %d is warm (used by the latest forward)", seq);
    if (kv->swapped[seq]) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "swap: sequence %d is already swapped out", seq);
    const size_t n = s->n_pages;
    st = kv->ops->swap_out(kv->pages, seq, s);
    if (st == GLLM_OK) kv->swapped[seq] = 1, kv->swapped_pages[seq] = n;
    return st;
}

static gllm_status swap_in(gllm_kv_cache *kv, int seq) { /* protected or not: protection keeps pages in */
    gllm_kv_seq *s = NULL;
    gllm_status st = seq_of(kv, seq, &s);
    if (st != GLLM_OK) return st;
    if (!kv->swapped[seq]) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "swap: sequence %d is not swapped out", seq);
    st = kv->ops->swap_in(kv->pages, seq, s, kv->swapped_pages[seq]);
    if (st == GLLM_OK) kv->swapped[seq] = 0, kv->swapped_pages[seq] = 0;
    return st;
}

gllm_status gllm_swap_out_pages(gllm_kv_cache *kv, int seq) {
    if (!kv) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_swap_out_pages: NULL cache");
    TURN(kv, swap_out(kv, seq));
}

gllm_status gllm_swap_in_pages(gllm_kv_cache *kv, int seq) {
    if (!kv) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_swap_in_pages: NULL cache");
    TURN(kv, swap_in(kv, seq));
}

/* ---- L2 block calls -------------------------------------------------------------------------- */

/* one sub-block's plan steps on n rows, on the generator's backend */
static gllm_status block(const gllm_generator *g, gllm_block_kind kind, size_t layer, const int32_t *tokens, const float *x,
                         size_t n, float *out) {
    if (!g || (!tokens && !x) || !out || !n) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "block: NULL or empty input");
    const gllm_llama *m = &g->m->llama;
    if (layer >= m->n_layers) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "block: layer %zu of %zu", layer, m->n_layers);
    if (n > m->ctx) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "block: %zu rows exceed the context of %zu", n, m->ctx);
    for (size_t i = 0; tokens && i < n; i++)
        if (tokens[i] < 0 || (size_t)tokens[i] >= m->vocab)
            return gllm_fail(GLLM_E_INVALID_ARGUMENT, "embed: token id %d at %zu outside the vocabulary of %zu", tokens[i], i, m->vocab);
    TURN(g, g->ops->block(g->dec, kind, layer, tokens, x, n, out));
}

gllm_status gllm_embed_block(const gllm_generator *g, const int32_t *tokens, size_t n, float *x) {
    if (!tokens) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_embed_block: NULL or empty input");
    return block(g, GLLM_BLOCK_EMBED, 0, tokens, NULL, n, x);
}

gllm_status gllm_attention_block(const gllm_generator *g, size_t layer, const float *x, size_t n, float *out) {
    return block(g, GLLM_BLOCK_ATTENTION, layer, NULL, x, n, out);
}

gllm_status gllm_ffn_block(const gllm_generator *g, size_t layer, const float *x, size_t n, float *out) {
    return block(g, GLLM_BLOCK_FFN, layer, NULL, x, n, out);
}

gllm_status gllm_head_block(const gllm_generator *g, const float *x, size_t n, float *logits) {
    if (!x) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_head_block: NULL or empty input");
    return block(g, GLLM_BLOCK_HEAD, 0, NULL, x, n, logits);
}

/* ---- embeddings ----------------------------------------------------------------------------- */

/* an embedder or a reranker: the encoder on the host (tokenizer, weights' image), its forward
 * as a plan, and that plan on its backend */
typedef struct {
    gllm_bert m;
    gllm_plan plan;
    int rerank;
    gllm_backend *b;             /* held */
    const gllm_backend_ops *ops; /* the backend's, or the CPU's where "auto" chose a GPU that cannot hold it */
    gllm_device *dev;
    gllm_encoder *enc;
} encoder;

struct gllm_embedder {
    encoder e;
};

struct gllm_reranker {
    encoder e;
};

static gllm_status encoder_upload(encoder *e) {
    const gllm_bert *m = &e->m;
    const void *file = m->st.base ? m->st.base : m->gguf.base;
    const size_t size = m->st.base ? m->st.size : m->gguf.size;
    const size_t owned = m->owned ? (m->max_pos + m->n_types) * m->dim * sizeof(float) : 0;
    return e->ops->encoder_open(e->dev, &e->plan, file, size, m->owned, owned, m->max_pos, &e->enc);
}

/* both wrap an encoder; a reranker also needs the classifier head */
static gllm_status encoder_open(gllm_backend *b, const char *path, const char *what, int head, encoder **out) {
    *out = NULL;
    encoder *e = calloc(1, sizeof *e);
    if (!e) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "%s: no memory", what);
    gllm_status s = gllm_bert_open(path, &e->m);
    if (s != GLLM_OK) return free(e), s;
    if (head && !e->m.cls_w) s = gllm_fail(GLLM_E_UNSUPPORTED, "%s: %s has no classifier head", what, path);
    if (s == GLLM_OK) s = gllm_bert_plan(&e->m, head, &e->plan);
    if (s != GLLM_OK) return gllm_bert_close(&e->m), free(e), s;
    e->rerank = head, e->ops = b->ops, e->dev = b->dev;
    if ((s = e->ops->enter(e->dev)) == GLLM_OK) {
        s = encoder_upload(e);
        e->ops->leave(e->dev);
    }
    if (s != GLLM_OK && !b->forced && e->ops != &gllm_cpu_backend) { /* "auto" chose the GPU: a model it cannot hold runs on the CPU */
        fprintf(stderr, "gllm: %s; this %s runs on the CPU\n", gllm_last_error(), what);
        e->ops = &gllm_cpu_backend, e->dev = NULL;
        s = encoder_upload(e);
    }
    if (s != GLLM_OK) return gllm_plan_free(&e->plan), gllm_bert_close(&e->m), free(e), s;
    e->b = backend_hold(b);
    *out = e;
    return GLLM_OK;
}

static void encoder_free(encoder *e) {
    CLOSE(e->ops, e->dev, encoder_close(e->enc));
    gllm_plan_free(&e->plan);
    gllm_bert_close(&e->m);
    gllm_backend_close(e->b);
    free(e);
    gllm_ws_trim();
}

/* embeddings: out[n][dim]; reranking: out[n], each pair's first label */
static gllm_status encoder_forward(encoder *e, const int32_t *const *seqs, const size_t *lens, size_t n, int normalize, float *out) {
    const gllm_bert *m = &e->m;
    size_t rows;
    gllm_status s = gllm_bert_check(m, seqs, lens, n, &rows);
    if (s != GLLM_OK) return s;
    if (!out) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "%s: NULL output", e->rerank ? "rerank" : "embed");
    gllm_encoder_item *items = malloc(n * sizeof *items);
    int32_t *types = malloc(rows * sizeof *types);
    float *logits = e->rerank ? malloc(n * m->n_labels * sizeof *logits) : out;
    if (!items || !types || !logits) s = gllm_fail(GLLM_E_OUT_OF_MEMORY, "encoder: no memory for %zu tokens", rows);
    for (size_t i = 0, r = 0; i < n && s == GLLM_OK; r += lens[i], i++) {
        gllm_bert_types(m, seqs[i], lens[i], e->rerank, types + r);
        items[i] = (gllm_encoder_item){seqs[i], types + r, lens[i]};
    }
    if (s == GLLM_OK && (s = e->ops->enter(e->dev)) == GLLM_OK) {
        s = e->ops->encode(e->enc, items, n, normalize, logits);
        e->ops->leave(e->dev);
    }
    for (size_t i = 0; e->rerank && i < n && s == GLLM_OK; i++) out[i] = logits[i * m->n_labels];
    if (e->rerank) free(logits);
    free(items), free(types);
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

/* all of a text's ids (special tokens in it read, none added), in a new buffer */
static gllm_status tokenize_all(const gllm_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n) {
    for (size_t cap = len + 1;;) { /* a token a byte, mostly; else the count it said */
        if (!(*ids = malloc(cap * sizeof **ids))) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "tokenize: no memory for %zu ids", cap);
        const gllm_status st = gllm_tokenize(t, text, len, 1, *ids, cap, n);
        if (st == GLLM_OK) return st;
        free(*ids), *ids = NULL;
        if (*n <= cap) return st;
        cap = *n;
    }
}

gllm_status gllm_embedding_tokenize(const gllm_embedder *e, const char *text, size_t len, int32_t *ids, size_t cap,
                                    size_t *n) {
    if (!e || (!text && len) || !n || !ids) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_embedding_tokenize: bad arguments");
    const gllm_bert *m = &e->e.m;
    int32_t *t;
    size_t k;
    gllm_status s = tokenize_all(m->tok, text, len, &t, &k);
    if (s != GLLM_OK) return s;
    if (k > m->max_len - 2) k = m->max_len - 2; /* the text's end cut, as sentence-transformers cuts it */
    *n = k + 2;
    if (*n > cap) s = gllm_fail(GLLM_E_INVALID_ARGUMENT, "embedding tokenize: %zu ids, room for %zu", *n, cap);
    else ids[0] = gllm_tokenizer_cls(m->tok), memcpy(ids + 1, t, k * sizeof *t), ids[k + 1] = gllm_tokenizer_sep(m->tok);
    free(t);
    return s;
}

gllm_status gllm_embedding_forward(gllm_embedder *e, const int32_t *const *seqs, const size_t *lens, size_t n,
                                   int normalize, float *out) {
    if (!e) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_embedding_forward: NULL embedder");
    return encoder_forward(&e->e, seqs, lens, n, normalize, out);
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

/* a pair of a and b ids cut to fit room, as Hugging Face's tokenizers cut "longest_first": the
 * shorter kept whole where the longer can give up the rest, else both halved (the longer one
 * keeping the odd id) */
static void longest_first(size_t *a, size_t *b, size_t room) {
    if (*a + *b <= room) return;
    size_t *shorter = *a <= *b ? a : b, *longer = *a <= *b ? b : a;
    if (*shorter <= room / 2) *longer = room - *shorter;
    else *shorter = room / 2, *longer = room - room / 2;
}

gllm_status gllm_rerank_tokenize(const gllm_reranker *r, const char *query, const char *doc, int32_t *ids, size_t cap,
                                 size_t *n) {
    if (!r || !query || !doc || !ids || !n) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_rerank_tokenize: bad arguments");
    const gllm_bert *m = &r->e.m;
    const int32_t sep = gllm_tokenizer_sep(m->tok);
    int32_t *q = NULL, *d = NULL;
    size_t a, b;
    gllm_status s = tokenize_all(m->tok, query, strlen(query), &q, &a);
    if (s == GLLM_OK) s = tokenize_all(m->tok, doc, strlen(doc), &d, &b);
    if (s == GLLM_OK) longest_first(&a, &b, m->pair_len - 3), *n = a + b + 3;
    /* the document's token types start after the first [SEP] (gllm_rerank_forward): one in the
     * query would score the pair with other types than Hugging Face gives it */
    for (size_t i = 0; i < a && s == GLLM_OK; i++)
        if (q[i] == sep) s = gllm_fail(GLLM_E_INVALID_ARGUMENT, "rerank tokenize: the query holds a [SEP] token (id %d)", sep);
    if (s == GLLM_OK && *n > cap) s = gllm_fail(GLLM_E_INVALID_ARGUMENT, "rerank tokenize: the pair takes %zu ids, room for %zu", *n, cap);
    if (s == GLLM_OK) {
        ids[0] = gllm_tokenizer_cls(m->tok), ids[a + 1] = ids[a + b + 2] = sep;
        memcpy(ids + 1, q, a * sizeof *q), memcpy(ids + a + 2, d, b * sizeof *d);
    }
    free(q), free(d);
    return s;
}

gllm_status gllm_rerank_forward(gllm_reranker *r, const int32_t *const *pairs, const size_t *lens, size_t n, float *scores) {
    if (!r) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "gllm_rerank_forward: NULL reranker");
    return encoder_forward(&r->e, pairs, lens, n, 0, scores);
}
