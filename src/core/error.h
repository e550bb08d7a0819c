/* Per-thread last-error message. */
#ifndef GLLM_ERROR_H
#define GLLM_ERROR_H
#include "gllm_kernels.h"
gllm_status gllm_fail(gllm_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif
