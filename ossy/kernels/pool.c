/* ossy's kernels' thread pool: `ossy_set_threads` workers that spin briefly, then sleep, between
 * parallel runs; tasks are claimed one at a time with a generation-tagged counter, so a late
 * worker can never run a task of a later run with an earlier run's function. */

#include <pthread.h>
#include <stdatomic.h>
#include <immintrin.h>

#include "common.h"

#define MAX_THREADS 64

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    int started, wanted;          /* worker threads running / asked for (plus the caller) */
    pthread_t threads[MAX_THREADS];
    _Atomic uint32_t generation;  /* bumped for every parallel run */
    _Atomic uint64_t next;        /* generation << 32 | next task index */
    _Atomic int done;             /* tasks finished in this generation */
    task_fn fn;
    void *ctx;
    int tasks;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .wanted = 1};

static int claim(uint32_t gen, int tasks) {
    uint64_t v = atomic_load(&pool.next);
    for (;;) {
        if ((uint32_t)(v >> 32) != gen || (int)(uint32_t)v >= tasks) return -1;
        if (atomic_compare_exchange_weak(&pool.next, &v, v + 1)) return (int)(uint32_t)v;
    }
}

static void run_tasks(uint32_t gen, task_fn fn, void *ctx, int tasks) {
    int t;
    while ((t = claim(gen, tasks)) >= 0) {
        fn(ctx, t);
        atomic_fetch_add(&pool.done, 1);
    }
}

static void *worker(void *arg) {
    (void)arg;
    uint32_t seen = atomic_load(&pool.generation);
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&pool.generation, memory_order_acquire) == seen) {
            if (++spins < 20000) { _mm_pause(); continue; }
            pthread_mutex_lock(&pool.mu);
            while (atomic_load(&pool.generation) == seen) pthread_cond_wait(&pool.wake, &pool.mu);
            pthread_mutex_unlock(&pool.mu);
        }
        pthread_mutex_lock(&pool.mu);
        seen = atomic_load(&pool.generation);
        task_fn fn = pool.fn;
        void *ctx = pool.ctx;
        int tasks = pool.tasks;
        pthread_mutex_unlock(&pool.mu);
        if (fn == NULL) return NULL; /* shutting down */
        run_tasks(seen, fn, ctx, tasks);
    }
}

int ossy_set_threads(int n) {
    if (n < 1) n = 1;
    if (n > MAX_THREADS) n = MAX_THREADS;
    pthread_mutex_lock(&pool.mu);
    pool.wanted = n;
    while (pool.started < n - 1) {
        if (pthread_create(&pool.threads[pool.started], NULL, worker, NULL) != 0) break;
        pthread_detach(pool.threads[pool.started]);
        pool.started++;
    }
    pthread_mutex_unlock(&pool.mu);
    return pool.started + 1;
}

/* Run fn(ctx, 0..tasks-1) on the pool and this thread; returns when all are done. Extra workers
 * beyond `wanted` (after a lower ossy_set_threads) just find no task. */
void ossy_parallel(task_fn fn, void *ctx, int tasks) {
    if (tasks <= 0) return;
    if (pool.wanted <= 1 || pool.started == 0 || tasks == 1) {
        for (int t = 0; t < tasks; t++) fn(ctx, t);
        return;
    }
    pthread_mutex_lock(&pool.mu);
    uint32_t gen = atomic_load(&pool.generation) + 1;
    pool.fn = fn;
    pool.ctx = ctx;
    pool.tasks = tasks;
    atomic_store(&pool.done, 0);
    atomic_store(&pool.next, (uint64_t)gen << 32);
    atomic_store_explicit(&pool.generation, gen, memory_order_release);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    run_tasks(gen, fn, ctx, tasks);
    while (atomic_load(&pool.done) < tasks) _mm_pause();
}

