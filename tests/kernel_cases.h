/* One check per generated kernel, against src/ref. Shared by the Criterion
 * suite (native) and the plain driver (NEON under qemu). */
#ifndef GLLM_KERNEL_CASES_H
#define GLLM_KERNEL_CASES_H
#include <stddef.h>
#include "kernels.h"

enum { CASE_PASS = 0, CASE_FAIL = 1, CASE_SKIP = 2 };
/* one (op, dtype, isa) kernel; msg gets the reason of a failure or skip */
int gllm_check_kernel(int op, gllm_dtype dt, gllm_isa_id isa, int quick, char *msg, size_t len);
/* one op outside the dtype grid, by name */
int gllm_check_isa_kernel(const char *op, gllm_isa_id isa, int quick, char *msg, size_t len);
#endif
