#include "model/bert.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/dispatch.h"
#include "core/error.h"
#include "format/json.h"
#include "format/mapfile.h"

/* a regular file's bytes (under 64 MiB), NUL-terminated; NULL for anything else */
static char *slurp(const char *path, size_t *len) {
    const void *data;
    size_t n;
    if (gllm_map_file(path, "BERT", &data, &n) != GLLM_OK) return NULL;
    char *b = n < ((size_t)64 << 20) ? malloc(n + 1) : NULL;
    if (b) memcpy(b, data, n), b[n] = 0, *len = n;
    gllm_unmap_file(data, n);
    return b;
}

/* a tensor by name (with or without a "bert." prefix), checked to be f32 of the given shape */
static const float *tensor(const gllm_bert *m, const char *name, uint64_t d0, uint64_t d1, gllm_status *st) {
    char alt[160];
    const gllm_st_tensor *t = gllm_st_find(&m->st, name);
    if (!t) snprintf(alt, sizeof alt, "bert.%s", name), t = gllm_st_find(&m->st, alt);
    if (*st != GLLM_OK) return NULL;
    if (!t) return *st = gllm_fail(GLLM_E_INVALID_ARGUMENT, "BERT: missing tensor %s", name), NULL;
    if (t->dtype != GLLM_DTYPE_F32 || t->dims[0] != d0 || (d1 ? t->n_dims != 2 || t->dims[1] != d1 : t->n_dims != 1)) {
        char is[96] = "", want[48];
        for (uint32_t i = 0; i < t->n_dims && i < 4; i++)
            snprintf(is + strlen(is), sizeof is - strlen(is), "%s%llu", i ? " " : "", (unsigned long long)t->dims[i]);
        d1 ? snprintf(want, sizeof want, "%llu %llu", (unsigned long long)d0, (unsigned long long)d1)
           : snprintf(want, sizeof want, "%llu", (unsigned long long)d0);
        const char *dt = gllm_dtype_name(t->dtype);
        return *st = gllm_fail(GLLM_E_UNSUPPORTED, "BERT: tensor %s is %s [%s], not f32 [%s]", name, dt ? dt : "?", is, want), NULL;
    }
    return t->data;
}

static gllm_status cfg_num(const gllm_json *j, const char *key, double *out) {
    const gllm_json_node *v = gllm_json_get(j, &j->node[0], key);
    if (!v || v->type != JSON_NUM) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "BERT config.json: %s missing", key);
    *out = v->num;
    return GLLM_OK;
}

static gllm_status open_gguf(const char *path, gllm_bert *m);

/* dir/name into path[1024]; a path that does not fit is an error, not a shorter path */
static gllm_status join(char *path, const char *dir, const char *name) {
    const int n = snprintf(path, 1024, "%s/%s", dir, name);
    return n >= 0 && n < 1024 ? GLLM_OK : gllm_fail(GLLM_E_INVALID_ARGUMENT, "BERT: a path too long (%zu bytes) for %s", strlen(dir), name);
}

/* dir/name parsed into j, its text in *text (the nodes' strings point into it); *text NULL
 * where there is no such file */
static gllm_status json_file(const char *dir, const char *name, char *path, char **text, gllm_json *j) {
    size_t len;
    gllm_status st = join(path, dir, name);
    *text = NULL;
    if (st != GLLM_OK || !(*text = slurp(path, &len))) return st;
    if ((st = gllm_json_parse(*text, len, j)) != GLLM_OK) free(*text), *text = NULL;
    return st;
}

/* a number >= 1 at key of the JSON object in dir/name, if the file and the key are there:
 * *out lowered to it */
static gllm_status json_limit(const char *dir, const char *name, const char *key, size_t *out) {
    char path[1024], *text;
    gllm_json j;
    gllm_status st = json_file(dir, name, path, &text, &j);
    if (st != GLLM_OK || !text) return st;
    const gllm_json_node *v = j.node[0].type == JSON_OBJ ? gllm_json_get(&j, &j.node[0], key) : NULL;
    if (v && v->type == JSON_NUM && !(v->num >= 1)) st = gllm_fail(GLLM_E_INVALID_ARGUMENT, "BERT: %s: %s = %g", path, key, v->num);
    else if (v && v->type == JSON_NUM && v->num < (double)*out) *out = (size_t)v->num;
    gllm_json_free(&j), free(text);
    return st;
}

