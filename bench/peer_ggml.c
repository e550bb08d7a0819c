/*
 * ggml, llama.cpp's tensor library, as a benchmark peer: loaded with dlopen from the directory
 * named by GLLM_GGML_LIB (bench/peers/setup.sh installs llama-cpp-python from PyPI, which
 * carries libggml-base.so and libggml-cpu.so, and prints that directory). Nothing is linked.
 *
 * The calls are ggml's plain graph API on the CPU (ggml_mul_mat, ggml_flash_attn_ext,
 * ggml_graph_compute_with_ctx). llama.cpp itself may repack some weight formats for its
 * matmuls (its CPU "extra" buffers); end-to-end comparisons with llama.cpp are in
 * bench/peers/llama_peer.py.
 */
#include "bench/peer_ggml.h"
#include "bench/bench.h"

#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the parts of ggml's C API used here (ggml.h, ggml-cpu.h) */
struct ggml_init_params {
    size_t mem_size;
    void *mem_buffer;
    bool no_alloc;
};
typedef struct ggml_context ggml_context;
typedef struct ggml_tensor ggml_tensor;
typedef struct ggml_cgraph ggml_cgraph;
enum { GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q8_0 = 8, GGML_BF16 = 30 };

static struct {
    ggml_context *(*init)(struct ggml_init_params);
    void (*free)(ggml_context *);
    ggml_tensor *(*new_tensor_4d)(ggml_context *, int, int64_t, int64_t, int64_t, int64_t);
    void *(*get_data)(const ggml_tensor *);
    ggml_tensor *(*mul_mat)(ggml_context *, ggml_tensor *, ggml_tensor *);
    ggml_tensor *(*flash_attn_ext)(ggml_context *, ggml_tensor *, ggml_tensor *, ggml_tensor *, ggml_tensor *, float,
                                   float, float);
    ggml_cgraph *(*new_graph)(ggml_context *);
    void (*build_forward_expand)(ggml_cgraph *, ggml_tensor *);
    size_t (*quantize_chunk)(int, const float *, void *, int64_t, int64_t, int64_t, const float *);
    size_t (*row_size)(int, int64_t);
    void (*fp32_to_fp16_row)(const float *, uint16_t *, int64_t);
    int (*compute)(ggml_context *, ggml_cgraph *, int);
    int threads;
} G;

static char loaded_name[512];

const char *gllm_peer_ggml_load(int threads) {
    const char *dir = getenv("GLLM_GGML_LIB");
    if (!dir || !*dir) return NULL;
    char path[400];
    snprintf(path, sizeof path, "%s/libggml-base.so", dir);
    void *base = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    snprintf(path, sizeof path, "%s/libggml-cpu.so", dir);
    void *cpu = base ? dlopen(path, RTLD_NOW | RTLD_GLOBAL) : NULL;
    if (!cpu) {
        fprintf(stderr, "gllmk bench: ggml peer not loaded from %s: %s\n", dir, dlerror());
        return NULL;
    }
#define SYM(h, field, name) *(void **)&G.field = dlsym(h, name)
    SYM(base, init, "ggml_init");
    SYM(base, free, "ggml_free");
    SYM(base, new_tensor_4d, "ggml_new_tensor_4d");
    SYM(base, get_data, "ggml_get_data");
    SYM(base, mul_mat, "ggml_mul_mat");
    SYM(base, flash_attn_ext, "ggml_flash_attn_ext");
    SYM(base, new_graph, "ggml_new_graph");
    SYM(base, build_forward_expand, "ggml_build_forward_expand");
    SYM(base, quantize_chunk, "ggml_quantize_chunk");
    SYM(base, row_size, "ggml_row_size");
    SYM(base, fp32_to_fp16_row, "ggml_fp32_to_fp16_row");
    SYM(cpu, compute, "ggml_graph_compute_with_ctx");
    void (*cpu_init)(void);
    *(void **)&cpu_init = dlsym(cpu, "ggml_cpu_init");
#undef SYM
    if (!G.init || !G.free || !G.new_tensor_4d || !G.get_data || !G.mul_mat || !G.flash_attn_ext || !G.new_graph ||
        !G.build_forward_expand || !G.quantize_chunk || !G.row_size || !G.fp32_to_fp16_row || !G.compute || !cpu_init) {
        fprintf(stderr, "gllmk bench: %s lacks a ggml entry point this bench calls\n", dir);
        G.init = NULL;
        return NULL;
    }
    cpu_init();
    G.threads = threads;
    snprintf(loaded_name, sizeof loaded_name, "ggml (%s)", dir);
    return loaded_name;
}

/* The graph's best time over a few runs after a warm-up. ggml_graph_compute_with_ctx takes a new
 * work buffer from the context it is given on every call, so each run gets a context of its own,
 * made and freed outside the timing. 0 when ggml fails. */
