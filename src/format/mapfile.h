/* A whole file mapped read-only (model files are used in place, never copied). */
#ifndef GLLM_FORMAT_MAPFILE_H
#define GLLM_FORMAT_MAPFILE_H
#include <stddef.h>
#include "gllm_kernels.h"

gllm_status gllm_map_file(const char *path, const char *what, const void **data, size_t *size);
void gllm_unmap_file(const void *data, size_t size);
/* the whole pages of [p, p + n) inside the mapping [data, data + size) leave the process's
 * memory (a copy of them is in use elsewhere); they come back from the file if read again */
void gllm_map_release(const void *data, size_t size, const void *p, size_t n);

/* the tensor spans of a file: n records of `stride` bytes, each with a data pointer at byte
 * data_at and its byte count (size_t) at size_at (offsetof). 1 when two spans overlap, 0 when
 * none do, -1 without memory. */
int gllm_spans_overlap(const void *records, size_t n, size_t stride, size_t data_at, size_t size_at);
#endif
