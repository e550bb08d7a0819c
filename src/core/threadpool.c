#include "core/threadpool.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include "core/error.h"
#include "kernels.h"

#define MAX_THREADS 256

static struct {
    int n, size;                /* threads including the caller: running, and once whole */
    unsigned long born;         /* the generation a worker starts from (set before it is made) */
    pthread_t tid[MAX_THREADS];
    void *scratch[MAX_THREADS];
    pthread_mutex_t run_lock;   /* one job at a time */
    pthread_mutex_t lock;
    pthread_cond_t start, done;
    /* bumped for each job: the line idle workers spin on, alone (sharing one with `next`, the
     * spinners slowed the caller's claims: SmolLM2 decode +3-5 %) */
    _Alignas(64) atomic_ulong generation;
    _Alignas(64) atomic_int busy; /* workers still on the current job */
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
    unsigned long seen = pool.born;
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

/* Workers up to pool.size, as their generation pool.born: at start, and in a forked child
 * (which has none), on its first job. Under run_lock (no job in flight) or before any job. */
static void spawn(void) {
    pool.born = atomic_load(&pool.generation);
    for (int i = pool.n; i < pool.size; i++) {
        if (pthread_create(&pool.tid[i], NULL, worker, (void *)(size_t)i)) break;
        pthread_detach(pool.tid[i]);
        pool.n++;
    }
    pool.size = pool.n;
}

/* fork(): the prepare handler waits for the job in flight and holds the pool still; the child,
 * whose only thread is the one that forked, gets fresh locks and makes its workers anew at its
 * first job (a pre-forking server initialises the library, then forks its workers) */
static void fork_prepare(void) {
    pthread_mutex_lock(&pool.run_lock);
    pthread_mutex_lock(&pool.lock);
}

static void fork_parent(void) {
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.run_lock);
}

static void fork_child(void) {
    const pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    const pthread_cond_t none = PTHREAD_COND_INITIALIZER;
    pool.run_lock = fresh, pool.lock = fresh, pool.start = none, pool.done = none;
    pool.n = 1, pool.sleepers = 0, pool.waiting = 0;
    atomic_store(&pool.busy, 0);
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
    pool.n = 1, pool.size = (int)n;
    spawn();
    if (pthread_atfork(fork_prepare, fork_parent, fork_child))
        return gllm_fail(GLLM_E_INTERNAL, "thread pool: cannot register its fork handlers");
    return GLLM_OK;
}

int gllm_pool_threads(void) { return pool.size; }

void gllm_pool_run(size_t ntasks, gllm_task_fn fn, void *ctx) {
    pthread_mutex_lock(&pool.run_lock);
    if (pool.n < pool.size) spawn(); /* a forked child's first job */
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
