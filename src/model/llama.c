#include "model/llama.h"
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"

static const gllm_gguf_tensor *tensor(const gllm_gguf *g, const char *name, int layer) {
    char full[96];
    if (layer >= 0) snprintf(full, sizeof full, "blk.%d.%s", layer, name);
    else snprintf(full, sizeof full, "%s", name);
    return gllm_gguf_tensor_find(g, full);
}

/* a matrix [rows][cols] (GGUF dims: cols innermost), or a vector [cols] */
static gllm_status expect(const gllm_gguf_tensor *t, const char *name, int layer, size_t cols, size_t rows, int f32) {
    if (!t) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "model: missing tensor %s (layer %d)", name, layer);
    const int ok = t->dims[0] == cols && (rows ? t->n_dims == 2 && t->dims[1] == rows : t->n_dims == 1);
    if (!ok)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "model: tensor %.*s has shape [%llu %llu], expected [%zu %zu]",
                         (int)t->name.len, t->name.ptr, (unsigned long long)t->dims[0],
                         (unsigned long long)(t->n_dims > 1 ? t->dims[1] : 0), cols, rows);
    if (f32 && t->dtype != GLLM_DTYPE_F32)
        return gllm_fail(GLLM_E_UNSUPPORTED, "model: tensor %.*s must be f32", (int)t->name.len, t->name.ptr);
    return GLLM_OK;
}

static gllm_status record(gllm_llama *m);

/* every tensor of the file is one the forward uses: another (an output bias, a new norm) would
 * change the model's results if ignored, so it is refused. attn_rot_embd (old files' copy of the
 * rotation frequencies) is the one llama.cpp also skips. */
static gllm_status all_used(const gllm_gguf *g, size_t n_layers) {
    static const char *const global[] = {"token_embd.weight", "output_norm.weight", "output.weight", "rope_freqs.weight"};
    static const char *const layer[] = {"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_q.bias",
                                        "attn_k.bias", "attn_v.bias", "attn_q_norm.weight", "attn_k_norm.weight",
                                        "attn_output.weight", "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight",
                                        "ffn_down.weight", "attn_rot_embd"};
    for (size_t t = 0; t < g->n_tensors; t++) {
        char name[96];
        const gllm_str *n = &g->tensors[t].name;
        snprintf(name, sizeof name, "%.*s", (int)(n->len < sizeof name ? n->len : sizeof name - 1), n->ptr);
        int used = 0, at = 0;
        unsigned long l = 0;
        for (size_t i = 0; i < sizeof global / sizeof *global; i++) used |= !strcmp(name, global[i]);
        if (!used && sscanf(name, "blk.%lu.%n", &l, &at) == 1 && at > 0 && l < n_layers && isdigit((unsigned char)name[4]))
            for (size_t i = 0; i < sizeof layer / sizeof *layer; i++) used |= !strcmp(name + at, layer[i]);
        if (!used) return gllm_fail(GLLM_E_UNSUPPORTED, "model: tensor %s is not one this architecture's forward uses (refused, not ignored)", name);
    }
    return GLLM_OK;
}

/* an optional number >= 0: <arch>.<key>, else dflt */
static gllm_status rope_num(const gllm_gguf *g, const char *arch, const char *key, float dflt, float *out) {
    char full[96];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    *out = dflt;
    if (!gllm_gguf_find(g, full)) return GLLM_OK;
    uint64_t n; /* a float, or an integer (gguf-py writes original_context_length as uint32) */
    if (gllm_gguf_f32(g, full, out) != GLLM_OK && gllm_gguf_u64(g, full, &n) == GLLM_OK) *out = (float)n;
    else if (gllm_gguf_f32(g, full, out) != GLLM_OK || !(*out >= 0) || !isfinite(*out))
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "model: %s is not a number >= 0", full);
    return GLLM_OK;
}

