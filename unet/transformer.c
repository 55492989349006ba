/* Transformer2DModel (GroupNorm, proj_in, BasicTransformerBlocks, proj_out,
 * residual) and BasicTransformerBlock (self-attention, cross-attention and
 * GEGLU feed-forward, each pre-LayerNorm with a residual). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet_internal.h"

#define MD_TRANSFORMER_NORM_EPS 1e-6f /* Transformer2DModel's GroupNorm */
#define MD_BLOCK_NORM_EPS 1e-5f       /* BasicTransformerBlock's LayerNorms */

static md_status tblock_load(md_tblock *b, md_weights *w, md_backend *be, md_error *err,
                             const char *prefix, const md_unet_config *cfg, int dim, int heads,
                             const md_moe_config *moe)
{
    char p[256];
    const int ctx_dim = cfg->cross_attention_dim;
    b->dim = dim;
    b->only_cross = cfg->only_cross_attention;
    b->ff_moe = NULL;
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.norm1", prefix));
    MD_TRY(md_nn_norm_load(&b->norm1, w, be, err, p, dim));
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.attn1", prefix));
    MD_TRY(md_attention_load(&b->attn1, w, be, err, p, dim, b->only_cross ? ctx_dim : dim, heads,
                             moe));
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.norm2", prefix));
    MD_TRY(md_nn_norm_load(&b->norm2, w, be, err, p, dim));
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.attn2", prefix));
    MD_TRY(md_attention_load(&b->attn2, w, be, err, p, dim, ctx_dim, heads, moe));
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.norm3", prefix));
    MD_TRY(md_nn_norm_load(&b->norm3, w, be, err, p, dim));
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.ff", prefix));
    if (moe && moe->enabled && moe->moe_ff) {
        b->ff_moe = calloc(1, sizeof(*b->ff_moe));
        if (!b->ff_moe)
            return md_fail(err, MD_ERR_NOMEM, "%s: %s: out of memory", md_weights_label(w), p);
        md_status s = md_moe_layer_load(b->ff_moe, MD_MOE_GEGLU_FF, moe, w, p, dim, dim, be, err);
        if (s != MD_OK) {
            free(b->ff_moe);
            b->ff_moe = NULL;
        }
        return s;
    }
    const int inner = 4 * dim; /* FeedForward's default mult */
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.ff.net.0.proj", prefix));
    MD_TRY(md_nn_linear_load(&b->ff1, w, be, err, p, dim, 2 * inner, 1));
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.ff.net.2", prefix));
    MD_TRY(md_nn_linear_load(&b->ff2, w, be, err, p, inner, dim, 1));
    return MD_OK;
}

static void tblock_free(md_tblock *b)
{
    md_attention_free(&b->attn1);
    md_attention_free(&b->attn2);
    if (b->ff_moe) {
        md_moe_layer_free(b->ff_moe);
        free(b->ff_moe);
        b->ff_moe = NULL;
    }
}

/* y [B, N, dim] = ff(x). */
static md_status ff_forward(const md_unet_run *run, const md_tblock *b, md_tensor *y,
                            const md_tensor *x)
{
    if (b->ff_moe)
        return md_moe_forward(run->be, b->ff_moe, run->moe_scratch[b->ff_moe->index],
                              run->moe_opt, y, x, run->observer, run->observer_user, run->err);
    md_backend *be = run->be;
    const int64_t B = x->shape[0], N = x->shape[1];
    size_t mark = be->arena_mark(be);
    md_tensor h, g;
    MD_TRY(md_nn_tensor(be, &h, run->err, 3, (int64_t[]){B, N, b->ff1.out}));
    MD_TRY(md_nn_tensor(be, &g, run->err, 3, (int64_t[]){B, N, b->ff2.in}));
    md_nn_linear_forward(be, &h, x, &b->ff1);
    be->geglu(be, &g, &h);
    md_nn_linear_forward(be, y, &g, &b->ff2);
    be->arena_reset(be, mark);
    return MD_OK;
}

/* In place on h [B, N, dim]. */
static md_status tblock_forward(const md_unet_run *run, const md_tblock *b, md_tensor *h)
{
    md_backend *be = run->be;
    const int64_t B = h->shape[0], N = h->shape[1];
    size_t mark = be->arena_mark(be);
    md_tensor n, a;
    MD_TRY(md_nn_tensor(be, &n, run->err, 3, (int64_t[]){B, N, b->dim}));
    MD_TRY(md_nn_tensor(be, &a, run->err, 3, (int64_t[]){B, N, b->dim}));

    be->layer_norm(be, &n, h, b->norm1.g, b->norm1.b, MD_BLOCK_NORM_EPS);
    MD_TRY(md_attention_forward(run, &b->attn1, &a, &n, b->only_cross ? run->context : &n));
    be->add(be, h, &a, h);

    be->layer_norm(be, &n, h, b->norm2.g, b->norm2.b, MD_BLOCK_NORM_EPS);
    MD_TRY(md_attention_forward(run, &b->attn2, &a, &n, run->context));
    be->add(be, h, &a, h);

    be->layer_norm(be, &n, h, b->norm3.g, b->norm3.b, MD_BLOCK_NORM_EPS);
    MD_TRY(ff_forward(run, b, &a, &n));
    be->add(be, h, &a, h);
    be->arena_reset(be, mark);
    return MD_OK;
}

