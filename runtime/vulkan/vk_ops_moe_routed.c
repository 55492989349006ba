/* A whole MoE layer on the device (the moe_routed entry, backend.h): gate
 * logits (gemm.comp), top-k (moe_topk.comp), grouping of the tokens by
 * expert (moe_permute.comp), one grouped GEMM per expert linear over all
 * experts (moe_grouped_gemm.comp; GEGLU between them), and the weighted
 * sum back to the tokens (moe_combine.comp). Recorded like any op: nothing
 * is read back, so a U-Net step records without a sync inside its MoE
 * layers. Sizes that depend on the routing (rows per expert) stay on the
 * device; the host only knows rows * top_k slots in all. */
#include "vk_internal.h"

#define MD_VK_EW_GROUP 256

/* Scratch of one call, from the arena (the caller resets it). */
typedef struct moe_scratch {
    md_tensor weight; /* [rows, k] softmax weights of the choice */
    md_tensor slot;   /* [rows, k] the slot of each (row, pick) */
    md_tensor route;  /* count[E], offset[E], row of each slot[rows * k] */
    md_tensor sums;   /* [2E] sequence mode's column sums (hi, lo) */
} moe_scratch;

static int scratch(md_backend *be, md_tensor *t, int64_t n)
{
    *t = be->new_tensor(be, 1, (int64_t[]){n > 0 ? n : 1});
    return t->data != NULL;
}

/* Outputs per invocation along one tile edge, as for linear. */
static uint32_t per_thread(int64_t n)
{
    return n <= 16 ? 1 : n <= 32 ? 2 : 4;
}

static void route(md_vk *vk, const md_moe_routed *m, md_tensor *logits, md_tensor *choice,
                  moe_scratch *s, int64_t rows, int64_t E)
{
    md_vk_arg a[4];
    if (!md_vk_bind(vk, &a[0], logits, MD_VK_READ, "moe_topk") ||
        !md_vk_bind(vk, &a[1], m->token_topk ? NULL : &s->sums, MD_VK_WRITE, "moe_topk") ||
        !md_vk_bind(vk, &a[2], choice, MD_VK_WRITE, "moe_topk") ||
        !md_vk_bind(vk, &a[3], &s->weight, MD_VK_WRITE, "moe_topk"))
        return;
    uint32_t push[7] = {(uint32_t)rows, (uint32_t)E, (uint32_t)m->top_k, a[0].elem,
                        a[1].elem,      a[2].elem,   a[3].elem};
    uint32_t groups = md_vk_groups(rows, MD_VK_EW_GROUP);
    if (m->token_topk) {
        uint32_t mode = 0;
        md_vk_dispatch(vk, MD_VK_SH_moe_topk, &mode, 1, a, 4, push, sizeof push, groups, 1, 1,
                       "moe_topk");
        return;
    }
    /* Sequence mode: the column sums first (one workgroup per expert;
     * choice and weight untouched: the dummy buffer stands in), then the
     * choice and each row's weights. */
    md_vk_arg sum_args[4] = {a[0], a[1], a[2], a[3]};
    md_vk_bind(vk, &sum_args[2], NULL, MD_VK_READ, "moe_topk");
    md_vk_bind(vk, &sum_args[3], NULL, MD_VK_READ, "moe_topk");
    uint32_t mode = 1;
    md_vk_dispatch(vk, MD_VK_SH_moe_topk, &mode, 1, sum_args, 4, push, sizeof push,
                   md_vk_groups(E, 1), 1, 1, "moe_topk sums");
    a[1].write = 0;
    mode = 2;
    md_vk_dispatch(vk, MD_VK_SH_moe_topk, &mode, 1, a, 4, push, sizeof push, groups, 1, 1,
                   "moe_topk");
}