/* tokenizer_config.json's do_lower_case (true without the file or the key): lowercase and strip
 * accents, or neither; strip_accents other than that is not supported */
static gllm_status hf_lowercase(const char *dir, int *lower) {
    char path[1024], *text;
    gllm_json j;
    gllm_status st = json_file(dir, "tokenizer_config.json", path, &text, &j);
    *lower = 1;
    if (st != GLLM_OK || !text) return st;
    const gllm_json_node *o = &j.node[0], *lc = o->type == JSON_OBJ ? gllm_json_get(&j, o, "do_lower_case") : NULL,
                         *sa = o->type == JSON_OBJ ? gllm_json_get(&j, o, "strip_accents") : NULL;
    if (lc && lc->type == JSON_BOOL) *lower = lc->num != 0;
    if (sa && sa->type == JSON_BOOL && (sa->num != 0) != *lower)
        st = gllm_fail(GLLM_E_UNSUPPORTED, "BERT: %s: strip_accents %s with do_lower_case %s (both or neither are supported)", path,
                       sa->num ? "true" : "false", *lower ? "true" : "false");
    gllm_json_free(&j), free(text);
    return st;
}

/* sentence-transformers' modules.json: a module after the pooling other than Normalize (a Dense
 * projection, ...) would make other vectors than ours */
static gllm_status hf_modules(const char *dir) {
    char path[1024], *text;
    gllm_json j;
    gllm_status st = json_file(dir, "modules.json", path, &text, &j);
    if (st != GLLM_OK || !text) return st;
    static const char *const known[] = {"sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                                        "sentence_transformers.models.Normalize"};
    const gllm_json_node *a = &j.node[0];
    if (a->type != JSON_ARR) st = gllm_fail(GLLM_E_INVALID_ARGUMENT, "BERT: %s is not a list", path);
    for (size_t i = 0; st == GLLM_OK && i < a->n; i++) {
        const gllm_json_node *m = gllm_json_at(&j, a, i), *type = m && m->type == JSON_OBJ ? gllm_json_get(&j, m, "type") : NULL;
        int ok = 0;
        for (size_t k = 0; type && k < 3; k++) ok |= gllm_json_is(type, known[k]);
        if (!ok)
            st = gllm_fail(GLLM_E_UNSUPPORTED, "BERT: %s: module %.*s (Transformer, Pooling and Normalize are supported)", path,
                           type && type->type == JSON_STR ? (int)(type->len > 120 ? 120 : type->len) : 1, type && type->type == JSON_STR ? type->s : "?");
    }
    gllm_json_free(&j), free(text);
    return st;
}

/* sentence-transformers' pooling (1_Pooling/config.json: one pooling_mode_* true); mean
 * without the file */
static gllm_status hf_pooling(const char *dir, gllm_pooling *out) {
    static const struct {
        const char *key;
        int kind; /* a gllm_pooling, or -1: a mode not supported */
    } modes[] = {{"pooling_mode_mean_tokens", GLLM_POOL_MEAN}, {"pooling_mode_cls_token", GLLM_POOL_CLS},
                 {"pooling_mode_lasttoken", GLLM_POOL_LAST}, {"pooling_mode_max_tokens", -1},
                 {"pooling_mode_mean_sqrt_len_tokens", -1}, {"pooling_mode_weightedmean_tokens", -1}};
    char path[1024], *text;
    gllm_json j;
    gllm_status st = json_file(dir, "1_Pooling/config.json", path, &text, &j);
    *out = GLLM_POOL_MEAN;
    if (st != GLLM_OK || !text) return st;
    int on = 0, kind = 0;
    const char *name = "";
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        const gllm_json_node *v = j.node[0].type == JSON_OBJ ? gllm_json_get(&j, &j.node[0], modes[i].key) : NULL;
        if (v && v->type == JSON_BOOL && v->num != 0) on++, kind = modes[i].kind, name = modes[i].key;
    }
    gllm_json_free(&j), free(text); /* the nodes' strings point into the text */
    if (on == 1 && kind < 0)
        return gllm_fail(GLLM_E_UNSUPPORTED, "BERT: %s: %s (mean_tokens, cls_token and lasttoken are supported)", path, name);
    if (on != 1) return gllm_fail(GLLM_E_UNSUPPORTED, "BERT: %s sets %d pooling modes (one is supported)", path, on);
    *out = (gllm_pooling)kind;
    return GLLM_OK;
}

