#include "core/dispatch.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/cpu_features.h"
#include "core/dtype_traits.h"
#include "core/error.h"
#include "core/threadpool.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static gllm_status init_status;
static char init_error[512];
static const gllm_kernel_table *table;

gllm_isa_id gllm_isa_from_name(const char *name) {
    for (int i = 0; i < GLLM_ISA_COUNT; i++) {
        static const char *const names[GLLM_ISA_COUNT] = {
#define X(isa) [GLLM_ISA_##isa] = #isa
            X(SCALAR), X(AVX2), X(AVX512), X(AMX), X(NEON)
#undef X
        };
        if (names[i] && strcasecmp(names[i], name) == 0) return (gllm_isa_id)i;
    }
    return GLLM_ISA_COUNT;
}

gllm_isa_id gllm_best_isa(void) {
    for (int i = GLLM_ISA_COUNT - 1; i > 0; i--)
        if (gllm_kernel_tables[i] && gllm_cpu_supports((gllm_isa_id)i)) return (gllm_isa_id)i;
    return GLLM_ISA_SCALAR;
}

static gllm_status choose(void) {
    /* a capped ISA is probed alone: no AMX tile request under GLLM_ISA=avx512 */
    const char *want = getenv("GLLM_ISA");
    gllm_isa_id isa = GLLM_ISA_SCALAR;
    if (want && *want) {
        isa = gllm_isa_from_name(want);
        if (isa == GLLM_ISA_COUNT)
            return gllm_fail(GLLM_E_UNSUPPORTED, "GLLM_ISA=%s: unknown ISA (scalar, avx2, avx512, amx, neon)", want);
        if (!gllm_kernel_tables[isa] || !gllm_cpu_supports(isa))
            return gllm_fail(GLLM_E_UNSUPPORTED, "GLLM_ISA=%s: this CPU or build does not support it (best: %s)",
                             want, gllm_kernel_tables[gllm_best_isa()]->isa);
    } else {
        isa = gllm_best_isa();
    }
    table = gllm_kernel_tables[isa];
    gllm_status s = gllm_pool_init();
    if (s != GLLM_OK) return s;
    const char *verbose = getenv("GLLM_VERBOSE");
    if (verbose && atoi(verbose) > 0) {
        fprintf(stderr, "gllm: isa %s, %d threads\n", table->isa, gllm_pool_threads());
        for (int op = 0; op < GLLM_OP_COUNT; op++)
            for (int t = 0; t < GLLM_DTYPE_COUNT; t++)
                fprintf(stderr, "gllm: %-10s %-5s -> %s\n", gllm_op_names[op], gllm_dtype_traits_table[t].name,
                        table->names[op][t]);
    }
    return GLLM_OK;
}

static void init_once(void) {
    init_status = choose();
    if (init_status != GLLM_OK) snprintf(init_error, sizeof init_error, "%s", gllm_last_error());
}

gllm_status gllm_ensure_init(void) {
    pthread_once(&once, init_once);
    if (init_status != GLLM_OK) return gllm_fail(init_status, "%s", init_error);
    return GLLM_OK;
}

const gllm_kernel_table *gllm_kernels(void) { return table; }

double gllm_matmul_tol(const gllm_kernel_table *kt, gllm_dtype t) {
    return t == GLLM_DTYPE_BF16 && kt->gemm_bf16_rounds_x ? 4e-3 : gllm_dtype_traits_table[t].tol;
}
