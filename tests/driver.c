/* The kernel checks without Criterion's runner: for NEON under qemu-aarch64
 * (Criterion's forked runner hangs there). Same cases as test_kernels.c.
 * usage: gllm_kernel_driver [--quick] */
#include <stdio.h>
#include <string.h>
#include "kernel_cases.h"

int main(int argc, char **argv) {
    const int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    int passed = 0, failed = 0, skipped = 0;
    char msg[512];
#define TALLY(name, rc)                                                     \
    do {                                                                    \
        if (rc == CASE_PASS) passed++;                                      \
        else if (rc == CASE_SKIP) skipped++;                                \
        else failed++, printf("FAIL %s: %s\n", name, msg);                   \
    } while (0)
#define GLLM_KERNEL(op, dtype, isa, OP, DT, ISA)                                    \
    {                                                                               \
        const int rc = gllm_check_kernel(OP, DT, ISA, quick, msg, sizeof msg);      \
        TALLY(#op "_" #dtype "_" #isa, rc);                                         \
    }
#define GLLM_ISA_KERNEL(op, isa, ISA)                                                    \
    {                                                                                    \
        const int rc = gllm_check_isa_kernel(#op, ISA, quick, msg, sizeof msg);           \
        TALLY(#op "_" #isa, rc);                                                         \
    }
#include "kernel_list.inc"
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
