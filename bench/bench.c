/* gllmk bench: kernel throughput next to the machine's limits (measured in the
 * same run) and peers, loaded with dlopen when installed (bench-only, never linked
 * into the library): OpenBLAS for f32, and ggml, llama.cpp's tensor library, for
 * every format it shares with us (GLLM_GGML_LIB, see bench/peer_ggml.c).
 *
 *   gllmk bench [--quick] [--op gemv,gemm,ops,attn,sample,cuda,model,embed] [--dtype NAME] [--no-peer]
 *               [--model FILE.gguf] [--embed-model DIR|FILE.gguf]
 *
 * model: load, prefill 512, decode 64 on the "auto" backend, the file's bytes per token over
 * the measured bandwidth (CPU: DRAM read; CUDA: device copy), on CUDA with the decode graph
 * and without.
 *
 * ops: the row operators over 8192 x 4096 f32 activations (beyond the L3),
 * bytes read + written per second next to the read bandwidth.
 *
 * gemv: weights larger than the L3 are streamed once per call, so its limit is
 * the measured DRAM read bandwidth (a line whose weights fit in the L3 is marked: its
 * figure is the cache's); gemm's is the measured FMA peak. */
#include "bench/bench.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <math.h>
#include "gllm_kernels.h"
#include "core/dispatch.h"
#include "core/threadpool.h"
#include "cpu/attention.h"
#include "cpu/sample.h"
#include "cpu/embed.h"
#include "cpu/matmul.h"
#include "bench/peer_ggml.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

double gllm_bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- machine limits ---------------------------------------------------- */

/* the instruction a peak probe times */
typedef enum { PROBE_FMA, PROBE_VPDPBUSD, PROBE_VDPBF16PS, PROBE_TDPBF16PS } probe_instr;

typedef struct {
    int isa; /* 2 avx512, 1 avx2, 0 other */
    probe_instr instr;
    double flops;
    const float *mem;
    size_t len;
    double sum;
} probe_job;

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static double fma_loop512(long iters) {
    __m512 a[16], m = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 16; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
    float s = 0, t[16];
    for (int i = 0; i < 16; i++) _mm512_storeu_ps(t, a[i]), s += t[0];
    return s;
}
__attribute__((target("avx512f,avx512vnni"))) static double dot_loop512(long iters) {
    __m512i a[16], u = _mm512_set1_epi8(1), v = _mm512_set1_epi8(1);
    for (int i = 0; i < 16; i++) a[i] = _mm512_set1_epi32(i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 16; i++) a[i] = _mm512_dpbusd_epi32(a[i], u, v);
    int s = 0, t[16];
    for (int i = 0; i < 16; i++) _mm512_storeu_si512(t, a[i]), s += t[0];
    return s;
}
__attribute__((target("avx512f,avx512bf16"))) static double bf16_loop512(long iters) {
    __m512 a[16];
    const __m512bh u = (__m512bh)_mm512_set1_epi16(0x3f80), v = (__m512bh)_mm512_set1_epi16(0x3380); /* 1, ~6e-8 */
    for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 16; i++) a[i] = _mm512_dpbf16_ps(a[i], u, v);
    float s = 0, t[16];
    for (int i = 0; i < 16; i++) _mm512_storeu_ps(t, a[i]), s += t[0];
    return s;
}
/* AMX-BF16: four independent 16 x 16 tiles += 16 x 32 . 32 x 16 bf16 (tdpbf16ps, 8192 MACs an op);
 * the process holds tile permission already (the amx ISA was chosen: src/core/cpu_features.c) */
__attribute__((target("amx-tile,amx-bf16"))) static double amx_loop(long iters) {
    struct {
        uint8_t palette, start_row, reserved[14];
        uint16_t colsb[16];
        uint8_t rows[16];
    } cfg = {.palette = 1, .colsb = {64, 64, 64, 64, 64, 64, 64, 64}, .rows = {16, 16, 16, 16, 16, 16, 16, 16}};
    static int8_t ab[16 * 64]; /* zeros: no denormals */
    int32_t c[16 * 16];
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, ab, 64);
    _tile_loadd(5, ab, 64);
    _tile_loadd(6, ab, 64);
    _tile_loadd(7, ab, 64);
    for (long it = 0; it < iters; it++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, c, 64);
    _tile_release();
    return c[0];
}
__attribute__((target("avx2,fma"))) static double fma_loop256(long iters) {
    __m256 a[12], m = _mm256_set1_ps(1.0000001f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
    float s = 0, t[8];
    for (int i = 0; i < 12; i++) _mm256_storeu_ps(t, a[i]), s += t[0];
    return s;
}
#endif

static void *fma_thread(void *arg) {
    probe_job *j = arg;
    const long iters = 20000000;
    const double t0 = gllm_bench_now();
    double lanes_chains = 1;
#if defined(__x86_64__)
    if (j->isa == 2 && j->instr == PROBE_TDPBF16PS) j->sum = amx_loop(iters / 64), lanes_chains = 8192.0 * 4 / 64;
    else if (j->isa == 2 && j->instr == PROBE_VDPBF16PS) j->sum = bf16_loop512(iters), lanes_chains = 32 * 16; /* 32 MACs per op */
    else if (j->isa == 2 && j->instr == PROBE_VPDPBUSD) j->sum = dot_loop512(iters), lanes_chains = 64 * 16; /* 64 MACs per op */
    else if (j->isa == 2) j->sum = fma_loop512(iters), lanes_chains = 16 * 16;
    else if (j->isa == 1) j->sum = fma_loop256(iters), lanes_chains = 8 * 12;
#endif
    j->flops = 2.0 * lanes_chains * (double)iters / (gllm_bench_now() - t0);
    return NULL;
}

/* integer sums: associative, so the compiler vectorises them and the loop is
 * bound by memory, not by a floating-point add chain */
static void *read_thread(void *arg) {
    probe_job *j = arg;
    const uint64_t *p = (const uint64_t *)j->mem;
    const size_t n = j->len / 2;
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += p[i];
    j->sum = (double)s;
    return NULL;
}

static double run_threads(int n, void *(*fn)(void *), probe_job *jobs) {
    pthread_t t[256];
    const double t0 = gllm_bench_now();
    for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, fn, &jobs[i]);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    return gllm_bench_now() - t0;
}

