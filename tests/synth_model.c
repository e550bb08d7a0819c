#include "synth_model.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/dtype_traits.h"
#include "format/gguf.h"
#include "gguf_writer.h"

size_t DIM = 64, NH = 4, NKV = 2, HD = 16, FFN = 96, VOCAB = 40, LAYERS = 2, CTX = 96;
double BASE = 10000.0;
const float *ROPE_FREQS;
const char *ROPE_SCALING;
float ROPE_FACTOR = 1.0f;
const synth_key *EXTRA_KEYS;
const char *EXTRA_TENSOR;
int BERT_POOLING = -1;
const char *BERT_TOKENIZER = "bert";

static uint64_t st = 3;
void synth_seed(uint64_t seed) { st = seed; }
static float uni(void) {
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(st >> 40) / 16777216.0f * 2.0f - 1.0f;
}


/* scale is for 64 inputs; wider rows get scale * sqrt(64 / cols), so every layer has the same gain */
static gllm_dtype store_as; /* build_as: matrices rounded through their dtype, stored as this */
static void *mat(model_file *f, gllm_dtype t, size_t rows, size_t cols, float scale, float offset) {
    if (rows > 1) scale *= sqrtf(64.0f / (float)cols);
    float *w = malloc(rows * cols * 4);
    for (size_t i = 0; i < rows * cols; i++) w[i] = offset + scale * uni();
    void *q = malloc(rows * gllm_row_bytes(t, cols));
    gllm_quantize(t, w, q, rows, cols);
    if (t != GLLM_DTYPE_F32 && store_as == GLLM_DTYPE_F32) { /* the same values, widened */
        gllm_dequantize(t, q, w, rows, cols);
        free(q);
        return f->bufs[f->nb++] = w;
    }
    free(w);
    return f->bufs[f->nb++] = q;
}

/* the tensors of a model file being built: names kept, sizes from the stored dtype */
typedef struct {
    tw_tensor t[512];
    char names[512][48];
    int n;
    gllm_dtype store;
} tensor_list;

static void add(tensor_list *l, const char *name, uint32_t type, uint64_t cols, uint64_t rows, const void *data) {
    snprintf(l->names[l->n], 48, "%s", name);
    l->t[l->n] = (tw_tensor){l->names[l->n], type, rows ? 2u : 1u, {cols, rows}, data,
                             (rows ? rows : 1) * gllm_row_bytes(type == 0 ? GLLM_DTYPE_F32 : l->store, cols)};
    l->n++;
}

/* arch: "llama", "qwen2" (QKV bias), "qwen3" (QK-norm) */
void build(model_file *f, const char *arch, gllm_dtype t) { build_as(f, arch, t, t); }

void build_as(model_file *f, const char *arch, gllm_dtype t, gllm_dtype store) {
    memset(f, 0, sizeof *f);
    store_as = store;
    const uint32_t gt = (uint32_t)gllm_dtype_traits_table[store].gguf_type;
    static tensor_list tl;
    tl.n = 0, tl.store = store;
    add(&tl, "token_embd.weight", gt, DIM, VOCAB, mat(f, t, VOCAB, DIM, 1.0f, 0));
    add(&tl, "output_norm.weight", 0, DIM, 0, mat(f, GLLM_DTYPE_F32, 1, DIM, 0.2f, 1.0f));
    if (ROPE_FREQS) add(&tl, "rope_freqs.weight", 0, HD / 2, 0, ROPE_FREQS);
    for (int l = 0; l < (int)LAYERS; l++) {
        char n[48];
#define NAME(x) (snprintf(n, sizeof n, "blk.%d.%s", l, x), n)
        add(&tl, NAME("attn_norm.weight"), 0, DIM, 0, mat(f, GLLM_DTYPE_F32, 1, DIM, 0.2f, 1.0f));
        add(&tl, NAME("attn_q.weight"), gt, DIM, NH * HD, mat(f, t, NH * HD, DIM, 0.3f, 0));
        add(&tl, NAME("attn_k.weight"), gt, DIM, NKV * HD, mat(f, t, NKV * HD, DIM, 0.3f, 0));
        add(&tl, NAME("attn_v.weight"), gt, DIM, NKV * HD, mat(f, t, NKV * HD, DIM, 0.3f, 0));
        if (!strcmp(arch, "qwen2")) {
            add(&tl, NAME("attn_q.bias"), 0, NH * HD, 0, mat(f, GLLM_DTYPE_F32, 1, NH * HD, 0.2f, 0));
            add(&tl, NAME("attn_k.bias"), 0, NKV * HD, 0, mat(f, GLLM_DTYPE_F32, 1, NKV * HD, 0.2f, 0));
            add(&tl, NAME("attn_v.bias"), 0, NKV * HD, 0, mat(f, GLLM_DTYPE_F32, 1, NKV * HD, 0.2f, 0));
        }
        if (!strcmp(arch, "qwen3")) {
            add(&tl, NAME("attn_q_norm.weight"), 0, HD, 0, mat(f, GLLM_DTYPE_F32, 1, HD, 0.2f, 1.0f));
            add(&tl, NAME("attn_k_norm.weight"), 0, HD, 0, mat(f, GLLM_DTYPE_F32, 1, HD, 0.2f, 1.0f));
        }
        add(&tl, NAME("attn_output.weight"), gt, NH * HD, DIM, mat(f, t, DIM, NH * HD, 0.3f, 0));
        add(&tl, NAME("ffn_norm.weight"), 0, DIM, 0, mat(f, GLLM_DTYPE_F32, 1, DIM, 0.2f, 1.0f));
        add(&tl, NAME("ffn_gate.weight"), gt, DIM, FFN, mat(f, t, FFN, DIM, 0.3f, 0));
        add(&tl, NAME("ffn_up.weight"), gt, DIM, FFN, mat(f, t, FFN, DIM, 0.3f, 0));
        add(&tl, NAME("ffn_down.weight"), gt, FFN, DIM, mat(f, t, DIM, FFN, 0.3f, 0));
        if (EXTRA_TENSOR) add(&tl, NAME(EXTRA_TENSOR), 0, DIM, 0, mat(f, GLLM_DTYPE_F32, 1, DIM, 0.2f, 0));
#undef NAME
    }
    char k[11][64];
    snprintf(k[0], 64, "%s.block_count", arch), snprintf(k[1], 64, "%s.embedding_length", arch);
    snprintf(k[2], 64, "%s.attention.head_count", arch), snprintf(k[3], 64, "%s.attention.head_count_kv", arch);
    snprintf(k[4], 64, "%s.feed_forward_length", arch), snprintf(k[5], 64, "%s.context_length", arch);
    snprintf(k[6], 64, "%s.attention.layer_norm_rms_epsilon", arch), snprintf(k[7], 64, "%s.rope.freq_base", arch);
    snprintf(k[8], 64, "%s.vocab_size", arch), snprintf(k[9], 64, "%s.rope.scaling.type", arch);
    snprintf(k[10], 64, "%s.rope.scaling.factor", arch);
    /* no tokenizer ("no_vocab" and the vocabulary's size: llama.cpp loads the file too) */
    const tw_kv kv[] = {{.key = "general.architecture", .type = GGUF_STRING, .s = arch},
                        {.key = k[0], .type = GGUF_U32, .u = LAYERS}, {.key = k[1], .type = GGUF_U32, .u = DIM},
                        {.key = k[2], .type = GGUF_U32, .u = NH}, {.key = k[3], .type = GGUF_U32, .u = NKV},
                        {.key = k[4], .type = GGUF_U32, .u = FFN}, {.key = k[5], .type = GGUF_U32, .u = CTX},
                        {.key = k[6], .type = GGUF_F32, .f = 1e-5}, {.key = k[7], .type = GGUF_F32, .f = BASE},
                        {.key = k[8], .type = GGUF_U32, .u = VOCAB},
                        {.key = "tokenizer.ggml.model", .type = GGUF_STRING, .s = "no_vocab"},
                        {.key = k[9], .type = GGUF_STRING, .s = ROPE_SCALING}, {.key = k[10], .type = GGUF_F32, .f = ROPE_FACTOR}};
    tw_kv all[32];
    static char extra[16][64];
    size_t n = sizeof kv / sizeof *kv - (ROPE_SCALING ? 0 : 2);
    memcpy(all, kv, n * sizeof *kv);
    for (size_t i = 0; EXTRA_KEYS && EXTRA_KEYS[i].key && i < 16; i++, n++) {
        snprintf(extra[i], 64, "%s.%s", arch, EXTRA_KEYS[i].key);
        all[n] = EXTRA_KEYS[i].is_int ? (tw_kv){.key = extra[i], .type = GGUF_U32, .u = (uint64_t)EXTRA_KEYS[i].value}
                                      : (tw_kv){.key = extra[i], .type = GGUF_F32, .f = EXTRA_KEYS[i].value};
    }
    f->img = gguf_build(all, n, tl.t, (size_t)tl.n, 32, &f->len);
}