/* RoPE: <arch>.rope.freq_base; <arch>.rope.scaling.type/.factor (else the older .rope.scale_linear;
 * linear, also when the type is left out, as llama.cpp reads it; YaRN with its
 * .original_context_length, .yarn_beta_fast/slow, .yarn_ext_factor, as llama.cpp defaults them;
 * the betas as the file gives them, as Hugging Face reads them, where llama.cpp keeps 32 and 1
 * for these architectures);
 * .rope.scaling.attn_factor, q and k's magnitude under any scaling; Llama 3.1+ scaling as
 * per-pair factors (rope_freqs.weight). Other scalings (LongRoPE, ...): refused, never ignored. */
static gllm_status rope_cfg(const gllm_gguf *g, const char *arch, size_t rot, size_t head_dim, size_t ctx, gllm_rope_cfg *c,
                            float *factors) {
    char key[96];
    *c = (gllm_rope_cfg){.base = 10000.0f, .linear = 1.0f};
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    if (gllm_gguf_find(g, key) && (gllm_gguf_f32(g, key, &c->base) || !(c->base > 1.0f) || !isfinite(c->base)))
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "model: %s is not a number > 1", key);
    gllm_str type = {"linear", 6};
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (gllm_gguf_find(g, key) && gllm_gguf_str(g, key, &type)) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "model: %s is not a string", key);
    const int none = type.len == 4 && !memcmp(type.ptr, "none", 4), linear = type.len == 6 && !memcmp(type.ptr, "linear", 6),
              yarn = type.len == 4 && !memcmp(type.ptr, "yarn", 4);
    if (!none && !linear && !yarn)
        return gllm_fail(GLLM_E_UNSUPPORTED, "model: RoPE scaling '%.*s' (none, linear, yarn and rope_freqs.weight are supported)",
                         (int)(type.len > 40 ? 40 : type.len), type.ptr);
    gllm_status s;
    float factor; /* the scaling factor, under its older name where the newer is absent */
    snprintf(key, sizeof key, "%s.rope.scaling.factor", arch);
    if ((s = rope_num(g, arch, gllm_gguf_find(g, key) ? "rope.scaling.factor" : "rope.scale_linear", yarn ? 0 : 1, &factor)) ||
        (s = rope_num(g, arch, "rope.scaling.attn_factor", 1, &c->attn_factor)))
        return s;
    if (!(c->attn_factor > 0)) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "model: %s.rope.scaling.attn_factor 0", arch);
    if (yarn) {
        float log_mul;
        c->yarn_factor = factor;
        if ((s = rope_num(g, arch, "rope.scaling.original_context_length", (float)ctx, &c->yarn_orig_ctx)) ||
            (s = rope_num(g, arch, "rope.scaling.yarn_beta_fast", 32, &c->yarn_beta_fast)) ||
            (s = rope_num(g, arch, "rope.scaling.yarn_beta_slow", 1, &c->yarn_beta_slow)) ||
            (s = rope_num(g, arch, "rope.scaling.yarn_ext_factor", 1, &c->yarn_ext_factor)) ||
            (s = rope_num(g, arch, "rope.scaling.yarn_log_multiplier", 0, &log_mul)))
            return s;
        if (!(c->yarn_factor > 0) || !(c->yarn_orig_ctx > 0) || !(c->yarn_beta_fast > 0) || !(c->yarn_beta_slow > 0))
            return gllm_fail(GLLM_E_INVALID_ARGUMENT, "model: YaRN factor %g, original context %g, betas %g and %g (all > 0)",
                             c->yarn_factor, c->yarn_orig_ctx, c->yarn_beta_fast, c->yarn_beta_slow);
        if (log_mul != 0) return gllm_fail(GLLM_E_UNSUPPORTED, "model: YaRN with a log multiplier");
    }
    if (linear) c->linear = factor;
    if (linear && !(c->linear > 0)) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "model: %s.rope.scaling.factor 0", arch);
    /* the magnitude goes into the attention's scale (its square), exact when every dimension rotates */
    if (gllm_rope_mscale(c) != 1.0 && rot != head_dim)
        return gllm_fail(GLLM_E_UNSUPPORTED, "model: RoPE magnitude %g (YaRN, attn_factor) with partial rotary dimensions", gllm_rope_mscale(c));
    const gllm_gguf_tensor *f = tensor(g, "rope_freqs.weight", -1);
    if (f) {
        if ((s = expect(f, "rope_freqs.weight", -1, rot / 2, 0, 1))) return s;
        memcpy(factors, f->data, rot / 2 * sizeof(float)); /* a copy: the file's may be unaligned */
        for (size_t i = 0; i < rot / 2; i++)
            if (!(factors[i] > 0) || !isfinite(factors[i]))
                return gllm_fail(GLLM_E_INVALID_ARGUMENT, "model: rope_freqs.weight[%zu] = %g, not a number > 0", i, factors[i]);
        c->factors = factors;
    }
    return GLLM_OK;
}