static double fma_peak(int threads, int isa, probe_instr instr) {
    probe_job jobs[256] = {{0}};
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        for (int i = 0; i < threads; i++) jobs[i].isa = isa, jobs[i].instr = instr;
        run_threads(threads, fma_thread, jobs);
        double f = 0;
        for (int i = 0; i < threads; i++) f += jobs[i].flops;
        if (f > best) best = f;
    }
    return best;
}

/* the L3's bytes (0 where the system does not say): weights that fit in it are read from the
 * cache when a benchmark repeats a call, not from DRAM. The kernel's cache list first: glibc's
 * sysconf said 256 MiB for an AMD EPYC's 32 MiB L3 (a 2-core guest) */
static size_t l3_bytes(void) {
    for (int i = 0; i < 8; i++) {
        char path[64], line[32];
        unsigned level = 0, kib = 0;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        FILE *f = fopen(path, "r");
        if (!f) break;
        const int ok = fgets(line, sizeof line, f) && sscanf(line, "%u", &level) == 1;
        fclose(f);
        if (!ok || level != 3) continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        if (!(f = fopen(path, "r"))) break;
        const int got = fgets(line, sizeof line, f) && sscanf(line, "%uK", &kib) == 1;
        fclose(f);
        if (got && kib) return (size_t)kib << 10;
    }
    const long v = sysconf(_SC_LEVEL3_CACHE_SIZE);
    return v > 0 ? (size_t)v : 0;
}

static double read_bandwidth(int threads, size_t bytes) {
    float *mem = malloc(bytes);
    const size_t len = bytes / sizeof(float), per = len / (size_t)threads;
    for (size_t i = 0; i < len; i++) mem[i] = 1.0f;
    probe_job jobs[256] = {{0}};
    double best = 0;
    for (int rep = 0; rep < 4; rep++) {
        for (int i = 0; i < threads; i++) jobs[i].mem = mem + (size_t)i * per, jobs[i].len = per;
        const double t = run_threads(threads, read_thread, jobs);
        if ((double)(per * (size_t)threads * sizeof(float)) / t > best) best = (double)(per * (size_t)threads * 4) / t;
    }
    free(mem);
    return best;
}

/* ---- peer: OpenBLAS through dlopen ---------------------------------------- */

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float,
                         float *, int);
