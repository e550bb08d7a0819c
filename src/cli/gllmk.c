/* gllmk: the gllm-kernels command-line tool.
 *   gllmk info                              backend, ISA, threads, dispatch table
 *   gllmk generate [-m model.gguf] [-p prompt | -f file] [--no-special] [-n tokens] [--temp T] [--top-k K] [--top-p P]
 *                  [--min-p P] [--seed S] [--repeat-penalty R] [--frequency-penalty F] [--presence-penalty P]
 *                  [--repeat-last-n N]
 *   gllmk tokenize [-m model.gguf] [-p text | -f file] [--no-special]   the ids generate would feed, with their text
 *   gllmk logits [-m model.gguf] --tokens 1,2,3 [--out file.f32]
 *   gllmk embed [-m dir] [--out file.f32] [--tokens ids] "text" ...   sentence vectors + cosine similarities
 *   gllmk rerank -m dir -q "query" "doc" ...                        documents sorted by score
 *   gllmk bench [options]                   kernel throughput next to the machine's limits and peers
 * Without -m: models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch_models.sh). */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "gllm_kernels.h"
#include "bench/bench.h"

#define DEFAULT_MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(const char *what) {
    fprintf(stderr, "gllmk: %s: %s\n", what, gllm_last_error());
    return 1;
}

/* "1,2,3" into ids (1 to cap of them); 0, said why, for anything else */
static int parse_ids(const char *list, int32_t *ids, size_t cap, size_t *n) {
    *n = 0;
    for (const char *p = list; *p;) {
        char *end;
        errno = 0;
        const long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX || (*end && *end != ','))
            return fprintf(stderr, "gllmk: bad token list '%s': ids are 32-bit integers between commas\n", list), 0;
        if (*n == cap) return fprintf(stderr, "gllmk: token list of more than %zu ids\n", cap), 0;
        ids[(*n)++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (!*n) return fprintf(stderr, "gllmk: empty token list\n"), 0;
    return 1;
}

static int info(void) {
    if (gllm_init() != GLLM_OK) return fail("init");
    gllm_backend *b;
    if (gllm_backend_open("auto", &b) != GLLM_OK) return fail("backend"); /* GLLM_DEVICE may force one */
    gllm_backend_info bi;
    gllm_backend_get_info(b, &bi);
    printf("backend   %s: %s (weights %s)\n", bi.backend, bi.device, bi.uma ? "used in place" : "copied to the device");
    gllm_backend_close(b);
    printf("detected  %s\n", gllm_isa_detected());
    printf("isa       %s%s\n", gllm_isa_name(), strcmp(gllm_isa_name(), gllm_isa_detected()) ? " (capped by GLLM_ISA)" : "");
    printf("threads   %d\n", gllm_num_threads());
    printf("dispatch table:\n");
    static const char *const ops[] = {"gemv", "gemm", "quantize", "dequantize"};
    for (int t = 0; t < GLLM_DTYPE_COUNT; t++) {
        printf("  %-5s", gllm_dtype_name((gllm_dtype)t));
        for (size_t o = 0; o < sizeof ops / sizeof *ops; o++) printf("  %-26s", gllm_kernel_name(ops[o], (gllm_dtype)t));
        printf("\n");
    }
    return 0;
}

typedef struct {
    const char *model, *prompt, *tokens, *out;
    char *prompt_file; /* -f: the prompt read from a file (owned) */
    int n;
    int last_n;  /* the penalties look at this many tokens before each draw (0: none, -1: all) */
    int special; /* control tokens written in the prompt are read as such (--no-special: as text) */
    gllm_sampling s;
} options;

/* the whole of a file as a string (NULL, having said why, when it cannot be read) */
static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return fprintf(stderr, "gllmk: cannot open %s\n", path), NULL;
    size_t len = 0, cap = 4096;
    char *b = malloc(cap);
    for (size_t got; b && (got = fread(b + len, 1, cap - len - 1, f)) > 0;) {
        len += got;
        if (len + 1 == cap) {
            char *bigger = cap < ((size_t)1 << 26) ? realloc(b, cap *= 2) : NULL;
            if (!bigger) free(b);
            b = bigger;
        }
    }
    const int bad = ferror(f);
    fclose(f);
    if (!b || bad) return free(b), fprintf(stderr, "gllmk: %s: %s\n", path, b ? "read error" : "too large (64 MiB at most)"), NULL;
    b[len] = 0;
    return b;
}