static gllm_status hparam(const gllm_gguf *g, const char *arch, const char *key, size_t *out, int required) {
    char full[96];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    uint64_t v;
    if (gllm_gguf_u64(g, full, &v) != GLLM_OK || !v || v > (1u << 30))
        return required ? gllm_fail(GLLM_E_INVALID_ARGUMENT, "model: %s missing or out of range", full) : GLLM_E_INVALID_ARGUMENT;
    *out = (size_t)v;
    return GLLM_OK;
}

gllm_status gllm_llama_load(const gllm_gguf *g, gllm_llama *m) {
    memset(m, 0, sizeof *m);
    gllm_str a;
    if (gllm_gguf_str(g, "general.architecture", &a) != GLLM_OK) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "model: no general.architecture");
    char arch[16];
    if (a.len >= sizeof arch) return gllm_fail(GLLM_E_UNSUPPORTED, "model: architecture '%.*s'", (int)(a.len > 40 ? 40 : a.len), a.ptr);
    memcpy(arch, a.ptr, a.len), arch[a.len] = 0;
    if (strcmp(arch, "llama") && strcmp(arch, "qwen2") && strcmp(arch, "qwen3"))
        return gllm_fail(GLLM_E_UNSUPPORTED, "model: architecture '%s' (llama, qwen2, qwen3 are supported)", arch);
    m->neox = strcmp(arch, "llama") != 0;
    gllm_status s;
    if ((s = hparam(g, arch, "block_count", &m->n_layers, 1)) || (s = hparam(g, arch, "embedding_length", &m->dim, 1)) ||
        (s = hparam(g, arch, "attention.head_count", &m->n_heads, 1)) ||
        (s = hparam(g, arch, "feed_forward_length", &m->ffn, 1)) || (s = hparam(g, arch, "context_length", &m->ctx, 1)))
        return s;
    if (hparam(g, arch, "attention.head_count_kv", &m->n_kv_heads, 0)) m->n_kv_heads = m->n_heads;
    if (hparam(g, arch, "attention.key_length", &m->head_dim, 0)) m->head_dim = m->dim / m->n_heads;
    if (hparam(g, arch, "rope.dimension_count", &m->rot, 0)) m->rot = m->head_dim;
    if (m->n_heads % m->n_kv_heads || m->rot > m->head_dim || m->rot % 2 || m->rot > 512 || m->head_dim % 16)
        return gllm_fail(GLLM_E_UNSUPPORTED, "model: %zu heads / %zu KV heads, head dim %zu, rotary %zu", m->n_heads,
                         m->n_kv_heads, m->head_dim, m->rot);
    char key[96];
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    if (gllm_gguf_f32(g, key, &m->eps) != GLLM_OK) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "model: %s missing", key);
    if (!(m->eps > 0 && m->eps < INFINITY)) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "model: %s = %g (a finite number above 0)", key, m->eps);
    if ((s = rope_cfg(g, arch, m->rot, m->head_dim, m->ctx, &m->rope, m->rope_factors))) return s;
    gllm_rope_freqs(&m->rope, m->rot, m->inv_freq);
    m->tok_embd = tensor(g, "token_embd.weight", -1);
    if (!m->tok_embd || m->tok_embd->n_dims != 2 || m->tok_embd->dims[0] != m->dim)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "model: token_embd.weight missing or not [%zu x vocab]", m->dim);
    m->vocab = (size_t)m->tok_embd->dims[1];
    m->out_norm = tensor(g, "output_norm.weight", -1);
    m->output = tensor(g, "output.weight", -1);
    if (!m->output) m->output = m->tok_embd; /* tied */
    if ((s = expect(m->out_norm, "output_norm.weight", -1, m->dim, 0, 1)) ||
        (s = expect(m->output, "output.weight", -1, m->dim, m->vocab, 0)))
        return s;
    if (!(m->layers = calloc(m->n_layers, sizeof *m->layers))) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "model: no memory");
    const size_t q = m->n_heads * m->head_dim, kv = m->n_kv_heads * m->head_dim;
    for (size_t l = 0; l < m->n_layers; l++) {
        gllm_llama_layer *L = &m->layers[l];
        const int i = (int)l;
#define T(field, name) L->field = tensor(g, name, i)
        T(attn_norm, "attn_norm.weight"), T(wq, "attn_q.weight"), T(wk, "attn_k.weight"), T(wv, "attn_v.weight");
        T(bq, "attn_q.bias"), T(bk, "attn_k.bias"), T(bv, "attn_v.bias"), T(q_norm, "attn_q_norm.weight");
        T(k_norm, "attn_k_norm.weight"), T(wo, "attn_output.weight"), T(ffn_norm, "ffn_norm.weight");
        T(w_gate, "ffn_gate.weight"), T(w_up, "ffn_up.weight"), T(w_down, "ffn_down.weight");
#undef T
        if ((s = expect(L->attn_norm, "attn_norm.weight", i, m->dim, 0, 1)) || (s = expect(L->wq, "attn_q.weight", i, m->dim, q, 0)) ||
            (s = expect(L->wk, "attn_k.weight", i, m->dim, kv, 0)) || (s = expect(L->wv, "attn_v.weight", i, m->dim, kv, 0)) ||
            (s = expect(L->wo, "attn_output.weight", i, q, m->dim, 0)) ||
            (s = expect(L->ffn_norm, "ffn_norm.weight", i, m->dim, 0, 1)) ||
            (s = expect(L->w_gate, "ffn_gate.weight", i, m->dim, m->ffn, 0)) ||
            (s = expect(L->w_up, "ffn_up.weight", i, m->dim, m->ffn, 0)) ||
            (s = expect(L->w_down, "ffn_down.weight", i, m->ffn, m->dim, 0)) ||
            /* optional sets, all or none: Q/K/V biases (Qwen2), Q/K norms (Qwen3) */
            ((L->bq || L->bk || L->bv) &&
             ((s = expect(L->bq, "attn_q.bias", i, q, 0, 1)) || (s = expect(L->bk, "attn_k.bias", i, kv, 0, 1)) ||
              (s = expect(L->bv, "attn_v.bias", i, kv, 0, 1)))) ||
            ((L->q_norm || L->k_norm) && ((s = expect(L->q_norm, "attn_q_norm.weight", i, m->head_dim, 0, 1)) ||
                                          (s = expect(L->k_norm, "attn_k_norm.weight", i, m->head_dim, 0, 1))))) {
            gllm_llama_free(m);
            return s;
        }
        if (L->wq->dtype != L->wk->dtype || L->wq->dtype != L->wv->dtype || L->w_gate->dtype != L->w_up->dtype) {
            gllm_llama_free(m);
            return gllm_fail(GLLM_E_UNSUPPORTED, "model: layer %d mixes dtypes within Q/K/V or gate/up", i);
        }
    }
    if ((s = all_used(g, m->n_layers)) != GLLM_OK || (s = record(m)) != GLLM_OK) gllm_llama_free(m);
    return s;
}