md_status md_transformer_load(md_transformer *t, md_weights *w, md_backend *be, md_error *err,
                              const char *prefix, const md_unet_config *cfg, int channels,
                              int heads, int nblocks, const md_moe_config *moe)
{
    char p[256];
    memset(t, 0, sizeof(*t));
    t->channels = channels;
    t->groups = cfg->norm_groups;
    t->linear_proj = cfg->use_linear_projection;
    if (nblocks < 1)
        return md_fail(err, MD_ERR_INVALID, "%s: %s: %d transformer layers", md_weights_label(w),
                       prefix, nblocks);
    if (channels % t->groups != 0)
        return md_fail(err, MD_ERR_INVALID, "%s: %s: %d channels not divisible by %d groups",
                       md_weights_label(w), prefix, channels, t->groups);
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.norm", prefix));
    MD_TRY(md_nn_norm_load(&t->norm, w, be, err, p, channels));
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.proj_in", prefix));
    if (t->linear_proj)
        MD_TRY(md_nn_linear_load(&t->proj_in, w, be, err, p, channels, channels, 1));
    else
        MD_TRY(md_nn_linear_load_1x1(&t->proj_in, w, be, err, p, channels, channels));
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.proj_out", prefix));
    if (t->linear_proj)
        MD_TRY(md_nn_linear_load(&t->proj_out, w, be, err, p, channels, channels, 1));
    else
        MD_TRY(md_nn_linear_load_1x1(&t->proj_out, w, be, err, p, channels, channels));
    t->blocks = calloc((size_t)nblocks, sizeof(*t->blocks));
    if (!t->blocks)
        return md_fail(err, MD_ERR_NOMEM, "%s: %s: out of memory", md_weights_label(w), prefix);
    t->nblocks = nblocks;
    for (int i = 0; i < nblocks; i++) {
        MD_TRY(md_nn_name(p, sizeof(p), err, "%s.transformer_blocks.%d", prefix, i));
        MD_TRY(tblock_load(&t->blocks[i], w, be, err, p, cfg, channels, heads, moe));
    }
    return MD_OK;
}

void md_transformer_free(md_transformer *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->nblocks; i++)
        tblock_free(&t->blocks[i]);
    free(t->blocks);
    t->blocks = NULL;
    t->nblocks = 0;
}

md_status md_transformer_forward(const md_unet_run *run, const md_transformer *t, md_tensor *x)
{
    md_backend *be = run->be;
    const int64_t B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    size_t mark = be->arena_mark(be);
    md_tensor n, tok, h;
    MD_TRY(md_nn_tensor(be, &n, run->err, 4, (int64_t[]){B, C, H, W}));
    MD_TRY(md_nn_tensor(be, &tok, run->err, 3, (int64_t[]){B, H * W, C}));
    MD_TRY(md_nn_tensor(be, &h, run->err, 3, (int64_t[]){B, H * W, C}));

    be->group_norm(be, &n, x, t->norm.g, t->norm.b, t->groups, MD_TRANSFORMER_NORM_EPS, 0);
    /* proj_in as a 1x1 conv and as a linear on tokens are the same math,
     * so both layouts go through the token path. */
    be->nchw_to_tokens(be, &tok, &n);
    md_nn_linear_forward(be, &h, &tok, &t->proj_in);
    /* The blocks' MoE calls learn the token grid (row y * W + x of each
     * image), so a router override can map rows to latent pixels. */
    md_moe_options opt = run->moe_opt ? *run->moe_opt : (md_moe_options){0};
    opt.grid_h = (int)H;
    opt.grid_w = (int)W;
    md_unet_run grid_run = *run;
    grid_run.moe_opt = &opt;
    for (int i = 0; i < t->nblocks; i++)
        MD_TRY(tblock_forward(&grid_run, &t->blocks[i], &h));
    md_nn_linear_forward(be, &tok, &h, &t->proj_out);
    be->tokens_to_nchw(be, &n, &tok);
    be->add(be, x, &n, x);
    be->arena_reset(be, mark);
    return MD_OK;
}
