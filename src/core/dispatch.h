/* Process-wide state chosen once: the ISA's kernel table and the thread pool. */
#ifndef GLLM_DISPATCH_H
#define GLLM_DISPATCH_H
#include "kernels.h"
#include "gllm_kernels.h"

/* Initialise once (idempotent); on failure sets the error message. */
gllm_status gllm_ensure_init(void);
/* the table in use (valid after a successful gllm_ensure_init) */
const gllm_kernel_table *gllm_kernels(void);
/* the matmul family's tolerance for t on table kt, relative to sum|w||x| per output: the
 * dtype's, or 2^-9 (one bf16 rounding per activation, with margin) where gemm rounds X to bf16 */
double gllm_matmul_tol(const gllm_kernel_table *kt, gllm_dtype t);
/* best ISA this CPU supports */
gllm_isa_id gllm_best_isa(void);
gllm_isa_id gllm_isa_from_name(const char *name); /* GLLM_ISA_COUNT if unknown */
#endif