typedef void (*sgemv_fn)(int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
static sgemm_fn peer_sgemm;
static sgemv_fn peer_sgemv;

static const char *load_peer(int threads) {
    /* OpenBLAS picks its best kernel only without these (set here for old builds) */
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("OPENBLAS_L2_SIZE");
    static const char *const names[] = {"libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!h) continue;
        peer_sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
        peer_sgemv = (sgemv_fn)dlsym(h, "cblas_sgemv");
        void (*set_threads)(int) = (void (*)(int))dlsym(h, "openblas_set_num_threads");
        if (set_threads) set_threads(threads);
        if (peer_sgemm && peer_sgemv) return names[i];
    }
    return NULL;
}

/* ---- timing ------------------------------------------------------------------ */

typedef struct {
    gllm_dtype t;
    const void *w;
    const float *x;
    float *y;
    size_t m, n, k;
    int peer;  /* run OpenBLAS instead */
    int tiled; /* w in the tiled layout (the generator's decode weights) */
} case_t;

static void run_case(const case_t *c) {
    enum { RowMajor = 101, NoTrans = 111, Trans = 112 };
    if (c->peer && c->m == 1)
        peer_sgemv(RowMajor, NoTrans, (int)c->n, (int)c->k, 1.0f, c->w, (int)c->k, c->x, 1, 0.0f, c->y, 1);
    else if (c->peer)
        peer_sgemm(RowMajor, NoTrans, Trans, (int)c->m, (int)c->n, (int)c->k, 1.0f, c->x, (int)c->k, c->w, (int)c->k,
                   0.0f, c->y, (int)c->n);
    else if (c->tiled ? gllm_cpu_matmul(c->t, 1, c->w, c->x, NULL, c->y, c->m, c->n, c->k) != GLLM_OK
                      : gllm_matmul(c->t, c->w, c->x, NULL, c->y, c->m, c->n, c->k) != GLLM_OK) {
        fprintf(stderr, "gllmk bench: %s\n", gllm_last_error());
        exit(1);
    }
}

/* Three thread pools share the cores (ours, OpenBLAS's, ggml's OpenMP team), and each spins for a
 * while after its last job (OpenBLAS for ~0.1 s): a case starts once they have gone idle. */
void gllm_bench_settle(int ms) {
    const struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static double best_seconds(const case_t *c, double budget) {
    gllm_bench_settle(c->peer ? 0 : 30);
    run_case(c); /* warm-up */
    double best = 1e30, spent = 0;
    for (int rep = 0; rep < 50 && (rep < 3 || spent < budget); rep++) {
        const double t0 = gllm_bench_now();
        run_case(c);
        const double t = gllm_bench_now() - t0;
        spent += t;
        if (t < best) best = t;
    }
    return best;
}

static float *random_floats(size_t n, unsigned seed) {
    float *p = malloc(n * sizeof(float));
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) s = s * 1664525u + 1013904223u, p[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
    return p;
}

/* ---- row operators: rows of a hidden size, spread over the pool ---------------- */

typedef struct {
    const char *op;
    float *a, *b, *y, *cs;
    size_t dim, seq; /* seq: tokens per sequence for pooling */
} ops_job;

static void ops_task(void *ctx, size_t row, void *scratch) {
    (void)scratch;
    const ops_job *j = ctx;
    const gllm_kernel_table *kt = gllm_kernels();
    float *a = j->a + row * j->dim, *b = j->b + row * j->dim, *y = j->y + row * j->dim;
    if (!strcmp(j->op, "rmsnorm")) kt->rmsnorm(a, b, y, j->dim, 1e-6f);
    else if (!strcmp(j->op, "layernorm")) kt->layernorm(a, b, b, y, j->dim, 1e-5f);
    else if (!strcmp(j->op, "silu_mul")) kt->silu_mul(a, b, y, j->dim);
    else if (!strcmp(j->op, "gelu")) kt->gelu(a, y, j->dim);
    else if (!strcmp(j->op, "add")) kt->add(a, b, y, j->dim);
    else if (!strcmp(j->op, "softmax")) kt->softmax(a, y, j->dim);
    else if (!strcmp(j->op, "rope")) kt->rope(a, j->dim / 128, 128, 128, j->cs, 1);
    else if (!strcmp(j->op, "pool_mean")) /* task = one sequence */
        gllm_cpu_pool(GLLM_POOL_MEAN, j->a + row * j->seq * j->dim, NULL, j->seq, j->dim, 1, y);
}

static void bench_ops(int quick, double bw) {
    const size_t dim = 4096, rows = quick ? 256 : 8192; /* 8192 x 4096 f32 = 128 MiB per operand */
    ops_job j = {.dim = dim, .seq = rows < 512 ? rows : 512};
    j.a = random_floats(rows * dim, 3), j.b = random_floats(rows * dim, 4), j.y = malloc(rows * dim * 4);
    j.cs = random_floats(128, 5);
    /* bytes moved per element: operands read + result written */
    static const struct { const char *op; int rd, wr; } ops[] = {
        {"rmsnorm", 2, 1}, {"layernorm", 2, 1}, {"silu_mul", 2, 1}, {"gelu", 1, 1}, {"add", 2, 1},
        {"softmax", 2, 1}, {"rope", 1, 1}, {"pool_mean", 1, 0}};
    printf("\n%-10s %6s %6s %9s %8s %7s\n", "op", "rows", "dim", "ms", "GB/s", "limit%");
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        j.op = ops[i].op;
        double best = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            const double t0 = gllm_bench_now();
            gllm_pool_run(strcmp(j.op, "pool_mean") ? rows : rows / j.seq, ops_task, &j);
            const double t = gllm_bench_now() - t0;
            if (t < best) best = t;
        }
        const double gbs = (double)(rows * dim * 4) * (ops[i].rd + ops[i].wr) / best / 1e9;
        printf("%-10s %6zu %6zu %9.3f %8.1f %6.0f%%\n", j.op, rows, dim, best * 1e3, gbs, 100 * gbs * 1e9 / bw);
    }
    free(j.a), free(j.b), free(j.y), free(j.cs);
}

/* ---- attention: 32 query heads on 8 KV heads, head dim 128, f16 paged KV ---------- */

/* peak: the f32 FMA peak; on AMX tiles (attn_tiles) a third of tdpbf16ps's, as each product takes three */
static void bench_attn(int quick, double bw, double peak) {
    const size_t kvh = 8, nh = 32, hd = 128, ctx = quick ? 512 : 4096, pf = quick ? 64 : 512;
    gllm_kv_pool pool;
    gllm_kv_seq seq;
    if (gllm_kv_pool_init(&pool, GLLM_DTYPE_F16, 1, kvh, hd, 16, ctx / 16 + 1) != GLLM_OK ||
        gllm_kv_seq_init(&seq, &pool, ctx) != GLLM_OK || gllm_kv_reserve(&pool, &seq, ctx) != GLLM_OK) {
        fprintf(stderr, "gllmk bench: %s\n", gllm_last_error());
        return;
    }
    float *kv = random_floats(kvh * hd, 6), *q = random_floats(pf * nh * hd, 7), *o = malloc(pf * nh * hd * 4);
    for (size_t t = 0; t < ctx; t++) gllm_kv_write(&pool, &seq, 0, t, kv, kv);
    const float scale = 1.0f / sqrtf((float)hd);
    printf("\n%-14s %6s %6s %9s %9s %8s %7s   (prefill on %s)\n", "attention", "query", "keys", "ms", "GFLOPS", "KV GB/s",
           "limit%", gllm_kernels()->attn_tiles[GLLM_DTYPE_F16] ? "AMX tiles" : "f32 vectors");
    for (int pass = 0; pass < 2; pass++) {
        const size_t n = pass ? pf : 1, prefix = ctx - n;
        double best = 1e30;
        for (int rep = 0; rep < (pass ? 2 : 200); rep++) {
            const double t0 = gllm_bench_now();
            gllm_cpu_attention(&pool, &seq, 0, q, n, nh, prefix, GLLM_MASK_CAUSAL, NULL, scale, o);
            const double t = gllm_bench_now() - t0;
            if (t < best) best = t;
        }
        double keys = 0; /* visible keys summed over the queries */
        for (size_t i = 0; i < n; i++) keys += (double)(prefix + i + 1);
        const double flops = 4.0 * keys * hd * nh, bytes = (double)ctx * kvh * hd * 2 * 2;
        const double gbs = bytes / best / 1e9;
        printf("%-14s %6zu %6zu %9.3f %9.1f %8.1f %6.0f%%", pass ? "prefill causal" : "decode", n, ctx, best * 1e3,
               flops / best / 1e9, pass ? 0.0 : gbs, 100 * (pass ? flops / best / peak : gbs * 1e9 / bw));
        const double peer = gllm_peer_ggml_attention(n, ctx, nh, kvh, hd, pass ? 2 : 50);
        if (peer > 0)
            printf("  ggml flash_attn_ext %.3f ms, %.1f %s, ours %.2fx", peer * 1e3, pass ? flops / peer / 1e9 : bytes / peer / 1e9,
                   pass ? "GFLOPS" : "GB/s", peer / best);
        printf("\n");
    }
    free(kv), free(q), free(o);
    gllm_kv_seq_release(&pool, &seq);
    gllm_kv_pool_free(&pool);
}

