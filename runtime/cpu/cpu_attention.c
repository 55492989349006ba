/* Multi-head attention in blocks of queries. For each (batch, head, block
 * of queries): S = scale * Q_blk K^T into a [blk, Nk] scratch, row softmax,
 * O_blk = P V, then each row divided by its softmax sum. Heads are channel
 * slices read in place through the GEMM leading dimensions. Memory is
 * O(threads * blk * Nk), never Nq * Nk. */
#include <cblas.h>
#include <string.h>

#include "cpu_internal.h"
#include "cpu_vmath.h"

struct att_job {
    int simd;
    float *o;
    const float *q, *k, *v;
    int64_t nq, nk, cq, cv, dh, dv, heads;
    int64_t blk;    /* queries per block */
    int64_t blocks; /* per (batch, head) */
    float scale;
    int causal;
    float *scratch; /* per thread: blk * nk scores, then blk inverse sums */
};

static void att_block(const struct att_job *j, float *s, int64_t item)
{
    int64_t bi = item % j->blocks;
    int64_t h = (item / j->blocks) % j->heads;
    int64_t b = item / (j->blocks * j->heads);
    int64_t i0 = bi * j->blk;
    int64_t m = j->nq - i0 < j->blk ? j->nq - i0 : j->blk;
    /* Causal: no query of this block sees keys past its last query. */
    int64_t ncols = j->causal && i0 + m < j->nk ? i0 + m : j->nk;

    const float *q = j->q + (b * j->nq + i0) * j->cq + h * j->dh;
    const float *k = j->k + b * j->nk * j->cq + h * j->dh;
    const float *v = j->v + b * j->nk * j->cv + h * j->dv;
    float *o = j->o + (b * j->nq + i0) * j->cv + h * j->dv;
    float *inv = s + j->blk * j->nk;

    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)ncols, (int)j->dh,
                j->scale, q, (int)j->cq, k, (int)j->cq, 0.0f, s, (int)ncols);
    for (int64_t r = 0; r < m; r++) {
        float *row = s + r * ncols;
        int64_t valid = ncols;
        if (j->causal && i0 + r + 1 < valid)
            valid = i0 + r + 1;
        float max = md_vm_max(row, valid);
        inv[r] = 1.0f / md_vm_exp_sum(j->simd, row, valid, max);
        if (valid < ncols)
            memset(row + valid, 0, (size_t)(ncols - valid) * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)j->dv, (int)ncols, 1.0f,
                s, (int)ncols, v, (int)j->cv, 0.0f, o, (int)j->cv);
    for (int64_t r = 0; r < m; r++)
        for (int64_t c = 0; c < j->dv; c++)
            o[r * j->cv + c] *= inv[r];
}

static void att_range(void *ctx, int tid, int64_t begin, int64_t end)
{
    struct att_job *j = ctx;
    float *s = j->scratch + (int64_t)tid * j->blk * (j->nk + 1);
    for (int64_t item = begin; item < end; item++)
        att_block(j, s, item);
}

void md_cpu_attention(md_backend *be, md_tensor *o, const md_tensor *q, const md_tensor *k,
                      const md_tensor *v, int heads, float scale, int causal)
{
    md_cpu *c = md_cpu_of(be);
    int64_t batch = q->shape[0], nq = q->shape[1], cq = q->shape[2];
    int64_t nk = k->shape[1], cv = v->shape[2];
    if (batch <= 0 || nq <= 0 || heads <= 0)
        return;
    if (nk <= 0) { /* softmax over no keys: define the output as zeros */
        memset(o->data, 0, (size_t)md_tensor_numel(o) * sizeof(float));
        return;
    }
    int64_t blk = c->att_block < nq ? c->att_block : nq;
    struct att_job j = {c->simd, o->data, q->data, k->data, v->data, nq, nk, cq, cv,
                        cq / heads, cv / heads, heads, blk, (nq + blk - 1) / blk,
                        scale, causal != 0, NULL};
    int64_t items = batch * heads * j.blocks;
    /* Any pool thread may take a block, so each gets a scratch slot. */
    int workers = items > 1 ? c->threads : 1;

    size_t mark = md_arena_mark(&c->arena);
    j.scratch = md_arena_alloc(&c->arena, (size_t)workers * (size_t)(blk * (nk + 1)) * sizeof(float));
    if (!j.scratch) {
        md_cpu_poison(o);
        md_arena_reset(&c->arena, mark);
        return;
    }
    /* Held for the whole loop: the pool's workers call OpenBLAS on the
     * caller's behalf, under the single-thread setting made here. */
    md_cpu_blas_lock();
    if (workers <= 1) {
        att_range(&j, 0, 0, items);
    } else {
        /* Blocks run in parallel, each with single-threaded GEMMs: one
         * block's GEMMs are too small for OpenBLAS to split well. The
         * OpenBLAS thread count is process-wide, so it is restored after. */
        int blas_threads = openblas_get_num_threads();
        openblas_set_num_threads(1);
        md_pool_for_tid(c->pool, items, att_range, &j);
        openblas_set_num_threads(blas_threads);
    }
    md_cpu_blas_unlock();
    md_arena_reset(&c->arena, mark);
}