static double best_compute(ggml_cgraph *gf, size_t work, int reps, double budget) {
    double best = 1e30, spent = 0;
    gllm_bench_settle(30);
    for (int r = -1; r < 50 && (r < reps || spent < budget); r++) {
        ggml_context *w = G.init((struct ggml_init_params){work, NULL, false});
        if (!w) return 0;
        const double t0 = gllm_bench_now();
        const int st = G.compute(w, gf, G.threads);
        const double t = gllm_bench_now() - t0;
        G.free(w);
        if (st != 0) return 0; /* GGML_STATUS_SUCCESS */
        if (r >= 0) spent += t, best = t < best ? t : best;
    }
    return best;
}

static int ggml_type_of(gllm_dtype t) {
    switch (t) {
    case GLLM_DTYPE_F32: return GGML_F32;
    case GLLM_DTYPE_F16: return GGML_F16;
    case GLLM_DTYPE_BF16: return GGML_BF16;
    case GLLM_DTYPE_Q8_0: return GGML_Q8_0;
    case GLLM_DTYPE_Q4_0: return GGML_Q4_0;
    case GLLM_DTYPE_Q4_1: return GGML_Q4_1;
    default: return -1; /* q2_0 / q1_0: our 32-element layouts (ggml's Q2_0 / Q1_0 use other block sizes) */
    }
}

double gllm_peer_ggml_matmul(gllm_dtype t, const float *w32, const float *x, size_t m, size_t n, size_t k,
                             double budget) {
    const int gt = ggml_type_of(t);
    if (!G.init || gt < 0) return 0;
    const size_t wbytes = G.row_size(gt, (int64_t)k) * n;
    /* weights, activations, result, graph; the work area (activations converted) is apart */
    const size_t mem = wbytes + m * k * 4 + m * n * 4 + ((size_t)16 << 20), work = m * k * 4 + ((size_t)16 << 20);
    ggml_context *ctx = G.init((struct ggml_init_params){mem, NULL, false});
    if (!ctx) return 0;
    ggml_tensor *w = G.new_tensor_4d(ctx, gt, (int64_t)k, (int64_t)n, 1, 1);
    ggml_tensor *a = G.new_tensor_4d(ctx, GGML_F32, (int64_t)k, (int64_t)m, 1, 1);
    G.quantize_chunk(gt, w32, G.get_data(w), 0, (int64_t)n, (int64_t)k, NULL);
    memcpy(G.get_data(a), x, m * k * sizeof(float));
    ggml_cgraph *gf = G.new_graph(ctx);
    G.build_forward_expand(gf, G.mul_mat(ctx, w, a));
    const double best = best_compute(gf, work, 3, budget);
    G.free(ctx);
    return best;
}

double gllm_peer_ggml_attention(size_t nq, size_t ctx_len, size_t nh, size_t kvh, size_t hd, int reps) {
    if (!G.init) return 0;
    const size_t kv_bytes = 2 * ctx_len * kvh * hd * 2, q_bytes = nq * nh * hd * 4;
    const size_t mem = kv_bytes + 2 * q_bytes + ctx_len * nq * 2 + ((size_t)16 << 20);
    const size_t work = (size_t)G.threads * (ctx_len + 4 * hd) * 16 + ((size_t)16 << 20);
    ggml_context *ctx = G.init((struct ggml_init_params){mem, NULL, false});
    if (!ctx) return 0;
    ggml_tensor *q = G.new_tensor_4d(ctx, GGML_F32, (int64_t)hd, (int64_t)nq, (int64_t)nh, 1);
    ggml_tensor *k = G.new_tensor_4d(ctx, GGML_F16, (int64_t)hd, (int64_t)ctx_len, (int64_t)kvh, 1);
    ggml_tensor *v = G.new_tensor_4d(ctx, GGML_F16, (int64_t)hd, (int64_t)ctx_len, (int64_t)kvh, 1);
    ggml_tensor *mask = G.new_tensor_4d(ctx, GGML_F16, (int64_t)ctx_len, (int64_t)nq, 1, 1);
    float *tmp = malloc(ctx_len * kvh * hd * sizeof(float));
    if (!tmp) return G.free(ctx), 0;
    uint32_t s = 12345;
    for (size_t i = 0; i < ctx_len * kvh * hd; i++) s = s * 1664525u + 1013904223u, tmp[i] = (float)(s >> 8) / 8388608.0f - 1;
    G.fp32_to_fp16_row(tmp, G.get_data(k), (int64_t)(ctx_len * kvh * hd));
    G.fp32_to_fp16_row(tmp, G.get_data(v), (int64_t)(ctx_len * kvh * hd));
    float *qd = G.get_data(q);
    for (size_t i = 0; i < nq * nh * hd; i++) s = s * 1664525u + 1013904223u, qd[i] = (float)(s >> 8) / 8388608.0f - 1;
    /* causal: query i sits at position ctx_len - nq + i and sees keys up to it */
    uint16_t *md = G.get_data(mask);
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < ctx_len; j++) md[i * ctx_len + j] = j <= ctx_len - nq + i ? 0 : 0xfc00; /* 0 / -inf */
    free(tmp);
    ggml_cgraph *gf = G.new_graph(ctx);
    G.build_forward_expand(gf, G.flash_attn_ext(ctx, q, k, v, mask, 1.0f / sqrtf((float)hd), 0.0f, 0.0f));
    const double best = best_compute(gf, work, reps, 0);
    G.free(ctx);
    return best;
}