/* ---- sampling: one row of a 152k vocabulary, one thread ------------------------------ */

static void bench_sample(void) {
    const size_t vocab = 151936;
    gllm_sampler s;
    if (gllm_sampler_init(&s, vocab, 256) != GLLM_OK) return;
    float *logits = random_floats(vocab, 8);
    for (size_t i = 0; i < vocab; i++) logits[i] *= 8.0f; /* a peaked, model-like spread */
    int32_t hist[256];
    for (int i = 0; i < 256; i++) hist[i] = (int32_t)(i * 577 % vocab);
    static const struct { const char *name; gllm_sampling c; } cases[] = {
        {"greedy", {.temperature = 0, .top_p = 1, .repetition_penalty = 1}},
        {"temperature", {.temperature = 0.8f, .top_p = 1, .repetition_penalty = 1}},
        {"top-k 40", {.temperature = 0.8f, .top_k = 40, .top_p = 1, .repetition_penalty = 1}},
        {"top-p 0.9", {.temperature = 0.8f, .top_p = 0.9f, .repetition_penalty = 1}},
        {"min-p 0.05", {.temperature = 0.8f, .top_p = 1, .min_p = 0.05f, .repetition_penalty = 1}},
        {"all+penalties", {.temperature = 0.8f, .top_k = 40, .top_p = 0.9f, .min_p = 0.05f,
                           .repetition_penalty = 1.1f, .frequency_penalty = 0.1f, .presence_penalty = 0.1f}}};
    printf("\n%-14s %8s %9s\n", "sampling", "vocab", "ms/row");
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        double best = 1e30;
        int32_t t;
        for (int rep = 0; rep < 50; rep++) {
            const double t0 = gllm_bench_now();
            gllm_sample_row(&s, logits, &cases[c].c, hist, 256, (uint64_t)rep, &t);
            const double dt = gllm_bench_now() - t0;
            if (dt < best) best = dt;
        }
        printf("%-14s %8zu %9.3f\n", cases[c].name, vocab, best * 1e3);
    }
    free(logits);
    gllm_sampler_free(&s);
}

/* ---- a model end to end (default: SmolLM2-135M Q4_1): load, prefill 512 tokens, decode 64 ---- */

/* batched decode: B sequences of 8 prompt tokens, then 16 steps of gllm_batch_forward +
 * gllm_sample over all B (one forward of B rows per step; on CUDA replayed from its graph) */
static void bench_batch(gllm_generator *g, gllm_kv_cache *kv, size_t vocab) {
    enum { STEPS = 16, MAXB = 64 };
    const int sizes[] = {1, 4, 8, 16, 32, 64};
    const gllm_sampling greedy = {.temperature = 0, .top_p = 1, .repetition_penalty = 1};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        const int n = sizes[k];
        int seq[MAXB];
        int32_t prompt[8], id[MAXB];
        gllm_batch_item items[MAXB];
        for (int i = 0; i < 8; i++) prompt[i] = (int32_t)((i * 7919 + 13) % (int)vocab);
        gllm_logits *l = NULL;
        int ok = 1;
        for (int b = 0; b < n; b++) ok = ok && gllm_seq_open(kv, 64, &seq[b]) == GLLM_OK, items[b] = (gllm_batch_item){seq[b], prompt, 8};
        ok = ok && gllm_batch_forward(g, kv, items, (size_t)n, &l) == GLLM_OK && gllm_sample(g, l, &greedy, NULL, 0, 0, id) == GLLM_OK;
        double best = 1e30;
        for (int round = 0; round < 2 && ok; round++) { /* the first round captures the graph */
            const double t = gllm_bench_now();
            for (int step = 0; step < STEPS / 2 && ok; step++) {
                for (int b = 0; b < n; b++) items[b] = (gllm_batch_item){seq[b], &id[b], 1};
                ok = gllm_batch_forward(g, kv, items, (size_t)n, &l) == GLLM_OK &&
                     gllm_sample(g, l, &greedy, NULL, 0, (uint64_t)step, id) == GLLM_OK;
            }
            best = fmin(best, (gllm_bench_now() - t) / (STEPS / 2));
        }
        char what[48];
        snprintf(what, sizeof what, "batch decode+sample, %d seq%s", n, n > 1 ? "s" : "");
        if (ok) printf("%-30s %10.3f %12.1f   (ms per step, tokens/s of all)\n", what, best * 1e3, n / best);
        else printf("%s: %s\n", what, gllm_last_error());
        for (int b = 0; b < n; b++) gllm_seq_close(kv, seq[b]);
    }
}

