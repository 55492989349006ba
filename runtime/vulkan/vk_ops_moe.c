/* MoE row routing: gather a group of tokens for an expert, scatter its
 * weighted output back, or add a whole expert output with one weight per
 * row. Row lists and weights are host arrays staged per call. */
#include "vk_internal.h"

#define MD_VK_EW_GROUP 256

void md_vk_op_gather_rows(md_backend *be, md_tensor *y, const md_tensor *x, const int32_t *rows,
                          int64_t n)
{
    md_vk *vk = md_vk_of(be);
    int64_t d = x->shape[x->ndim - 1];
    if (n <= 0 || d <= 0)
        return;
    md_vk_arg a[3];
    if (!md_vk_bind(vk, &a[0], x, MD_VK_READ, "gather_rows") ||
        !md_vk_bind_host(vk, &a[1], rows, (size_t)n * sizeof *rows, "gather_rows") ||
        !md_vk_bind(vk, &a[2], y, MD_VK_WRITE, "gather_rows"))
        return;
    uint32_t push[4] = {(uint32_t)n, (uint32_t)d, a[0].elem, a[2].elem};
    md_vk_dispatch(vk, MD_VK_SH_gather_rows, NULL, 0, a, 3, push, sizeof push,
                   md_vk_groups(n * d, MD_VK_EW_GROUP), 1, 1, "gather_rows");
}

void md_vk_op_scatter_add_rows(md_backend *be, md_tensor *y, const md_tensor *x,
                               const int32_t *rows, const float *weights, int64_t n)
{
    md_vk *vk = md_vk_of(be);
    int64_t d = y->shape[y->ndim - 1];
    if (n <= 0 || d <= 0)
        return;
    /* Rows and weights share one staging allocation: staging them apart
     * could flush the ring between the two. */
    size_t rb = (size_t)n * sizeof *rows, wb = weights ? (size_t)n * sizeof *weights : 0;
    size_t wat = (rb + MD_VK_ALIGN - 1) / MD_VK_ALIGN * MD_VK_ALIGN;
    VkDeviceSize off;
    unsigned char *p = md_vk_ring_alloc(vk, wat + (wb ? wb : 4), &off);
    if (!p) {
        md_vk_fail(vk, "vulkan: scatter_add_rows: %lld rows exceed the staging ring", (long long)n);
        return;
    }
    memcpy(p, rows, rb);
    if (wb)
        memcpy(p + wat, weights, wb);
    md_vk_arg a[4];
    if (!md_vk_bind(vk, &a[0], x, MD_VK_READ, "scatter_add_rows") ||
        !md_vk_bind(vk, &a[3], y, MD_VK_WRITE, "scatter_add_rows"))
        return;
    a[1] = (md_vk_arg){.buf = vk->ring->buf, .offset = off, .at = off, .range = (rb + 3) / 4 * 4};
    a[2] = (md_vk_arg){.buf = vk->ring->buf, .offset = off + wat, .at = off + wat,
                       .range = wb ? (wb + 3) / 4 * 4 : 4};
    uint32_t push[5] = {(uint32_t)n, (uint32_t)d, a[0].elem, a[3].elem, weights != NULL};
    md_vk_dispatch(vk, MD_VK_SH_scatter_rows, NULL, 0, a, 4, push, sizeof push,
                   md_vk_groups(n * d, MD_VK_EW_GROUP), 1, 1, "scatter_add_rows");
}

void md_vk_op_add_rows_weighted(md_backend *be, md_tensor *y, const md_tensor *x,
                                const float *w)
{
    md_vk *vk = md_vk_of(be);
    int64_t d = y->shape[y->ndim - 1];
    int64_t r = d > 0 ? md_tensor_numel(y) / d : 0;
    if (r <= 0)
        return;
    md_vk_arg a[3];
    if (!md_vk_bind(vk, &a[0], x, MD_VK_READ, "add_rows_weighted") ||
        !md_vk_bind_host(vk, &a[1], w, (size_t)r * sizeof *w, "add_rows_weighted") ||
        !md_vk_bind(vk, &a[2], y, MD_VK_WRITE, "add_rows_weighted"))
        return;
    uint32_t push[4] = {(uint32_t)r, (uint32_t)d, a[0].elem, a[2].elem};
    md_vk_dispatch(vk, MD_VK_SH_rows_weighted, NULL, 0, a, 3, push, sizeof push,
                   md_vk_groups(r * d, MD_VK_EW_GROUP), 1, 1, "add_rows_weighted");
}
