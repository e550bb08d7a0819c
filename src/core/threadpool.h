/* The library's persistent thread pool: created once, no threads per call. */
#ifndef GLLM_THREADPOOL_H
#define GLLM_THREADPOOL_H
#include <stddef.h>
#include "gllm_kernels.h"

/* fn(ctx, task, scratch): scratch is the running thread's own GLLM_SCRATCH_BYTES buffer */
typedef void (*gllm_task_fn)(void *ctx, size_t task, void *scratch);

gllm_status gllm_pool_init(void); /* size from GLLM_NUM_THREADS, else online cores */
int gllm_pool_threads(void);
/* the running thread's index in [0, gllm_pool_threads()), inside a task */
int gllm_pool_thread(void);
/* run tasks [0, ntasks) on the pool (the caller works too); returns when all are done */
void gllm_pool_run(size_t ntasks, gllm_task_fn fn, void *ctx);

/* tasks (or rows) of n parts in one run: part b holds [at[b], at[b + 1]), at[0] = 0; the part
 * that holds i */
static inline size_t gllm_part_of(const size_t *at, size_t n, size_t i) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        const size_t mid = (lo + hi + 1) / 2;
        if (at[mid] <= i) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}
#endif