gllm_status gllm_bert_open(const char *dir, gllm_bert *m) {
    gllm_status st = gllm_ensure_init();
    if (st != GLLM_OK) return st;
    memset(m, 0, sizeof *m);
    const size_t pl = strlen(dir);
    if (pl > 5 && !strcmp(dir + pl - 5, ".gguf")) return open_gguf(dir, m);
    m->mdt = m->edt = m->hdt = GLLM_DTYPE_F32;
    char path[1024];
    size_t len;
    if ((st = join(path, dir, "config.json")) != GLLM_OK) return st;
    char *cfg = slurp(path, &len);
    if (!cfg) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "BERT: cannot read %s", path);
    gllm_json j;
    const int parsed = (st = gllm_json_parse(cfg, len, &j)) == GLLM_OK;
    double v[8] = {0};
    static const char *const keys[] = {"num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
                                       "vocab_size", "max_position_embeddings", "type_vocab_size", "layer_norm_eps"};
    for (int i = 0; i < 8 && st == GLLM_OK; i++) { /* counts: whole numbers from 1; the epsilon: above 0 */
        st = cfg_num(&j, keys[i], &v[i]);
        if (st == GLLM_OK && (!(i < 7 ? v[i] >= 1 && v[i] == floor(v[i]) : v[i] > 0) || v[i] > 1e7))
            st = gllm_fail(GLLM_E_INVALID_ARGUMENT, "BERT config.json: %s = %g out of range", keys[i], v[i]);
    }
    const gllm_json_node *act = st == GLLM_OK ? gllm_json_get(&j, &j.node[0], "hidden_act") : NULL;
    if (st == GLLM_OK && act && !gllm_json_is(act, "gelu")) st = gllm_fail(GLLM_E_UNSUPPORTED, "BERT: hidden_act other than gelu");
    const gllm_json_node *pet = st == GLLM_OK ? gllm_json_get(&j, &j.node[0], "position_embedding_type") : NULL;
    if (st == GLLM_OK && pet && !gllm_json_is(pet, "absolute"))
        st = gllm_fail(GLLM_E_UNSUPPORTED, "BERT: position_embedding_type other than absolute");
    if (parsed) gllm_json_free(&j);
    free(cfg);
    if (st != GLLM_OK) return st;
    m->n_layers = (size_t)v[0], m->dim = (size_t)v[1], m->n_heads = (size_t)v[2], m->ffn = (size_t)v[3];
    m->vocab = (size_t)v[4], m->max_pos = (size_t)v[5], m->n_types = (size_t)v[6], m->eps = (float)v[7];
    m->head_dim = m->dim / m->n_heads;
    if (m->dim % m->n_heads || m->head_dim % 16 || m->head_dim > 256)
        return gllm_fail(GLLM_E_UNSUPPORTED, "BERT: hidden %zu over %zu heads (head dims: multiples of 16 up to 256)", m->dim, m->n_heads);
    if (m->max_pos < 3) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "BERT config.json: %zu positions (3 at least)", m->max_pos);
    int lower;
    /* sentence-transformers cuts texts at its max_seq_length, where it has one, else at the
     * tokenizer's model_max_length; never past the positions */
    size_t seq_len = SIZE_MAX, tok_len = SIZE_MAX;
    if ((st = hf_pooling(dir, &m->pooling)) != GLLM_OK || (st = hf_modules(dir)) != GLLM_OK || (st = hf_lowercase(dir, &lower)) != GLLM_OK ||
        (st = json_limit(dir, "sentence_bert_config.json", "max_seq_length", &seq_len)) != GLLM_OK ||
        (st = json_limit(dir, "tokenizer_config.json", "model_max_length", &tok_len)) != GLLM_OK)
        return st;
    m->max_len = seq_len != SIZE_MAX ? seq_len : tok_len;
    if (m->max_len > m->max_pos) m->max_len = m->max_pos;
    m->pair_len = tok_len < m->max_pos ? tok_len : m->max_pos;
    if (m->max_len < 3 || m->pair_len < 3)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "BERT: texts cut at %zu tokens (3 at least)", m->max_len < m->pair_len ? m->max_len : m->pair_len);
    if ((st = join(path, dir, "model.safetensors")) != GLLM_OK || (st = gllm_st_open(path, &m->st)) != GLLM_OK) return st;
    const size_t d = m->dim;
    m->word = tensor(m, "embeddings.word_embeddings.weight", m->vocab, d, &st);
    m->pos = tensor(m, "embeddings.position_embeddings.weight", m->max_pos, d, &st);
    m->type = tensor(m, "embeddings.token_type_embeddings.weight", m->n_types, d, &st);
    m->ln_w = tensor(m, "embeddings.LayerNorm.weight", d, 0, &st);
    m->ln_b = tensor(m, "embeddings.LayerNorm.bias", d, 0, &st);
    if (st == GLLM_OK && !(m->layers = calloc(m->n_layers, sizeof *m->layers))) st = gllm_fail(GLLM_E_OUT_OF_MEMORY, "BERT: no memory");
    for (size_t l = 0; l < m->n_layers && st == GLLM_OK; l++) {
        gllm_bert_layer *L = &m->layers[l];
        char n[128];
#define T(field, name, d0, d1) (snprintf(n, sizeof n, "encoder.layer.%zu.%s", l, name), L->field = tensor(m, n, d0, d1, &st))
        T(wq, "attention.self.query.weight", d, d), T(bq, "attention.self.query.bias", d, 0);
        T(wk, "attention.self.key.weight", d, d), T(bk, "attention.self.key.bias", d, 0);
        T(wv, "attention.self.value.weight", d, d), T(bv, "attention.self.value.bias", d, 0);
        T(wo, "attention.output.dense.weight", d, d), T(bo, "attention.output.dense.bias", d, 0);
        T(ln1_w, "attention.output.LayerNorm.weight", d, 0), T(ln1_b, "attention.output.LayerNorm.bias", d, 0);
        T(wi, "intermediate.dense.weight", m->ffn, d), T(bi, "intermediate.dense.bias", m->ffn, 0);
        T(wd, "output.dense.weight", d, m->ffn), T(bd, "output.dense.bias", d, 0);
        T(ln2_w, "output.LayerNorm.weight", d, 0), T(ln2_b, "output.LayerNorm.bias", d, 0);
#undef T
    }
    if (st == GLLM_OK && gllm_st_find(&m->st, "classifier.weight")) { /* a cross-encoder's head */
        const gllm_st_tensor *c = gllm_st_find(&m->st, "classifier.weight");
        m->n_labels = c->n_dims == 2 ? (size_t)c->dims[0] : 0;
        m->pool_w = tensor(m, "pooler.dense.weight", d, d, &st), m->pool_b = tensor(m, "pooler.dense.bias", d, 0, &st);
        m->cls_w = tensor(m, "classifier.weight", m->n_labels, d, &st);
        m->cls_b = tensor(m, "classifier.bias", m->n_labels, 0, &st);
    }
    if (st == GLLM_OK) st = join(path, dir, "vocab.txt");
    char *vocab = st == GLLM_OK ? slurp(path, &len) : NULL;
    if (st == GLLM_OK && !vocab) st = gllm_fail(GLLM_E_INVALID_ARGUMENT, "BERT: cannot read %s", path);
    if (st == GLLM_OK) st = gllm_tokenizer_wordpiece(vocab, len, lower, &m->tok);
    free(vocab);
    if (st != GLLM_OK) gllm_bert_close(m);
    return st;
}

