#include "text/tokenizer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "text/unicode.h"

/* ---- a string -> id hash map (open addressing, FNV-1a) -------------------------- */

typedef struct {
    int32_t *slot; /* id, or -1 */
    size_t mask;
    const gllm_str *keys;
} strmap;

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* keys[i] -> i; of keys given twice the last wins (a vocabulary's ids, as llama.cpp and Hugging
 * Face map them), or the first (first_wins: BPE merges, the earlier the higher ranked) */
static int strmap_build(strmap *m, const gllm_str *keys, size_t n, int first_wins) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    m->mask = cap - 1, m->keys = keys;
    if (!(m->slot = malloc(cap * sizeof(int32_t)))) return 0;
    memset(m->slot, 0xff, cap * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) {
        size_t h = fnv(keys[i].ptr, keys[i].len) & m->mask;
        while (m->slot[h] >= 0) {
            const gllm_str *k = &keys[m->slot[h]];
            if (k->len == keys[i].len && !memcmp(k->ptr, keys[i].ptr, k->len)) break;
            h = (h + 1) & m->mask;
        }
        if (m->slot[h] < 0 || !first_wins) m->slot[h] = (int32_t)i;
    }
    return 1;
}

static int32_t strmap_get(const strmap *m, const char *s, size_t n) {
    size_t h = fnv(s, n) & m->mask;
    for (; m->slot[h] >= 0; h = (h + 1) & m->mask) {
        const gllm_str *k = &m->keys[m->slot[h]];
        if (k->len == n && !memcmp(k->ptr, s, n)) return m->slot[h];
    }
    return -1;
}

/* ---- the tokenizer ---------------------------------------------------------------- */

struct gllm_tokenizer {
    gllm_tok_kind kind;
    size_t n;
    gllm_str *tok;      /* into arena */
    char *arena;
    float *score;       /* SPM */
    strmap vocab;
    gllm_str *merge;    /* BPE: "a b" */
    size_t n_merge;
    strmap merges;
    int32_t bos, eos, unk, cls, sep;
    uint8_t *type;         /* per token, its type (TT_*: GGUF's token_type; all normal where the file gives none) */
    int32_t *special;      /* the control, user-defined and unknown tokens, longest text first */
    size_t n_special;
    int32_t eog[32];       /* the tokens that end generation: eos, eot, eom, and those of eog_texts */
    int n_eog;
    int space_prefix;      /* SPM: each text piece starts with a space (tokenizer.ggml.add_space_prefix) */
    int cased;             /* WPM: text kept as written (do_lower_case false), not lowercased without accents */
    int add_bos;           /* prompts start with bos: tokenizer.ggml.add_bos_token, else the family's default */
    enum { PRE_GPT2, PRE_SMOLLM, PRE_LLAMA3, PRE_QWEN2, PRE_OTHER } pre; /* BPE: the pre-tokeniser */
    char pre_name[32];     /* tokenizer.ggml.pre, for the error a PRE_OTHER text gets */
    int32_t byte_tok[256]; /* SPM: <0xXX>; BPE: the token of each mapped byte */
    uint32_t byte_cp[256]; /* BPE: byte -> code point (GPT-2's printable mapping) */
    int16_t cp_byte[324];  /* BPE: and back (the mapped code points are below 324); -1: none */
};

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static int32_t special_id(const gllm_gguf *g, const char *key, size_t n_vocab) {
    uint64_t v;
    return gllm_gguf_find(g, key) && gllm_gguf_u64(g, key, &v) == GLLM_OK && v < n_vocab ? (int32_t)v : -1;
}

static gllm_status load_strs(const gllm_gguf *g, const char *key, gllm_str **out, size_t *n, char **arena) {
    const gllm_gguf_kv *kv = gllm_gguf_find(g, key);
    if (!kv || kv->type != GGUF_ARRAY || kv->arr_type != GGUF_STRING || !kv->arr_n)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "tokenizer: %s missing or not a string array", key);
    gllm_str *s = malloc(kv->arr_n * sizeof *s);
    if (!s) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "tokenizer: no memory");
    gllm_status st = gllm_gguf_arr_strs(g, kv, s);
    size_t bytes = 0;
    for (uint64_t i = 0; st == GLLM_OK && i < kv->arr_n; i++) bytes += s[i].len;
    char *a = st == GLLM_OK ? malloc(bytes + 1) : NULL;
    if (!a) {
        free(s);
        return st != GLLM_OK ? st : gllm_fail(GLLM_E_OUT_OF_MEMORY, "tokenizer: no memory");
    }
    for (uint64_t i = 0, off = 0; i < kv->arr_n; off += s[i].len, i++) {
        memcpy(a + off, s[i].ptr, s[i].len);
        s[i].ptr = a + off;
    }
    *out = s, *n = (size_t)kv->arr_n, *arena = a;
    return GLLM_OK;
}

void gllm_tokenizer_free(gllm_tokenizer *t) {
    if (!t) return;
    free(t->tok), free(t->arena), free(t->score), free(t->vocab.slot), free(t->type), free(t->special);
    if (t->merge) free((char *)t->merge[0].ptr);
    free(t->merge), free(t->merges.slot);
    free(t);
}

/* frees t after the message (built from t's fields) is set */
static gllm_status drop(gllm_tokenizer *t, gllm_status s) {
    gllm_tokenizer_free(t);
    return s;
}

