/* The CUDA backend (src/plan/backend.h): a device's primary context and our two streams, the
 * model file uploaded once (or mapped), KV pages, logits and the sampler on the device. Only
 * token ids cross per step. KV swaps run on the copy stream beside the kernels, ordered by
 * events: a swap-out after the sequence's last step, every step after the swaps before it
 * (their pages are reused, or must be back). Images are page-locked; a swapped-in one is
 * freed once its copies have passed. */
#include <stdio.h>
#include <stdlib.h>
#include "core/error.h"
#include "cuda/encoder.h"
#include "cuda/model.h"
#include "cuda/sample.h"
#include "plan/backend.h"

struct gllm_device {
    gllm_cuda c;
};

struct gllm_decoder {
    gllm_cuda *c;
    const gllm_llama *m;
    gllm_cuda_model cm;
    CUdeviceptr logits; /* GLLM_MAX_SEQS rows: one per step, or one per batch item */
    gllm_cuda_sampler sampler;
};

struct gllm_kv_pages {
    gllm_decoder *d;
    gllm_kv_pool *pool;
    gllm_cuda_kv dkv;                       /* the pages and block tables on the device */
    size_t table_pages[GLLM_MAX_SEQS];      /* table entries of each sequence already there */
    CUevent written[GLLM_MAX_SEQS];         /* after each sequence's latest step (compute stream) */
    CUevent copied;                         /* after the latest swap copies (copy stream) */
    int copy_wait;                          /* the compute stream has not waited for `copied` yet */
    void *image[GLLM_MAX_SEQS];             /* swapped-out sequences' pages */
    void *retired[GLLM_MAX_SEQS];           /* swapped-in images, their copies maybe in flight */
    int n_retired;                          /* how many retired[] are set (steps reap only then) */
};

struct gllm_encoder {
    gllm_cuda_encoder e;
};

static gllm_status open_(int ordinal, gllm_device **dev) {
    gllm_device *d = calloc(1, sizeof *d);
    if (!d) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "backend: no memory");
    gllm_status s = gllm_cuda_open(&d->c, ordinal);
    if (s != GLLM_OK) return free(d), s;
    *dev = d;
    return GLLM_OK;
}

static void close_(gllm_device *dev) {
    gllm_cuda_close(&dev->c);
    free(dev);
}

static void describe(const gllm_device *dev, char *name, size_t cap, const char **isa, int *zero_copy) {
    const gllm_cuda *c = &dev->c;
    snprintf(name, cap, "%s (sm_%d, driver %d.%d%s)", c->name, c->sm, c->drv.version / 1000, c->drv.version % 1000 / 10,
             c->integrated ? ", integrated" : c->host_pages ? ", host page tables" : "");
    *isa = "sass", *zero_copy = c->map; /* mapped where UMA (a failed mapping copies, and says so) */
}

static gllm_status enter(gllm_device *dev) { return gllm_cuda_enter(&dev->c); }
static void leave(gllm_device *dev) { gllm_cuda_leave(&dev->c); }

static void decoder_close(gllm_decoder *d) {
    if (!d) return;
    gllm_cuda_sampler_free(d->c, &d->sampler);
    gllm_cuda_free(d->c, d->logits);
    gllm_cuda_model_free(&d->cm);
    free(d);
}

static gllm_status decoder_open(gllm_device *dev, const gllm_llama *m, const gllm_gguf *file, size_t max_rows,
                                gllm_decoder **out) {
    gllm_decoder *d = calloc(1, sizeof *d);
    if (!d) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "generator: no memory");
    d->c = &dev->c, d->m = m;
    gllm_status s = gllm_cuda_model_init(&d->cm, d->c, &m->plan, file->base, file->size, max_rows, m->n_kv_heads * m->head_dim);
    if (s == GLLM_OK) s = gllm_cuda_alloc(d->c, GLLM_MAX_SEQS * m->vocab * sizeof(float), &d->logits);
    if (s == GLLM_OK) s = gllm_cuda_sampler_init(d->c, &d->sampler, m->vocab, GLLM_MAX_SEQS, GLLM_MAX_HISTORY);
    if (s != GLLM_OK) return decoder_close(d), s;
    *out = d;
    return GLLM_OK;
}