/* seconds of one prefill of n ids in a new sequence, its first token sampled (on CUDA: the
 * device done) */
static double prefill_once(gllm_generator *g, gllm_kv_cache *kv, const int32_t *ids, size_t n) {
    const gllm_sampling greedy = {.temperature = 0, .top_p = 1, .repetition_penalty = 1};
    int seq;
    gllm_logits *l;
    int32_t id;
    if (gllm_seq_open(kv, n + 64, &seq) != GLLM_OK) return 1e30;
    const double t = gllm_bench_now();
    gllm_generator_forward(g, kv, seq, ids, n, NULL, &l);
    gllm_sample(g, l, &greedy, NULL, 0, 0, &id);
    const double dt = gllm_bench_now() - t;
    gllm_seq_close(kv, seq);
    return dt;
}

/* seconds per token of 64 greedy decode+sample steps of sequence seq after an 8-token prompt */
static double decode_steps(gllm_generator *g, gllm_kv_cache *kv, int seq, const int32_t *ids) {
    gllm_logits *l;
    int32_t id;
    const gllm_sampling greedy = {.temperature = 0, .top_p = 1, .repetition_penalty = 1};
    gllm_generator_forward(g, kv, seq, ids, 8, NULL, &l);
    gllm_sample(g, l, &greedy, NULL, 0, 0, &id);
    const double t = gllm_bench_now();
    for (int i = 0; i < 64; i++) { /* the generation loop: forward, sample, feed back */
        gllm_generator_forward(g, kv, seq, &id, 1, NULL, &l);
        gllm_sample(g, l, &greedy, NULL, 0, (uint64_t)i, &id);
    }
    return (gllm_bench_now() - t) / 64;
}

static void bench_model(const char *path, double bw) {
    gllm_backend *b;
    gllm_model *m;
    const double t0 = gllm_bench_now();
    if (gllm_backend_open("auto", &b) != GLLM_OK || gllm_model_open(path, &m) != GLLM_OK) {
        printf("\nmodel: %s not available (bash scripts/fetch_models.sh)\n", path);
        return;
    }
    const double load = gllm_bench_now() - t0;
    gllm_model_info mi;
    gllm_model_get_info(m, &mi);
    gllm_backend_info bi;
    gllm_backend_get_info(b, &bi);
    FILE *f = fopen(path, "rb");
    double file_bytes = 0;
    if (f) fseek(f, 0, SEEK_END), file_bytes = (double)ftell(f), fclose(f);
    printf("\n%-30s %10s %12s   on %s (%s)\n", path, "ms", "tokens/s", bi.backend, bi.device);
    printf("%-30s %10.1f\n", "load (mmap)", load * 1e3);
    const int cuda = !strcmp(bi.backend, "cuda");
    for (int graphs = 1; graphs >= (cuda ? 0 : 1); graphs--) {
        if (!graphs) setenv("GLLM_CUDA_GRAPHS", "0", 1);
        gllm_generator *g;
        gllm_kv_cache *kv;
        const double u0 = gllm_bench_now();
        g = NULL;
        if (gllm_generator_upload(b, m, 512, &g) != GLLM_OK || gllm_kv_cache_alloc(g, 256, 16, GLLM_DTYPE_F16, &kv) != GLLM_OK) {
            printf("model: %s\n", gllm_last_error());
            gllm_generator_free(g);
            unsetenv("GLLM_CUDA_GRAPHS");
            break;
        }
        const double upload = gllm_bench_now() - u0;
        unsetenv("GLLM_CUDA_GRAPHS");
        int32_t ids[512];
        for (int i = 0; i < 512; i++) ids[i] = (int32_t)((i * 7919 + 13) % (int)mi.vocab);
        double pre = 1e30, dec = 1e30, fwd = 0, smp = 0;
        float *lrow = malloc(mi.vocab * sizeof(float));
        for (int rep = 0; rep < 3; rep++) {
            pre = fmin(pre, prefill_once(g, kv, ids, 512));
            int seq;
            gllm_logits *l;
            int32_t id;
            const gllm_sampling greedy = {.temperature = 0, .top_p = 1, .repetition_penalty = 1};
            gllm_seq_open(kv, 600, &seq);
            dec = fmin(dec, decode_steps(g, kv, seq, ids));
            if (cuda && rep == 2) { /* the loop's two halves: forwards alone (one sync), samples alone */
                double t = gllm_bench_now();
                for (int i = 0; i < 64; i++) gllm_generator_forward(g, kv, seq, &ids[i], 1, NULL, &l);
                gllm_logits_read(l, lrow, mi.vocab);
                fwd = gllm_bench_now() - t;
                t = gllm_bench_now();
                for (int i = 0; i < 64; i++) gllm_sample(g, l, &greedy, NULL, 0, (uint64_t)i, &id);
                smp = gllm_bench_now() - t;
            }
            gllm_seq_close(kv, seq);
        }
        const char *tiled = getenv("GLLM_TILED");
        printf("%-30s %10.1f\n", cuda ? (graphs ? "upload to the device" : "upload (eager generator)")
                                       : tiled && !strcmp(tiled, "1") ? "upload (GLLM_TILED=1: tiling)" : "upload (mapped, zero-copy)",
               upload * 1e3);
        printf("%-30s %10.1f %12.1f\n", graphs ? "prefill 512 tokens" : "prefill 512 (eager)", pre * 1e3, 512 / pre);
        printf("%-30s %10.3f %12.1f", cuda ? (graphs ? "decode+sample, graph replay" : "decode+sample, eager launches")
                                           : "decode+sample (per token)", dec * 1e3, 1 / dec);
        if (cuda && gllm_bench_cuda_bw > 0)
            printf("   %.0f GB/s = %.0f%% of copy bandwidth (file bytes per token)", file_bytes / dec / 1e9,
                   100 * file_bytes / dec / gllm_bench_cuda_bw);
        if (!cuda && bw > 0) /* over the L3's size, the weights stream from DRAM each token */
            printf("   %.1f GB/s = %.0f%% of read bandwidth (file bytes per token%s)", file_bytes / dec / 1e9,
                   100 * file_bytes / dec / bw, file_bytes <= (double)l3_bytes() ? "; the file fits in the L3" : "");
        printf("\n");
        if (cuda)
            printf("%-30s %10.3f   + sampling (greedy, id to the host) %.3f ms\n", "  of which forward alone", fwd * 1e3 / 64,
                   smp * 1e3 / 64);
        free(lrow);
        if (graphs) bench_batch(g, kv, mi.vocab);
        gllm_kv_cache_free(kv), gllm_generator_free(g);
    }
    /* other devices: f32 activations (the prefill's gemms on CUDA cores, the decode gemvs over
     * f32 x), then the default's decode with kernels launched as programmatic dependents (sm_90) */
    static const struct {
        const char *env, *prefill, *decode;
    } other[2] = {{"GLLM_CUDA_TENSOR_CORES", "prefill 512, CUDA cores", "decode+sample, graph, f32 x"},
                  {"GLLM_CUDA_DEPENDENT_LAUNCH", NULL, "decode+sample, graph, dependent"}};
    for (int o = 0; o < 2 && cuda; o++) {
        gllm_backend *ob;
        setenv(other[o].env, o ? "1" : "0", 1);
        if (gllm_backend_open("auto", &ob) == GLLM_OK) {
            gllm_generator *g = NULL;
            gllm_kv_cache *kv = NULL;
            if (gllm_generator_upload(ob, m, 512, &g) == GLLM_OK && gllm_kv_cache_alloc(g, 64, 16, GLLM_DTYPE_F16, &kv) == GLLM_OK) {
                int32_t ids[512];
                for (int i = 0; i < 512; i++) ids[i] = (int32_t)((i * 7919 + 13) % (int)mi.vocab);
                double pre = 1e30, dec = 1e30;
                for (int rep = 0; rep < 3; rep++) {
                    int seq;
                    pre = fmin(pre, prefill_once(g, kv, ids, 512));
                    if (gllm_seq_open(kv, 600, &seq) == GLLM_OK) dec = fmin(dec, decode_steps(g, kv, seq, ids)), gllm_seq_close(kv, seq);
                }
                if (other[o].prefill) printf("%-30s %10.1f %12.1f\n", other[o].prefill, pre * 1e3, 512 / pre);
                printf("%-30s %10.3f %12.1f\n", other[o].decode, dec * 1e3, 1 / dec);
            }
            gllm_kv_cache_free(kv), gllm_generator_free(g), gllm_backend_close(ob);
        }
        unsetenv(other[o].env);
    }
    gllm_model_close(m), gllm_backend_close(b);
}