/* ---- GGUF (llama.cpp's bert layout) ---- */

static const gllm_gguf_tensor *gt(const gllm_gguf *g, const char *name, int layer, uint64_t cols, uint64_t rows,
                                  gllm_status *st) {
    char full[96];
    if (layer >= 0) snprintf(full, sizeof full, "blk.%d.%s", layer, name);
    else snprintf(full, sizeof full, "%s", name);
    if (*st != GLLM_OK) return NULL;
    const gllm_gguf_tensor *t = gllm_gguf_tensor_find(g, full);
    if (!t) return *st = gllm_fail(GLLM_E_INVALID_ARGUMENT, "BERT GGUF: missing tensor %s", full), NULL;
    /* llama.cpp's writer drops a trailing dimension of 1: a [cols 1] matrix may be stored 1-D */
    if (t->dims[0] != cols || (rows ? t->n_dims > 2 || (t->n_dims == 2 ? t->dims[1] : 1) != rows : t->n_dims != 1))
        return *st = gllm_fail(GLLM_E_INVALID_ARGUMENT, "BERT GGUF: tensor %s is not [%llu %llu]", full,
                               (unsigned long long)cols, (unsigned long long)rows), NULL;
    if (!rows && t->dtype != GLLM_DTYPE_F32) return *st = gllm_fail(GLLM_E_UNSUPPORTED, "BERT GGUF: vector %s must be f32", full), NULL;
    return t;
}