static void permute(md_vk *vk, md_tensor *choice, moe_scratch *s, int64_t rows, int64_t E, int k)
{
    md_vk_arg a[3];
    if (!md_vk_bind(vk, &a[0], choice, MD_VK_READ, "moe_permute") ||
        !md_vk_bind(vk, &a[1], &s->route, MD_VK_WRITE, "moe_permute") ||
        !md_vk_bind(vk, &a[2], &s->slot, MD_VK_WRITE, "moe_permute"))
        return;
    uint32_t push[6] = {(uint32_t)rows, (uint32_t)E, (uint32_t)k, a[0].elem, a[1].elem, a[2].elem};
    md_vk_dispatch(vk, MD_VK_SH_moe_permute, NULL, 0, a, 3, push, sizeof push,
                   md_vk_groups(E, 1), 1, 1, "moe_permute");
}

/* One grouped-GEMM dispatch: for the slots in [s0, s1), y[s - ysub] =
 * a(s) w[e]^T + b[e], with a(s) = x[route row of s] (gather) or
 * x[s - xsub]. max_rows bounds one expert's rows in the range. */
typedef struct grouped {
    const md_tensor *x, *w, *b;
    md_tensor *y;
    int gather;
    int64_t s0, s1, xsub, ysub, max_rows, avg_rows;
} grouped;

static void grouped_gemm(md_vk *vk, const grouped *g, moe_scratch *s, int64_t E)
{
    int64_t n = g->w->shape[1], k = g->w->shape[2];
    md_vk_arg a[5];
    if (!md_vk_bind(vk, &a[0], g->x, MD_VK_READ, "moe_grouped_gemm") ||
        !md_vk_bind(vk, &a[1], g->w, MD_VK_READ, "moe_grouped_gemm") ||
        !md_vk_bind(vk, &a[2], g->b, MD_VK_READ, "moe_grouped_gemm") ||
        !md_vk_bind(vk, &a[3], &s->route, MD_VK_READ, "moe_grouped_gemm") ||
        !md_vk_bind(vk, &a[4], g->y, MD_VK_WRITE, "moe_grouped_gemm"))
        return;
    /* Rows per expert are known on the device only: the tile height
     * follows the average, the grid covers the most one expert can have. */
    uint32_t tm = per_thread(g->avg_rows), tn = per_thread(n);
    int64_t gx = (n + 16 * tn - 1) / (16 * tn), gy = (g->max_rows + 16 * tm - 1) / (16 * tm);
    if (gx > 65535 || gy > 65535 || E > 65535) {
        md_vk_fail(vk, "vulkan: moe_grouped_gemm: a grid of %lldx%lldx%lld workgroups exceeds "
                       "65535 in one dimension",
                   (long long)gx, (long long)gy, (long long)E);
        return;
    }
    uint32_t push[14] = {(uint32_t)n,       (uint32_t)k,        a[0].elem,          a[1].elem,
                         a[2].elem,         a[4].elem,          a[3].elem,          (uint32_t)E,
                         g->b != NULL,      (uint32_t)g->gather, (uint32_t)g->s0,   (uint32_t)g->s1,
                         (uint32_t)g->xsub, (uint32_t)g->ysub};
    uint32_t spec[4] = {md_vk_dt(g->w), md_vk_dt(g->b), tm, tn};
    md_vk_dispatch(vk, MD_VK_SH_moe_grouped_gemm, spec, 4, a, 5, push, sizeof push, (uint32_t)gx,
                   (uint32_t)gy, (uint32_t)E, "moe_grouped_gemm");
}

/* o [rows*k, out] = expert(x) for every slot. GEGLU experts go through an
 * intermediate [slots, n1] in chunks of slots when all of it would exceed
 * one binding (lavapipe's 128 MiB); one chunk otherwise. */