/* n floats to path, little-endian as they are; whether all reached the file (or says why not) */
static int write_floats(const char *path, const float *v, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(v, sizeof(float), n, f) == n;
    if (f) ok &= fclose(f) == 0; /* a buffered write fails here (a full disk) */
    if (!ok) fprintf(stderr, "gllmk: cannot write %s\n", path);
    return ok;
}

/* a whole number in [lo, hi], or a number: the whole text, else 0 (and what was wrong said) */
static int int_arg(const char *opt, const char *v, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    const long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi)
        return fprintf(stderr, "gllmk: %s %s: expected a whole number from %ld to %ld\n", opt, v, lo, hi), 0;
    return *out = (int)x, 1;
}
static int float_arg(const char *opt, const char *v, float *out) {
    char *end;
    errno = 0;
    const float x = strtof(v, &end);
    if (end == v || *end || errno) return fprintf(stderr, "gllmk: %s %s: expected a number\n", opt, v), 0;
    return *out = x, 1;
}

static int parse_args(int argc, char **argv, options *o) {
    *o = (options){.model = DEFAULT_MODEL, .prompt = "The capital of France is", .n = 32, .last_n = 64, .special = 1,
                   .s = {.temperature = 0, .top_p = 1, .repetition_penalty = 1, .seed = 42}};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-special")) {
            o->special = 0;
            continue;
        }
        if (!v) return fprintf(stderr, "gllmk: %s needs a value\n", a), 0;
        if (!strcmp(a, "-m")) o->model = v;
        else if (!strcmp(a, "-p")) o->prompt = v;
        else if (!strcmp(a, "-f")) {
            free(o->prompt_file);
            if (!(o->prompt_file = read_file(v))) return 0;
            o->prompt = o->prompt_file;
        }
        else if (!strcmp(a, "-n")) {
            if (!int_arg(a, v, 0, 1000000, &o->n)) return 0;
        }
        else if (!strcmp(a, "--temp")) {
            if (!float_arg(a, v, &o->s.temperature)) return 0;
        }
        else if (!strcmp(a, "--top-k")) {
            if (!int_arg(a, v, 0, INT_MAX, &o->s.top_k)) return 0;
        }
        else if (!strcmp(a, "--top-p")) {
            if (!float_arg(a, v, &o->s.top_p)) return 0;
        }
        else if (!strcmp(a, "--min-p")) {
            if (!float_arg(a, v, &o->s.min_p)) return 0;
        }
        else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            o->s.seed = strtoull(v, &end, 10);
            if (end == v || *end || errno || *v == '-') return fprintf(stderr, "gllmk: --seed %s: expected a whole number from 0\n", v), 0;
        }
        else if (!strcmp(a, "--repeat-penalty")) {
            if (!float_arg(a, v, &o->s.repetition_penalty)) return 0;
        }
        else if (!strcmp(a, "--frequency-penalty")) {
            if (!float_arg(a, v, &o->s.frequency_penalty)) return 0;
        }
        else if (!strcmp(a, "--presence-penalty")) {
            if (!float_arg(a, v, &o->s.presence_penalty)) return 0;
        }
        else if (!strcmp(a, "--repeat-last-n")) { /* -1: all, 0: none */
            if (!int_arg(a, v, -1, INT_MAX, &o->last_n)) return 0;
        }
        else if (!strcmp(a, "--tokens")) o->tokens = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else return fprintf(stderr, "gllmk: unknown option %s\n", a), 0;
        i++;
    }
    return 1;
}

/* the options; 0 (said why, nothing held) for bad ones */
static int parse(int argc, char **argv, options *o) {
    if (parse_args(argc, argv, o)) return 1;
    free(o->prompt_file), o->prompt_file = NULL;
    return 0;
}

typedef struct {
    gllm_backend *b;
    gllm_model *m;
    gllm_generator *g;
    gllm_kv_cache *kv;
    int seq;
    gllm_model_info mi;
} session;

static void close_session(session *s);

