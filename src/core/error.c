#include "core/error.h"
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[512];

gllm_status gllm_fail(gllm_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

const char *gllm_last_error(void) { return last_error; }

const char *gllm_status_string(gllm_status s) {
    switch (s) {
    case GLLM_OK: return "ok";
    case GLLM_E_INVALID_ARGUMENT: return "invalid argument";
    case GLLM_E_UNSUPPORTED: return "unsupported";
    case GLLM_E_OUT_OF_MEMORY: return "out of memory";
    case GLLM_E_INTERNAL: return "internal error";
    }
    return "unknown status";
}