void drop(model_file *f) {
    for (int i = 0; i < f->nb; i++) free(f->bufs[i]);
    free(f->img);
}

int save(model_file *f, const char *path) {
    FILE *o = fopen(path, "wb");
    const int ok = o && fwrite(f->img, 1, f->len, o) == f->len;
    if (o && fclose(o)) return drop(f), -1;
    drop(f);
    return ok ? 0 : -1;
}


void build_bert(model_file *f, gllm_dtype t, gllm_dtype store, int head) {
    memset(f, 0, sizeof *f);
    store_as = store;
    const uint32_t gt = (uint32_t)gllm_dtype_traits_table[store].gguf_type;
    static tensor_list tl;
    tl.n = 0, tl.store = store;
#define VEC(nm, n, offset) add(&tl, nm, 0, n, 0, mat(f, GLLM_DTYPE_F32, 1, n, 0.2f, offset))
    add(&tl, "token_embd.weight", gt, DIM, VOCAB, mat(f, t, VOCAB, DIM, 1.0f, 0));
    add(&tl, "position_embd.weight", 0, DIM, CTX, mat(f, GLLM_DTYPE_F32, CTX, DIM, 0.5f, 0));
    add(&tl, "token_types.weight", 0, DIM, 2, mat(f, GLLM_DTYPE_F32, 2, DIM, 0.5f, 0));
    VEC("token_embd_norm.weight", DIM, 1.0f); VEC("token_embd_norm.bias", DIM, 0);
    for (int l = 0; l < (int)LAYERS; l++) {
        char n[48];
#define NAME(x) (snprintf(n, sizeof n, "blk.%d.%s", l, x), n)
        add(&tl, NAME("attn_q.weight"), gt, DIM, DIM, mat(f, t, DIM, DIM, 0.3f, 0)); VEC(NAME("attn_q.bias"), DIM, 0);
        add(&tl, NAME("attn_k.weight"), gt, DIM, DIM, mat(f, t, DIM, DIM, 0.3f, 0)); VEC(NAME("attn_k.bias"), DIM, 0);
        add(&tl, NAME("attn_v.weight"), gt, DIM, DIM, mat(f, t, DIM, DIM, 0.3f, 0)); VEC(NAME("attn_v.bias"), DIM, 0);
        add(&tl, NAME("attn_output.weight"), gt, DIM, DIM, mat(f, t, DIM, DIM, 0.3f, 0)); VEC(NAME("attn_output.bias"), DIM, 0);
        VEC(NAME("attn_output_norm.weight"), DIM, 1.0f); VEC(NAME("attn_output_norm.bias"), DIM, 0);
        add(&tl, NAME("ffn_up.weight"), gt, DIM, FFN, mat(f, t, FFN, DIM, 0.3f, 0)); VEC(NAME("ffn_up.bias"), FFN, 0);
        add(&tl, NAME("ffn_down.weight"), gt, FFN, DIM, mat(f, t, DIM, FFN, 0.3f, 0)); VEC(NAME("ffn_down.bias"), DIM, 0);
        VEC(NAME("layer_output_norm.weight"), DIM, 1.0f); VEC(NAME("layer_output_norm.bias"), DIM, 0);
#undef NAME
    }
    if (head) { /* pooler and a classifier of 3 labels */
        add(&tl, "cls.weight", gt, DIM, DIM, mat(f, t, DIM, DIM, 0.3f, 0)); VEC("cls.bias", DIM, 0);
        add(&tl, "cls.output.weight", gt, DIM, 3, mat(f, t, 3, DIM, 0.3f, 0)); VEC("cls.output.bias", 3, 0);
    }
#undef VEC
    static char words[64][8];
    const char *tokens[64];
    static int32_t types[64]; /* llama.cpp's token types: 1 normal, 2 unknown, 3 control */
    for (size_t i = 0; i < VOCAB && i < 64; i++) { /* words "w4"..: llama.cpp marks a word's start with U+2581 */
        snprintf(words[i], 8, i == 0 ? "[PAD]" : i == 1 ? "[UNK]" : i == 2 ? "[CLS]" : i == 3 ? "[SEP]" : "\xe2\x96\x81w%zu", i);
        tokens[i] = words[i], types[i] = i == 1 ? 2 : i < 4 ? 3 : 1;
    }
    const int wpm = !strcmp(BERT_TOKENIZER, "bert");
    static const char *merges[1] = {"w 4"};
    const tw_kv kv[] = {{.key = "general.architecture", .type = GGUF_STRING, .s = "bert"},
                        {.key = "bert.block_count", .type = GGUF_U32, .u = LAYERS},
                        {.key = "bert.embedding_length", .type = GGUF_U32, .u = DIM},
                        {.key = "bert.attention.head_count", .type = GGUF_U32, .u = NH},
                        {.key = "bert.feed_forward_length", .type = GGUF_U32, .u = FFN},
                        {.key = "bert.context_length", .type = GGUF_U32, .u = CTX},
                        {.key = "bert.attention.layer_norm_epsilon", .type = GGUF_F32, .f = 1e-12},
                        {.key = "tokenizer.ggml.model", .type = GGUF_STRING, .s = BERT_TOKENIZER},
                        {.key = "tokenizer.ggml.tokens", .type = GGUF_ARRAY, .strs = tokens, .arr_type = GGUF_STRING,
                         .n = VOCAB < 64 ? VOCAB : 64},
                        {.key = "tokenizer.ggml.token_type", .type = GGUF_ARRAY, .arr = types, .arr_type = GGUF_I32,
                         .n = VOCAB < 64 ? VOCAB : 64},
                        {.key = "tokenizer.ggml.unknown_token_id", .type = GGUF_U32, .u = 1},
                        {.key = "bert.pooling_type", .type = GGUF_U32, .u = (uint64_t)BERT_POOLING},
                        /* WordPiece: [CLS] and [SEP] named; else a BPE's merges, and neither */
                        {.key = "tokenizer.ggml.cls_token_id", .type = GGUF_U32, .u = 2},
                        {.key = "tokenizer.ggml.seperator_token_id", .type = GGUF_U32, .u = 3},
                        {.key = "tokenizer.ggml.merges", .type = GGUF_ARRAY, .strs = merges, .arr_type = GGUF_STRING, .n = 1}};
    tw_kv use[sizeof kv / sizeof *kv];
    size_t n_kv = 0;
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++) {
        const char *k = kv[i].key;
        const int keep = !strcmp(k, "bert.pooling_type")     ? BERT_POOLING >= 0
                         : !strcmp(k, "tokenizer.ggml.merges") ? !wpm
                         : !strcmp(k, "tokenizer.ggml.cls_token_id") || !strcmp(k, "tokenizer.ggml.seperator_token_id") ? wpm
                                                                                                                         : 1;
        if (keep) use[n_kv++] = kv[i];
    }
    f->img = gguf_build(use, n_kv, tl.t, (size_t)tl.n, 32, &f->len);
}