static int open_session(const char *path, size_t max_tokens, session *s) {
    memset(s, 0, sizeof *s);
    const double t0 = now();
    int rc = 1;
    if (gllm_backend_open("auto", &s->b) != GLLM_OK) rc = fail("backend");
    else if (gllm_model_open(path, &s->m) != GLLM_OK)
        fprintf(stderr, "gllmk: %s: %s\n(fetch the default model with: bash scripts/fetch_models.sh)\n", path, gllm_last_error());
    else if (gllm_model_get_info(s->m, &s->mi) != GLLM_OK || gllm_generator_upload(s->b, s->m, max_tokens, &s->g) != GLLM_OK)
        rc = fail("upload");
    else rc = 0;
    if (rc) return close_session(s), rc;
    fprintf(stderr, "gllmk: %s (%s, %zu layers, vocab %zu) loaded in %.1f ms\n", path, s->mi.arch, s->mi.n_layers,
            s->mi.vocab, (now() - t0) * 1e3);
    return 0;
}

/* the session's KV cache and sequence: room for `positions` tokens, the model's context at most
 * (it was 2048 whatever the need: a longer prompt failed past them) */
static int open_cache(session *s, size_t positions) {
    const size_t want = positions < s->mi.context ? positions : s->mi.context;
    if (gllm_kv_cache_alloc(s->g, (want + 15) / 16, 16, GLLM_DTYPE_F16, &s->kv) != GLLM_OK) return fail("KV cache");
    if (gllm_seq_open(s->kv, want, &s->seq) != GLLM_OK) return fail("sequence");
    return 0;
}

static void close_session(session *s) {
    gllm_kv_cache_free(s->kv);
    gllm_generator_free(s->g);
    gllm_model_close(s->m);
    gllm_backend_close(s->b);
}

/* the prompt's ids as the model reads them: control tokens written in it are theirs (unless
 * --no-special), as llama.cpp's tools read prompts; its bos first where it wants one, not twice
 * when the prompt starts with it. Non-zero, having said why, on failure */
static int prompt_ids(const gllm_model *m, const options *o, int32_t *ids, size_t cap, size_t *n) {
    const size_t bos = (size_t)gllm_model_add_bos(m);
    if (bos) ids[0] = gllm_model_bos(m);
    if (gllm_model_tokenize(m, o->prompt, strlen(o->prompt), o->special, ids + bos, cap - bos, n) != GLLM_OK) return fail("tokenize");
    if (bos && *n && ids[1] == ids[0]) memmove(ids, ids + 1, *n * sizeof(int32_t)), --*n;
    *n += bos;
    return 0;
}

/* the prompt, then o->n tokens, into ids (room for 4096 + o->n) */
static int generate_in(session *s, options o, int32_t *ids) {
    size_t n;
    if (prompt_ids(s->m, &o, ids, 4096, &n)) return 1;
    if (!n) return fprintf(stderr, "gllmk: empty prompt\n"), 1;
    if (n + (size_t)o.n > s->mi.context && n < s->mi.context) o.n = (int)(s->mi.context - n); /* up to a full context */
    if (open_cache(s, n + (size_t)o.n)) return 1;
    printf("%s", o.prompt);
    fflush(stdout);
    gllm_logits *l;
    double t0 = now();
    if (gllm_generator_forward(s->g, s->kv, s->seq, ids, n, NULL, &l) != GLLM_OK) return fail("prefill");
    const double prefill = now() - t0;
    int made = 0;
    t0 = now();
    for (int step = 0; step < o.n; step++) {
        int32_t next;
        const size_t window = o.last_n < 0 || (size_t)o.last_n > n ? n : (size_t)o.last_n; /* what the penalties see */
        if (gllm_sample(s->g, l, &o.s, ids + n - window, window, (uint64_t)step, &next) != GLLM_OK) return fail("sample");
        ids[n++] = next, made++;
        if (gllm_model_is_eog(s->m, next)) break; /* the end of the turn, not shown */
        char piece[256];
        size_t pl;
        if (gllm_model_detokenize(s->m, &next, 1, piece, sizeof piece, &pl) == GLLM_OK) fwrite(piece, 1, pl, stdout), fflush(stdout);
        if (step + 1 == o.n) break;
        if (gllm_generator_forward(s->g, s->kv, s->seq, &next, 1, NULL, &l) != GLLM_OK) return fail("decode");
    }
    const double decode = now() - t0;
    printf("\n");
    fflush(stdout);
    fprintf(stderr, "gllmk: prefill %zu tokens %.1f ms (%.1f tokens/s), decode %d tokens %.1f ms (%.1f tokens/s)\n",
            n - (size_t)made, prefill * 1e3, (double)(n - (size_t)made) / prefill, made, decode * 1e3,
            made > 1 ? (made - 1) / decode : 0.0);
    return 0;
}