static void kv_close(gllm_kv_pages *kv) {
    gllm_cuda *c = kv->d->c;
    c->drv.cuStreamSynchronize(c->copy), c->drv.cuStreamSynchronize(c->stream); /* no copy or step left on its memory */
    gllm_cuda_model_forget(&kv->d->cm, &kv->dkv);
    gllm_cuda_free(c, kv->dkv.k), gllm_cuda_free(c, kv->dkv.v), gllm_cuda_free(c, kv->dkv.tables);
    for (int i = 0; i < GLLM_MAX_SEQS; i++) {
        gllm_cuda_host_free(c, kv->image[i]), gllm_cuda_host_free(c, kv->retired[i]);
        if (kv->written[i]) c->drv.cuEventDestroy(kv->written[i]);
    }
    if (kv->copied) c->drv.cuEventDestroy(kv->copied);
    free(kv);
}

static gllm_status kv_open(gllm_decoder *d, gllm_kv_pool *pool, gllm_dtype dtype, size_t page_size, size_t n_pages,
                           gllm_kv_pages **out) {
    const gllm_llama *m = d->m;
    gllm_cuda *c = d->c;
    gllm_kv_pages *kv = calloc(1, sizeof *kv);
    if (!kv) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "KV cache: no memory");
    /* the pages live on the device; the pool keeps their bookkeeping */
    gllm_status s = gllm_kv_pool_layout(pool, dtype, m->n_layers, m->n_kv_heads, m->head_dim, page_size, n_pages);
    if (s != GLLM_OK) return free(kv), s;
    kv->d = d, kv->pool = pool;
    gllm_cuda_kv *dk = &kv->dkv;
    *dk = (gllm_cuda_kv){.dtype = dtype, .n_pages = n_pages, .n_kv = m->n_kv_heads, .head_dim = m->head_dim,
                         .page_shift = pool->page_shift, .table_stride = n_pages,
                         .layer_bytes = n_pages * pool->page_elems * pool->esize};
    s = gllm_cuda_alloc(c, m->n_layers * dk->layer_bytes, &dk->k);
    if (s == GLLM_OK) s = gllm_cuda_alloc(c, m->n_layers * dk->layer_bytes, &dk->v);
    if (s == GLLM_OK) s = gllm_cuda_alloc(c, GLLM_MAX_SEQS * n_pages * sizeof(int32_t), &dk->tables);
    if (s == GLLM_OK) s = gllm_cuda_check(c, c->drv.cuMemsetD32Async(dk->tables, 0, GLLM_MAX_SEQS * n_pages, c->stream), "clearing");
    if (s == GLLM_OK) s = gllm_cuda_check(c, c->drv.cuEventCreate(&kv->copied, CU_EVENT_DISABLE_TIMING), "creating an event");
    if (s == GLLM_OK) s = gllm_cuda_sync(c);
    if (s != GLLM_OK) return kv_close(kv), gllm_kv_pool_free(pool), s;
    *out = kv;
    return GLLM_OK;
}

/* free the swapped-in images whose copies have passed; all: wait for them (where even the
 * stream cannot be waited for, the device has stopped and nothing is in flight) */
static void reap(gllm_kv_pages *kv, int all) {
    gllm_cuda *c = kv->d->c;
    if (!kv->n_retired) return;
    if (all) {
        if (c->drv.cuEventSynchronize(kv->copied) != CUDA_SUCCESS) c->drv.cuStreamSynchronize(c->copy);
    } else if (c->drv.cuEventQuery(kv->copied) != CUDA_SUCCESS) {
        return;
    }
    for (int i = 0; i < GLLM_MAX_SEQS; i++) gllm_cuda_host_free(c, kv->retired[i]), kv->retired[i] = NULL;
    kv->n_retired = 0;
}

