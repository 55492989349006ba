/* Row gather/scatter used to route tokens to MoE experts. */
#include <string.h>

#include "cpu_internal.h"

struct rows_job {
    float *y;
    const float *x;
    const int32_t *rows;
    const float *w;
    int64_t d;
};

static void gather_range(void *ctx, int64_t begin, int64_t end)
{
    struct rows_job *j = ctx;
    for (int64_t i = begin; i < end; i++)
        memcpy(j->y + i * j->d, j->x + (int64_t)j->rows[i] * j->d, (size_t)j->d * sizeof(float));
}

void md_cpu_gather_rows(md_backend *be, md_tensor *y, const md_tensor *x, const int32_t *rows,
                        int64_t n)
{
    struct rows_job j = {y->data, x->data, rows, NULL, md_cpu_last_dim(x)};
    if (j.d > 0)
        md_cpu_for(md_cpu_of(be), n, j.d, gather_range, &j);
}

/* Rows are distinct within one call, so ranges never write the same row. */
static void scatter_range(void *ctx, int64_t begin, int64_t end)
{
    struct rows_job *j = ctx;
    for (int64_t i = begin; i < end; i++) {
        float w = j->w ? j->w[i] : 1.0f;
        float *dst = j->y + (int64_t)j->rows[i] * j->d;
        const float *src = j->x + i * j->d;
        for (int64_t k = 0; k < j->d; k++)
            dst[k] += w * src[k];
    }
}

void md_cpu_scatter_add_rows(md_backend *be, md_tensor *y, const md_tensor *x,
                             const int32_t *rows, const float *weights, int64_t n)
{
    struct rows_job j = {y->data, x->data, rows, weights, md_cpu_last_dim(y)};
    md_cpu_for(md_cpu_of(be), n, j.d, scatter_range, &j);
}

static void rows_weighted_range(void *ctx, int64_t begin, int64_t end)
{
    struct rows_job *j = ctx;
    for (int64_t r = begin; r < end; r++) {
        float w = j->w[r];
        float *dst = j->y + r * j->d;
        const float *src = j->x + r * j->d;
        for (int64_t k = 0; k < j->d; k++)
            dst[k] += w * src[k];
    }
}

void md_cpu_add_rows_weighted(md_backend *be, md_tensor *y, const md_tensor *x, const float *w)
{
    struct rows_job j = {y->data, x->data, NULL, w, md_cpu_last_dim(y)};
    md_cpu_for(md_cpu_of(be), md_cpu_rows(y), j.d, rows_weighted_range, &j);
}