/* the texts of tokens that end a turn, whatever the vocabulary's token types say (llama.cpp's
 * list: conversions have left some of them normal tokens) */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
    "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>",
    "<eos>", "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~[",
};

/* the fill-in-the-middle tokens: the id the key gives, else the first of the texts the
 * vocabulary has (then a control token); the last three end generation (llama.cpp's rules) */
static const struct {
    const char *key;
    int eog;
    const char *texts[8];
} fim[] = {
    {"tokenizer.ggml.fim_pre_token_id", 0,
     {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>"}},
    {"tokenizer.ggml.fim_suf_token_id", 0,
     {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>"}},
    {"tokenizer.ggml.fim_mid_token_id", 0,
     {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>"}},
    {"tokenizer.ggml.fim_pad_token_id", 1, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}},
    {"tokenizer.ggml.fim_rep_token_id", 1, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}},
    {"tokenizer.ggml.fim_sep_token_id", 1, {"<|file_sep|>"}},
};

static void add_eog(gllm_tokenizer *t, int32_t id) {
    if (id < 0 || gllm_tokenizer_is_eog(t, id) || t->n_eog == sizeof t->eog / sizeof *t->eog) return;
    t->eog[t->n_eog++] = id;
}

int gllm_tokenizer_is_eog(const gllm_tokenizer *t, int32_t id) {
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return 1;
    return 0;
}

static int is_special(const gllm_tokenizer *t, size_t i) {
    return t->type[i] == TT_CONTROL || t->type[i] == TT_USER_DEFINED || t->type[i] == TT_UNKNOWN; /* every tokenizer has types */
}

static int cmp_u64(const void *a, const void *b) {
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* the tokens text is split on before tokenizing (control, user-defined, unknown): longest text
 * first, then smallest id */
static gllm_status list_specials(gllm_tokenizer *t) {
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++) n += t->tok[i].len && is_special(t, i);
    uint64_t *key = malloc((n ? n : 1) * sizeof(uint64_t));
    if (!key || !(t->special = malloc((n ? n : 1) * sizeof(int32_t)))) return free(key), gllm_fail(GLLM_E_OUT_OF_MEMORY, "tokenizer: no memory");
    for (size_t i = 0, k = 0; i < t->n; i++)
        if (t->tok[i].len && is_special(t, i)) key[k++] = (uint64_t)(UINT32_MAX - (t->tok[i].len < UINT32_MAX ? t->tok[i].len : UINT32_MAX)) << 32 | i;
    qsort(key, n, sizeof(uint64_t), cmp_u64);
    for (size_t k = 0; k < n; k++) t->special[k] = (int32_t)(key[k] & UINT32_MAX);
    t->n_special = n;
    free(key);
    return GLLM_OK;
}

gllm_status gllm_tokenizer_load(const gllm_gguf *g, gllm_tokenizer **out) {
    *out = NULL;
    gllm_str model;
    if (gllm_gguf_str(g, "tokenizer.ggml.model", &model) != GLLM_OK) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "tokenizer: no tokenizer.ggml.model");
    gllm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "tokenizer: no memory");
#define IS(s) (model.len == strlen(s) && !memcmp(model.ptr, s, model.len))
    if (IS("llama")) t->kind = GLLM_TOK_SPM;
    else if (IS("gpt2")) t->kind = GLLM_TOK_BPE;
    else if (IS("bert")) t->kind = GLLM_TOK_WPM;
    else {
        free(t);
        return gllm_fail(GLLM_E_UNSUPPORTED, "tokenizer: model '%.*s' (llama, gpt2 and bert are supported)", (int)(model.len > 64 ? 64 : model.len), model.ptr);
    }
#undef IS
    gllm_status st = load_strs(g, "tokenizer.ggml.tokens", &t->tok, &t->n, &t->arena);
    if (st != GLLM_OK) return free(t), st;
    if (!strmap_build(&t->vocab, t->tok, t->n, 0)) return drop(t, gllm_fail(GLLM_E_OUT_OF_MEMORY, "tokenizer: no memory"));
    t->bos = special_id(g, "tokenizer.ggml.bos_token_id", t->n), t->eos = special_id(g, "tokenizer.ggml.eos_token_id", t->n);
    t->unk = special_id(g, "tokenizer.ggml.unknown_token_id", t->n), t->cls = special_id(g, "tokenizer.ggml.cls_token_id", t->n);
    t->sep = special_id(g, "tokenizer.ggml.seperator_token_id", t->n);
    if (t->kind == GLLM_TOK_WPM) { /* WordPiece builds [CLS] a [SEP] b [SEP]: ids not given are BERT's own tokens */
        if (t->unk < 0) t->unk = strmap_get(&t->vocab, "[UNK]", 5);
        if (t->cls < 0) t->cls = strmap_get(&t->vocab, "[CLS]", 5);
        if (t->sep < 0) t->sep = strmap_get(&t->vocab, "[SEP]", 5);
        if (t->unk < 0 || t->cls < 0 || t->sep < 0)
            return drop(t, gllm_fail(GLLM_E_INVALID_ARGUMENT, "tokenizer: a WordPiece vocabulary without unknown, cls and seperator ids or [UNK], [CLS] and [SEP]"));
    }
    const gllm_gguf_kv *ty = gllm_gguf_find(g, "tokenizer.ggml.token_type");
    if (ty && (ty->type != GGUF_ARRAY || ty->arr_type != GGUF_I32 || ty->arr_n != t->n))
        return drop(t, gllm_fail(GLLM_E_INVALID_ARGUMENT, "tokenizer: token_type not %zu int32", t->n));
    if (!(t->type = malloc(t->n))) return drop(t, gllm_fail(GLLM_E_OUT_OF_MEMORY, "tokenizer: no memory"));
    for (size_t i = 0; i < t->n; i++) { /* none given: every token normal */
        int32_t v = TT_NORMAL;
        if (ty) memcpy(&v, ty->val + 4 * i, 4);
        t->type[i] = v >= TT_NORMAL && v <= TT_BYTE ? (uint8_t)v : TT_NORMAL;
    }
    add_eog(t, t->eos), add_eog(t, special_id(g, "tokenizer.ggml.eot_token_id", t->n));
    add_eog(t, special_id(g, "tokenizer.ggml.eom_token_id", t->n));
    for (size_t i = 0; i < sizeof eog_texts / sizeof *eog_texts; i++) { /* llama.cpp's rule: these end turns, and are control tokens */
        const int32_t id = strmap_get(&t->vocab, eog_texts[i], strlen(eog_texts[i]));
        if (id >= 0) add_eog(t, id), t->type[id] = TT_CONTROL;
    }
    for (size_t k = 0; k < sizeof fim / sizeof *fim; k++) { /* the fill-in-the-middle tokens: by id, else by text */
        int32_t id = special_id(g, fim[k].key, t->n);
        for (size_t i = 0; id < 0 && i < sizeof fim[k].texts / sizeof *fim[k].texts && fim[k].texts[i]; i++)
            if ((id = strmap_get(&t->vocab, fim[k].texts[i], strlen(fim[k].texts[i]))) >= 0) t->type[id] = TT_CONTROL;
        if (fim[k].eog) add_eog(t, id);
    }
    if ((st = list_specials(t)) != GLLM_OK) return drop(t, st);
    const gllm_gguf_kv *sp = gllm_gguf_find(g, "tokenizer.ggml.add_space_prefix");
    t->space_prefix = sp && sp->type == GGUF_BOOL ? sp->val[0] != 0 : 1;
    if (t->kind == GLLM_TOK_SPM) {
        const gllm_gguf_kv *sc = gllm_gguf_find(g, "tokenizer.ggml.scores");
        if (!sc || sc->type != GGUF_ARRAY || sc->arr_type != GGUF_F32 || sc->arr_n != t->n)
            return drop(t, gllm_fail(GLLM_E_INVALID_ARGUMENT, "tokenizer: scores missing or not %zu floats", t->n));
        if (!(t->score = malloc(t->n * sizeof(float)))) return drop(t, gllm_fail(GLLM_E_OUT_OF_MEMORY, "no memory"));
        memcpy(t->score, sc->val, t->n * sizeof(float));
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            t->byte_tok[b] = strmap_get(&t->vocab, name, 6);
        }
    } else if (t->kind == GLLM_TOK_BPE) {
        char *arena;
        st = load_strs(g, "tokenizer.ggml.merges", &t->merge, &t->n_merge, &arena);
        if (st != GLLM_OK) return drop(t, st);
        if (!strmap_build(&t->merges, t->merge, t->n_merge, 1)) return drop(t, gllm_fail(GLLM_E_OUT_OF_MEMORY, "no memory"));
        /* pre-tokenisers by tokenizer.ggml.pre (none: GPT-2's); another's texts are refused, its ids still serve */
        static const struct {
            const char *name;
            int pre;
        } pres[] = {{"gpt-2", PRE_GPT2}, {"smollm", PRE_SMOLLM}, {"llama-bpe", PRE_LLAMA3}, {"llama3", PRE_LLAMA3},
                    {"llama-v3", PRE_LLAMA3}, {"qwen2", PRE_QWEN2}, {"deepseek-r1-qwen", PRE_QWEN2}};
        gllm_str pre = {"gpt-2", 5};
        if (gllm_gguf_find(g, "tokenizer.ggml.pre")) gllm_gguf_str(g, "tokenizer.ggml.pre", &pre);
        t->pre = PRE_OTHER;
        for (size_t i = 0; i < sizeof pres / sizeof *pres; i++)
            if (pre.len == strlen(pres[i].name) && !memcmp(pre.ptr, pres[i].name, pre.len)) t->pre = pres[i].pre;
        snprintf(t->pre_name, sizeof t->pre_name, "%.*s", (int)(pre.len < 31 ? pre.len : 31), pre.ptr);
        /* GPT-2's byte -> printable code point mapping */
        uint32_t next = 256;
        memset(t->cp_byte, -1, sizeof t->cp_byte);
        for (int b = 0; b < 256; b++) {
            const int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
            t->byte_cp[b] = printable ? (uint32_t)b : next++;
            t->cp_byte[t->byte_cp[b]] = (int16_t)b;
            char u[4];
            const size_t len = gllm_utf8_encode(t->byte_cp[b], u);
            t->byte_tok[b] = strmap_get(&t->vocab, u, len);
        }
    }
    /* llama.cpp's defaults: SentencePiece and Llama 3's BPE start with bos, other BPE do not */
    const gllm_gguf_kv *ab = gllm_gguf_find(g, "tokenizer.ggml.add_bos_token");
    t->add_bos = t->bos >= 0 && (ab && ab->type == GGUF_BOOL ? ab->val[0] != 0 : t->kind == GLLM_TOK_SPM || t->pre == PRE_LLAMA3);
    *out = t;
    return GLLM_OK;
}

gllm_tok_kind gllm_tokenizer_kind(const gllm_tokenizer *t) { return t->kind; }
size_t gllm_tokenizer_vocab(const gllm_tokenizer *t) { return t->n; }
int32_t gllm_tokenizer_bos(const gllm_tokenizer *t) { return t->bos; }
int gllm_tokenizer_add_bos(const gllm_tokenizer *t) { return t->add_bos; }
int32_t gllm_tokenizer_eos(const gllm_tokenizer *t) { return t->eos; }
int32_t gllm_tokenizer_cls(const gllm_tokenizer *t) { return t->cls; }
int32_t gllm_tokenizer_sep(const gllm_tokenizer *t) { return t->sep; }

/* ---- output ------------------------------------------------------------------------- */

typedef struct {
    int32_t *ids;
    size_t cap, n;
} out_ids;

static void emit(out_ids *o, int32_t id) {
    if (id < 0) return; /* no token and no unknown token in this vocabulary: the piece is dropped */
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

/* ---- SentencePiece BPE: merge the best-scoring adjacent pair that is a token ------------ */

typedef struct {
    size_t start, len;
    int prev, next;
} sym;

typedef struct {
    int left, right;
    float score;
    size_t size;
} bigram;

static int bigram_before(const bigram *a, const bigram *b) { /* max-heap: higher score, then leftmost */
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct {
    bigram *h;
    size_t n, cap;
} heap;

static int heap_push(heap *q, bigram b) {
    if (q->n == q->cap) {
        bigram *h = realloc(q->h, (q->cap = q->cap * 2 + 16) * sizeof *h);
        if (!h) return 0;
        q->h = h;
    }
    size_t i = q->n++;
    while (i && bigram_before(&b, &q->h[(i - 1) / 2])) q->h[i] = q->h[(i - 1) / 2], i = (i - 1) / 2;
    q->h[i] = b;
    return 1;
}

static bigram heap_pop(heap *q) {
    bigram top = q->h[0], last = q->h[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && bigram_before(&q->h[c + 1], &q->h[c])) c++;
        if (!bigram_before(&q->h[c], &last)) break;
        q->h[i] = q->h[c], i = c;
    }
    if (q->n) q->h[i] = last;
    return top;
}

static int spm_pair(const gllm_tokenizer *t, const char *s, const sym *y, int l, heap *q) {
    if (l < 0 || y[l].next < 0) return 1;
    const int r = y[l].next;
    const int32_t id = strmap_get(&t->vocab, s + y[l].start, y[l].len + y[r].len);
    if (id < 0) return 1;
    return heap_push(q, (bigram){l, r, t->score[id], y[l].len + y[r].len});
}

static gllm_status spm(const gllm_tokenizer *t, const char *text, size_t len, out_ids *o) {
    if (!len) return GLLM_OK;
    /* a leading space (unless add_space_prefix is false), and every space as U+2581 */
    char *s = malloc(3 * (len + 1));
    sym *y = malloc((len + 1) * sizeof *y);
    heap q = {0};
    gllm_status st = GLLM_OK;
    if (!s || !y) {
        st = gllm_fail(GLLM_E_OUT_OF_MEMORY, "tokenizer: no memory");
        goto done;
    }
    size_t n = 0;
    if (t->space_prefix) memcpy(s, "\xe2\x96\x81", 3), n = 3;
    for (size_t i = 0; i < len; i++)
        if (text[i] == ' ') memcpy(s + n, "\xe2\x96\x81", 3), n += 3;
        else s[n++] = text[i];
    int ns = 0;
    for (size_t i = 0; i < n; ns++) {
        uint32_t cp;
        const size_t l = gllm_utf8_decode(s + i, n - i, &cp);
        y[ns] = (sym){i, l, ns - 1, -1};
        if (ns) y[ns - 1].next = ns;
        i += l;
    }
    for (int i = 0; i + 1 < ns; i++)
        if (!spm_pair(t, s, y, i, &q)) goto oom;
    while (q.n) {
        const bigram b = heap_pop(&q);
        if (!y[b.left].len || !y[b.right].len || y[b.left].len + y[b.right].len != b.size) continue; /* stale */
        y[b.left].len += y[b.right].len, y[b.right].len = 0;
        y[b.left].next = y[b.right].next;
        if (y[b.right].next >= 0) y[y[b.right].next].prev = b.left;
        if (!spm_pair(t, s, y, y[b.left].prev, &q) || !spm_pair(t, s, y, b.left, &q)) goto oom;
    }
    for (int i = 0; i >= 0 && ns; i = y[i].next) {
        const int32_t id = strmap_get(&t->vocab, s + y[i].start, y[i].len);
        if (id >= 0) {
            emit(o, id);
            continue;
        }
        for (size_t b = 0; b < y[i].len; b++) { /* byte fallback */
            const int32_t bt = t->byte_tok[(unsigned char)s[y[i].start + b]];
            emit(o, bt >= 0 ? bt : t->unk);
        }
    }
    goto done;
oom:
    st = gllm_fail(GLLM_E_OUT_OF_MEMORY, "tokenizer: no memory");
done:
    free(s), free(y), free(q.h);
    return st;
}

/* ---- GPT-2 byte-level BPE ------------------------------------------------------------- */

static size_t cp_at(const char *s, size_t n, size_t i, uint32_t *cp) { return gllm_utf8_decode(s + i, n - i, cp); }

static int newline(uint32_t cp) { return cp == '\r' || cp == '\n'; }

/* the whitespace at i: \s+(?!\S)|\s+ (a run up to the end, or all but its last character when
 * more follows); with newlines (Llama 3's \s*[\r\n]+ first): up to its last newline, if any */
static size_t space_run(const char *s, size_t n, size_t i, int newlines) {
    uint32_t cp;
    size_t e = i, last = i, after_nl = i, l;
    for (; e < n && (l = cp_at(s, n, e, &cp), gllm_uc_class(cp) & UC_SPACE); e += l) {
        last = e;
        if (newlines && newline(cp)) after_nl = e + l;
    }
    if (after_nl != i) return after_nl;
    if (e == n || last == i) return e;
    return last;
}

/* the end of the GPT-2 pre-tokeniser match at i:
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t gpt2_piece(const char *s, size_t n, size_t i) {
    static const char *const contr[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    if (s[i] == '\'')
        for (int c = 0; c < 7; c++) {
            const size_t l = strlen(contr[c]);
            if (i + l <= n && !memcmp(s + i, contr[c], l)) return i + l;
        }
    uint32_t cp;
    const size_t j = s[i] == ' ' && i + 1 < n ? i + 1 : i;
    size_t l = cp_at(s, n, j, &cp);
    const unsigned c0 = gllm_uc_class(cp);
    if (!(c0 & UC_SPACE) || j != i) {
        const unsigned want = c0 & UC_LETTER ? UC_LETTER : c0 & UC_NUMBER ? UC_NUMBER : 0;
        if (want || !(c0 & (UC_SPACE | UC_LETTER | UC_NUMBER))) {
            size_t e = j + l;
            while (e < n) {
                l = cp_at(s, n, e, &cp);
                const unsigned c = gllm_uc_class(cp);
                if (want ? !(c & want) : (c & (UC_SPACE | UC_LETTER | UC_NUMBER)) != 0) break;
                e += l;
            }
            return e;
        }
    }
    return space_run(s, n, i, 0);
}

/* the end of the Llama-3 pre-tokeniser match at i (Qwen2's: max_digits 1):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t llama3_piece(const char *s, size_t n, size_t i, int max_digits) {
    static const char *const contr[] = {"s", "t", "re", "ve", "m", "ll", "d"};
    if (s[i] == '\'')
        for (int c = 0; c < 7; c++) {
            const size_t l = strlen(contr[c]);
            size_t k = 0; /* ASCII letters, either case */
            while (k < l && i + 1 + k < n && (s[i + 1 + k] | 0x20) == contr[c][k]) k++;
            if (k == l) return i + 1 + l;
        }
    uint32_t cp, cq;
    size_t l = cp_at(s, n, i, &cp), e;
    const unsigned c0 = gllm_uc_class(cp);
    /* letters, after at most one character that is none of newline, letter, number */
    size_t j = i;
    if (!(c0 & (UC_LETTER | UC_NUMBER)) && !newline(cp) && i + l < n && (cp_at(s, n, i + l, &cq), gllm_uc_class(cq) & UC_LETTER))
        j = i + l;
    if (j != i || (c0 & UC_LETTER)) {
        for (e = j; e < n && (l = cp_at(s, n, e, &cq), gllm_uc_class(cq) & UC_LETTER);) e += l;
        return e;
    }
    if (c0 & UC_NUMBER) { /* max_digits numbers */
        int k = 0;
        for (e = i; e < n && k < max_digits && (l = cp_at(s, n, e, &cq), gllm_uc_class(cq) & UC_NUMBER); k++) e += l;
        return e;
    }
    /* an optional space, then what is none of space, letter, number, then newlines */
    j = s[i] == ' ' && i + 1 < n ? i + 1 : i;
    cp_at(s, n, j, &cq);
    if (!(gllm_uc_class(cq) & (UC_SPACE | UC_LETTER | UC_NUMBER))) {
        for (e = j; e < n && (l = cp_at(s, n, e, &cq), !(gllm_uc_class(cq) & (UC_SPACE | UC_LETTER | UC_NUMBER)));) e += l;
        while (e < n && newline((unsigned char)s[e])) e++;
        return e;
    }
    return space_run(s, n, i, 1);
}

