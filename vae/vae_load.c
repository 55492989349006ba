/* Weight lookup for the AutoencoderKL encoder and decoder, in diffusers
 * naming. Every weight's shape is checked against the config here, so the
 * passes can trust shapes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vae_internal.h"

#define NAME_MAX_LEN 256

/* Names are built into NAME_MAX_LEN buffers; the longest diffusers VAE
 * name is far shorter, and a cut name would only fail the lookup. */
static void namef(char *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void namef(char *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, NAME_MAX_LEN, fmt, ap);
    va_end(ap);
}

/* Looks `name` up with the expected shape and hands it to the backend. */
static md_status get_named(md_vae *v, md_weights *w, const char *name, int ndim,
                           const int64_t *shape, md_tensor **out, md_error *err)
{
    md_status st = md_weights_get(w, name, ndim, shape, out, err);
    if (st != MD_OK)
        return st;
    st = v->be->prepare_weight(v->be, *out, err);
    if (st != MD_OK)
        return md_fail_context(err, "preparing %s: ", name);
    return MD_OK;
}

static md_status getf(md_vae *v, md_weights *w, md_tensor **out, md_error *err, int ndim,
                      const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static md_status getf(md_vae *v, md_weights *w, md_tensor **out, md_error *err, int ndim,
                      const int64_t *shape, const char *fmt, ...)
{
    char name[NAME_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return get_named(v, w, name, ndim, shape, out, err);
}

#define SHAPE1(a) 1, (const int64_t[]){(a)}
#define SHAPE2(a, b) 2, (const int64_t[]){(a), (b)}
#define SHAPE4(a, b, c, d) 4, (const int64_t[]){(a), (b), (c), (d)}
static md_status load_conv(md_vae *v, md_weights *w, const char *prefix, int64_t cout,
                           int64_t cin, int64_t k, md_tensor **wt, md_tensor **b, md_error *err)
{
    MD_TRY(getf(v, w, wt, err, SHAPE4(cout, cin, k, k), "%s.weight", prefix));
    return getf(v, w, b, err, SHAPE1(cout), "%s.bias", prefix);
}

static md_status load_norm(md_vae *v, md_weights *w, const char *prefix, int64_t c,
                           md_tensor **g, md_tensor **b, md_error *err)
{
    MD_TRY(getf(v, w, g, err, SHAPE1(c), "%s.weight", prefix));
    return getf(v, w, b, err, SHAPE1(c), "%s.bias", prefix);
}

static md_status load_resnet(md_vae *v, md_weights *w, const char *prefix, int cin, int cout,
                             md_vae_resnet *r, md_error *err)
{
    char p[NAME_MAX_LEN];
    r->cin = cin;
    r->cout = cout;
    namef(p, "%s.norm1", prefix);
    MD_TRY(load_norm(v, w, p, cin, &r->norm1_w, &r->norm1_b, err));
    namef(p, "%s.conv1", prefix);
    MD_TRY(load_conv(v, w, p, cout, cin, 3, &r->conv1_w, &r->conv1_b, err));
    namef(p, "%s.norm2", prefix);
    MD_TRY(load_norm(v, w, p, cout, &r->norm2_w, &r->norm2_b, err));
    namef(p, "%s.conv2", prefix);
    MD_TRY(load_conv(v, w, p, cout, cout, 3, &r->conv2_w, &r->conv2_b, err));
    if (cin != cout) {
        namef(p, "%s.conv_shortcut", prefix);
        MD_TRY(load_conv(v, w, p, cout, cin, 1, &r->short_w, &r->short_b, err));
    }
    return MD_OK;
}

static md_status load_linear(md_vae *v, md_weights *w, const char *prefix, const char *name,
                             int64_t c, md_tensor **wt, md_tensor **b, md_error *err)
{
    /* [C, C] or [C, C, 1, 1]: the shape check ignores trailing 1s. */
    MD_TRY(getf(v, w, wt, err, SHAPE2(c, c), "%s.%s.weight", prefix, name));
    return getf(v, w, b, err, SHAPE1(c), "%s.%s.bias", prefix, name);
}

static md_status load_attn(md_vae *v, md_weights *w, const char *prefix, int c, md_vae_attn *a,
                           md_error *err)
{
    char p[NAME_MAX_LEN];
    a->channels = c;
    namef(p, "%s.group_norm", prefix);
    MD_TRY(load_norm(v, w, p, c, &a->norm_w, &a->norm_b, err));
    /* Files saved before diffusers 0.14 name the projections query, key,
     * value and proj_attn; diffusers still loads them, so accept both. */
    namef(p, "%s.to_q.weight", prefix);
    int legacy = md_weights_find(w, p) == NULL;
    namef(p, "%s.query.weight", prefix);
    legacy = legacy && md_weights_find(w, p) != NULL;
    MD_TRY(load_linear(v, w, prefix, legacy ? "query" : "to_q", c, &a->q_w, &a->q_b, err));
    MD_TRY(load_linear(v, w, prefix, legacy ? "key" : "to_k", c, &a->k_w, &a->k_b, err));
    MD_TRY(load_linear(v, w, prefix, legacy ? "value" : "to_v", c, &a->v_w, &a->v_b, err));
    return load_linear(v, w, prefix, legacy ? "proj_attn" : "to_out.0", c, &a->out_w, &a->out_b,
                       err);
}

static md_status load_mid(md_vae *v, md_weights *w, const char *side, int c, md_vae_mid *m,
                          md_error *err)
{
    char p[NAME_MAX_LEN];
    namef(p, "%s.mid_block.resnets.0", side);
    MD_TRY(load_resnet(v, w, p, c, c, &m->res0, err));
    namef(p, "%s.mid_block.attentions.0", side);
    MD_TRY(load_attn(v, w, p, c, &m->attn, err));
    namef(p, "%s.mid_block.resnets.1", side);
    return load_resnet(v, w, p, c, c, &m->res1, err);
}

static md_status alloc_resnets(md_vae_level *l, int n, md_error *err)
{
    l->nres = n;
    l->res = calloc((size_t)n, sizeof *l->res);
    if (!l->res)
        return md_fail(err, MD_ERR_NOMEM, "vae: out of memory for %d resnets", n);
    return MD_OK;
}

/* Downsample2D pads one zero row/column on the bottom/right only, then runs
 * a 3x3 stride-2 conv without padding, so output i reads input rows
 * 2i..2i+2. A 4x4 kernel whose first row and column are zero, run with
 * stride 2 and symmetric padding 1, reads rows 2i-1..2i+2 and weighs row
 * 2i-1 by zero: the same sums over the same rows, with the same output size
 * (H-2)/2+1, using only the generic conv2d. The kernel keeps the stored
 * dtype so it is widened like every other weight. */
static md_status make_down_kernel(md_vae *v, const md_tensor *w3, int64_t c, md_tensor **out,
                                  const char *name, md_error *err)
{
    if (v->nowned >= MD_MAX_LEVELS)
        return md_fail(err, MD_ERR_INVALID, "vae: too many downsamplers");
    size_t es = md_dtype_size(w3->dtype);
    if (w3->dtype != MD_F32 && w3->dtype != MD_F16 && w3->dtype != MD_BF16)
        return md_fail(err, MD_ERR_UNSUPPORTED, "vae: %s has dtype %s (want F32, F16 or BF16)",
                       name, md_dtype_name(w3->dtype));
    unsigned char *dst = calloc((size_t)(c * c * 16), es);
    if (!dst)
        return md_fail(err, MD_ERR_NOMEM, "vae: out of memory re-laying %s", name);
    const unsigned char *src = w3->data;
    for (int64_t oc = 0; oc < c * c; oc++)
        for (int r = 0; r < 3; r++)
            memcpy(dst + ((size_t)oc * 16 + (size_t)(r + 1) * 4 + 1) * es,
                   src + ((size_t)oc * 9 + (size_t)r * 3) * es, 3 * es);
    md_tensor *t = &v->owned[v->nowned];
    v->owned_data[v->nowned] = dst;
    v->nowned++;
    *t = (md_tensor){.dtype = w3->dtype, .ndim = 4, .shape = {c, c, 4, 4}, .data = dst};
    md_status st = v->be->prepare_weight(v->be, t, err);
    if (st != MD_OK)
        return md_fail_context(err, "preparing %s (as a 4x4 kernel): ", name);
    *out = t;
    return MD_OK;
}

md_status md_vae_load_encoder(md_vae *v, md_weights *w, md_error *err)
{
    const md_vae_config *cfg = &v->cfg;
    md_vae_encoder *e = &v->enc;
    int L = cfg->levels, lat2 = 2 * cfg->latent_channels;
    int top = cfg->block_out_channels[L - 1];
    char p[NAME_MAX_LEN];

    MD_TRY(load_conv(v, w, "encoder.conv_in", cfg->block_out_channels[0], cfg->in_channels, 3,
                     &e->conv_in_w, &e->conv_in_b, err));
    for (int i = 0; i < L; i++) {
        int cin = cfg->block_out_channels[i > 0 ? i - 1 : 0], cout = cfg->block_out_channels[i];
        md_vae_level *l = &e->level[i];
        MD_TRY(alloc_resnets(l, cfg->layers_per_block, err));
        for (int j = 0; j < l->nres; j++) {
            namef(p, "encoder.down_blocks.%d.resnets.%d", i, j);
            MD_TRY(load_resnet(v, w, p, j == 0 ? cin : cout, cout, &l->res[j], err));
        }
        if (i < L - 1) {
            md_tensor *w3 = NULL;
            namef(p, "encoder.down_blocks.%d.downsamplers.0.conv.weight", i);
            MD_TRY(md_weights_get(w, p, 4, (const int64_t[]){cout, cout, 3, 3}, &w3, err));
            MD_TRY(make_down_kernel(v, w3, cout, &l->resample_w, p, err));
            MD_TRY(getf(v, w, &l->resample_b, err, SHAPE1(cout),
                        "encoder.down_blocks.%d.downsamplers.0.conv.bias", i));
        }
    }
    MD_TRY(load_mid(v, w, "encoder", top, &e->mid, err));
    MD_TRY(load_norm(v, w, "encoder.conv_norm_out", top, &e->norm_out_w, &e->norm_out_b, err));
    MD_TRY(load_conv(v, w, "encoder.conv_out", lat2, top, 3, &e->conv_out_w, &e->conv_out_b, err));
    return load_conv(v, w, "quant_conv", lat2, lat2, 1, &e->quant_w, &e->quant_b, err);
}

md_status md_vae_load_decoder(md_vae *v, md_weights *w, md_error *err)
{
    const md_vae_config *cfg = &v->cfg;
    md_vae_decoder *d = &v->dec;
    int L = cfg->levels, lat = cfg->latent_channels;
    int top = cfg->block_out_channels[L - 1];
    char p[NAME_MAX_LEN];

    MD_TRY(load_conv(v, w, "post_quant_conv", lat, lat, 1, &d->post_quant_w, &d->post_quant_b, err));
    MD_TRY(load_conv(v, w, "decoder.conv_in", top, lat, 3, &d->conv_in_w, &d->conv_in_b, err));
    MD_TRY(load_mid(v, w, "decoder", top, &d->mid, err));
    int prev = top;
    for (int i = 0; i < L; i++) {
        int cout = cfg->block_out_channels[L - 1 - i];
        md_vae_level *l = &d->level[i];
        MD_TRY(alloc_resnets(l, cfg->layers_per_block + 1, err));
        for (int j = 0; j < l->nres; j++) {
            namef(p, "decoder.up_blocks.%d.resnets.%d", i, j);
            MD_TRY(load_resnet(v, w, p, j == 0 ? prev : cout, cout, &l->res[j], err));
        }
        if (i < L - 1) {
            namef(p, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            MD_TRY(load_conv(v, w, p, cout, cout, 3, &l->resample_w, &l->resample_b, err));
        }
        prev = cout;
    }
    int c0 = cfg->block_out_channels[0];
    MD_TRY(load_norm(v, w, "decoder.conv_norm_out", c0, &d->norm_out_w, &d->norm_out_b, err));
    return load_conv(v, w, "decoder.conv_out", cfg->out_channels, c0, 3, &d->conv_out_w,
                     &d->conv_out_b, err);
}

void md_vae_free_levels(md_vae *v)
{
    for (int i = 0; i < MD_MAX_LEVELS; i++) {
        free(v->enc.level[i].res);
        free(v->dec.level[i].res);
        v->enc.level[i].res = v->dec.level[i].res = NULL;
    }
    for (int i = 0; i < v->nowned; i++)
        free(v->owned_data[i]);
    v->nowned = 0;
}
