/* linear (gemm.comp), conv2d (conv2d.comp) and attention (attention.comp),
 * each in f32 or, with vk->fp16, in its fp16-arithmetic variant (_f16). */
#include "vk_internal.h"

/* Outputs this narrow stay f32 in linear: such a GEMM is memory-bound, so
 * fp16 gains nothing, and MoE gates routed on the host (E experts wide, 2 to
 * 8 in SegMoE) keep f32 logits as CHECKING.md rule 5 asks. */
#define MD_VK_FP16_MIN_OUT 17

/* Outputs per invocation along one tile edge (gemm.comp, conv2d.comp): the
 * tile edge is 16x that; edges of 32 or 16 for small sizes keep a matrix of
 * few rows or channels from idling most of each tile. */
static uint32_t per_thread(int64_t n)
{
    return n <= 16 ? 1 : n <= 32 ? 2 : 4;
}

static int grid_ok(md_vk *vk, int64_t g, const char *op)
{
    if (g <= 65535)
        return 1;
    md_vk_fail(vk, "vulkan: %s: the problem needs %lld workgroups in one grid dimension (65535 max)",
               op, (long long)g);
    return 0;
}

static void linear(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                   const md_tensor *b, int fp16)
{
    md_vk *vk = md_vk_of(be);
    int64_t out = w->shape[0];
    int64_t in = out > 0 ? md_tensor_numel(w) / out : 0;
    int64_t rows = in > 0 ? md_tensor_numel(x) / in : 0;
    if (rows <= 0 || out <= 0)
        return;
    md_vk_arg a[4];
    if (!md_vk_bind(vk, &a[0], x, MD_VK_READ, "linear") ||
        !md_vk_bind(vk, &a[1], w, MD_VK_READ, "linear") ||
        !md_vk_bind(vk, &a[2], b, MD_VK_READ, "linear") ||
        !md_vk_bind(vk, &a[3], y, MD_VK_WRITE, "linear"))
        return;
    uint32_t tm = per_thread(rows), tn = per_thread(out);
    int64_t gy = (rows + 16 * tm - 1) / (16 * tm), gx = (out + 16 * tn - 1) / (16 * tn);
    if (!grid_ok(vk, gy, "linear") || !grid_ok(vk, gx, "linear"))
        return;
    uint32_t push[8] = {(uint32_t)rows, (uint32_t)out, (uint32_t)in, a[0].elem, a[1].elem,
                        a[2].elem, a[3].elem, b != NULL};
    uint32_t spec[4] = {md_vk_dt(w), md_vk_dt(b), tm, tn};
    md_vk_dispatch(vk, fp16 ? MD_VK_SH_gemm_f16 : MD_VK_SH_gemm, spec, 4, a, 4, push, sizeof push,
                   (uint32_t)gx, (uint32_t)gy, 1, "linear");
}

void md_vk_op_linear(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                     const md_tensor *b)
{
    linear(be, y, x, w, b, 0);
}

void md_vk_op_linear_mixed(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                           const md_tensor *b)
{
    linear(be, y, x, w, b, md_vk_of(be)->fp16 && w->shape[0] >= MD_VK_FP16_MIN_OUT);
}

