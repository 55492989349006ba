/* Elementwise ops: activations, GEGLU, add/axpy/scale, channel bias (one
 * shader each), fill and copy (transfer commands). */
#include "vk_internal.h"

#define MD_VK_EW_GROUP 256

void md_vk_op_activation(md_backend *be, md_tensor *y, const md_tensor *x, md_act act)
{
    md_vk *vk = md_vk_of(be);
    int64_t n = md_tensor_numel(x);
    if (n <= 0)
        return;
    static const char *const labels[] = {"identity", "silu", "gelu", "gelu_tanh", "quick_gelu"};
    const char *label = act >= MD_ACT_NONE && act <= MD_ACT_QUICK_GELU ? labels[act] : "identity";
    md_vk_arg a[2];
    if (!md_vk_bind(vk, &a[0], x, MD_VK_READ, label) ||
        !md_vk_bind(vk, &a[1], y, MD_VK_WRITE, label))
        return;
    uint32_t push[3] = {(uint32_t)n, a[0].elem, a[1].elem};
    uint32_t spec[1] = {(uint32_t)act};
    md_vk_dispatch(vk, MD_VK_SH_activation, spec, 1, a, 2, push, sizeof push,
                   md_vk_groups(n, MD_VK_EW_GROUP), 1, 1, label);
}

void md_vk_op_geglu(md_backend *be, md_tensor *y, const md_tensor *x)
{
    md_vk *vk = md_vk_of(be);
    int64_t n = md_tensor_numel(y);
    int64_t h = y->ndim > 0 ? y->shape[y->ndim - 1] : 1;
    if (n <= 0 || h <= 0)
        return;
    md_vk_arg a[2];
    if (!md_vk_bind(vk, &a[0], x, MD_VK_READ, "geglu") ||
        !md_vk_bind(vk, &a[1], y, MD_VK_WRITE, "geglu"))
        return;
    uint32_t push[4] = {(uint32_t)n, (uint32_t)h, a[0].elem, a[1].elem};
    md_vk_dispatch(vk, MD_VK_SH_geglu, NULL, 0, a, 2, push, sizeof push,
                   md_vk_groups(n, MD_VK_EW_GROUP), 1, 1, "geglu");
}

static void axpy(md_vk *vk, md_tensor *y, const md_tensor *a0, const md_tensor *b0, float s,
                 const char *label)
{
    int64_t n = md_tensor_numel(y);
    if (n <= 0)
        return;
    md_vk_arg a[3];
    if (!md_vk_bind(vk, &a[0], a0, MD_VK_READ, label) ||
        !md_vk_bind(vk, &a[1], b0, MD_VK_READ, label) ||
        !md_vk_bind(vk, &a[2], y, MD_VK_WRITE, label))
        return;
    uint32_t push[5] = {(uint32_t)n, a[0].elem, a[1].elem, a[2].elem, md_vk_bits(s)};
    md_vk_dispatch(vk, MD_VK_SH_axpy, NULL, 0, a, 3, push, sizeof push,
                   md_vk_groups(n, MD_VK_EW_GROUP), 1, 1, label);
}

void md_vk_op_add(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b)
{
    axpy(md_vk_of(be), y, a, b, 1.0f, "add"); /* a + 1*b is exactly a + b */
}

void md_vk_op_axpy(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b, float s)
{
    axpy(md_vk_of(be), y, a, b, s, "axpy");
}

void md_vk_op_scale(md_backend *be, md_tensor *y, const md_tensor *x, float s)
{
    md_vk *vk = md_vk_of(be);
    int64_t n = md_tensor_numel(y);
    if (n <= 0)
        return;
    md_vk_arg a[2];
    if (!md_vk_bind(vk, &a[0], x, MD_VK_READ, "scale") ||
        !md_vk_bind(vk, &a[1], y, MD_VK_WRITE, "scale"))
        return;
    uint32_t push[4] = {(uint32_t)n, a[0].elem, a[1].elem, md_vk_bits(s)};
    md_vk_dispatch(vk, MD_VK_SH_scale, NULL, 0, a, 2, push, sizeof push,
                   md_vk_groups(n, MD_VK_EW_GROUP), 1, 1, "scale");
}

void md_vk_op_add_channel_bias(md_backend *be, md_tensor *y, const md_tensor *x,
                               const md_tensor *bias)
{
    md_vk *vk = md_vk_of(be);
    int64_t planes = x->shape[0] * (x->ndim > 1 ? x->shape[1] : 1);
    int64_t n = md_tensor_numel(x);
    if (planes <= 0 || n <= 0)
        return;
    md_vk_arg a[3];
    if (!md_vk_bind(vk, &a[0], x, MD_VK_READ, "add_channel_bias") ||
        !md_vk_bind(vk, &a[1], bias, MD_VK_READ, "add_channel_bias") ||
        !md_vk_bind(vk, &a[2], y, MD_VK_WRITE, "add_channel_bias"))
        return;
    uint32_t push[5] = {(uint32_t)n, (uint32_t)(n / planes), a[0].elem, a[1].elem, a[2].elem};
    md_vk_dispatch(vk, MD_VK_SH_channel_bias, NULL, 0, a, 3, push, sizeof push,
                   md_vk_groups(n, MD_VK_EW_GROUP), 1, 1, "add_channel_bias");
}

void md_vk_op_fill(md_backend *be, md_tensor *y, float value)
{
    md_vk *vk = md_vk_of(be);
    int64_t n = md_tensor_numel(y);
    md_vk_arg a;
    if (n <= 0 || !md_vk_bind(vk, &a, y, MD_VK_WRITE | MD_VK_TRANSFER, "fill"))
        return;
    md_vk_fill_words(vk, &a, (VkDeviceSize)n * 4, md_vk_bits(value), "fill");
}

void md_vk_op_copy(md_backend *be, md_tensor *y, const md_tensor *x)
{
    md_vk *vk = md_vk_of(be);
    int64_t n = md_tensor_numel(y);
    if (n <= 0 || y->data == x->data)
        return;
    md_vk_arg a[2];
    if (!md_vk_bind(vk, &a[0], x, MD_VK_TRANSFER, "copy") ||
        !md_vk_bind(vk, &a[1], y, MD_VK_WRITE | MD_VK_TRANSFER, "copy"))
        return;
    md_vk_copy(vk, &a[1], &a[0], (VkDeviceSize)n * 4, "copy");
}