/* ---- the default embedding model: 32 sentences of 128 tokens ---------------------------- */

/* peak: of the f32 gemm's instruction (AMX: a third of tdpbf16ps's, each product taken three times) */
static void bench_embed(const char *path, double peak) {
    gllm_backend *b;
    gllm_embedder *e;
    if (gllm_backend_open("auto", &b) != GLLM_OK || gllm_embedding_upload(b, path, &e) != GLLM_OK) {
        printf("\nembedding: %s not available (bash scripts/fetch_models.sh)\n", path);
        return;
    }
    enum { N = 32, L = 128 };
    static int32_t ids[N][L];
    const int32_t *seqs[N];
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        for (int t = 0; t < L; t++) ids[i][t] = t == 0 ? 101 : t == L - 1 ? 102 : 1000 + (i * 131 + t * 17) % 20000;
        seqs[i] = ids[i], lens[i] = L;
    }
    float *v = malloc(N * gllm_embedding_dim(e) * sizeof(float));
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        const double t0 = gllm_bench_now();
        gllm_embedding_forward(e, seqs, lens, N, 1, v);
        best = fmin(best, gllm_bench_now() - t0);
    }
    /* matmul flops of the encoder: 6 layers x 128 tokens x (4 d^2 + 2 d f) x 2 */
    const double d = 384, f = 1536, flops = N * 6.0 * L * (4 * d * d + 2 * d * f) * 2;
    printf("\n%-30s %9s %12s %10s %7s\n", path, "ms", "sentences/s", "GFLOPS", "peak%");
    printf("%-30s %9.1f %12.1f %10.1f %6.0f%%\n", "32 sentences x 128 tokens", best * 1e3, N / best, flops / best / 1e9,
           peak > 0 ? 100 * flops / best / peak : 0.0);
    /* the same GEMMs alone (f32 weights, all tokens of the batch): per layer Q, K, V, O (d x d), up (f x d), down (d x f) */
    static const size_t shapes[6][2] = {{384, 384}, {384, 384}, {384, 384}, {384, 384}, {1536, 384}, {384, 1536}};
    float *x = random_floats((size_t)N * L * 1536, 9), *y = malloc((size_t)N * L * 1536 * sizeof(float)), *w[6];
    for (int i = 0; i < 6; i++) w[i] = random_floats(shapes[i][0] * shapes[i][1], 10 + (unsigned)i);
    double gemms = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        const double t0 = gllm_bench_now();
        for (int layer = 0; layer < 6; layer++)
            for (int i = 0; i < 6; i++) gllm_matmul(GLLM_DTYPE_F32, w[i], x, NULL, y, (size_t)N * L, shapes[i][0], shapes[i][1]);
        gemms = fmin(gemms, gllm_bench_now() - t0);
    }
    printf("%-30s %9.1f %12s %10.1f %6.0f%%\n", "  its GEMMs alone (f32)", gemms * 1e3, "", flops / gemms / 1e9,
           peak > 0 ? 100 * flops / gemms / peak : 0.0);
    for (int i = 0; i < 6; i++) free(w[i]);
    free(x), free(y);
    free(v);
    gllm_embedder_free(e);
    gllm_backend_close(b);
}