/* the compute stream after the swaps enqueued so far (a swap-in may still be writing pages) */
static gllm_status after_swaps(gllm_kv_pages *kv, const char *what) {
    gllm_cuda *c = kv->d->c;
    if (!kv->copy_wait) return GLLM_OK;
    const gllm_status st = gllm_cuda_check(c, c->drv.cuStreamWaitEvent(c->stream, kv->copied, 0), what);
    kv->copy_wait = st != GLLM_OK;
    return st;
}

/* sequence q's block-table entries the device lacks (a step's new pages, a swapped-in
 * sequence's pages), uploaded on the compute stream */
static gllm_status sync_table(gllm_kv_pages *kv, int q, const gllm_kv_seq *s) {
    gllm_cuda *c = kv->d->c;
    const size_t have = kv->table_pages[q];
    const gllm_status st = gllm_cuda_upload(c, kv->dkv.tables + ((size_t)q * kv->dkv.table_stride + have) * sizeof(int32_t),
                                            s->table + have, (s->n_pages - have) * sizeof(int32_t));
    if (st == GLLM_OK) kv->table_pages[q] = s->n_pages;
    return st;
}

static gllm_status step(gllm_kv_pages *kv, const gllm_step_item *items, size_t n, const gllm_topology *topo, size_t row0) {
    gllm_decoder *d = kv->d;
    gllm_cuda *c = d->c;
    gllm_cuda_item dev[GLLM_MAX_SEQS];
    if (!n || n > GLLM_MAX_SEQS) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "step: %zu sequences", n);
    for (size_t b = 0; b < n; b++) dev[b] = (gllm_cuda_item){items[b].seq, items[b].s->len, items[b].n, items[b].tokens};
    gllm_status st = after_swaps(kv, "ordering a step after KV swaps");
    for (size_t b = 0; b < n && st == GLLM_OK; b++) {
        const int q = items[b].seq;
        if (!kv->written[q]) st = gllm_cuda_check(c, c->drv.cuEventCreate(&kv->written[q], CU_EVENT_DISABLE_TIMING), "creating an event");
        if (st == GLLM_OK) st = sync_table(kv, q, items[b].s);
    }
    if (st != GLLM_OK) return st;
    st = gllm_cuda_forward(&d->cm, &kv->dkv, dev, n, topo ? topo->position : NULL, topo ? topo->parent : NULL,
                           d->logits + row0 * d->m->vocab * sizeof(float), 1);
    gllm_status rec = GLLM_OK; /* after whatever the step enqueued, failed or not: swaps of its pages go after it */
    for (size_t b = 0; b < n; b++) {
        if (st == GLLM_OK) items[b].s->len += items[b].n;
        if (rec == GLLM_OK) rec = gllm_cuda_check(c, c->drv.cuEventRecord(kv->written[items[b].seq], c->stream), "recording a step");
    }
    if (rec != GLLM_OK) c->drv.cuStreamSynchronize(c->stream);
    reap(kv, 0);
    return st != GLLM_OK ? st : rec;
}

/* the moves go after the step on the compute stream, and swaps after them */
static gllm_status accept(gllm_kv_pages *kv, int seq, gllm_kv_seq *s, size_t step_start, const uint32_t *path, size_t n) {
    gllm_cuda *c = kv->d->c;
    gllm_status st = gllm_kv_compact_check(kv->pool, s, step_start, path, n);
    if (st != GLLM_OK) return st;
    st = after_swaps(kv, "ordering a compaction after KV swaps");
    if (st == GLLM_OK) st = sync_table(kv, seq, s); /* swapped in since its last step: other pages */
    if (st == GLLM_OK) st = gllm_cuda_kv_compact(&kv->d->cm, &kv->dkv, kv->d->m->n_layers, seq, step_start, path, n);
    if (kv->written[seq]) {
        const gllm_status rec = gllm_cuda_check(c, c->drv.cuEventRecord(kv->written[seq], c->stream), "recording a compaction");
        if (rec != GLLM_OK) c->drv.cuStreamSynchronize(c->stream);
        if (st == GLLM_OK) st = rec;
    }
    s->len = st == GLLM_OK ? step_start + n : step_start; /* a failed move drops the whole step, never a mix */
    return st;
}

