/* Data movement: upsampling, concatenation, NCHW <-> tokens, embeddings. */
#include "vk_internal.h"

#define MD_VK_EW_GROUP 256

static int64_t plane_size(const md_tensor *t)
{
    int64_t n = 1;
    for (int i = 2; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

void md_vk_op_upsample_nearest2x(md_backend *be, md_tensor *y, const md_tensor *x)
{
    md_vk *vk = md_vk_of(be);
    int nd = x->ndim;
    int64_t n = md_tensor_numel(y);
    if (n <= 0 || nd < 2)
        return;
    md_vk_arg a[2];
    if (!md_vk_bind(vk, &a[0], x, MD_VK_READ, "upsample") ||
        !md_vk_bind(vk, &a[1], y, MD_VK_WRITE, "upsample"))
        return;
    uint32_t push[7] = {(uint32_t)n,
                        (uint32_t)x->shape[nd - 2],
                        (uint32_t)x->shape[nd - 1],
                        (uint32_t)y->shape[nd - 2],
                        (uint32_t)y->shape[nd - 1],
                        a[0].elem,
                        a[1].elem};
    md_vk_dispatch(vk, MD_VK_SH_upsample, NULL, 0, a, 2, push, sizeof push,
                   md_vk_groups(n, MD_VK_EW_GROUP), 1, 1, "upsample");
}

/* y [outer, na + nb] from a [outer, na] and b [outer, nb]. */
static void concat(md_vk *vk, md_tensor *y, const md_tensor *a0, const md_tensor *b0,
                   int64_t outer, int64_t na, int64_t nb, const char *label)
{
    int64_t n = outer * (na + nb);
    if (n <= 0)
        return;
    md_vk_arg a[3];
    if (!md_vk_bind(vk, &a[0], a0, MD_VK_READ, label) ||
        !md_vk_bind(vk, &a[1], b0, MD_VK_READ, label) ||
        !md_vk_bind(vk, &a[2], y, MD_VK_WRITE, label))
        return;
    uint32_t push[6] = {(uint32_t)n, (uint32_t)na, (uint32_t)nb, a[0].elem, a[1].elem, a[2].elem};
    md_vk_dispatch(vk, MD_VK_SH_concat, NULL, 0, a, 3, push, sizeof push,
                   md_vk_groups(n, MD_VK_EW_GROUP), 1, 1, label);
}

void md_vk_op_concat_channels(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b)
{
    int64_t s = plane_size(a);
    concat(md_vk_of(be), y, a, b, a->shape[0], a->shape[1] * s, b->shape[1] * s,
           "concat_channels");
}

void md_vk_op_concat_last(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b)
{
    int64_t da = a->shape[a->ndim - 1], db = b->shape[b->ndim - 1];
    int64_t rows = da > 0 ? md_tensor_numel(a) / da : (db > 0 ? md_tensor_numel(b) / db : 0);
    concat(md_vk_of(be), y, a, b, rows, da, db, "concat_last");
}

static void transpose(md_vk *vk, md_tensor *y, const md_tensor *x, int64_t batch, int64_t rows,
                      int64_t cols, const char *label)
{
    if (batch <= 0 || rows <= 0 || cols <= 0)
        return;
    int64_t gx = (cols + 31) / 32, gy = (rows + 31) / 32;
    if (gx > 65535 || gy > 65535 || batch > 65535) {
        md_vk_fail(vk, "vulkan: %s: [%lld, %lld, %lld] exceeds the grid limits", label,
                   (long long)batch, (long long)rows, (long long)cols);
        return;
    }
    md_vk_arg a[2];
    if (!md_vk_bind(vk, &a[0], x, MD_VK_READ, label) ||
        !md_vk_bind(vk, &a[1], y, MD_VK_WRITE, label))
        return;
    uint32_t push[4] = {(uint32_t)rows, (uint32_t)cols, a[0].elem, a[1].elem};
    md_vk_dispatch(vk, MD_VK_SH_transpose, NULL, 0, a, 2, push, sizeof push, (uint32_t)gx,
                   (uint32_t)gy, (uint32_t)batch, label);
}

void md_vk_op_nchw_to_tokens(md_backend *be, md_tensor *y, const md_tensor *x)
{
    transpose(md_vk_of(be), y, x, x->shape[0], x->shape[1], plane_size(x), "nchw_to_tokens");
}

void md_vk_op_tokens_to_nchw(md_backend *be, md_tensor *y, const md_tensor *x)
{
    transpose(md_vk_of(be), y, x, y->shape[0], plane_size(y), y->shape[1], "tokens_to_nchw");
}

void md_vk_op_embedding(md_backend *be, md_tensor *y, const md_tensor *table, const int32_t *ids,
                        int64_t n)
{
    md_vk *vk = md_vk_of(be);
    int64_t dim = table->shape[table->ndim - 1];
    int64_t vocab = dim > 0 ? md_tensor_numel(table) / dim : 0;
    if (n <= 0 || dim <= 0)
        return;
    md_vk_arg a[3];
    if (!md_vk_bind(vk, &a[0], table, MD_VK_READ, "embedding") ||
        !md_vk_bind_host(vk, &a[1], ids, (size_t)n * sizeof *ids, "embedding") ||
        !md_vk_bind(vk, &a[2], y, MD_VK_WRITE, "embedding"))
        return;
    uint32_t push[5] = {(uint32_t)n, (uint32_t)dim, (uint32_t)vocab, a[0].elem, a[2].elem};
    uint32_t spec[1] = {md_vk_dt(table)};
    md_vk_dispatch(vk, MD_VK_SH_embedding, spec, 1, a, 3, push, sizeof push,
                   md_vk_groups(n * dim, MD_VK_EW_GROUP), 1, 1, "embedding");
}

void md_vk_op_add_position(md_backend *be, md_tensor *y, const md_tensor *pos)
{
    md_vk *vk = md_vk_of(be);
    int64_t d = y->shape[y->ndim - 1];
    int64_t n = y->ndim >= 2 ? y->shape[y->ndim - 2] : 1;
    int64_t total = md_tensor_numel(y);
    if (total <= 0 || d <= 0 || n <= 0)
        return;
    md_vk_arg a[2];
    if (!md_vk_bind(vk, &a[0], pos, MD_VK_READ, "add_position") ||
        !md_vk_bind(vk, &a[1], y, MD_VK_WRITE, "add_position"))
        return;
    uint32_t push[5] = {(uint32_t)total, (uint32_t)n, (uint32_t)d, a[0].elem, a[1].elem};
    uint32_t spec[1] = {md_vk_dt(pos)};
    md_vk_dispatch(vk, MD_VK_SH_add_position, spec, 1, a, 2, push, sizeof push,
                   md_vk_groups(total, MD_VK_EW_GROUP), 1, 1, "add_position");
}