/* bpe_word's buffers, grown to the longest piece and kept for the whole text */
typedef struct {
    char *m, *key;
    size_t *st, *ln, cap;
} bpe_buf;

static int bpe_reserve(bpe_buf *b, size_t wl) {
    if (wl <= b->cap) return 1;
    const size_t cap = wl < 64 ? 64 : 2 * wl;
    char *m = realloc(b->m, 2 * cap + 1);
    if (m) b->m = m;
    char *key = realloc(b->key, 4 * cap + 2);
    if (key) b->key = key;
    size_t *st = realloc(b->st, (cap + 1) * sizeof(size_t));
    if (st) b->st = st;
    size_t *ln = realloc(b->ln, (cap + 1) * sizeof(size_t));
    if (ln) b->ln = ln;
    if (!m || !key || !st || !ln) return 0;
    b->cap = cap;
    return 1;
}

static gllm_status bpe_word(const gllm_tokenizer *t, const char *w, size_t wl, bpe_buf *b, out_ids *o) {
    if (!bpe_reserve(b, wl)) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "tokenizer: no memory");
    /* the piece's bytes as GPT-2 code points, one symbol each */
    char *m = b->m, *key = b->key;
    size_t *st = b->st, *ln = b->ln, n = 0, ns = 0;
    for (size_t i = 0; i < wl; i++) {
        st[ns] = n, ln[ns] = gllm_utf8_encode(t->byte_cp[(unsigned char)w[i]], m + n);
        n += ln[ns++];
    }
    if (t->pre == PRE_LLAMA3) { /* Llama 3 ignores the merges for a piece that is a token itself */
        const int32_t id = strmap_get(&t->vocab, m, n);
        if (id >= 0) return emit(o, id), GLLM_OK;
    }
    for (;;) { /* merge the lowest-ranked adjacent pair, every occurrence */
        int32_t best = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < ns; i++) {
            memcpy(key, m + st[i], ln[i]), key[ln[i]] = ' ', memcpy(key + ln[i] + 1, m + st[i + 1], ln[i + 1]);
            const int32_t r = strmap_get(&t->merges, key, ln[i] + ln[i + 1] + 1);
            if (r >= 0 && (best < 0 || r < best)) best = r, at = i;
        }
        if (best < 0) break;
        const gllm_str *mg = &t->merge[best];
        size_t k = 0;
        for (size_t i = 0; i < ns; i++) {
            if (i + 1 < ns && ln[i] + ln[i + 1] + 1 == mg->len && !memcmp(m + st[i], mg->ptr, ln[i]) &&
                mg->ptr[ln[i]] == ' ' && !memcmp(m + st[i + 1], mg->ptr + ln[i] + 1, ln[i + 1]) && i >= at) {
                st[k] = st[i], ln[k++] = ln[i] + ln[i + 1], i++;
            } else {
                st[k] = st[i], ln[k++] = ln[i];
            }
        }
        ns = k;
    }
    for (size_t i = 0; i < ns; i++) {
        const int32_t id = strmap_get(&t->vocab, m + st[i], ln[i]);
        if (id >= 0) emit(o, id);
        else /* not in the vocabulary: its bytes one by one (one the vocabulary lacks dropped, as llama.cpp and
              * Hugging Face's byte-level BPE drop it) */
            for (size_t j = 0; j < ln[i];) {
                uint32_t cp;
                j += gllm_utf8_decode(m + st[i] + j, ln[i] - j, &cp);
                const int b = cp < 324 ? t->cp_byte[cp] : -1;
                if (b >= 0 && t->byte_tok[b] >= 0) emit(o, t->byte_tok[b]);
            }
    }
    return GLLM_OK;
}