/* swaps into the freed pages go after the sequence's last step or moves */
static void cut(gllm_kv_pages *kv, int seq, gllm_kv_seq *s, size_t len) {
    gllm_cuda *c = kv->d->c;
    s->len = len;
    if (kv->written[seq] && c->drv.cuStreamWaitEvent(c->copy, kv->written[seq], 0) != CUDA_SUCCESS) c->drv.cuStreamSynchronize(c->stream);
    gllm_kv_trim(kv->pool, s);
    if (kv->table_pages[seq] > s->n_pages) kv->table_pages[seq] = s->n_pages; /* the entries past it are rewritten when it grows */
}

/* its pages may be swapped into next: the copies go after its last step */
static void seq_close(gllm_kv_pages *kv, int seq) {
    gllm_cuda *c = kv->d->c;
    if (kv->written[seq] && c->drv.cuStreamWaitEvent(c->copy, kv->written[seq], 0) != CUDA_SUCCESS)
        c->drv.cuEventSynchronize(kv->written[seq]); /* no wait enqueued: the step itself is over */
    if (kv->image[seq]) c->drv.cuStreamSynchronize(c->copy); /* its swap-out copies */
    gllm_cuda_host_free(c, kv->image[seq]);
    kv->image[seq] = NULL, kv->table_pages[seq] = 0;
    reap(kv, 0);
}

/* the copies are enqueued on the copy stream and the call returns at once */
static gllm_status swap(gllm_kv_pages *kv, int seq, gllm_kv_seq *s, size_t n_pages, int out) {
    gllm_cuda *c = kv->d->c;
    gllm_status st = GLLM_OK;
    reap(kv, !out && kv->retired[seq]); /* this slot's last image must be gone first */
    gllm_cuda_kv_copy_ctx x = {c, &kv->dkv};
    void *img = kv->image[seq];
    if (out && (st = gllm_cuda_host_alloc(c, gllm_kv_swap_bytes(kv->pool, n_pages), &img)) != GLLM_OK) return st;
    if (out && kv->written[seq]) /* after the step that last wrote its pages */
        st = gllm_cuda_check(c, c->drv.cuStreamWaitEvent(c->copy, kv->written[seq], 0), "ordering a swap after a step");
    if (st == GLLM_OK)
        st = out ? gllm_kv_swap_out(kv->pool, s, img, gllm_cuda_kv_copy, &x) : gllm_kv_swap_in(kv->pool, s, img, n_pages, gllm_cuda_kv_copy, &x);
    /* whatever was enqueued, later steps wait for it (a failed swap-in's pages are free again);
     * where that cannot be recorded, the copies are waited for here */
    if (c->drv.cuEventRecord(kv->copied, c->copy) == CUDA_SUCCESS) kv->copy_wait = 1;
    else c->drv.cuStreamSynchronize(c->copy);
    if (st != GLLM_OK && out) c->drv.cuStreamSynchronize(c->copy), gllm_cuda_host_free(c, img);
    if (st == GLLM_OK && out) kv->image[seq] = img;
    if (st == GLLM_OK && !out) kv->retired[seq] = img, kv->n_retired++, kv->image[seq] = NULL, kv->table_pages[seq] = 0;
    return st;
}

static gllm_status swap_out(gllm_kv_pages *kv, int seq, gllm_kv_seq *s) { return swap(kv, seq, s, s->n_pages, 1); }
static gllm_status swap_in(gllm_kv_pages *kv, int seq, gllm_kv_seq *s, size_t n_pages) { return swap(kv, seq, s, n_pages, 0); }