/* ops: NULL (all) or a comma-separated list */
static int want(const char *ops, const char *op) {
    const size_t n = strlen(op);
    for (const char *p = ops; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (!strncmp(p, op, n) && (p[n] == ',' || !p[n])) return 1;
    return !ops;
}

int gllm_bench_main(int argc, char **argv) {
    int quick = 0, peer_on = 1;
    const char *only_op = NULL, *only_dtype = NULL, *model = "models/SmolLM2-135M-Instruct.Q4_1.gguf",
               *embed_model = "models/all-MiniLM-L6-v2";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--no-peer")) peer_on = 0;
        else if (!strcmp(argv[i], "--op") && i + 1 < argc) only_op = argv[++i];
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) only_dtype = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--embed-model") && i + 1 < argc) embed_model = argv[++i];
        else {
            fprintf(stderr, "usage: gllmk bench [--quick] [--op gemv,gemm,ops,attn,sample,cuda,model,embed] [--dtype NAME] "
                            "[--no-peer] [--model FILE] [--embed-model DIR|FILE]\n");
            return 2;
        }
    }
    if (gllm_init() != GLLM_OK) {
        fprintf(stderr, "gllmk bench: %s\n", gllm_last_error());
        return 1;
    }
    const int threads = gllm_num_threads();
    const char *isa = gllm_isa_name();
    const int amx = !strcmp(isa, "amx"), simd = !strcmp(isa, "avx512") || amx ? 2 : !strcmp(isa, "avx2") ? 1 : 0;
    const double peak = simd ? fma_peak(threads, simd, PROBE_FMA) : 0;
    const double peak8 = simd == 2 && !amx ? fma_peak(threads, simd, PROBE_VPDPBUSD) : 0; /* AMX: the block formats' gemm is bf16's */
    const double peak16 = simd == 2 ? fma_peak(threads, simd, amx ? PROBE_TDPBF16PS : PROBE_VDPBF16PS) : 0; /* the bf16 gemm's instruction */
    const double bw = read_bandwidth(threads, quick ? ((size_t)64 << 20) : ((size_t)1 << 30));
    const char *peer = peer_on ? load_peer(threads) : NULL;
    printf("gllm-kernels bench: isa %s, %d threads\n", isa, threads);
    if (simd) printf("limit: f32 FMA peak (%d-bit)  %8.1f GFLOPS\n", simd == 2 ? 512 : 256, peak / 1e9);
    if (peak8 > 0)
        printf("limit: int8 vpdpbusd    peak  %8.1f GOPS (block formats' gemm: limit%% is of this)\n", peak8 / 1e9);
    if (peak16 > 0)
        printf("limit: bf16 %s peak  %8.1f GFLOPS (limit%% of %s)\n", amx ? "AMX tdpbf16ps" : "vdpbf16ps  ", peak16 / 1e9,
               amx ? "the gemm of bf16 and the block formats; f32, f16 and attention: of a third, three products each"
                   : "bf16's gemm");
    printf("limit: memory read bandwidth    %8.1f GB/s (%s array)\n", bw / 1e9, quick ? "64 MiB" : "1 GiB");
    if (l3_bytes()) printf("L3:    %zu MiB (gemv: limit%% marked * has weights that fit in it, read from the cache)\n", l3_bytes() >> 20);
    const char *ggml = peer_on ? gllm_peer_ggml_load(threads) : NULL;
    printf("peer:  %s\n", peer ? peer : "none (OpenBLAS not installed or --no-peer)");
    printf("peer:  %s\n\n", ggml ? ggml : "no ggml (GLLM_GGML_LIB unset: bash bench/peers/setup.sh, or --no-peer)");
    if (want(only_op, "gemv") || want(only_op, "gemm"))
        printf("%-5s %-5s %6s %6s %6s %9s %9s %8s %7s  %s\n", "op", "dtype", "m", "n", "k", "ms", "GFLOPS", "GB/s",
           "limit%", "peers (OpenBLAS f32 | ggml, same dtype)");

    /* gemv: one row (decode), then the few rows of a batched decode step, weights read once for all */
    static const size_t gemv_shapes[][3] = {{1, 4096, 4096}, {1, 32768, 4096}, {2, 4096, 4096}, {4, 4096, 4096}, {8, 4096, 4096}, {16, 4096, 4096}};
    static const size_t gemm_shapes[][3] = {{128, 4096, 4096}, {512, 4096, 4096}, {128, 11008, 4096},
                                            {512, 11008, 4096}, {2048, 2048, 2048}};
    static const size_t quick_shapes[][3] = {{1, 1024, 1024}, {64, 512, 1024}};
    for (int pass = 0; pass < 2; pass++) {
        const int is_gemv = pass == 0;
        if (!want(only_op, is_gemv ? "gemv" : "gemm")) continue;
        const size_t(*shapes)[3] = quick ? quick_shapes + pass : is_gemv ? gemv_shapes : gemm_shapes;
        const size_t nshapes = quick ? 1 : is_gemv ? sizeof gemv_shapes / sizeof *gemv_shapes : sizeof gemm_shapes / sizeof *gemm_shapes;
        for (size_t s = 0; s < nshapes; s++) {
            const size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            float *w32 = random_floats(n * k, 1), *x = random_floats(m * k, 2), *y = malloc(m * n * sizeof(float));
            double peer_gflops = 0;
            for (int t = 0; t < GLLM_DTYPE_COUNT; t++) {
                if (only_dtype && strcmp(only_dtype, gllm_dtype_name((gllm_dtype)t))) continue;
                if (!is_gemv && m == 2048 && t != GLLM_DTYPE_F32) continue; /* the f32 square target only */
                size_t row;
                gllm_row_size((gllm_dtype)t, k, &row);
                void *w = malloc(n * row);
                gllm_quantize((gllm_dtype)t, w32, w, n, k);
                case_t c = {(gllm_dtype)t, w, x, y, m, n, k, 0, 0};
                const double sec = best_seconds(&c, quick ? 0.05 : 0.5);
                /* ggml before OpenBLAS: OpenBLAS's threads keep spinning for a while after a call */
                const double ggml_sec = ggml ? gllm_peer_ggml_matmul((gllm_dtype)t, w32, x, m, n, k, quick ? 0.05 : 0.5) : 0;
                if (t == GLLM_DTYPE_F32 && peer) {
                    case_t p = c;
                    p.peer = 1;
                    p.w = w32;
                    peer_gflops = 2.0 * (double)(m * n * k) / best_seconds(&p, quick ? 0.05 : 0.5) / 1e9;
                    gllm_bench_settle(250);
                }
                const double gflops = 2.0 * (double)(m * n * k) / sec / 1e9;
                const double gbs = (double)(n * row) / sec / 1e9;
                const int block = gllm_dtype_block_size((gllm_dtype)t) > 1, int8 = block && peak8 > 0; /* the int8-dot path */
                const int bf16 = (t == GLLM_DTYPE_BF16 || (block && amx)) && peak16 > 0; /* AMX: blocks dequantised to bf16 */
                const int split = amx && !block && t != GLLM_DTYPE_BF16 && peak16 > 0; /* f32, f16: three bf16 products each */
                const double dpeak = int8 ? peak8 : bf16 ? peak16 : split ? peak16 / 3 : peak; /* the tile's instruction */
                const double limit = is_gemv ? gbs * 1e9 / bw : dpeak > 0 ? gflops * 1e9 / dpeak : 0;
                const char *cached = is_gemv && n * row <= l3_bytes() ? "*" : " ";
                printf("%-5s %-5s %6zu %6zu %6zu %9.3f %9.1f %8.1f %6.0f%%%s", is_gemv ? "gemv" : "gemm",
                       gllm_dtype_name((gllm_dtype)t), m, n, k, sec * 1e3, gflops, gbs, 100 * limit, cached);
                if (peer_gflops > 0) printf("  %7.1f GFLOPS, ours %.2fx", peer_gflops, gflops / peer_gflops);
                if (ggml_sec > 0)
                    printf("  ggml %7.1f %s, ours %.2fx", is_gemv ? gbs * sec / ggml_sec : gflops * sec / ggml_sec,
                           is_gemv ? "GB/s" : "GFLOPS", ggml_sec / sec);
                printf("\n");
                if (is_gemv && gllm_cpu_tileable((gllm_dtype)t, n)) { /* the same weights tiled, as the generator holds them */
                    void *wt = malloc(n * row);
                    gllm_cpu_tile((gllm_dtype)t, w, wt, n, k);
                    case_t ct = c;
                    ct.w = wt, ct.tiled = 1;
                    const double st = best_seconds(&ct, quick ? 0.05 : 0.5), gt = (double)(n * row) / st / 1e9;
                    printf("%-5s %-5s %6zu %6zu %6zu %9.3f %9.1f %8.1f %6.0f%%%s", "gemv", "tiled", m, n, k, st * 1e3,
                           2.0 * (double)(m * n * k) / st / 1e9, gt, 100 * gt * 1e9 / bw, cached);
                    if (ggml_sec > 0) printf("  ggml %7.1f GB/s, ours %.2fx", gbs * sec / ggml_sec, ggml_sec / st);
                    printf("\n");
                    free(wt);
                }
                fflush(stdout);
                free(w);
            }
            free(w32), free(x), free(y);
        }
    }
    if (want(only_op, "ops")) bench_ops(quick, bw);
    if (want(only_op, "attn"))
        bench_attn(quick, bw, gllm_kernels()->attn_tiles[GLLM_DTYPE_F16] && peak16 > 0 ? peak16 / 3 : peak > 0 ? peak : 1e9);
    if (want(only_op, "sample")) bench_sample();
    if (want(only_op, "cuda")) gllm_bench_cuda(quick);
    if (want(only_op, "model")) bench_model(model, bw);
    if (want(only_op, "embed")) bench_embed(embed_model, amx && peak16 > 0 ? peak16 / 3 : peak);
    return 0;
}
