/* Data movement: upsampling, concatenation, NCHW <-> tokens, embeddings. */
#include <string.h>

#include "cpu_internal.h"

/* Elements per (batch, channel): everything after dim 1. */
static int64_t plane_size(const md_tensor *t)
{
    int64_t n = 1;
    for (int i = 2; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

struct up_job {
    float *y;
    const float *x;
    int64_t h, w, ho, wo; /* ho in {2h-1, 2h}, wo in {2w-1, 2w} */
};

/* One item is one output row: y[i, j] = x[i/2, j/2]. */
static void upsample_range(void *ctx, int64_t begin, int64_t end)
{
    struct up_job *j = ctx;
    for (int64_t r = begin; r < end; r++) {
        int64_t plane = r / j->ho, i = r % j->ho;
        const float *src = j->x + (plane * j->h + i / 2) * j->w;
        float *dst = j->y + r * j->wo;
        for (int64_t k = 0; k < j->wo; k++)
            dst[k] = src[k / 2];
    }
}

void md_cpu_upsample_nearest2x(md_backend *be, md_tensor *y, const md_tensor *x)
{
    int nd = x->ndim;
    struct up_job j = {y->data, x->data, x->shape[nd - 2], x->shape[nd - 1], y->shape[nd - 2],
                       y->shape[nd - 1]};
    int64_t planes = j.h * j.w > 0 ? md_tensor_numel(x) / (j.h * j.w) : 0;
    md_cpu_for(md_cpu_of(be), planes * j.ho, 2 * j.wo, upsample_range, &j);
}

struct cat_job {
    float *y;
    const float *a;
    const float *b;
    int64_t na, nb; /* contiguous elements of a and b per outer item */
};

static void cat_range(void *ctx, int64_t begin, int64_t end)
{
    struct cat_job *j = ctx;
    for (int64_t i = begin; i < end; i++) {
        float *dst = j->y + i * (j->na + j->nb);
        if (j->na)
            memcpy(dst, j->a + i * j->na, (size_t)j->na * sizeof(float));
        if (j->nb)
            memcpy(dst + j->na, j->b + i * j->nb, (size_t)j->nb * sizeof(float));
    }
}

void md_cpu_concat_channels(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b)
{
    int64_t s = plane_size(a);
    struct cat_job j = {y->data, a->data, b->data, a->shape[1] * s, b->shape[1] * s};
    md_cpu_for(md_cpu_of(be), a->shape[0], j.na + j.nb, cat_range, &j);
}

void md_cpu_concat_last(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b)
{
    struct cat_job j = {y->data, a->data, b->data, md_cpu_last_dim(a), md_cpu_last_dim(b)};
    md_cpu_for(md_cpu_of(be), md_cpu_rows(a), j.na + j.nb, cat_range, &j);
}

/* Blocked transpose of B matrices [rows, cols] -> [cols, rows]; tiles keep
 * both the reads and the writes within a few cache lines. */
#define MD_TILE 32

struct tr_job {
    float *y;
    const float *x;
    int64_t rows, cols;
    int64_t tiles_r, tiles_c;
};

static void transpose_range(void *ctx, int64_t begin, int64_t end)
{
    struct tr_job *j = ctx;
    int64_t per_batch = j->tiles_r * j->tiles_c;
    for (int64_t t = begin; t < end; t++) {
        int64_t b = t / per_batch, rem = t % per_batch;
        int64_t r0 = (rem / j->tiles_c) * MD_TILE, c0 = (rem % j->tiles_c) * MD_TILE;
        int64_t r1 = r0 + MD_TILE < j->rows ? r0 + MD_TILE : j->rows;
        int64_t c1 = c0 + MD_TILE < j->cols ? c0 + MD_TILE : j->cols;
        const float *x = j->x + b * j->rows * j->cols;
        float *y = j->y + b * j->rows * j->cols;
        for (int64_t c = c0; c < c1; c++)
            for (int64_t r = r0; r < r1; r++)
                y[c * j->rows + r] = x[r * j->cols + c];
    }
}

static void transpose(md_backend *be, float *y, const float *x, int64_t batch, int64_t rows,
                      int64_t cols)
{
    struct tr_job j = {y, x, rows, cols, (rows + MD_TILE - 1) / MD_TILE,
                       (cols + MD_TILE - 1) / MD_TILE};
    md_cpu_for(md_cpu_of(be), batch * j.tiles_r * j.tiles_c, MD_TILE * MD_TILE, transpose_range,
               &j);
}

void md_cpu_nchw_to_tokens(md_backend *be, md_tensor *y, const md_tensor *x)
{
    transpose(be, y->data, x->data, x->shape[0], x->shape[1], plane_size(x));
}

void md_cpu_tokens_to_nchw(md_backend *be, md_tensor *y, const md_tensor *x)
{
    transpose(be, y->data, x->data, y->shape[0], plane_size(y), y->shape[1]);
}

void md_cpu_embedding(md_backend *be, md_tensor *y, const md_tensor *table, const int32_t *ids,
                      int64_t n)
{
    md_cpu *c = md_cpu_of(be);
    int64_t dim = md_cpu_last_dim(table);
    int64_t vocab = md_cpu_rows(table);
    float *out = y->data;
    for (int64_t i = 0; i < n; i++) {
        /* Ids are validated by the tokenizer; an id out of range gives a
         * zero row rather than a read outside the table. */
        if (ids[i] < 0 || ids[i] >= vocab)
            memset(out + i * dim, 0, (size_t)dim * sizeof(float));
        else
            md_cpu_widen(c, table, (int64_t)ids[i] * dim, out + i * dim, dim);
    }
}

void md_cpu_add_position(md_backend *be, md_tensor *y, const md_tensor *pos)
{
    md_cpu *c = md_cpu_of(be);
    int64_t d = md_cpu_last_dim(y);
    int64_t n = y->ndim >= 2 ? y->shape[y->ndim - 2] : 1;
    int64_t batch = n * d > 0 ? md_tensor_numel(y) / (n * d) : 0;
    float *out = y->data;
    float row[256];
    /* Widen the position rows a slice at a time into a stack buffer: this
     * op is tiny (CLIP: 77 x 768) and needs no arena scratch. */
    for (int64_t t = 0; t < n; t++) {
        for (int64_t d0 = 0; d0 < d; d0 += 256) {
            int64_t len = d - d0 < 256 ? d - d0 : 256;
            md_cpu_widen(c, pos, t * d + d0, row, len);
            for (int64_t b = 0; b < batch; b++) {
                float *dst = out + (b * n + t) * d + d0;
                for (int64_t i = 0; i < len; i++)
                    dst[i] += row[i];
            }
        }
    }
}
