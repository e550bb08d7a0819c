/* gllmk: the gllm-kernels command-line tool.
 *   gllmk info             backend, detected ISA, ISA in use, threads, dispatch table
 *   gllmk bench [options]  kernel throughput next to the machine's limits and peers */
#include <stdio.h>
#include <string.h>
#include "gllm_kernels.h"
#include "bench/bench.h"

static int info(void) {
    if (gllm_init() != GLLM_OK) {
        fprintf(stderr, "gllmk: %s\n", gllm_last_error());
        return 1;
    }
    printf("backend   cpu\n");
    printf("detected  %s\n", gllm_isa_detected());
    printf("isa       %s%s\n", gllm_isa_name(), strcmp(gllm_isa_name(), gllm_isa_detected()) ? " (capped by GLLM_ISA)" : "");
    printf("threads   %d\n", gllm_num_threads());
    printf("dispatch table:\n");
    static const char *const ops[] = {"gemv", "gemm", "quantize", "dequantize"}; /* public op names */
    for (int t = 0; t < GLLM_DTYPE_COUNT; t++) {
        printf("  %-5s", gllm_dtype_name((gllm_dtype)t));
        for (size_t o = 0; o < sizeof ops / sizeof *ops; o++) printf("  %-26s", gllm_kernel_name(ops[o], (gllm_dtype)t));
        printf("\n");
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "info") == 0) return info();
    if (strcmp(argv[1], "bench") == 0) return gllm_bench_main(argc - 1, argv + 1);
    fprintf(stderr, "usage: gllmk info | gllmk bench [--quick] [--op gemv|gemm|ops|attn|sample] [--dtype NAME] [--no-peer]\n");
    return 2;
}