static int generate(int argc, char **argv) {
    options o;
    if (!parse(argc, argv, &o)) return 2;
    session s;
    if (open_session(o.model, 4096, &s)) return free(o.prompt_file), 1;
    int32_t *ids = malloc((4096 + (size_t)o.n) * sizeof(int32_t));
    const int rc = ids ? generate_in(&s, o, ids) : (fprintf(stderr, "gllmk: no memory\n"), 1);
    close_session(&s);
    free(ids), free(o.prompt_file);
    return rc;
}

/* the prompt's ids, each with its text, as generate would feed them (bos included where the model wants one) */
static int tokenize(int argc, char **argv) {
    options o;
    if (!parse(argc, argv, &o)) return 2;
    gllm_model *m;
    if (gllm_model_open(o.model, &m) != GLLM_OK)
        return fprintf(stderr, "gllmk: %s: %s\n", o.model, gllm_last_error()), free(o.prompt_file), 1;
    const size_t cap = 2 * strlen(o.prompt) + 2; /* a token per byte, or two (SentencePiece's space prefixes), and bos */
    int32_t *ids = malloc(cap * sizeof(int32_t));
    size_t n = 0;
    if (!ids || prompt_ids(m, &o, ids, cap, &n)) {
        if (!ids) fprintf(stderr, "gllmk: no memory\n");
        return free(ids), free(o.prompt_file), gllm_model_close(m), 1;
    }
    for (size_t i = 0; i < n; i++) {
        char piece[256];
        size_t pl;
        if (gllm_model_detokenize(m, &ids[i], 1, piece, sizeof piece, &pl) != GLLM_OK) pl = 0;
        printf("%6d  '", ids[i]);
        for (size_t k = 0; k < pl; k++) /* control bytes escaped */
            if ((unsigned char)piece[k] < 0x20) printf("\\x%02x", (unsigned char)piece[k]);
            else putchar(piece[k]);
        printf("'%s\n", gllm_model_is_eog(m, ids[i]) ? "  (ends generation)" : "");
    }
    fprintf(stderr, "gllmk: %zu tokens\n", n);
    free(ids), free(o.prompt_file);
    gllm_model_close(m);
    return 0;
}

/* every position's row (one token at a time through the cache) into all; the last one's top 10 */
static int logits_in(session s, const int32_t *ids, size_t n, float *all, const char *out) {
    for (size_t i = 0; i < n; i++) {
        gllm_logits *l;
        if (gllm_generator_forward(s.g, s.kv, s.seq, &ids[i], 1, NULL, &l) != GLLM_OK) return fail("forward");
        gllm_logits_read(l, all + i * s.mi.vocab, s.mi.vocab);
    }
    const float *last = all + (n - 1) * s.mi.vocab;
    int top[10];
    for (int k = 0; k < 10 && (size_t)k < s.mi.vocab; k++) {
        int b = -1;
        for (size_t v = 0; v < s.mi.vocab; v++) {
            int used = 0;
            for (int j = 0; j < k; j++) used |= top[j] == (int)v;
            if (!used && (b < 0 || last[v] > last[b])) b = (int)v;
        }
        top[k] = b;
        printf("%6d  %10.4f\n", b, last[b]);
    }
    if (out) {
        if (!write_floats(out, all, n * s.mi.vocab)) return 1;
        fprintf(stderr, "gllmk: %zu rows x %zu float32 written to %s\n", n, s.mi.vocab, out);
    }
    return 0;
}

static int logits(int argc, char **argv) {
    options o;
    if (!parse(argc, argv, &o)) return 2;
    free(o.prompt_file); /* a prompt is not used */
    if (!o.tokens) return fprintf(stderr, "gllmk logits: --tokens 1,2,3 is required\n"), 2;
    static int32_t ids[4096];
    size_t n;
    if (!parse_ids(o.tokens, ids, 4096, &n)) return 2;
    session s;
    if (open_session(o.model, n, &s)) return 1;
    if (open_cache(&s, n)) return close_session(&s), 1;
    float *all = malloc(n * s.mi.vocab * sizeof(float));
    const int rc = all ? logits_in(s, ids, n, all, o.out) : (fprintf(stderr, "gllmk: no memory\n"), 1);
    free(all);
    close_session(&s);
    return rc;
}

