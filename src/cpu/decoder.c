/* The CPU backend's decoder (src/model/llama.h): the model's plan run on the host. */
#include "cpu/decoder.h"
#include "core/error.h"

gllm_status gllm_cpu_forward(const gllm_llama *m, const gllm_plan *plan, const gllm_kv_pool *p, gllm_kv_seq *s,
                             const int32_t *tokens, size_t n, const int32_t *position, const int32_t *parent, int all,
                             float *logits) {
    if (!m) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: NULL model");
    return gllm_cpu_forward_seqs(m, plan ? plan : &m->plan, p, &(gllm_plan_seq){.s = s, .tokens = tokens, .n = n}, 1, position, parent, all, logits);
}

gllm_status gllm_cpu_forward_seqs(const gllm_llama *m, const gllm_plan *plan, const gllm_kv_pool *p, const gllm_plan_seq *seqs,
                                  size_t n_seqs, const int32_t *position, const int32_t *parent, int all, float *logits) {
    if (!m || !plan || !p || !seqs || !n_seqs || !logits) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: NULL or empty input");
    for (size_t b = 0; b < n_seqs; b++) {
        const gllm_kv_seq *s = seqs[b].s;
        const size_t n = seqs[b].n;
        if (!s || !seqs[b].tokens || !n) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: NULL or empty input");
        for (size_t c = 0; c < b; c++)
            if (seqs[c].s == s) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: a sequence twice in one batch");
        if (s->len + n > m->ctx) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: %zu positions exceed the context of %zu", s->len + n, m->ctx);
        if (s->len + n > s->n_pages * p->page_size)
            return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: KV cache holds %zu tokens, %zu needed", s->n_pages * p->page_size, s->len + n);
    }
    for (size_t i = 0; position && n_seqs == 1 && i < seqs[0].n; i++)
        if (position[i] < 0 || (size_t)position[i] >= m->ctx)
            return gllm_fail(GLLM_E_INVALID_ARGUMENT, "forward: position %d of token %zu outside the context of %zu", position[i], i, m->ctx);
    gllm_status st = gllm_cpu_plan_run(plan, 0, plan->n_steps, p, seqs, n_seqs, position, parent, NULL, all ? GLLM_RUN_ALL : 0, logits);
    for (size_t b = 0; b < n_seqs && st == GLLM_OK; b++) seqs[b].s->len += seqs[b].n;
    return st;
}

gllm_status gllm_cpu_head(const gllm_llama *m, const float *x, size_t n, float *logits) {
    return gllm_cpu_plan_run(&m->plan, m->plan.n_steps - 2, m->plan.n_steps, NULL, &(gllm_plan_seq){.n = n}, 1, NULL, NULL, x,
                             GLLM_RUN_ALL, logits);
}

gllm_status gllm_cpu_block(const gllm_llama *m, size_t layer, int ffn, float *x, size_t n) {
    if (!m || !x || !n || layer >= m->n_layers) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "block: bad layer or input");
    if (n > m->ctx) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "block: %zu tokens exceed the context of %zu", n, m->ctx);
    const size_t *ls = m->plan.layer_steps[layer];
    if (ffn)
        return gllm_cpu_plan_run(&m->plan, ls[1], m->plan.layer_steps[layer + 1][0], NULL, &(gllm_plan_seq){.n = n}, 1, NULL,
                                 NULL, x, 0, x);
    /* a fresh f32 cache of this one layer for positions 0 .. n-1 */
    gllm_kv_pool p;
    gllm_kv_seq s;
    gllm_status st = gllm_kv_pool_init(&p, GLLM_DTYPE_F32, 1, m->n_kv_heads, m->head_dim, 16, (n + 15) / 16);
    if (st != GLLM_OK) return st;
    p.first_layer = layer;
    if ((st = gllm_kv_seq_init(&s, &p, n)) == GLLM_OK) {
        if ((st = gllm_kv_reserve(&p, &s, n)) == GLLM_OK)
            st = gllm_cpu_plan_run(&m->plan, ls[0], ls[1], &p, &(gllm_plan_seq){.s = &s, .n = n}, 1, NULL, NULL, x, 0, x);
        gllm_kv_seq_release(&p, &s);
    }
    gllm_kv_pool_free(&p);
    return st;
}
