/* md_pool: every index visited exactly once, tids in range and never two
 * ranges at once on one tid, nested and repeated calls. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/threadpool.h"

static int failures;

#define EXPECT(cond)                                                                         \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                           \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

struct visit {
    atomic_int *hits;
    atomic_int busy[16]; /* per tid: ranges running now */
    atomic_int bad;
    int threads;
    md_pool *pool;
};

static void visit_range(void *ctx, int64_t begin, int64_t end)
{
    struct visit *v = ctx;
    for (int64_t i = begin; i < end; i++)
        atomic_fetch_add(&v->hits[i], 1);
}

static void visit_tid(void *ctx, int tid, int64_t begin, int64_t end)
{
    struct visit *v = ctx;
    if (tid < 0 || tid >= v->threads) {
        atomic_fetch_add(&v->bad, 1);
        return;
    }
    if (atomic_fetch_add(&v->busy[tid], 1) != 0)
        atomic_fetch_add(&v->bad, 1);
    for (int64_t i = begin; i < end; i++)
        atomic_fetch_add(&v->hits[i], 1);
    atomic_fetch_sub(&v->busy[tid], 1);
}

/* A task that itself calls the pool: must run inline, not deadlock. */
static void nested_range(void *ctx, int64_t begin, int64_t end)
{
    struct visit *v = ctx;
    for (int64_t i = begin; i < end; i++) {
        struct visit inner = {v->hits + i * 8, {0}, 0, v->threads, v->pool};
        md_pool_for(v->pool, 8, visit_range, &inner);
    }
}

static void check_hits(atomic_int *hits, int64_t n, int expect)
{
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; i++)
        wrong += atomic_load(&hits[i]) != expect;
    EXPECT(wrong == 0);
}

int main(void)
{
    const int64_t n = 100003;
    atomic_int *hits = calloc((size_t)n, sizeof *hits);
    if (!hits)
        return 2;
    static const int counts[] = {0, 1, 2, 5};
    for (int c = 0; c < 4; c++) {
        md_pool *p = md_pool_create(counts[c]);
        EXPECT(p != NULL);
        int threads = md_pool_threads(p);
        EXPECT(threads == (counts[c] < 1 ? 1 : counts[c]));
        struct visit v = {hits, {0}, 0, threads, p};
        for (int rep = 0; rep < 50; rep++) {
            int64_t len = rep % 2 ? n : rep + 1; /* tiny and large jobs alternate */
            md_pool_for(p, len, visit_range, &v);
            md_pool_for_tid(p, len, visit_tid, &v);
            check_hits(hits, len, 2);
            for (int64_t i = 0; i < len; i++)
                atomic_store(&hits[i], 0);
        }
        EXPECT(atomic_load(&v.bad) == 0);
        md_pool_for(p, 0, visit_range, &v); /* empty job: nothing runs */
        md_pool_for(p, 1000, nested_range, &v);
        check_hits(hits, 8000, 1);
        for (int64_t i = 0; i < 8000; i++)
            atomic_store(&hits[i], 0);
        md_pool_destroy(p);
    }
    free(hits);
    printf("%s\n", failures ? "threadpool: FAILED" : "threadpool: ok");
    return failures ? 1 : 0;
}