static gllm_status pressure(gllm_kv_pages *kv, float *used) {
    gllm_cuda *c = kv->d->c;
    size_t free_bytes = 0, total = 0;
    gllm_status st = gllm_cuda_check(c, c->drv.cuMemGetInfo(&free_bytes, &total), "reading the device's free memory");
    if (st != GLLM_OK || !total) return st;
    const size_t page_bytes = kv->dkv.layer_bytes / kv->dkv.n_pages * 2 * kv->d->m->n_layers; /* K and V, every layer */
    const size_t pool_free = kv->pool->n_free * page_bytes;
    const size_t in_use = total - free_bytes > pool_free ? total - free_bytes - pool_free : 0;
    if ((float)in_use / (float)total > *used) *used = (float)in_use / (float)total;
    return GLLM_OK;
}

static gllm_status logits_read(gllm_decoder *d, size_t rows, float *out) {
    return gllm_cuda_download(d->c, out, d->logits, rows * d->m->vocab * sizeof(float));
}

/* on the device: only the ids come back */
static gllm_status sample(gllm_decoder *d, size_t rows, const gllm_sampling *cfg, const int32_t *history, size_t n_history,
                          uint64_t step_no, int32_t *out_ids) {
    return gllm_cuda_sample(d->c, &d->sampler, d->logits, rows, cfg, history, n_history, step_no, out_ids);
}

/* the block's plan steps on the device (gllm_cuda_block) */
static gllm_status block(gllm_decoder *d, gllm_block_kind kind, size_t layer, const int32_t *tokens, const float *x, size_t n,
                         float *out) {
    const gllm_plan *p = &d->m->plan;
    const size_t first = kind == GLLM_BLOCK_EMBED ? 0
                         : kind == GLLM_BLOCK_HEAD ? p->n_steps - 2
                                                   : p->layer_steps[layer][kind == GLLM_BLOCK_FFN];
    const size_t last = kind == GLLM_BLOCK_EMBED       ? p->layer_steps[0][0]
                        : kind == GLLM_BLOCK_HEAD      ? p->n_steps
                        : kind == GLLM_BLOCK_ATTENTION ? p->layer_steps[layer][1]
                                                       : p->layer_steps[layer + 1][0];
    return gllm_cuda_block(&d->cm, first, last, tokens, x, n, out);
}

static gllm_status encoder_open(gllm_device *dev, const gllm_plan *p, const void *file, size_t file_size, const void *owned,
                                size_t owned_size, size_t max_len, gllm_encoder **out) {
    (void)max_len; /* attention reads the step's own K/V: no cache to size */
    gllm_encoder *e = calloc(1, sizeof *e);
    if (!e) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "encoder: no memory");
    gllm_status s = gllm_cuda_encoder_init(&e->e, &dev->c, p, file, file_size, owned, owned_size);
    if (s != GLLM_OK) return free(e), s;
    *out = e;
    return GLLM_OK;
}

static void encoder_close(gllm_encoder *e) {
    gllm_cuda_encoder_free(&e->e);
    free(e);
}

/* as many sequences a run as its launches take */
static gllm_status encode(gllm_encoder *e, const gllm_encoder_item *items, size_t n, int normalize, float *out) {
    const gllm_plan *p = e->e.p;
    const size_t width = gllm_plan_out_width(p, &p->steps[p->n_steps - 1]);
    gllm_status st = GLLM_OK;
    for (size_t first = 0, i = 0, rows = 0; i <= n && st == GLLM_OK; i++) {
        if (i < n && (i == first || rows + items[i].n <= e->e.run_rows)) {
            rows += items[i].n;
            continue;
        }
        st = gllm_cuda_encode(&e->e, items + first, i - first, normalize, out + first * width);
        first = i, rows = i < n ? items[i].n : 0;
    }
    return st;
}

const gllm_backend_ops gllm_cuda_backend = {
    .name = "cuda", .open = open_, .close = close_, .describe = describe, .enter = enter, .leave = leave,
    .decoder_open = decoder_open, .decoder_close = decoder_close, .kv_open = kv_open, .kv_close = kv_close, .step = step,
    .accept = accept, .cut = cut, .seq_close = seq_close, .swap_out = swap_out, .swap_in = swap_in, .pressure = pressure,
    .logits_read = logits_read, .sample = sample, .block = block,
    .encoder_open = encoder_open, .encoder_close = encoder_close, .encode = encode,
};