static gllm_status bpe_span(const gllm_tokenizer *t, const char *s, size_t n, bpe_buf *b, out_ids *o) {
    for (size_t i = 0; i < n;) {
        const size_t e = t->pre == PRE_LLAMA3 ? llama3_piece(s, n, i, 3) : t->pre == PRE_QWEN2 ? llama3_piece(s, n, i, 1) : gpt2_piece(s, n, i);
        gllm_status st = bpe_word(t, s + i, e - i, b, o);
        if (st != GLLM_OK) return st;
        i = e;
    }
    return GLLM_OK;
}

static gllm_status bpe_text(const gllm_tokenizer *t, const char *s, size_t n, bpe_buf *b, out_ids *o) {
    if (t->pre == PRE_OTHER)
        return gllm_fail(GLLM_E_UNSUPPORTED, "tokenizer: pre-tokeniser '%s' (gpt-2, smollm, llama-bpe, qwen2 are supported)", t->pre_name);
    if (t->pre != PRE_SMOLLM) return bpe_span(t, s, n, b, o);
    size_t start = 0; /* digits one by one; the text between them through the GPT-2 pieces */
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        const size_t l = gllm_utf8_decode(s + i, n - i, &cp);
        if (gllm_uc_class(cp) & UC_NUMBER) {
            gllm_status st = bpe_span(t, s + start, i - start, b, o);
            if (st == GLLM_OK) st = bpe_word(t, s + i, l, b, o);
            if (st != GLLM_OK) return st;
            start = i + l;
        }
        i += l;
    }
    return bpe_span(t, s + start, n - start, b, o);
}

