/* The AutoencoderKL building blocks as stages over a ping-pong pair of
 * activation buffers (see md_vae_pingpong). */
#include <math.h>

#include "vae_internal.h"

md_tensor md_vae_view(md_vae_pingpong *pp, int i, int64_t c, int64_t h, int64_t w)
{
    if (c * h * w > pp->peak)
        pp->peak = c * h * w;
    md_tensor t = pp->slot[i];
    t.ndim = 4;
    t.shape[0] = 1;
    t.shape[1] = c;
    t.shape[2] = h;
    t.shape[3] = w;
    return t;
}

static md_status temp(md_backend *be, md_tensor *t, int ndim, const int64_t *shape,
                      md_error *err)
{
    *t = be->new_tensor(be, ndim, shape);
    if (t->data)
        return MD_OK;
    md_tensor d = {.dtype = MD_F32, .ndim = ndim};
    for (int i = 0; i < ndim; i++)
        d.shape[i] = shape[i];
    char buf[96];
    return md_fail(err, MD_ERR_NOMEM, "vae: out of activation memory for a %s temporary",
                   md_shape_str(&d, buf, sizeof buf));
}

md_status md_vae_resnet_fwd(md_backend *be, const md_vae_config *cfg, const md_vae_resnet *r,
                            md_vae_pingpong *pp, int64_t h, int64_t w, md_error *err)
{
    md_tensor x = md_vae_view(pp, pp->cur, r->cin, h, w);
    /* The output slot holds the normalised input until conv1 has read it
     * (a slot fits any activation of the pass, x included). */
    md_tensor normed = md_vae_view(pp, !pp->cur, r->cin, h, w);
    md_tensor y = md_vae_view(pp, !pp->cur, r->cout, h, w);
    size_t mark = be->arena_mark(be);
    md_tensor t;
    md_status st = temp(be, &t, 4, (const int64_t[]){1, r->cout, h, w}, err);
    if (st == MD_OK) {
        be->group_norm(be, &normed, &x, r->norm1.g, r->norm1.b, cfg->norm_groups, cfg->norm_eps,
                       1);
        be->conv2d(be, &t, &normed, r->conv1.w, r->conv1.b, 1, 1);
        be->group_norm(be, &t, &t, r->norm2.g, r->norm2.b, cfg->norm_groups, cfg->norm_eps, 1);
        be->conv2d(be, &y, &t, r->conv2.w, r->conv2.b, 1, 1);
        if (r->shortcut.w) {
            be->conv2d(be, &t, &x, r->shortcut.w, r->shortcut.b, 1, 0); /* t is free again */
            be->add(be, &y, &y, &t);
        } else {
            be->add(be, &y, &y, &x);
        }
        pp->cur = !pp->cur;
    }
    be->arena_reset(be, mark);
    return st;
}

md_status md_vae_attn_fwd(md_backend *be, const md_vae_config *cfg, const md_vae_attn *a,
                          md_vae_pingpong *pp, int64_t h, int64_t w, md_error *err)
{
    int64_t c = a->channels, n = h * w;
    const int64_t tok_shape[3] = {1, n, c};
    md_tensor x = md_vae_view(pp, pp->cur, c, h, w);
    md_tensor y = md_vae_view(pp, !pp->cur, c, h, w); /* also holds the normalised input */
    size_t mark = be->arena_mark(be);
    md_tensor tok, q, k, v, o;
    md_status st = temp(be, &tok, 3, tok_shape, err);
    if (st == MD_OK)
        st = temp(be, &q, 3, tok_shape, err);
    if (st == MD_OK)
        st = temp(be, &k, 3, tok_shape, err);
    if (st == MD_OK)
        st = temp(be, &v, 3, tok_shape, err);
    if (st == MD_OK)
        st = temp(be, &o, 3, tok_shape, err);
    if (st == MD_OK) {
        be->group_norm(be, &y, &x, a->norm.g, a->norm.b, cfg->norm_groups, cfg->norm_eps, 0);
        be->nchw_to_tokens(be, &tok, &y);
        md_nn_linear_forward(be, &q, &tok, &a->q);
        md_nn_linear_forward(be, &k, &tok, &a->k);
        md_nn_linear_forward(be, &v, &tok, &a->v);
        /* One head spanning all channels. */
        be->attention(be, &o, &q, &k, &v, 1, 1.0f / sqrtf((float)c), 0);
        md_nn_linear_forward(be, &q, &o, &a->out); /* q is dead: reuse it */
        be->tokens_to_nchw(be, &y, &q);
        be->add(be, &y, &y, &x);
        pp->cur = !pp->cur;
    }
    be->arena_reset(be, mark);
    return st;
}

md_status md_vae_mid_fwd(md_backend *be, const md_vae_config *cfg, const md_vae_mid *m,
                         md_vae_pingpong *pp, int64_t h, int64_t w, md_error *err)
{
    md_status st = md_vae_resnet_fwd(be, cfg, &m->res0, pp, h, w, err);
    if (st == MD_OK)
        st = md_vae_attn_fwd(be, cfg, &m->attn, pp, h, w, err);
    if (st == MD_OK)
        st = md_vae_resnet_fwd(be, cfg, &m->res1, pp, h, w, err);
    return st;
}

void md_vae_conv_fwd(md_backend *be, md_vae_pingpong *pp, const md_tensor *wt,
                     const md_tensor *b, int64_t cin, int64_t cout, int64_t h, int64_t w,
                     int stride, int pad, int64_t ho, int64_t wo)
{
    md_tensor x = md_vae_view(pp, pp->cur, cin, h, w);
    md_tensor y = md_vae_view(pp, !pp->cur, cout, ho, wo);
    be->conv2d(be, &y, &x, wt, b, stride, pad);
    pp->cur = !pp->cur;
}

void md_vae_downsample_fwd(md_backend *be, md_vae_pingpong *pp, const md_vae_level *l, int64_t c,
                           int64_t h, int64_t w)
{
    /* 4x4 kernel, stride 2, pad 1 == pad (0,1,0,1) + 3x3 stride 2 (vae_load.c). */
    md_vae_conv_fwd(be, pp, l->resample.w, l->resample.b, c, c, h, w, 2, 1, (h - 2) / 2 + 1,
                    (w - 2) / 2 + 1);
}

void md_vae_upsample_fwd(md_backend *be, md_vae_pingpong *pp, const md_vae_level *l, int64_t c,
                         int64_t h, int64_t w)
{
    /* Upsample into the other slot, then convolve back into this one: the
     * pass needs no third buffer of the upsampled size. */
    md_tensor x = md_vae_view(pp, pp->cur, c, h, w);
    md_tensor up = md_vae_view(pp, !pp->cur, c, 2 * h, 2 * w);
    be->upsample_nearest2x(be, &up, &x);
    md_tensor y = md_vae_view(pp, pp->cur, c, 2 * h, 2 * w);
    be->conv2d(be, &y, &up, l->resample.w, l->resample.b, 1, 1);
}
