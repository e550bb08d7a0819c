/* A whole file mapped read-only (model files are used in place, never copied). */
#ifndef GLLM_FORMAT_MAPFILE_H
#define GLLM_FORMAT_MAPFILE_H
#include <stddef.h>
#include "gllm_kernels.h"

gllm_status gllm_map_file(const char *path, const char *what, const void **data, size_t *size);
void gllm_unmap_file(const void *data, size_t size);
#endif