static gllm_status bpe(const gllm_tokenizer *t, const char *s, size_t n, out_ids *o) {
    bpe_buf b = {0};
    const gllm_status st = bpe_text(t, s, n, &b, o);
    free(b.m), free(b.key), free(b.st), free(b.ln);
    return st;
}

/* ---- WordPiece (BERT): clean, lowercase, strip accents, split CJK and punctuation -------- */

static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2CEAF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int is_punct(uint32_t c) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126) ||
           (gllm_uc_class(c) & UC_PUNCT);
}

static void wpm_word(const gllm_tokenizer *t, const char *w, size_t wl, char *key, out_ids *o) {
    size_t chars = 0;
    for (size_t i = 0; i < wl; i++) chars += ((unsigned char)w[i] & 0xC0) != 0x80;
    const size_t mark = o->n;
    int marked = 0; /* U+2581 marks word starts in the vocabulary: a word with it is unknown */
    for (size_t i = 0; i + 3 <= wl && !marked; i++) marked = !memcmp(w + i, "\xe2\x96\x81", 3);
    for (size_t start = 0; start < wl && chars <= 100 && !marked;) {
        size_t end = wl;
        int32_t id = -1;
        while (end > start) {
            const size_t pre = start ? 0 : 3;
            memcpy(key, "\xe2\x96\x81", pre), memcpy(key + pre, w + start, end - start);
            if ((id = strmap_get(&t->vocab, key, pre + end - start)) >= 0) break;
            do end--; while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80);
        }
        if (id < 0) {
            o->n = mark; /* the whole word is unknown */
            break;
        }
        emit(o, id);
        start = end;
    }
    if (o->n == mark) emit(o, t->unk);
}

