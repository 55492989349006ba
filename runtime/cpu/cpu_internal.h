/* Shared state and helpers of the CPU backend; not part of the public API. */
#ifndef MD_CPU_INTERNAL_H
#define MD_CPU_INTERNAL_H

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/threadpool.h"

typedef struct md_cpu {
    md_arena arena;
    md_pool *pool;
    int threads;
    int simd;  /* AVX2+FMA kernels may be used */
    int f16c;  /* hardware half -> float conversion */
    /* conv2d im2col scratch limit in floats; a field rather than a constant
     * so tests can force the banded path on small images. */
    int64_t col_budget;
    int64_t att_block; /* attention queries per block (tests shrink it) */
    /* 3x3 stride-1 convolutions: MD_CPU_WINOGRAD_OFF (im2col), _AUTO (chosen
     * per shape), or 2 / 4 to force F(2x2,3x3) / F(4x4,3x3). From the
     * MD_CPU_WINOGRAD environment variable at creation. */
    int winograd;
    /* Winograd scratch limits in floats (tests shrink them): transformed
     * tiles of a band, transformed filters of a block of output channels */
    int64_t wino_budget, wino_filter_budget;
} md_cpu;

#define MD_CPU_WINOGRAD_OFF 0
#define MD_CPU_WINOGRAD_AUTO 1

static inline md_cpu *md_cpu_of(md_backend *be)
{
    return (md_cpu *)be->impl;
}

/* The process-wide lock every OpenBLAS call of any CPU backend holds:
 * OpenBLAS's thread count is global (attention changes it for a while) and
 * its multi-threaded GEMMs share one thread server, so concurrent backends
 * take turns at the library instead of relying on its internal locking. */
void md_cpu_blas_lock(void);
void md_cpu_blas_unlock(void);

/* Parallel loop over n items of about `cost` scalar operations each; runs
 * inline when the whole job is too small to pay for waking threads. */
void md_cpu_for(md_cpu *c, int64_t n, int64_t cost, md_range_fn fn, void *ctx);

/* Float view of a weight (F32: the data itself; F16/BF16: a widened copy
 * from the arena, freed by the caller's arena reset). NULL on OOM. */
const float *md_cpu_weight_f32(md_cpu *c, const md_tensor *w);
/* Widen n values starting at element `offset` of w into dst. */
void md_cpu_widen(const md_cpu *c, const md_tensor *w, int64_t offset, float *dst, int64_t n);

/* Output that could not be computed (scratch OOM): make it visibly wrong. */
void md_cpu_poison(md_tensor *y);

/* Last dim of a tensor, and the number of rows before it. */
static inline int64_t md_cpu_last_dim(const md_tensor *t)
{
    return t->ndim > 0 ? t->shape[t->ndim - 1] : 1;
}
int64_t md_cpu_rows(const md_tensor *t);

/* Copy `row` (n floats) into each of `rows` rows of y. */
void md_cpu_fill_rows(float *y, const float *row, int64_t rows, int64_t n);

/* Winograd convolution (cpu_winograd.c). _env reads MD_CPU_WINOGRAD: unset
 * or "1" auto, "0" off, "2" or "4" forced. _pick returns the tile size m
 * (2 or 4) to use for this convolution, or 0 for im2col. */
int md_cpu_winograd_env(void);
int md_cpu_winograd_pick(const md_cpu *c, const md_tensor *y, const md_tensor *x,
                         const md_tensor *w, int stride, int pad);
void md_cpu_conv2d_winograd(md_cpu *c, int m, md_tensor *y, const md_tensor *x,
                            const md_tensor *w, const md_tensor *b);

/* ---- the op table entries, one file per family ---- */
void md_cpu_conv2d(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                   const md_tensor *b, int stride, int pad);
void md_cpu_linear(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                   const md_tensor *b);
void md_cpu_group_norm(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *gamma,
                       const md_tensor *beta, int groups, float eps, int fuse_silu);
void md_cpu_layer_norm(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *gamma,
                       const md_tensor *beta, float eps);
void md_cpu_activation(md_backend *be, md_tensor *y, const md_tensor *x, md_act act);
void md_cpu_geglu(md_backend *be, md_tensor *y, const md_tensor *x);
void md_cpu_attention(md_backend *be, md_tensor *o, const md_tensor *q, const md_tensor *k,
                      const md_tensor *v, int heads, float scale, int causal);

void md_cpu_add(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b);
void md_cpu_add_channel_bias(md_backend *be, md_tensor *y, const md_tensor *x,
                             const md_tensor *bias);
void md_cpu_scale(md_backend *be, md_tensor *y, const md_tensor *x, float s);
void md_cpu_axpy(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b, float s);
void md_cpu_fill(md_backend *be, md_tensor *y, float value);
void md_cpu_copy(md_backend *be, md_tensor *y, const md_tensor *x);

void md_cpu_upsample_nearest2x(md_backend *be, md_tensor *y, const md_tensor *x);
void md_cpu_concat_channels(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b);
void md_cpu_concat_last(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b);
void md_cpu_nchw_to_tokens(md_backend *be, md_tensor *y, const md_tensor *x);
void md_cpu_tokens_to_nchw(md_backend *be, md_tensor *y, const md_tensor *x);
void md_cpu_embedding(md_backend *be, md_tensor *y, const md_tensor *table, const int32_t *ids,
                      int64_t n);
void md_cpu_add_position(md_backend *be, md_tensor *y, const md_tensor *pos);

void md_cpu_gather_rows(md_backend *be, md_tensor *y, const md_tensor *x, const int32_t *rows,
                        int64_t n);
void md_cpu_scatter_add_rows(md_backend *be, md_tensor *y, const md_tensor *x,
                             const int32_t *rows, const float *weights, int64_t n);
void md_cpu_add_rows_weighted(md_backend *be, md_tensor *y, const md_tensor *x, const float *w);

#endif