void gllm_llama_free(gllm_llama *m) {
    gllm_plan_free(&m->plan);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

#define F32(t) ((const float *)(t)->data)

/* the forward as a plan: embed; per layer x += attn(norm(x)), x += ffn(norm(x)); norm; head */
static gllm_status record(gllm_llama *m) {
    gllm_plan *p = &m->plan;
    const size_t d = m->dim, q = m->n_heads * m->head_dim;
    p->width[BUF_X] = d, p->width[BUF_H] = d > q ? d : q, p->width[BUF_Q] = q, p->width[BUF_A] = q;
    p->width[BUF_F] = m->ffn;
    p->eps = m->eps, p->n_heads = m->n_heads, p->rot = m->rot, p->neox = m->neox, p->inv_freq = m->inv_freq;
    const double ms = gllm_rope_mscale(&m->rope); /* YaRN's magnitude of q and k: q.k times its square */
    p->scale = (float)(ms * ms / sqrt((double)m->head_dim)), p->vocab = m->vocab, p->n_layers = m->n_layers;
    if (!(p->layer_steps = calloc(m->n_layers + 1, sizeof *p->layer_steps))) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "plan: no memory");
    gllm_status s = gllm_plan_add(p, (gllm_step){.kind = STEP_EMBED, .out = BUF_X, .dtype = m->tok_embd->dtype,
                                                  .w = m->tok_embd->data, .n = m->vocab, .k = d});
    for (size_t l = 0; l < m->n_layers && s == GLLM_OK; l++) {
        const gllm_llama_layer *L = &m->layers[l];
        const gllm_qkv_weights w = {.dtype = L->wq->dtype, .wq = L->wq->data, .wk = L->wk->data, .wv = L->wv->data,
                                    .bq = L->bq ? F32(L->bq) : NULL, .bk = L->bk ? F32(L->bk) : NULL,
                                    .bv = L->bv ? F32(L->bv) : NULL, .q_norm = L->q_norm ? F32(L->q_norm) : NULL,
                                    .k_norm = L->k_norm ? F32(L->k_norm) : NULL, .norm_eps = m->eps};
        p->layer_steps[l][0] = p->n_steps;
        const gllm_step attn[] = {
            {.kind = STEP_RMSNORM, .in = BUF_X, .out = BUF_H, .b = F32(L->attn_norm), .k = d},
            {.kind = STEP_QKV_ROPE, .layer = l, .in = BUF_H, .out = BUF_Q, .qkv = w, .n = m->n_kv_heads * m->head_dim, .k = d},
            {.kind = STEP_ATTN, .layer = l, .in = BUF_Q, .out = BUF_A},
            {.kind = STEP_MATMUL, .in = BUF_A, .out = BUF_H, .dtype = L->wo->dtype, .w = L->wo->data, .n = d, .k = q},
            {.kind = STEP_ADD, .in = BUF_H, .out = BUF_X, .k = d}};
        for (size_t i = 0; i < 5 && s == GLLM_OK; i++) s = gllm_plan_add(p, attn[i]);
        p->layer_steps[l][1] = p->n_steps;
        const gllm_step ffn[] = {
            {.kind = STEP_RMSNORM, .in = BUF_X, .out = BUF_H, .b = F32(L->ffn_norm), .k = d},
            {.kind = STEP_FFN_UP, .in = BUF_H, .out = BUF_F, .ffn = GLLM_FFN_SILU_GLU, .dtype = L->w_gate->dtype,
             .w = L->w_gate->data, .w2 = L->w_up->data, .n = m->ffn, .k = d},
            {.kind = STEP_MATMUL, .in = BUF_F, .out = BUF_H, .dtype = L->w_down->dtype, .w = L->w_down->data, .n = d, .k = m->ffn},
            {.kind = STEP_ADD, .in = BUF_H, .out = BUF_X, .k = d}};
        for (size_t i = 0; i < 4 && s == GLLM_OK; i++) s = gllm_plan_add(p, ffn[i]);
    }
    p->layer_steps[m->n_layers][0] = p->n_steps;
    if (s == GLLM_OK) s = gllm_plan_add(p, (gllm_step){.kind = STEP_RMSNORM, .in = BUF_X, .out = BUF_H, .b = F32(m->out_norm), .k = d});
    if (s == GLLM_OK)
        s = gllm_plan_add(p, (gllm_step){.kind = STEP_HEAD, .in = BUF_H, .dtype = m->output->dtype, .w = m->output->data,
                                         .n = m->vocab, .k = d});
    return s;
}