static gllm_status wpm(const gllm_tokenizer *t, const char *s, size_t n, out_ids *o) {
    char *w = malloc(12 * n + 12), *key = malloc(12 * n + 16); /* a code point folds to 3, of 4 bytes each */
    if (!w || !key) {
        free(w), free(key);
        return gllm_fail(GLLM_E_OUT_OF_MEMORY, "tokenizer: no memory");
    }
    size_t wl = 0;
    for (size_t i = 0; i <= n;) {
        uint32_t cp = ' ';
        size_t l = 1;
        if (i < n) l = gllm_utf8_decode(s + i, n - i, &cp);
        i += l;
        const unsigned c = gllm_uc_class(cp);
        if (cp == 0 || cp == 0xFFFD || ((c & UC_CONTROL) && cp != '\t' && cp != '\n' && cp != '\r')) continue;
        if (c & UC_SPACE) {
            if (wl) wpm_word(t, w, wl, key, o), wl = 0;
            continue;
        }
        uint32_t f[3]; /* folded (lowercase, no accents) unless cased, then split: a CJK character or a punctuation mark is a word */
        const size_t nf = t->cased ? (f[0] = cp, 1) : gllm_uc_fold(cp, f);
        for (size_t k = 0; k < nf; k++) {
            const int alone = is_cjk(cp) || is_punct(f[k]);
            if (alone && wl) wpm_word(t, w, wl, key, o), wl = 0;
            wl += gllm_utf8_encode(f[k], w + wl);
            if (alone) wpm_word(t, w, wl, key, o), wl = 0;
        }
    }
    free(w), free(key);
    return GLLM_OK;
}