static const float *vec(const gllm_gguf_tensor *t) { return t ? (const float *)t->data : NULL; }

static gllm_status open_gguf(const char *path, gllm_bert *m) {
    gllm_status st = gllm_gguf_open(path, &m->gguf);
    if (st != GLLM_OK) return st;
    const gllm_gguf *g = &m->gguf;
    gllm_str arch;
    if (gllm_gguf_str(g, "general.architecture", &arch) != GLLM_OK || arch.len != 4 || memcmp(arch.ptr, "bert", 4)) {
        gllm_bert_close(m);
        return gllm_fail(GLLM_E_UNSUPPORTED, "BERT GGUF: architecture is not bert");
    }
    uint64_t v[5];
    static const char *const keys[] = {"bert.block_count", "bert.embedding_length", "bert.attention.head_count",
                                       "bert.feed_forward_length", "bert.context_length"};
    for (int i = 0; i < 5 && st == GLLM_OK; i++)
        if ((st = gllm_gguf_u64(g, keys[i], &v[i])) == GLLM_OK && (!v[i] || v[i] > (1u << 24)))
            st = gllm_fail(GLLM_E_INVALID_ARGUMENT, "BERT GGUF: %s out of range", keys[i]);
    if (st == GLLM_OK) st = gllm_gguf_f32(g, "bert.attention.layer_norm_epsilon", &m->eps);
    if (st == GLLM_OK && !(m->eps > 0 && m->eps < INFINITY))
        st = gllm_fail(GLLM_E_INVALID_ARGUMENT, "BERT GGUF: bert.attention.layer_norm_epsilon = %g (a finite number above 0)", m->eps);
    uint64_t pooling = 1; /* llama.cpp's pooling types: 0 none, 1 mean, 2 cls, 3 last, 4 rank; mean for none and rank */
    if (st == GLLM_OK && gllm_gguf_find(g, "bert.pooling_type") && (st = gllm_gguf_u64(g, "bert.pooling_type", &pooling)) == GLLM_OK &&
        pooling > 4)
        st = gllm_fail(GLLM_E_UNSUPPORTED, "BERT GGUF: bert.pooling_type %llu (0 to 4)", (unsigned long long)pooling);
    m->pooling = pooling == 2 ? GLLM_POOL_CLS : pooling == 3 ? GLLM_POOL_LAST : GLLM_POOL_MEAN;
    if (st != GLLM_OK) return gllm_bert_close(m), st;
    m->n_layers = (size_t)v[0], m->dim = (size_t)v[1], m->n_heads = (size_t)v[2], m->ffn = (size_t)v[3], m->max_pos = (size_t)v[4];
    m->head_dim = m->dim / m->n_heads, m->max_len = m->pair_len = m->max_pos;
    if (m->max_pos < 3) st = gllm_fail(GLLM_E_INVALID_ARGUMENT, "BERT GGUF: %zu positions (3 at least)", m->max_pos);
    else if (m->dim % m->n_heads || m->head_dim % 16 || m->head_dim > 256)
        st = gllm_fail(GLLM_E_UNSUPPORTED, "BERT GGUF: hidden %zu over %zu heads", m->dim, m->n_heads);
    if (st != GLLM_OK) return gllm_bert_close(m), st; /* closed after the message, which reads m */
    const size_t d = m->dim;
    const gllm_gguf_tensor *emb = gllm_gguf_tensor_find(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2 || emb->dims[0] != d) return gllm_bert_close(m), gllm_fail(GLLM_E_INVALID_ARGUMENT, "BERT GGUF: token_embd.weight");
    m->vocab = (size_t)emb->dims[1], m->word = emb->data, m->edt = emb->dtype;
    const gllm_gguf_tensor *types = gllm_gguf_tensor_find(g, "token_types.weight");
    m->n_types = types ? types->n_dims == 2 ? (size_t)types->dims[1] : 1 : 0; /* one type: stored 1-D by llama.cpp */
    const gllm_gguf_tensor *pos = gt(g, "position_embd.weight", -1, d, m->max_pos, &st);
    if (m->n_types) types = gt(g, "token_types.weight", -1, d, m->n_types, &st);
    m->ln_w = vec(gt(g, "token_embd_norm.weight", -1, d, 0, &st)), m->ln_b = vec(gt(g, "token_embd_norm.bias", -1, d, 0, &st));
    /* position and type tables in f32 for the adds */
    if (st == GLLM_OK && !(m->owned = malloc((m->max_pos + m->n_types + 1) * d * sizeof(float))))
        st = gllm_fail(GLLM_E_OUT_OF_MEMORY, "BERT GGUF: no memory");
    if (st == GLLM_OK) {
        gllm_kernels()->dequantize[pos->dtype](pos->data, m->owned, m->max_pos * d); /* whole tables: rows are contiguous */
        if (m->n_types) gllm_kernels()->dequantize[types->dtype](types->data, m->owned + m->max_pos * d, m->n_types * d);
        if (!m->n_types) memset(m->owned + m->max_pos * d, 0, d * sizeof(float)), m->n_types = 1;
        m->pos = m->owned, m->type = m->owned + m->max_pos * d;
    }
    if (st == GLLM_OK && !(m->layers = calloc(m->n_layers, sizeof *m->layers))) st = gllm_fail(GLLM_E_OUT_OF_MEMORY, "BERT GGUF: no memory");
    for (size_t l = 0; l < m->n_layers && st == GLLM_OK; l++) {
        gllm_bert_layer *L = &m->layers[l];
        const int i = (int)l;
        const gllm_gguf_tensor *mats[6] = {gt(g, "attn_q.weight", i, d, d, &st), gt(g, "attn_k.weight", i, d, d, &st),
                                           gt(g, "attn_v.weight", i, d, d, &st), gt(g, "attn_output.weight", i, d, d, &st),
                                           gt(g, "ffn_up.weight", i, d, m->ffn, &st), gt(g, "ffn_down.weight", i, m->ffn, d, &st)};
        if (st != GLLM_OK) break;
        if (!l) m->mdt = mats[0]->dtype;
        for (int k = 0; k < 6; k++)
            if (mats[k]->dtype != m->mdt) st = gllm_fail(GLLM_E_UNSUPPORTED, "BERT GGUF: the layers' matrices must share one dtype");
        L->wq = mats[0]->data, L->wk = mats[1]->data, L->wv = mats[2]->data, L->wo = mats[3]->data, L->wi = mats[4]->data, L->wd = mats[5]->data;
        L->bq = vec(gt(g, "attn_q.bias", i, d, 0, &st)), L->bk = vec(gt(g, "attn_k.bias", i, d, 0, &st));
        L->bv = vec(gt(g, "attn_v.bias", i, d, 0, &st)), L->bo = vec(gt(g, "attn_output.bias", i, d, 0, &st));
        L->ln1_w = vec(gt(g, "attn_output_norm.weight", i, d, 0, &st)), L->ln1_b = vec(gt(g, "attn_output_norm.bias", i, d, 0, &st));
        L->bi = vec(gt(g, "ffn_up.bias", i, m->ffn, 0, &st)), L->bd = vec(gt(g, "ffn_down.bias", i, d, 0, &st));
        L->ln2_w = vec(gt(g, "layer_output_norm.weight", i, d, 0, &st)), L->ln2_b = vec(gt(g, "layer_output_norm.bias", i, d, 0, &st));
    }
    const gllm_gguf_tensor *cls = gllm_gguf_tensor_find(g, "cls.output.weight");
    if (st == GLLM_OK && cls) { /* rank pooling head: cls (pooler, tanh) and cls.output (classifier) */
        m->n_labels = cls->n_dims == 2 ? (size_t)cls->dims[1] : 1;
        const gllm_gguf_tensor *pw = gt(g, "cls.weight", -1, d, d, &st), *cw = gt(g, "cls.output.weight", -1, d, m->n_labels, &st);
        if (st == GLLM_OK && pw->dtype != cw->dtype) st = gllm_fail(GLLM_E_UNSUPPORTED, "BERT GGUF: head matrices of two dtypes");
        if (st == GLLM_OK) m->pool_w = pw->data, m->cls_w = cw->data, m->hdt = pw->dtype;
        m->pool_b = vec(gt(g, "cls.bias", -1, d, 0, &st)), m->cls_b = vec(gt(g, "cls.output.bias", -1, m->n_labels, 0, &st));
    }
    if (st == GLLM_OK) st = gllm_tokenizer_load(g, &m->tok);
    if (st == GLLM_OK && (gllm_tokenizer_cls(m->tok) < 0 || gllm_tokenizer_sep(m->tok) < 0)) /* [CLS] text [SEP] */
        st = gllm_fail(GLLM_E_UNSUPPORTED, "BERT GGUF: its tokenizer has no [CLS] and [SEP] (tokenizer.ggml.cls_token_id, "
                                           "seperator_token_id)");
    if (st != GLLM_OK) gllm_bert_close(m);
    return st;
}