static void experts(md_backend *be, const md_moe_routed *m, md_tensor *o, const md_tensor *x,
                    moe_scratch *s, int64_t rows, int64_t E)
{
    md_vk *vk = md_vk_of(be);
    int64_t slots = rows * m->top_k, n1 = m->w1->shape[1];
    int64_t avg = (slots + E - 1) / E;
    if (!m->w2) {
        grouped g = {x, m->w1, m->b1, o, 1, 0, slots, 0, 0, rows, avg};
        grouped_gemm(vk, &g, s, E);
        return;
    }
    int64_t chunk = (int64_t)(vk->props.limits.maxStorageBufferRange / ((uint64_t)n1 * 4));
    if (chunk > slots)
        chunk = slots;
    if (chunk < 1) {
        md_vk_fail(vk, "vulkan: moe_routed: one row of %lld floats exceeds the binding limit",
                   (long long)n1);
        return;
    }
    md_tensor h = be->new_tensor(be, 2, (int64_t[]){chunk, n1});
    md_tensor gl = be->new_tensor(be, 2, (int64_t[]){chunk, n1 / 2});
    if (!h.data || !gl.data) {
        md_vk_fail(vk, "vulkan: moe_routed: out of device memory for the expert activations");
        return;
    }
    for (int64_t s0 = 0; s0 < slots; s0 += chunk) {
        int64_t s1 = s0 + chunk < slots ? s0 + chunk : slots;
        int64_t most = s1 - s0 < rows ? s1 - s0 : rows;
        md_tensor hv = h, gv = gl;
        hv.shape[0] = gv.shape[0] = s1 - s0;
        grouped up = {x, m->w1, m->b1, &hv, 1, s0, s1, 0, s0, most, avg};
        grouped_gemm(vk, &up, s, E);
        md_vk_op_geglu(be, &gv, &hv);
        grouped down = {&gv, m->w2, m->b2, o, 0, s0, s1, s0, 0, most, avg};
        grouped_gemm(vk, &down, s, E);
    }
}

static void combine(md_vk *vk, md_tensor *y, const md_tensor *o, md_tensor *choice,
                    moe_scratch *s, int64_t rows, int k, int seq)
{
    int64_t d = y->shape[y->ndim - 1];
    md_vk_arg a[5];
    if (!md_vk_bind(vk, &a[0], o, MD_VK_READ, "moe_combine") ||
        !md_vk_bind(vk, &a[1], &s->slot, MD_VK_READ, "moe_combine") ||
        !md_vk_bind(vk, &a[2], choice, MD_VK_READ, "moe_combine") ||
        !md_vk_bind(vk, &a[3], &s->weight, MD_VK_READ, "moe_combine") ||
        !md_vk_bind(vk, &a[4], y, MD_VK_WRITE, "moe_combine"))
        return;
    uint32_t push[9] = {(uint32_t)rows, (uint32_t)d, (uint32_t)k, (uint32_t)seq, a[0].elem,
                        a[1].elem,      a[2].elem,   a[3].elem,   a[4].elem};
    md_vk_dispatch(vk, MD_VK_SH_moe_combine, NULL, 0, a, 5, push, sizeof push,
                   md_vk_groups(rows * d, MD_VK_EW_GROUP), 1, 1, "moe_combine");
}

void md_vk_op_moe_routed(md_backend *be, md_tensor *y, md_tensor *logits, md_tensor *choice,
                         const md_tensor *x, const md_moe_routed *m)
{
    md_vk *vk = md_vk_of(be);
    int64_t E = m->gate->shape[0], in = m->gate->shape[1];
    int64_t rows = in > 0 ? md_tensor_numel(x) / in : 0;
    int64_t out = y->shape[y->ndim - 1];
    int k = m->top_k;
    if (rows <= 0 || out <= 0)
        return;
    if (k < 1 || k > 16 || k > E || m->w1->ndim != 3 || (m->w2 && m->w2->ndim != 3) ||
        rows * k > INT32_MAX) {
        md_vk_fail(vk, "vulkan: moe_routed: bad layer (top_k %d of %lld experts, %lld rows)", k,
                   (long long)E, (long long)rows);
        return;
    }
    md_vk_op_linear(be, logits, x, m->gate, NULL);
    moe_scratch s;
    md_tensor o = be->new_tensor(be, 2, (int64_t[]){rows * k, out});
    if (!o.data || !scratch(be, &s.weight, rows * k) || !scratch(be, &s.slot, rows * k) ||
        !scratch(be, &s.route, 2 * E + rows * k) || !scratch(be, &s.sums, 2 * E)) {
        md_vk_fail(vk, "vulkan: moe_routed: out of device memory for %lld rows", (long long)rows);
        return;
    }
    route(vk, m, logits, choice, &s, rows, E);
    permute(vk, choice, &s, rows, E, k);
    experts(be, m, &o, x, &s, rows, E);
    combine(vk, y, &o, choice, &s, rows, k, !m->token_topk);
}
