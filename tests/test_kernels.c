/* One Criterion test per generated kernel, derived from generated/kernel_list.inc. */
#include <criterion/criterion.h>
#include "kernel_cases.h"

static void run(int op, gllm_dtype t, gllm_isa_id isa) {
    char msg[512] = "";
    const int rc = gllm_check_kernel(op, t, isa, 0, msg, sizeof msg);
    if (rc == CASE_SKIP) cr_skip_test("%s", msg);
    cr_assert(rc == CASE_PASS, "%s", msg);
}

#define GLLM_KERNEL(op, dtype, isa, OP, DT, ISA) \
    Test(op##_##dtype, isa) { run(OP, DT, ISA); }
#define GLLM_ISA_KERNEL(op, isa, ISA)                                            \
    Test(op, isa) {                                                              \
        char msg[512] = "";                                                      \
        const int rc = gllm_check_isa_kernel(#op, ISA, 0, msg, sizeof msg);      \
        if (rc == CASE_SKIP) cr_skip_test("%s", msg);                            \
        cr_assert(rc == CASE_PASS, "%s", msg);                                   \
    }
#include "kernel_list.inc"
