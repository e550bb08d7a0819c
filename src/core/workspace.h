/* Per-call buffers from a per-thread workspace that is kept between calls: it allocates
 * only when a call needs more than any call before, so a generation loop in steady
 * state allocates nothing. Stack discipline: take a mark, allocate, release to the mark. */
#ifndef GLLM_WORKSPACE_H
#define GLLM_WORKSPACE_H
#include <stddef.h>

size_t gllm_ws_mark(void);
/* 64-byte aligned; NULL only when memory runs out */
void *gllm_ws_alloc(size_t bytes);
void gllm_ws_release(size_t mark);
/* the calling thread's chunks given back, where none is in use (an object freed: a batch of
 * thousands of tokens may have grown them to gigabytes) */
void gllm_ws_trim(void);
#endif
