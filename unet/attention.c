/* diffusers Attention as used by the U-Net transformer blocks: q/k/v
 * projections (plain or MoE), multi-head scaled dot-product attention, and
 * to_out.0 with its bias. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "unet_internal.h"

static md_status proj_load(md_proj *p, md_weights *w, md_backend *be, md_error *err,
                           const char *prefix, int in, int out, const md_moe_config *moe)
{
    p->moe = NULL;
    if (moe && moe->enabled && moe->moe_attn) {
        p->moe = calloc(1, sizeof(*p->moe));
        if (!p->moe)
            return md_fail(err, MD_ERR_NOMEM, "%s: %s: out of memory", md_weights_label(w), prefix);
        md_status s = md_moe_layer_load(p->moe, MD_MOE_LINEAR, moe, w, prefix, in, out, be, err);
        if (s != MD_OK) {
            free(p->moe);
            p->moe = NULL;
        }
        return s;
    }
    /* SD attention projections carry no bias; accept one when present. */
    return md_nn_linear_load(&p->lin, w, be, err, prefix, in, out, -1);
}

static void proj_free(md_proj *p)
{
    if (p->moe) {
        md_moe_layer_free(p->moe);
        free(p->moe);
        p->moe = NULL;
    }
}

/* grid: x holds the block's image tokens (not the text context), so the
 * MoE call may report their grid. */
static md_status proj_forward(const md_unet_run *run, const md_proj *p, md_tensor *y,
                              const md_tensor *x, int grid)
{
    if (p->moe) {
        md_moe_options text_opt;
        const md_moe_options *opt = run->moe_opt;
        if (!grid && opt) {
            text_opt = *opt;
            text_opt.grid_h = text_opt.grid_w = 0;
            opt = &text_opt;
        }
        return md_moe_forward(run->be, p->moe, run->moe_scratch[p->moe->index], opt, y, x,
                              run->observer, run->observer_user, run->err);
    }
    md_nn_linear_forward(run->be, y, x, &p->lin);
    return MD_OK;
}

md_status md_attention_load(md_attention *a, md_weights *w, md_backend *be, md_error *err,
                            const char *prefix, int dim, int kv_dim, int heads,
                            const md_moe_config *moe)
{
    char p[256];
    a->dim = dim;
    a->kv_index = -1;
    a->kv_dim = kv_dim;
    a->heads = heads;
    if (heads < 1 || dim % heads != 0)
        return md_fail(err, MD_ERR_INVALID, "%s: %s: %d channels do not split into %d heads",
                       md_weights_label(w), prefix, dim, heads);
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.to_q", prefix));
    MD_TRY(proj_load(&a->q, w, be, err, p, dim, dim, moe));
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.to_k", prefix));
    MD_TRY(proj_load(&a->k, w, be, err, p, kv_dim, dim, moe));
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.to_v", prefix));
    MD_TRY(proj_load(&a->v, w, be, err, p, kv_dim, dim, moe));
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.to_out.0", prefix));
    MD_TRY(md_nn_linear_load(&a->out, w, be, err, p, dim, dim, 1));
    return MD_OK;
}

void md_attention_free(md_attention *a)
{
    proj_free(&a->q);
    proj_free(&a->k);
    proj_free(&a->v);
}

md_status md_attention_forward(const md_unet_run *run, const md_attention *a, md_tensor *y,
                               const md_tensor *x, const md_tensor *ctx)
{
    md_backend *be = run->be;
    const int64_t B = x->shape[0], N = x->shape[1], M = ctx->shape[1];
    size_t mark = be->arena_mark(be);
    md_tensor q, k, v, o;
    const md_tensor *kv = run->kv && a->kv_index >= 0 ? &run->kv[2 * a->kv_index] : NULL;
    MD_TRY(md_nn_tensor(be, &q, run->err, 3, (int64_t[]){B, N, a->dim}));
    if (kv) { /* the text's keys and values: computed by the first call only */
        k = kv[0];
        v = kv[1];
    } else {
        MD_TRY(md_nn_tensor(be, &k, run->err, 3, (int64_t[]){B, M, a->dim}));
        MD_TRY(md_nn_tensor(be, &v, run->err, 3, (int64_t[]){B, M, a->dim}));
    }
    MD_TRY(md_nn_tensor(be, &o, run->err, 3, (int64_t[]){B, N, a->dim}));
    MD_TRY(proj_forward(run, &a->q, &q, x, 1));
    if (!kv || run->kv_fill) {
        MD_TRY(proj_forward(run, &a->k, &k, ctx, ctx == x));
        MD_TRY(proj_forward(run, &a->v, &v, ctx, ctx == x));
    }
    float scale = (float)(1.0 / sqrt((double)(a->dim / a->heads)));
    be->attention(be, &o, &q, &k, &v, a->heads, scale, 0);
    md_nn_linear_forward(be, y, &o, &a->out);
    be->arena_reset(be, mark);
    return MD_OK;
}
