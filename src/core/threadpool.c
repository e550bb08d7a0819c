#include "core/threadpool.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include "core/error.h"
#include "kernels.h"

#define MAX_THREADS 256

static struct {
    int n;                      /* threads including the caller */
    pthread_t tid[MAX_THREADS];
    void *scratch[MAX_THREADS];
    pthread_mutex_t run_lock;   /* one job at a time */
    pthread_mutex_t lock;
    pthread_cond_t start, done;
    atomic_ulong generation;    /* bumped for each job */
    atomic_int busy;            /* workers still on the current job */
    int sleepers, waiting;      /* under lock: workers asleep; the caller asleep on done */
    gllm_task_fn fn;
    void *ctx;
    size_t ntasks;
    atomic_size_t next;
} pool = {.run_lock = PTHREAD_MUTEX_INITIALIZER, .lock = PTHREAD_MUTEX_INITIALIZER,
          .start = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static _Thread_local int thread_index; /* 0: the caller of gllm_pool_run */

int gllm_pool_thread(void) { return thread_index; }

static void work(int self) {
    size_t t;
    while ((t = atomic_fetch_add(&pool.next, 1)) < pool.ntasks) pool.fn(pool.ctx, t, pool.scratch[self]);
}

/* Between jobs a worker spins a little before it sleeps: a decode step runs hundreds of
 * short jobs, and a condition-variable wake-up per job would cost more than the job. */
#define SPIN 20000

static inline void relax(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static void *worker(void *arg) {
    const int self = (int)(size_t)arg;
    unsigned long seen = 0;
    thread_index = self;
    for (;;) {
        for (int i = 0; i < SPIN && atomic_load_explicit(&pool.generation, memory_order_acquire) == seen; i++) relax();
        if (atomic_load_explicit(&pool.generation, memory_order_acquire) == seen) {
            pthread_mutex_lock(&pool.lock);
            pool.sleepers++;
            while (atomic_load(&pool.generation) == seen) pthread_cond_wait(&pool.start, &pool.lock);
            pool.sleepers--;
            pthread_mutex_unlock(&pool.lock);
        }
        seen = atomic_load(&pool.generation);
        work(self);
        if (atomic_fetch_sub(&pool.busy, 1) == 1) {
            pthread_mutex_lock(&pool.lock);
            if (pool.waiting) pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
    }
    return NULL;
}

gllm_status gllm_pool_init(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    const char *env = getenv("GLLM_NUM_THREADS");
    if (env && *env) {
        char *end;
        n = strtol(env, &end, 10);
        if (*end || n < 1 || n > MAX_THREADS)
            return gllm_fail(GLLM_E_INVALID_ARGUMENT, "GLLM_NUM_THREADS=%s: expected 1..%d", env, MAX_THREADS);
    }
    if (n < 1) n = 1;
    if (n > MAX_THREADS) n = MAX_THREADS;
    for (int i = 0; i < n; i++)
        if (posix_memalign(&pool.scratch[i], 64, GLLM_SCRATCH_BYTES))
            return gllm_fail(GLLM_E_OUT_OF_MEMORY, "thread pool: no memory for scratch buffers");
    pool.n = 1;
    for (int i = 1; i < n; i++) {
        if (pthread_create(&pool.tid[i], NULL, worker, (void *)(size_t)i)) break;
        pthread_detach(pool.tid[i]);
        pool.n++;
    }
    return GLLM_OK;
}

int gllm_pool_threads(void) { return pool.n; }

void gllm_pool_run(size_t ntasks, gllm_task_fn fn, void *ctx) {
    pthread_mutex_lock(&pool.run_lock);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.ntasks = ntasks;
    atomic_store(&pool.next, 0);
    if (pool.n > 1 && ntasks > 1) {
        atomic_store(&pool.busy, pool.n - 1);
        atomic_fetch_add_explicit(&pool.generation, 1, memory_order_release);
        pthread_mutex_lock(&pool.lock);
        if (pool.sleepers) pthread_cond_broadcast(&pool.start);
        pthread_mutex_unlock(&pool.lock);
        work(0);
        for (int i = 0; i < SPIN && atomic_load(&pool.busy); i++) relax();
        if (atomic_load(&pool.busy)) {
            pthread_mutex_lock(&pool.lock);
            pool.waiting = 1;
            while (atomic_load(&pool.busy)) pthread_cond_wait(&pool.done, &pool.lock);
            pool.waiting = 0;
            pthread_mutex_unlock(&pool.lock);
        }
    } else {
        work(0);
    }
    pthread_mutex_unlock(&pool.run_lock);
}
