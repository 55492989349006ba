/* The U-Net's down, mid and up blocks (CrossAttnDownBlock2D / DownBlock2D,
 * UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D / UpBlock2D). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet_internal.h"

static int in_range(int i, int start, int end)
{
    return i >= start && i < end;
}

static md_status block_alloc(md_unet_block *b, int nres, int with_attn, const char *label,
                             md_error *err)
{
    memset(b, 0, sizeof(*b));
    b->res = calloc((size_t)nres, sizeof(*b->res));
    if (with_attn)
        b->attn = calloc((size_t)nres, sizeof(*b->attn));
    if (!b->res || (with_attn && !b->attn))
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", label);
    b->nres = nres;
    return MD_OK;
}

md_status md_down_block_load(md_unet_block *b, md_weights *w, md_backend *be, md_error *err,
                             const md_unet_config *cfg, int level, int cin)
{
    const char *label = md_weights_label(w);
    const int cout = cfg->block_out_channels[level], temb = 4 * cfg->block_out_channels[0];
    const md_moe_config *moe =
        cfg->moe.enabled && in_range(level, cfg->moe.down_start, cfg->moe.down_end) ? &cfg->moe
                                                                                    : NULL;
    char p[256];
    MD_TRY(block_alloc(b, cfg->layers_per_block, cfg->down_has_attn[level], label, err));
    for (int j = 0; j < b->nres; j++) {
        MD_TRY(md_nn_name(p, sizeof(p), err, "down_blocks.%d.resnets.%d", level, j));
        MD_TRY(md_resnet_load(&b->res[j], w, be, err, p, j == 0 ? cin : cout, cout, temb,
                              cfg->norm_groups, cfg->norm_eps));
        if (b->attn) {
            MD_TRY(md_nn_name(p, sizeof(p), err, "down_blocks.%d.attentions.%d", level, j));
            MD_TRY(md_transformer_load(&b->attn[j], w, be, err, p, cfg, cout, cfg->heads[level],
                                       cfg->transformer_layers[level], moe));
        }
    }
    if (level < cfg->levels - 1) {
        if (cfg->downsample_padding != 1)
            return md_fail(err, MD_ERR_UNSUPPORTED, "%s: downsample_padding %d is not supported",
                           label, cfg->downsample_padding);
        b->has_resample = 1;
        MD_TRY(md_nn_name(p, sizeof(p), err, "down_blocks.%d.downsamplers.0.conv", level));
        MD_TRY(md_nn_conv_load(&b->resample, w, be, err, p, cout, cout, 3));
    }
    return MD_OK;
}

md_status md_up_block_load(md_unet_block *b, md_weights *w, md_backend *be, md_error *err,
                           const md_unet_config *cfg, int index, int cin, const int *skip_ch,
                           int *nskip)
{
    const char *label = md_weights_label(w);
    const int level = cfg->levels - 1 - index;
    const int cout = cfg->block_out_channels[level], temb = 4 * cfg->block_out_channels[0];
    const md_moe_config *moe =
        cfg->moe.enabled && in_range(index, cfg->moe.up_start, cfg->moe.up_end) ? &cfg->moe : NULL;
    char p[256];
    MD_TRY(block_alloc(b, cfg->layers_per_block + 1, cfg->up_has_attn[index], label, err));
    int hch = cin;
    for (int j = 0; j < b->nres; j++) {
        if (*nskip <= 0)
            return md_fail(err, MD_ERR_INVALID, "%s: up_blocks.%d has no skip connection left",
                           label, index);
        const int sch = skip_ch[--*nskip];
        MD_TRY(md_nn_name(p, sizeof(p), err, "up_blocks.%d.resnets.%d", index, j));
        MD_TRY(md_resnet_load(&b->res[j], w, be, err, p, hch + sch, cout, temb, cfg->norm_groups,
                              cfg->norm_eps));
        hch = cout;
        if (b->attn) {
            MD_TRY(md_nn_name(p, sizeof(p), err, "up_blocks.%d.attentions.%d", index, j));
            MD_TRY(md_transformer_load(&b->attn[j], w, be, err, p, cfg, cout, cfg->heads[level],
                                       cfg->transformer_layers[level], moe));
        }
    }
    if (index < cfg->levels - 1) {
        b->has_resample = 1;
        MD_TRY(md_nn_name(p, sizeof(p), err, "up_blocks.%d.upsamplers.0.conv", index));
        MD_TRY(md_nn_conv_load(&b->resample, w, be, err, p, cout, cout, 3));
    }
    return MD_OK;
}

md_status md_mid_block_load(md_unet_block *b, md_weights *w, md_backend *be, md_error *err,
                            const md_unet_config *cfg)
{
    const int L = cfg->levels - 1;
    const int c = cfg->block_out_channels[L], temb = 4 * cfg->block_out_channels[0];
    char p[256];
    /* Two resnets with one transformer between them: attn[0] follows res[0]. */
    MD_TRY(block_alloc(b, 2, 1, md_weights_label(w), err));
    for (int j = 0; j < 2; j++) {
        MD_TRY(md_nn_name(p, sizeof(p), err, "mid_block.resnets.%d", j));
        MD_TRY(
            md_resnet_load(&b->res[j], w, be, err, p, c, c, temb, cfg->norm_groups, cfg->norm_eps));
    }
    MD_TRY(md_transformer_load(&b->attn[0], w, be, err, "mid_block.attentions.0", cfg, c,
                               cfg->heads[L], cfg->transformer_layers[L], NULL));
    return MD_OK;
}