void gllm_bert_close(gllm_bert *m) {
    gllm_tokenizer_free(m->tok);
    free(m->layers);
    free(m->owned);
    gllm_st_close(&m->st);
    gllm_gguf_close(&m->gguf);
    memset(m, 0, sizeof *m);
}

void gllm_bert_types(const gllm_bert *m, const int32_t *seq, size_t len, int pairs, int32_t *types) {
    const int32_t sep = gllm_tokenizer_sep(m->tok);
    for (size_t t = 0, type = 0; t < len; t++) {
        types[t] = type < m->n_types ? (int32_t)type : 0;
        if (pairs && seq[t] == sep) type = 1; /* the document starts after the first [SEP] */
    }
}

gllm_status gllm_bert_check(const gllm_bert *m, const int32_t *const *seqs, const size_t *lens, size_t n_seq, size_t *rows) {
    if (!m || !seqs || !lens) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "encoder: NULL argument");
    if (!n_seq) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "encoder: no sequences");
    *rows = 0;
    for (size_t i = 0; i < n_seq; i++) {
        if (!seqs[i]) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "encoder: sequence %zu is NULL", i);
        if (!lens[i]) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "encoder: sequence %zu is empty", i);
        if (lens[i] > m->max_pos) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "encoder: %zu tokens exceed the %zu positions", lens[i], m->max_pos);
        for (size_t t = 0; t < lens[i]; t++)
            if (seqs[i][t] < 0 || (size_t)seqs[i][t] >= m->vocab)
                return gllm_fail(GLLM_E_INVALID_ARGUMENT, "encoder: token id %d (sequence %zu) outside the vocabulary of %zu",
                                 seqs[i][t], i, m->vocab);
        *rows += lens[i];
    }
    return GLLM_OK;
}

