/* The CPU backend object: the op table, memory entries and shared helpers. */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_internal.h"
#include "cpu_vmath.h"

/* Below this many scalar operations a job runs on the calling thread:
 * waking the pool costs a few microseconds. */
#define MD_CPU_PARALLEL_MIN_WORK 32768

static pthread_mutex_t blas_mutex = PTHREAD_MUTEX_INITIALIZER;

void md_cpu_blas_lock(void)
{
    pthread_mutex_lock(&blas_mutex);
}

void md_cpu_blas_unlock(void)
{
    pthread_mutex_unlock(&blas_mutex);
}

void md_cpu_for(md_cpu *c, int64_t n, int64_t cost, md_range_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (cost < 1)
        cost = 1;
    if (c->threads <= 1 || n == 1 || n * cost < MD_CPU_PARALLEL_MIN_WORK)
        fn(ctx, 0, n);
    else
        md_pool_for(c->pool, n, fn, ctx);
}

int64_t md_cpu_rows(const md_tensor *t)
{
    int64_t d = md_cpu_last_dim(t);
    return d > 0 ? md_tensor_numel(t) / d : 0;
}

void md_cpu_poison(md_tensor *y)
{
    float *p = y->data;
    int64_t n = md_tensor_numel(y);
    for (int64_t i = 0; p && i < n; i++)
        p[i] = NAN;
}

void md_cpu_widen(const md_cpu *c, const md_tensor *w, int64_t offset, float *dst, int64_t n)
{
    if (n <= 0)
        return;
    if (w->dtype == MD_F32)
        memcpy(dst, (const float *)w->data + offset, (size_t)n * sizeof(float));
    else if (w->dtype == MD_F16)
        md_vm_f16_to_f32(c->f16c, dst, (const uint16_t *)w->data + offset, n);
    else
        md_vm_bf16_to_f32(dst, (const uint16_t *)w->data + offset, n);
}

struct widen_job {
    const md_cpu *c;
    const md_tensor *w;
    float *dst;
};

static void widen_range(void *ctx, int64_t begin, int64_t end)
{
    struct widen_job *j = ctx;
    md_cpu_widen(j->c, j->w, begin, j->dst + begin, end - begin);
}

const float *md_cpu_weight_f32(md_cpu *c, const md_tensor *w)
{
    if (w->dtype == MD_F32)
        return w->data;
    int64_t n = md_tensor_numel(w);
    float *dst = md_arena_alloc(&c->arena, (size_t)n * sizeof(float));
    if (!dst)
        return NULL;
    struct widen_job j = {c, w, dst};
    md_cpu_for(c, n, 4, widen_range, &j);
    return dst;
}

/* ---- memory entries ---- */

static void cpu_destroy(md_backend *be)
{
    md_cpu *c = md_cpu_of(be);
    md_pool_destroy(c->pool);
    md_arena_free(&c->arena);
    free(c);
    free(be);
}

static size_t cpu_arena_mark(md_backend *be)
{
    return md_arena_mark(&md_cpu_of(be)->arena);
}

static void cpu_arena_reset(md_backend *be, size_t mark)
{
    md_arena_reset(&md_cpu_of(be)->arena, mark);
}

static md_tensor cpu_new_tensor(md_backend *be, int ndim, const int64_t *shape)
{
    md_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = MD_F32;
    if (ndim < 0 || ndim > MD_MAX_DIMS)
        return t;
    t.ndim = ndim;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && n > INT64_MAX / 4 / shape[i]))
            return t; /* data stays NULL: reported like an allocation failure */
        t.shape[i] = shape[i];
        n *= shape[i];
    }
    t.data = md_arena_alloc(&md_cpu_of(be)->arena, (size_t)n * sizeof(float));
    return t;
}

static void cpu_upload(md_backend *be, md_tensor *dst, const float *src)
{
    size_t n = (size_t)md_tensor_numel(dst) * sizeof(float);
    if (n)
        memcpy(dst->data, src, n);
}

