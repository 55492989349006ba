#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Ranges handed out per thread: a few each, so uneven items balance out. */
#define MD_POOL_CHUNKS_PER_THREAD 4

struct md_pool {
    int threads; /* workers + the calling thread */
    int started; /* worker threads actually running */
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t start_cv;
    pthread_cond_t done_cv;
    uint64_t generation; /* bumped for each job */
    int stop;
    int pending; /* workers still inside the current job */

    /* the current job */
    md_range_fn fn;
    md_range_tid_fn tid_fn;
    void *ctx;
    int64_t n;
    int64_t chunk;
    atomic_int_fast64_t next;

    atomic_int busy;
};

struct worker_arg {
    md_pool *pool;
    int tid;
};

static void run_chunks(md_pool *p, int tid)
{
    for (;;) {
        int64_t begin = atomic_fetch_add(&p->next, p->chunk);
        if (begin >= p->n)
            break;
        int64_t end = begin + p->chunk < p->n ? begin + p->chunk : p->n;
        if (p->tid_fn)
            p->tid_fn(p->ctx, tid, begin, end);
        else
            p->fn(p->ctx, begin, end);
    }
}

static void *worker_main(void *argp)
{
    struct worker_arg arg = *(struct worker_arg *)argp;
    free(argp);
    md_pool *p = arg.pool;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->generation == seen && !p->stop)
            pthread_cond_wait(&p->start_cv, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);

        run_chunks(p, arg.tid);

        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done_cv);
        pthread_mutex_unlock(&p->mu);
    }
}

md_pool *md_pool_create(int threads)
{
    md_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    if (threads < 1)
        threads = 1;
    atomic_init(&p->next, 0);
    atomic_init(&p->busy, 0);
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->start_cv, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->done_cv, NULL) != 0) {
        pthread_cond_destroy(&p->start_cv);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    p->threads = 1;
    if (threads > 1) {
        p->workers = calloc((size_t)(threads - 1), sizeof *p->workers);
        /* A pool with fewer threads than asked still works: degrade. */
        for (int i = 0; p->workers && i < threads - 1; i++) {
            struct worker_arg *arg = malloc(sizeof *arg);
            if (!arg)
                break;
            arg->pool = p;
            arg->tid = i + 1;
            if (pthread_create(&p->workers[i], NULL, worker_main, arg) != 0) {
                free(arg);
                break;
            }
            p->started++;
        }
        p->threads = p->started + 1;
    }
    return p;
}

void md_pool_destroy(md_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->start_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->workers[i], NULL);
    free(p->workers);
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->start_cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int md_pool_threads(const md_pool *p)
{
    return p ? p->threads : 1;
}

static void run(md_pool *p, int64_t n, md_range_fn fn, md_range_tid_fn tid_fn, void *ctx)
{
    if (n <= 0)
        return;
    int expected = 0;
    if (!p || p->threads <= 1 || n == 1 || !atomic_compare_exchange_strong(&p->busy, &expected, 1)) {
        if (tid_fn)
            tid_fn(ctx, 0, 0, n);
        else
            fn(ctx, 0, n);
        return;
    }
    int64_t pieces = (int64_t)p->threads * MD_POOL_CHUNKS_PER_THREAD;
    int64_t chunk = (n + pieces - 1) / pieces;

    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->tid_fn = tid_fn;
    p->ctx = ctx;
    p->n = n;
    p->chunk = chunk;
    atomic_store(&p->next, 0);
    p->pending = p->started;
    p->generation++;
    pthread_cond_broadcast(&p->start_cv);
    pthread_mutex_unlock(&p->mu);

    run_chunks(p, 0);

    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    atomic_store(&p->busy, 0);
}

void md_pool_for(md_pool *p, int64_t n, md_range_fn fn, void *ctx)
{
    run(p, n, fn, NULL, ctx);
}

void md_pool_for_tid(md_pool *p, int64_t n, md_range_tid_fn fn, void *ctx)
{
    run(p, n, NULL, fn, ctx);
}
