/* group_norm (group_norm.comp) and layer_norm (layer_norm.comp). */
#include "vk_internal.h"

void md_vk_op_group_norm(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *gamma,
                         const md_tensor *beta, int groups, float eps, int fuse_silu)
{
    md_vk *vk = md_vk_of(be);
    int64_t batch = x->shape[0], channels = x->shape[1];
    int64_t numel = md_tensor_numel(x);
    if (numel <= 0 || groups <= 0)
        return;
    const char *label = fuse_silu ? "group_norm+silu" : "group_norm";
    int64_t items = batch * groups;
    if (items > 65535) {
        md_vk_fail(vk, "vulkan: %s: %lld (image, group) pairs exceed one grid dimension", label,
                   (long long)items);
        return;
    }
    md_vk_arg a[4];
    if (!md_vk_bind(vk, &a[0], x, MD_VK_READ, label) ||
        !md_vk_bind(vk, &a[1], gamma, MD_VK_READ, label) ||
        !md_vk_bind(vk, &a[2], beta, MD_VK_READ, label) ||
        !md_vk_bind(vk, &a[3], y, MD_VK_WRITE, label))
        return;
    uint32_t push[11] = {(uint32_t)channels, (uint32_t)groups,
                         (uint32_t)(numel / (batch * channels)), a[0].elem, a[3].elem, a[1].elem,
                         a[2].elem, gamma != NULL, beta != NULL, fuse_silu != 0, md_vk_bits(eps)};
    uint32_t spec[2] = {md_vk_dt(gamma), md_vk_dt(beta)};
    md_vk_dispatch(vk, MD_VK_SH_group_norm, spec, 2, a, 4, push, sizeof push, (uint32_t)items, 1,
                   1, label);
}

void md_vk_op_layer_norm(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *gamma,
                         const md_tensor *beta, float eps)
{
    md_vk *vk = md_vk_of(be);
    int64_t d = x->ndim > 0 ? x->shape[x->ndim - 1] : 1;
    int64_t rows = d > 0 ? md_tensor_numel(x) / d : 0;
    if (d <= 0 || rows <= 0)
        return;
    md_vk_arg a[4];
    if (!md_vk_bind(vk, &a[0], x, MD_VK_READ, "layer_norm") ||
        !md_vk_bind(vk, &a[1], gamma, MD_VK_READ, "layer_norm") ||
        !md_vk_bind(vk, &a[2], beta, MD_VK_READ, "layer_norm") ||
        !md_vk_bind(vk, &a[3], y, MD_VK_WRITE, "layer_norm"))
        return;
    uint32_t push[9] = {(uint32_t)rows, (uint32_t)d,  a[0].elem,      a[3].elem,     a[1].elem,
                        a[2].elem,      gamma != NULL, beta != NULL, md_vk_bits(eps)};
    uint32_t spec[2] = {md_vk_dt(gamma), md_vk_dt(beta)};
    md_vk_dispatch(vk, MD_VK_SH_layer_norm, spec, 2, a, 4, push, sizeof push,
                   md_vk_groups(rows, 1), 1, 1, "layer_norm");
}