/* ---- special tokens: the text split where they occur, as llama.cpp splits it ---------- */

typedef struct {
    size_t off, len;
    int32_t id; /* a special token, or -1: text[off, off + len) to tokenize */
} frag;

typedef struct {
    frag *f;
    size_t n, cap;
} frags;

static int frag_push(frags *v, frag x) {
    if (v->n == v->cap) {
        const size_t cap = v->cap ? 2 * v->cap : 16;
        frag *f = realloc(v->f, cap * sizeof *f);
        if (!f) return 0;
        v->f = f, v->cap = cap;
    }
    v->f[v->n++] = x;
    return 1;
}

/* each special token in turn, longest first, cuts every text piece where it occurs. Control and
 * unknown tokens only when parse_special; user-defined ones always (llama.cpp's rule) */
static gllm_status split_specials(const gllm_tokenizer *t, const char *s, size_t len, int parse_special, frags *out) {
    frags cur = {0}, next = {0};
    int ok = frag_push(&cur, (frag){0, len, -1});
    for (size_t k = 0; ok && k < t->n_special; k++) {
        const int32_t id = t->special[k];
        if (!parse_special && t->type[id] != TT_USER_DEFINED) continue;
        const char *w = t->tok[id].ptr;
        const size_t wl = t->tok[id].len;
        next.n = 0;
        for (size_t i = 0; ok && i < cur.n; i++) {
            frag x = cur.f[i];
            for (size_t j = 0; x.id < 0 && x.len >= wl && j + wl <= x.len;) {
                const char *hit = memchr(s + x.off + j, w[0], x.len - wl + 1 - j);
                if (!hit) break;
                j = (size_t)(hit - (s + x.off));
                if (memcmp(hit, w, wl)) {
                    j++;
                    continue;
                }
                if (j) ok &= frag_push(&next, (frag){x.off, j, -1});
                ok &= frag_push(&next, (frag){x.off + j, wl, id});
                x.off += j + wl, x.len -= j + wl, j = 0;
            }
            if (x.id >= 0 || x.len) ok &= frag_push(&next, x);
        }
        const frags tmp = cur;
        cur = next, next = tmp;
    }
    free(next.f);
    if (!ok) return free(cur.f), gllm_fail(GLLM_E_OUT_OF_MEMORY, "tokenizer: no memory");
    *out = cur;
    return GLLM_OK;
}

gllm_status gllm_tokenize(const gllm_tokenizer *t, const char *text, size_t len, int parse_special, int32_t *ids, size_t cap,
                          size_t *n) {
    if (!t || (!text && len) || (!ids && cap) || !n) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "tokenize: NULL argument");
    *n = 0;
    if (len > SIZE_MAX / 64) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "tokenize: a text of %zu bytes", len); /* buffers of 12 x len */
    out_ids o = {ids, cap, 0};
    frags v = {0};
    gllm_status st = split_specials(t, text, len, parse_special, &v);
    for (size_t i = 0; st == GLLM_OK && i < v.n; i++) {
        const char *s = text + v.f[i].off;
        const size_t l = v.f[i].len;
        if (v.f[i].id >= 0) emit(&o, v.f[i].id);
        else st = t->kind == GLLM_TOK_SPM ? spm(t, s, l, &o) : t->kind == GLLM_TOK_BPE ? bpe(t, s, l, &o) : wpm(t, s, l, &o);
    }
    free(v.f);
    *n = o.n;
    if (st == GLLM_OK && o.n > cap)
        return gllm_fail(GLLM_E_INVALID_ARGUMENT, "tokenize: %zu tokens, room for %zu", o.n, cap);
    return st;
}

