/* add, axpy, scale, fill, copy, add_channel_bias. */
#include <string.h>

#include "cpu_internal.h"

struct ew_job {
    float *y;
    const float *a;
    const float *b;
    float s;
    int64_t inner; /* add_channel_bias: elements per (batch, channel) */
};

static void add_range(void *ctx, int64_t begin, int64_t end)
{
    struct ew_job *j = ctx;
    for (int64_t i = begin; i < end; i++)
        j->y[i] = j->a[i] + j->b[i];
}

void md_cpu_add(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b)
{
    struct ew_job j = {y->data, a->data, b->data, 0.0f, 0};
    md_cpu_for(md_cpu_of(be), md_tensor_numel(y), 1, add_range, &j);
}

static void axpy_range(void *ctx, int64_t begin, int64_t end)
{
    struct ew_job *j = ctx;
    for (int64_t i = begin; i < end; i++)
        j->y[i] = j->a[i] + j->s * j->b[i];
}

void md_cpu_axpy(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b, float s)
{
    struct ew_job j = {y->data, a->data, b->data, s, 0};
    md_cpu_for(md_cpu_of(be), md_tensor_numel(y), 1, axpy_range, &j);
}

static void scale_range(void *ctx, int64_t begin, int64_t end)
{
    struct ew_job *j = ctx;
    for (int64_t i = begin; i < end; i++)
        j->y[i] = j->a[i] * j->s;
}

void md_cpu_scale(md_backend *be, md_tensor *y, const md_tensor *x, float s)
{
    struct ew_job j = {y->data, x->data, NULL, s, 0};
    md_cpu_for(md_cpu_of(be), md_tensor_numel(y), 1, scale_range, &j);
}

static void fill_range(void *ctx, int64_t begin, int64_t end)
{
    struct ew_job *j = ctx;
    for (int64_t i = begin; i < end; i++)
        j->y[i] = j->s;
}

void md_cpu_fill(md_backend *be, md_tensor *y, float value)
{
    struct ew_job j = {y->data, NULL, NULL, value, 0};
    md_cpu_for(md_cpu_of(be), md_tensor_numel(y), 1, fill_range, &j);
}

static void copy_range(void *ctx, int64_t begin, int64_t end)
{
    struct ew_job *j = ctx;
    memcpy(j->y + begin, j->a + begin, (size_t)(end - begin) * sizeof(float));
}

void md_cpu_copy(md_backend *be, md_tensor *y, const md_tensor *x)
{
    if (y->data == x->data)
        return;
    struct ew_job j = {y->data, x->data, NULL, 0.0f, 0};
    md_cpu_for(md_cpu_of(be), md_tensor_numel(y), 1, copy_range, &j);
}

/* One range item is one (batch, channel) plane. */
static void channel_bias_range(void *ctx, int64_t begin, int64_t end)
{
    struct ew_job *j = ctx;
    for (int64_t bc = begin; bc < end; bc++) {
        float bias = j->b[bc];
        float *y = j->y + bc * j->inner;
        const float *x = j->a + bc * j->inner;
        for (int64_t i = 0; i < j->inner; i++)
            y[i] = x[i] + bias;
    }
}

void md_cpu_add_channel_bias(md_backend *be, md_tensor *y, const md_tensor *x,
                             const md_tensor *bias)
{
    int64_t planes = x->shape[0] * (x->ndim > 1 ? x->shape[1] : 1);
    if (planes <= 0)
        return;
    struct ew_job j = {y->data, x->data, bias->data, 0.0f, md_tensor_numel(x) / planes};
    md_cpu_for(md_cpu_of(be), planes, j.inner, channel_bias_range, &j);
}