#define DEFAULT_EMBEDDER "models/all-MiniLM-L6-v2"

/* the texts (lists[i] NULL) tokenized into seqs, then embedded: vectors, similarities, the file */
static int embed_in(gllm_embedder *e, const char *const *texts, int32_t (*seqs)[512], size_t *lens, size_t n, const char *outp) {
    for (size_t i = 0; i < n; i++)
        if (texts[i] && gllm_embedding_tokenize(e, texts[i], strlen(texts[i]), seqs[i], 512, &lens[i]) != GLLM_OK) return fail("tokenize");
    const int32_t *rows[64];
    for (size_t i = 0; i < n; i++) rows[i] = seqs[i];
    const size_t dim = gllm_embedding_dim(e);
    static float v[64 * 4096];
    if (dim > 4096) return fprintf(stderr, "gllmk: vectors of %zu dims (4096 at most)\n", dim), 1;
    const double t0 = now();
    if (gllm_embedding_forward(e, rows, lens, n, 1, v) != GLLM_OK) return fail("embed");
    const double dt = now() - t0;
    for (size_t i = 0; i < n; i++) {
        printf("[%zu] %s\n    ", i, texts[i] ? texts[i] : "(token ids)");
        for (size_t x = 0; x < 8 && x < dim; x++) printf("%+.5f ", v[i * dim + x]);
        printf("... (%zu dims)\n", dim);
    }
    if (n > 1) {
        printf("cosine similarity:\n");
        for (size_t i = 0; i < n; i++) {
            printf("  ");
            for (size_t j = 0; j < n; j++) {
                double c = 0;
                for (size_t x = 0; x < dim; x++) c += (double)v[i * dim + x] * v[j * dim + x];
                printf("%7.4f ", c);
            }
            printf("\n");
        }
    }
    if (outp) {
        if (!write_floats(outp, v, n * dim)) return 1;
    }
    fprintf(stderr, "gllmk: %zu sequences embedded in %.1f ms\n", n, dt * 1e3);
    return 0;
}

/* whether a is one of the space-separated options in list */
static int needs_value(const char *a, const char *list) {
    const size_t n = strlen(a);
    for (const char *p = list; n && (p = strstr(p, a)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || !p[n])) return 1;
    return 0;
}

/* gllmk embed [-m dir] [--out file.f32] [--tokens 101,2023,102 ...] "text" ... */
static int embed(int argc, char **argv) {
    const char *dir = DEFAULT_EMBEDDER, *outp = NULL;
    const char *texts[64]; /* a text, or NULL: a token list, parsed here */
    static int32_t seqs[64][512];
    size_t lens[64], n = 0;
    for (int i = 1; i < argc; i++) {
        if (needs_value(argv[i], "-m --out --tokens") && i + 1 == argc) return fprintf(stderr, "gllmk embed: %s needs a value\n", argv[i]), 2;
        if (!strcmp(argv[i], "-m")) dir = argv[++i];
        else if (!strcmp(argv[i], "--out")) outp = argv[++i];
        else if (n == 64) return fprintf(stderr, "gllmk embed: at most 64 texts a call\n"), 2;
        else if (!strcmp(argv[i], "--tokens")) {
            if (!parse_ids(argv[++i], seqs[n], 512, &lens[n])) return 2;
            texts[n++] = NULL;
        } else {
            texts[n++] = argv[i];
        }
    }
    if (!n) return fprintf(stderr, "usage: gllmk embed [-m dir] [--out file.f32] [--tokens 101,2023,102] \"text\" ...\n"), 2;
    gllm_backend *b;
    gllm_embedder *e;
    if (gllm_backend_open("auto", &b) != GLLM_OK) return fail("backend");
    if (gllm_embedding_upload(b, dir, &e) != GLLM_OK) {
        fprintf(stderr, "gllmk: %s: %s\n", dir, gllm_last_error());
        if (!strcmp(dir, DEFAULT_EMBEDDER)) fprintf(stderr, "(fetch the default model with: bash scripts/fetch_models.sh)\n");
        return gllm_backend_close(b), 1;
    }
    const int rc = embed_in(e, texts, seqs, lens, n, outp);
    gllm_embedder_free(e);
    gllm_backend_close(b);
    return rc;
}