gllm_status gllm_detokenize(const gllm_tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap,
                            size_t *len) {
    if (!t || (!ids && n) || (!out && cap) || !len) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "detokenize: NULL argument");
    size_t k = 0;
#define PUT(ch)                              \
    do {                                     \
        if (k < cap) out[k] = (char)(ch);    \
        k++;                                 \
    } while (0)
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= t->n)
            return gllm_fail(GLLM_E_INVALID_ARGUMENT, "detokenize: id %d outside the vocabulary of %zu", ids[i], t->n);
        const gllm_str *s = &t->tok[ids[i]];
        if (is_special(t, (size_t)ids[i])) { /* its text as it is */
            for (size_t j = 0; j < s->len; j++) PUT(s->ptr[j]);
        } else if (t->kind == GLLM_TOK_BPE) { /* code points back to bytes */
            for (size_t j = 0; j < s->len;) {
                uint32_t cp;
                j += gllm_utf8_decode(s->ptr + j, s->len - j, &cp);
                const int b = cp < 324 ? t->cp_byte[cp] : -1;
                if (b >= 0) PUT(b);
            }
        } else if (t->kind == GLLM_TOK_SPM && s->len == 6 && !memcmp(s->ptr, "<0x", 3) && s->ptr[5] == '>') {
            PUT(strtol((char[3]){s->ptr[3], s->ptr[4], 0}, NULL, 16));
        } else {
            for (size_t j = 0; j < s->len; j++)
                if (j + 3 <= s->len && !memcmp(s->ptr + j, "\xe2\x96\x81", 3)) {
                    PUT(' ');
                    j += 2;
                } else {
                    PUT(s->ptr[j]);
                }
        }
    }
#undef PUT
    *len = k;
    if (k > cap) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "detokenize: %zu bytes, room for %zu", k, cap);
    return GLLM_OK;
}

gllm_status gllm_tokenizer_wordpiece(const char *vocab, size_t len, int lowercase, gllm_tokenizer **out) {
    *out = NULL;
    if (!vocab || !len) return gllm_fail(GLLM_E_INVALID_ARGUMENT, "tokenizer: empty vocab.txt");
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += vocab[i] == '\n';
    if (len && vocab[len - 1] != '\n') lines++;
    gllm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return gllm_fail(GLLM_E_OUT_OF_MEMORY, "tokenizer: no memory");
    t->kind = GLLM_TOK_WPM, t->cased = !lowercase;
    t->tok = malloc(lines * sizeof *t->tok);
    t->arena = malloc(len + 3 * lines + 1); /* each word-initial piece gains U+2581 */
    if (!t->tok || !t->arena) return drop(t, gllm_fail(GLLM_E_OUT_OF_MEMORY, "tokenizer: no memory"));
    size_t off = 0;
    for (size_t i = 0; i < len && t->n < lines;) { /* vocab.txt: one piece a line; "##" marks a continuation */
        size_t e = i;
        while (e < len && vocab[e] != '\n') e++;
        size_t l = e - i;
        if (l && vocab[i + l - 1] == '\r') l--;
        const char *w = vocab + i;
        char *dst = t->arena + off;
        if (l >= 2 && w[0] == '#' && w[1] == '#') memcpy(dst, w + 2, l - 2), l -= 2;
        else if (l >= 2 && w[0] == '[' && w[l - 1] == ']') memcpy(dst, w, l);
        else memcpy(dst, "\xe2\x96\x81", 3), memcpy(dst + 3, w, l), l += 3;
        t->tok[t->n].ptr = dst, t->tok[t->n].len = l, t->n++;
        off += l, i = e + 1;
    }
    if (!strmap_build(&t->vocab, t->tok, t->n, 0)) return drop(t, gllm_fail(GLLM_E_OUT_OF_MEMORY, "tokenizer: no memory"));
    t->unk = strmap_get(&t->vocab, "[UNK]", 5), t->cls = strmap_get(&t->vocab, "[CLS]", 5);
    t->sep = strmap_get(&t->vocab, "[SEP]", 5), t->bos = t->eos = -1;
    if (t->unk < 0 || t->cls < 0 || t->sep < 0) return drop(t, gllm_fail(GLLM_E_INVALID_ARGUMENT, "tokenizer: vocab.txt lacks [UNK], [CLS] or [SEP]"));
    if (!(t->type = malloc(t->n))) return drop(t, gllm_fail(GLLM_E_OUT_OF_MEMORY, "tokenizer: no memory"));
    memset(t->type, TT_NORMAL, t->n);
    static const char *const control[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}; /* BERT's special tokens */
    for (size_t i = 0; i < sizeof control / sizeof *control; i++) {
        const int32_t id = strmap_get(&t->vocab, control[i], strlen(control[i]));
        if (id >= 0) t->type[id] = TT_CONTROL;
    }
    gllm_status st = list_specials(t);
    if (st != GLLM_OK) return drop(t, st);
    *out = t;
    return GLLM_OK;
}