gllm_status gllm_bert_plan(const gllm_bert *m, int rerank, gllm_plan *p) {
    memset(p, 0, sizeof *p);
    const size_t d = m->dim;
    p->width[BUF_X] = p->width[BUF_H] = p->width[BUF_Q] = p->width[BUF_K] = p->width[BUF_V] = d;
    p->width[BUF_A] = rerank && m->n_labels > d ? m->n_labels : d;
    p->width[BUF_F] = m->ffn;
    p->eps = m->eps, p->n_heads = m->n_heads, p->scale = 1.0f / sqrtf((float)m->head_dim), p->vocab = m->vocab;
    gllm_status s = gllm_plan_add(p, (gllm_step){.kind = STEP_EMBED, .out = BUF_X, .dtype = m->edt, .w = m->word, .n = m->vocab, .k = d});
    if (s == GLLM_OK)
        s = gllm_plan_add(p, (gllm_step){.kind = STEP_EMBED_NORM, .in = BUF_X, .out = BUF_X, .w = m->pos, .w2 = m->type, .b = m->ln_w,
                                         .b2 = m->ln_b, .k = d});
    for (size_t l = 0; l < m->n_layers && s == GLLM_OK; l++) {
        const gllm_bert_layer *L = &m->layers[l];
        const gllm_qkv_weights w = {.dtype = m->mdt, .wq = L->wq, .wk = L->wk, .wv = L->wv, .bq = L->bq, .bk = L->bk, .bv = L->bv};
        const gllm_step layer[] = {
            {.kind = STEP_QKV, .in = BUF_X, .out = BUF_Q, .qkv = w, .n = d, .k = d},
            {.kind = STEP_SELF_ATTN, .in = BUF_Q, .out = BUF_A},
            {.kind = STEP_MATMUL, .in = BUF_A, .out = BUF_H, .dtype = m->mdt, .w = L->wo, .b = L->bo, .n = d, .k = d},
            {.kind = STEP_ADD_LAYERNORM, .in = BUF_H, .out = BUF_X, .b = L->ln1_w, .b2 = L->ln1_b, .k = d},
            {.kind = STEP_FFN_UP, .in = BUF_X, .out = BUF_F, .ffn = GLLM_FFN_GELU, .dtype = m->mdt, .w = L->wi, .b = L->bi, .n = m->ffn, .k = d},
            {.kind = STEP_MATMUL, .in = BUF_F, .out = BUF_H, .dtype = m->mdt, .w = L->wd, .b = L->bd, .n = d, .k = m->ffn},
            {.kind = STEP_ADD_LAYERNORM, .in = BUF_H, .out = BUF_X, .b = L->ln2_w, .b2 = L->ln2_b, .k = d}};
        for (size_t i = 0; i < sizeof layer / sizeof *layer && s == GLLM_OK; i++) s = gllm_plan_add(p, layer[i]);
    }
    if (s == GLLM_OK) s = gllm_plan_add(p, (gllm_step){.kind = STEP_POOL, .in = BUF_X, .out = BUF_H, .pool = rerank ? GLLM_POOL_CLS : m->pooling, .k = d});
    if (rerank) { /* the classifier on tanh(pooler([CLS])) */
        const gllm_step head[] = {
            {.kind = STEP_MATMUL, .in = BUF_H, .out = BUF_Q, .dtype = m->hdt, .w = m->pool_w, .b = m->pool_b, .n = d, .k = d},
            {.kind = STEP_TANH, .in = BUF_Q, .out = BUF_Q, .k = d},
            {.kind = STEP_MATMUL, .in = BUF_Q, .out = BUF_A, .dtype = m->hdt, .w = m->cls_w, .b = m->cls_b, .n = m->n_labels, .k = d}};
        for (size_t i = 0; i < sizeof head / sizeof *head && s == GLLM_OK; i++) s = gllm_plan_add(p, head[i]);
    }
    if (s != GLLM_OK) gllm_plan_free(p);
    return s;
}