/* gllmk rerank -m dir -q "query" [--tokens ids ...] "doc" ...: documents sorted by score */
static int rerank_in(gllm_reranker *r, const char *query, const char *const *docs, const int *raw, int32_t (*seqs)[512],
                     size_t *lens, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!raw[i] && gllm_rerank_tokenize(r, query, docs[i], seqs[i], 512, &lens[i]) != GLLM_OK) return fail("tokenize");
    const int32_t *rows[64];
    for (size_t i = 0; i < n; i++) rows[i] = seqs[i];
    float scores[64];
    if (gllm_rerank_forward(r, rows, lens, n, scores) != GLLM_OK) return fail("rerank");
    int order[64];
    for (size_t i = 0; i < n; i++) order[i] = (int)i;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (scores[order[j]] > scores[order[i]]) { int t = order[i]; order[i] = order[j], order[j] = t; }
    for (size_t i = 0; i < n; i++) printf("%10.6f  [%d] %s\n", scores[order[i]], order[i], docs[order[i]]);
    return 0;
}

static int rerank(int argc, char **argv) {
    const char *dir = NULL, *query = NULL, *docs[64];
    static int32_t seqs[64][512];
    size_t lens[64], n = 0;
    int raw[64]; /* docs[i] a token list, parsed here */
    for (int i = 1; i < argc; i++) {
        if (needs_value(argv[i], "-m -q --tokens") && i + 1 == argc) return fprintf(stderr, "gllmk rerank: %s needs a value\n", argv[i]), 2;
        if (!strcmp(argv[i], "-m")) dir = argv[++i];
        else if (!strcmp(argv[i], "-q")) query = argv[++i];
        else if (n == 64) return fprintf(stderr, "gllmk rerank: at most 64 documents a call\n"), 2;
        else if (!strcmp(argv[i], "--tokens")) {
            if (!parse_ids(docs[n] = argv[++i], seqs[n], 512, &lens[n])) return 2;
            raw[n++] = 1;
        } else {
            docs[n] = argv[i], raw[n++] = 0;
        }
    }
    if (!dir || !n) return fprintf(stderr, "usage: gllmk rerank -m dir -q \"query\" \"doc\" ... (or --tokens pair-ids ...)\n"), 2;
    for (size_t i = 0; i < n; i++)
        if (!raw[i] && !query) return fprintf(stderr, "gllmk rerank: -q query is needed for text documents\n"), 2;
    gllm_backend *b;
    gllm_reranker *r;
    if (gllm_backend_open("auto", &b) != GLLM_OK) return fail("backend");
    if (gllm_reranker_upload(b, dir, &r) != GLLM_OK) return fail(dir), gllm_backend_close(b), 1;
    const int rc = rerank_in(r, query, docs, raw, seqs, lens, n);
    gllm_reranker_free(r);
    gllm_backend_close(b);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "info") == 0) return info();
    if (strcmp(argv[1], "generate") == 0) return generate(argc - 1, argv + 1);
    if (strcmp(argv[1], "tokenize") == 0) return tokenize(argc - 1, argv + 1);
    if (strcmp(argv[1], "logits") == 0) return logits(argc - 1, argv + 1);
    if (strcmp(argv[1], "embed") == 0) return embed(argc - 1, argv + 1);
    if (strcmp(argv[1], "rerank") == 0) return rerank(argc - 1, argv + 1);
    if (strcmp(argv[1], "bench") == 0) return gllm_bench_main(argc - 1, argv + 1);
    fprintf(stderr, "usage: gllmk info | generate [-m model] [-p prompt | -f file] [--no-special] [-n tokens]\n"
                    "         [--temp T --top-k K --top-p P --min-p P --seed S]\n"
                    "         [--repeat-penalty R --frequency-penalty F --presence-penalty P --repeat-last-n N (64; -1 all)]\n"
                    "       | tokenize [-m model] [-p text | -f file] [--no-special]\n"
                    "       | logits [-m model] --tokens 1,2,3 [--out file.f32]\n"
                    "       | embed [-m dir|file.gguf] [--out file.f32] [--tokens ids] \"text\" ...\n"
                    "       | rerank -m dir|file.gguf -q \"query\" [--tokens ids] \"doc\" ...\n"
                    "       | bench [--quick] [--op gemv,gemm,ops,attn,sample,cuda,model,embed] [--model FILE]\n");
    return 2;
}
