/* A small fork-join pool for the non-GEMM ops (GEMMs use OpenBLAS threads).
 * Owned by a backend instance: no global state. */
#ifndef MD_THREADPOOL_H
#define MD_THREADPOOL_H

#include <stdint.h>

typedef struct md_pool md_pool;

/* Runs fn(ctx, begin, end) over disjoint ranges covering [0, n). */
typedef void (*md_range_fn)(void *ctx, int64_t begin, int64_t end);
/* Same, also told which thread runs it: tid in [0, md_pool_threads(p)),
 * and no two ranges run at once with the same tid (per-thread scratch). */
typedef void (*md_range_tid_fn)(void *ctx, int tid, int64_t begin, int64_t end);

md_pool *md_pool_create(int threads); /* threads <= 1: run inline */
void md_pool_destroy(md_pool *p);
int md_pool_threads(const md_pool *p);
/* Blocks until done. Small n runs on the calling thread. A call made while
 * the pool is busy (from inside a task, or from another thread) runs inline
 * on its caller, with tid 0. */
void md_pool_for(md_pool *p, int64_t n, md_range_fn fn, void *ctx);
void md_pool_for_tid(md_pool *p, int64_t n, md_range_tid_fn fn, void *ctx);

#endif