static void cpu_download(md_backend *be, const md_tensor *src, float *dst)
{
    size_t n = (size_t)md_tensor_numel(src) * sizeof(float);
    if (n)
        memcpy(dst, src->data, n);
}

static md_status cpu_prepare_weight(md_backend *be, md_tensor *w, md_error *err)
{
    if (w->dtype != MD_F32 && w->dtype != MD_F16 && w->dtype != MD_BF16)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "cpu backend: weight dtype %s is not supported (F32, F16 or BF16 only)",
                       md_dtype_name(w->dtype));
    if (!w->data && md_tensor_numel(w) > 0)
        return md_fail(err, MD_ERR_INVALID, "cpu backend: weight has no data");
    return MD_OK;
}

md_status md_backend_cpu_create(md_backend **out, int threads, md_error *err)
{
    *out = NULL;
    if (threads < 0)
        return md_fail(err, MD_ERR_INVALID, "cpu backend: thread count %d is negative", threads);
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    md_backend *be = calloc(1, sizeof *be);
    md_cpu *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return md_fail(err, MD_ERR_NOMEM, "cpu backend: out of memory");
    }
    md_arena_init(&c->arena);
    c->pool = md_pool_create(threads);
    if (!c->pool) {
        free(be);
        free(c);
        return md_fail(err, MD_ERR_NOMEM, "cpu backend: cannot create the thread pool");
    }
    c->threads = md_pool_threads(c->pool);
    c->simd = md_vm_detect_simd();
    c->f16c = md_vm_detect_f16c();
    c->col_budget = (int64_t)4 << 20; /* 16 MiB of im2col columns */
    c->att_block = 128;
    c->winograd = md_cpu_winograd_env();
    c->wino_budget = (int64_t)8 << 20;        /* 32 MiB of transformed tiles */
    c->wino_filter_budget = (int64_t)16 << 20; /* 64 MiB of transformed filters */
    /* OpenBLAS keeps one thread count for the whole process, so the last
     * backend created decides it for every backend. */
    md_cpu_blas_lock();
    openblas_set_num_threads(threads);
    md_cpu_blas_unlock();

    be->name = "cpu";
    be->impl = c;
    be->host_weights = 1; /* prepare_weight only checks: weights stay where they are */
    be->destroy = cpu_destroy;
    be->arena_mark = cpu_arena_mark;
    be->arena_reset = cpu_arena_reset;
    be->new_tensor = cpu_new_tensor;
    be->upload = cpu_upload;
    be->download = cpu_download;
    be->prepare_weight = cpu_prepare_weight;
    be->conv2d = md_cpu_conv2d;
    be->linear = md_cpu_linear;
    be->group_norm = md_cpu_group_norm;
    be->layer_norm = md_cpu_layer_norm;
    be->activation = md_cpu_activation;
    be->geglu = md_cpu_geglu;
    be->attention = md_cpu_attention;
    be->add = md_cpu_add;
    be->add_channel_bias = md_cpu_add_channel_bias;
    be->scale = md_cpu_scale;
    be->axpy = md_cpu_axpy;
    be->fill = md_cpu_fill;
    be->copy = md_cpu_copy;
    be->upsample_nearest2x = md_cpu_upsample_nearest2x;
    be->concat_channels = md_cpu_concat_channels;
    be->concat_last = md_cpu_concat_last;
    be->nchw_to_tokens = md_cpu_nchw_to_tokens;
    be->tokens_to_nchw = md_cpu_tokens_to_nchw;
    be->embedding = md_cpu_embedding;
    be->add_position = md_cpu_add_position;
    be->gather_rows = md_cpu_gather_rows;
    be->scatter_add_rows = md_cpu_scatter_add_rows;
    be->add_rows_weighted = md_cpu_add_rows_weighted;
    *out = be;
    return MD_OK;
}