void md_unet_block_free(md_unet_block *b)
{
    if (b->attn)
        for (int j = 0; j < b->nres; j++)
            md_transformer_free(&b->attn[j]);
    free(b->attn);
    free(b->res);
    memset(b, 0, sizeof(*b));
}

static md_status push(const md_unet_run *run, md_skip_stack *s, const md_tensor *t)
{
    if (s->n >= s->cap)
        return md_fail(run->err, MD_ERR_INVALID, "unet: skip connection stack overflow");
    s->t[s->n++] = *t;
    return MD_OK;
}

md_status md_down_block_forward(const md_unet_run *run, const md_unet_block *b, md_tensor *h,
                                md_skip_stack *skips)
{
    md_backend *be = run->be;
    const int64_t B = h->shape[0], H = h->shape[2], W = h->shape[3];
    for (int j = 0; j < b->nres; j++) {
        md_tensor y;
        MD_TRY(md_nn_tensor(be, &y, run->err, 4, (int64_t[]){B, b->res[j].cout, H, W}));
        MD_TRY(md_resnet_forward(run, &b->res[j], &y, h));
        if (b->attn)
            MD_TRY(md_transformer_forward(run, &b->attn[j], &y));
        *h = y;
        MD_TRY(push(run, skips, h));
    }
    if (b->has_resample) {
        md_tensor y;
        MD_TRY(md_nn_tensor(be, &y, run->err, 4,
                            (int64_t[]){B, b->resample.cout, (H + 1) / 2, (W + 1) / 2}));
        be->conv2d(be, &y, h, b->resample.w, b->resample.b, 2, 1);
        *h = y;
        MD_TRY(push(run, skips, h));
    }
    return MD_OK;
}

md_status md_mid_block_forward(const md_unet_run *run, const md_unet_block *b, md_tensor *h)
{
    md_backend *be = run->be;
    const int64_t B = h->shape[0], H = h->shape[2], W = h->shape[3];
    md_tensor y;
    MD_TRY(md_nn_tensor(be, &y, run->err, 4, (int64_t[]){B, b->res[0].cout, H, W}));
    MD_TRY(md_resnet_forward(run, &b->res[0], &y, h));
    MD_TRY(md_transformer_forward(run, &b->attn[0], &y));
    MD_TRY(md_nn_tensor(be, h, run->err, 4, (int64_t[]){B, b->res[1].cout, H, W}));
    MD_TRY(md_resnet_forward(run, &b->res[1], h, &y));
    return MD_OK;
}

md_status md_up_block_forward(const md_unet_run *run, const md_unet_block *b, md_tensor *h,
                              md_skip_stack *skips)
{
    md_backend *be = run->be;
    const int64_t B = h->shape[0], H = h->shape[2], W = h->shape[3];
    for (int j = 0; j < b->nres; j++) {
        if (skips->n <= 0)
            return md_fail(run->err, MD_ERR_INVALID, "unet: skip connection stack underflow");
        const md_tensor *s = &skips->t[--skips->n];
        if (s->shape[2] != H || s->shape[3] != W)
            return md_fail(
                run->err, MD_ERR_INVALID, "unet: skip connection of %lldx%lld meets %lldx%lld",
                (long long)s->shape[2], (long long)s->shape[3], (long long)H, (long long)W);
        md_tensor y;
        MD_TRY(md_nn_tensor(be, &y, run->err, 4, (int64_t[]){B, b->res[j].cout, H, W}));
        /* The concatenation is only needed until the resnet has read it. */
        size_t mark = be->arena_mark(be);
        md_tensor cat;
        MD_TRY(
            md_nn_tensor(be, &cat, run->err, 4, (int64_t[]){B, h->shape[1] + s->shape[1], H, W}));
        be->concat_channels(be, &cat, h, s);
        MD_TRY(md_resnet_forward(run, &b->res[j], &y, &cat));
        be->arena_reset(be, mark);
        if (b->attn)
            MD_TRY(md_transformer_forward(run, &b->attn[j], &y));
        *h = y;
    }
    if (b->has_resample) {
        /* Upsample to the next skip connection's size, which is 2H - 1 where
         * the down path halved an odd size (diffusers' forward_upsample_size). */
        int64_t Ho = 2 * H, Wo = 2 * W;
        if (skips->n > 0) {
            Ho = skips->t[skips->n - 1].shape[2];
            Wo = skips->t[skips->n - 1].shape[3];
        }
        if (Ho < 2 * H - 1 || Ho > 2 * H || Wo < 2 * W - 1 || Wo > 2 * W)
            return md_fail(run->err, MD_ERR_INVALID,
                           "unet: cannot upsample %lldx%lld to a skip connection of %lldx%lld",
                           (long long)H, (long long)W, (long long)Ho, (long long)Wo);
        md_tensor y;
        MD_TRY(md_nn_tensor(be, &y, run->err, 4, (int64_t[]){B, b->resample.cout, Ho, Wo}));
        size_t mark = be->arena_mark(be);
        md_tensor u;
        MD_TRY(md_nn_tensor(be, &u, run->err, 4, (int64_t[]){B, h->shape[1], Ho, Wo}));
        be->upsample_nearest2x(be, &u, h);
        be->conv2d(be, &y, &u, b->resample.w, b->resample.b, 1, 1);
        be->arena_reset(be, mark);
        *h = y;
    }
    return MD_OK;
}