void md_vk_op_conv2d(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                     const md_tensor *b, int stride, int pad)
{
    md_vk *vk = md_vk_of(be);
    int64_t batch = x->shape[0], cin = x->shape[1], h = x->shape[2], wd = x->shape[3];
    int64_t cout = w->shape[0];
    int64_t kh = w->ndim >= 4 ? w->shape[2] : 1, kw = w->ndim >= 4 ? w->shape[3] : 1;
    int64_t ho = y->shape[2], wo = y->shape[3];
    int64_t npix = ho * wo;
    if (batch <= 0 || cout <= 0 || npix <= 0)
        return;
    md_vk_arg a[4];
    const char *label = kh == 1 && kw == 1 ? "conv2d 1x1" : stride > 1 ? "conv2d strided"
                                                                       : "conv2d";
    if (!md_vk_bind(vk, &a[0], x, MD_VK_READ, label) ||
        !md_vk_bind(vk, &a[1], w, MD_VK_READ, label) ||
        !md_vk_bind(vk, &a[2], b, MD_VK_READ, label) ||
        !md_vk_bind(vk, &a[3], y, MD_VK_WRITE, label))
        return;
    uint32_t tm = per_thread(cout), tn = per_thread(npix);
    int64_t gx = (npix + 16 * tn - 1) / (16 * tn), gy = (cout + 16 * tm - 1) / (16 * tm);
    if (!grid_ok(vk, gx, label) || !grid_ok(vk, gy, label) || !grid_ok(vk, batch, label))
        return;
    uint32_t push[15] = {(uint32_t)cin,  (uint32_t)h,      (uint32_t)wd, (uint32_t)cout,
                         (uint32_t)ho,   (uint32_t)wo,     (uint32_t)kh, (uint32_t)kw,
                         (uint32_t)stride, (uint32_t)pad,  a[0].elem,    a[1].elem,
                         a[2].elem,      a[3].elem,        b != NULL};
    uint32_t spec[4] = {md_vk_dt(w), md_vk_dt(b), tm, tn};
    md_vk_dispatch(vk, vk->fp16 ? MD_VK_SH_conv2d_f16 : MD_VK_SH_conv2d, spec, 4, a, 4, push,
                   sizeof push, (uint32_t)gx, (uint32_t)gy, (uint32_t)batch, label);
}

/* Keys per tile: the largest that fits the device's shared memory next to
 * 16 query rows (attention.comp's layout); 0 when none does. */
static uint32_t key_tile(const md_vk *vk, int64_t d, int64_t dv)
{
    static const uint32_t tiles[] = {32, 16, 8};
    for (int i = 0; i < 3; i++) {
        int64_t bc = tiles[i], bytes;
        if (vk->fp16) { /* Q, K as f16 pairs (odd d padded), V as f16, scores f32 */
            int64_t d2 = (d + 1) / 2;
            bytes = 4 * (16 * d2 + bc * (d2 + 1)) + 2 * bc * dv + 4 * 16 * bc;
        } else {
            bytes = 4 * (16 * d + bc * (d + 1) + bc * dv + 16 * bc);
        }
        if (bytes <= (int64_t)vk->props.limits.maxComputeSharedMemorySize)
            return (uint32_t)bc;
    }
    return 0;
}

void md_vk_op_attention(md_backend *be, md_tensor *o, const md_tensor *q, const md_tensor *k,
                        const md_tensor *v, int heads, float scale, int causal)
{
    md_vk *vk = md_vk_of(be);
    int64_t batch = q->shape[0], nq = q->shape[1], cq = q->shape[2];
    int64_t nk = k->shape[1], cv = v->shape[2];
    if (batch <= 0 || nq <= 0 || heads <= 0)
        return;
    if (nk <= 0) { /* softmax over no keys: zeros, as on the CPU */
        md_vk_op_fill(be, o, 0.0f);
        return;
    }
    int64_t d = cq / heads, dv = cv / heads;
    uint32_t bc = key_tile(vk, d, dv);
    if (bc == 0) {
        md_vk_fail(vk, "vulkan: attention: head sizes %lld/%lld need more shared memory than %s has",
                   (long long)d, (long long)dv, vk->device_name);
        return;
    }
    md_vk_arg a[4];
    if (!md_vk_bind(vk, &a[0], q, MD_VK_READ, "attention") ||
        !md_vk_bind(vk, &a[1], k, MD_VK_READ, "attention") ||
        !md_vk_bind(vk, &a[2], v, MD_VK_READ, "attention") ||
        !md_vk_bind(vk, &a[3], o, MD_VK_WRITE, "attention"))
        return;
    int64_t gx = (nq + 15) / 16;
    if (!grid_ok(vk, gx, "attention") || !grid_ok(vk, heads, "attention") ||
        !grid_ok(vk, batch, "attention"))
        return;
    uint32_t push[10] = {(uint32_t)nq, (uint32_t)nk, (uint32_t)cq, (uint32_t)cv, causal != 0,
                         a[0].elem,    a[1].elem,    a[2].elem,    a[3].elem,    md_vk_bits(scale)};
    uint32_t spec[3] = {(uint32_t)d, (uint32_t)dv, bc};
    md_vk_dispatch(vk, vk->fp16 ? MD_VK_SH_attention_f16 : MD_VK_SH_attention, spec, 3, a, 4,
                   push, sizeof push, (uint32_t)gx, (uint32_t)heads, (uint32_t)batch, "attention");
}
