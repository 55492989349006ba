/* Weight lookup for the AutoencoderKL encoder and decoder, in diffusers
 * naming. Every weight's shape is checked against the config here, so the
 * passes can trust shapes. */
#include <stdlib.h>
#include <string.h>

#include "vae_internal.h"

#define NAME_MAX_LEN 256

static md_status load_resnet(md_vae *v, md_weights *w, const char *prefix, int cin, int cout,
                             md_vae_resnet *r, md_error *err)
{
    md_backend *be = v->be;
    char p[NAME_MAX_LEN];
    r->cin = cin;
    r->cout = cout;
    MD_TRY(md_nn_name(p, sizeof p, err, "%s.norm1", prefix));
    MD_TRY(md_nn_norm_load(&r->norm1, w, be, err, p, cin));
    MD_TRY(md_nn_name(p, sizeof p, err, "%s.conv1", prefix));
    MD_TRY(md_nn_conv_load(&r->conv1, w, be, err, p, cin, cout, 3));
    MD_TRY(md_nn_name(p, sizeof p, err, "%s.norm2", prefix));
    MD_TRY(md_nn_norm_load(&r->norm2, w, be, err, p, cout));
    MD_TRY(md_nn_name(p, sizeof p, err, "%s.conv2", prefix));
    MD_TRY(md_nn_conv_load(&r->conv2, w, be, err, p, cout, cout, 3));
    if (cin != cout) {
        MD_TRY(md_nn_name(p, sizeof p, err, "%s.conv_shortcut", prefix));
        MD_TRY(md_nn_conv_load(&r->shortcut, w, be, err, p, cin, cout, 1));
    }
    return MD_OK;
}

/* [C, C] or [C, C, 1, 1]: the shape check ignores trailing 1s. */
static md_status load_proj(md_vae *v, md_weights *w, const char *prefix, const char *name, int c,
                           md_nn_linear *l, md_error *err)
{
    char p[NAME_MAX_LEN];
    MD_TRY(md_nn_name(p, sizeof p, err, "%s.%s", prefix, name));
    return md_nn_linear_load(l, w, v->be, err, p, c, c, 1);
}

static md_status load_attn(md_vae *v, md_weights *w, const char *prefix, int c, md_vae_attn *a,
                           md_error *err)
{
    char p[NAME_MAX_LEN];
    a->channels = c;
    MD_TRY(md_nn_name(p, sizeof p, err, "%s.group_norm", prefix));
    MD_TRY(md_nn_norm_load(&a->norm, w, v->be, err, p, c));
    /* Files saved before diffusers 0.14 name the projections query, key,
     * value and proj_attn; diffusers still loads them, so accept both. */
    MD_TRY(md_nn_name(p, sizeof p, err, "%s.to_q.weight", prefix));
    int legacy = md_weights_find(w, p) == NULL;
    MD_TRY(md_nn_name(p, sizeof p, err, "%s.query.weight", prefix));
    legacy = legacy && md_weights_find(w, p) != NULL;
    MD_TRY(load_proj(v, w, prefix, legacy ? "query" : "to_q", c, &a->q, err));
    MD_TRY(load_proj(v, w, prefix, legacy ? "key" : "to_k", c, &a->k, err));
    MD_TRY(load_proj(v, w, prefix, legacy ? "value" : "to_v", c, &a->v, err));
    return load_proj(v, w, prefix, legacy ? "proj_attn" : "to_out.0", c, &a->out, err);
}

static md_status load_mid(md_vae *v, md_weights *w, const char *side, int c, md_vae_mid *m,
                          md_error *err)
{
    char p[NAME_MAX_LEN];
    MD_TRY(md_nn_name(p, sizeof p, err, "%s.mid_block.resnets.0", side));
    MD_TRY(load_resnet(v, w, p, c, c, &m->res0, err));
    MD_TRY(md_nn_name(p, sizeof p, err, "%s.mid_block.attentions.0", side));
    MD_TRY(load_attn(v, w, p, c, &m->attn, err));
    MD_TRY(md_nn_name(p, sizeof p, err, "%s.mid_block.resnets.1", side));
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
    md_backend *be = v->be;
    int L = cfg->levels, lat2 = 2 * cfg->latent_channels;
    int top = cfg->block_out_channels[L - 1];
    char p[NAME_MAX_LEN];

    MD_TRY(md_nn_conv_load(&e->conv_in, w, be, err, "encoder.conv_in", cfg->in_channels,
                           cfg->block_out_channels[0], 3));
    for (int i = 0; i < L; i++) {
        int cin = cfg->block_out_channels[i > 0 ? i - 1 : 0], cout = cfg->block_out_channels[i];
        md_vae_level *l = &e->level[i];
        MD_TRY(alloc_resnets(l, cfg->layers_per_block, err));
        for (int j = 0; j < l->nres; j++) {
            MD_TRY(md_nn_name(p, sizeof p, err, "encoder.down_blocks.%d.resnets.%d", i, j));
            MD_TRY(load_resnet(v, w, p, j == 0 ? cin : cout, cout, &l->res[j], err));
        }
        if (i < L - 1) {
            md_tensor *w3 = NULL;
            MD_TRY(md_nn_name(p, sizeof p, err, "encoder.down_blocks.%d.downsamplers.0.conv.weight",
                              i));
            MD_TRY(md_weights_get(w, p, 4, (const int64_t[]){cout, cout, 3, 3}, &w3, err));
            MD_TRY(make_down_kernel(v, w3, cout, &l->resample.w, p, err));
            MD_TRY(md_nn_weight(&l->resample.b, w, be, err, 1, (const int64_t[]){cout},
                                "encoder.down_blocks.%d.downsamplers.0.conv.bias", i));
            l->resample.cin = l->resample.cout = cout;
            l->resample.k = 4;
        }
    }
    MD_TRY(load_mid(v, w, "encoder", top, &e->mid, err));
    MD_TRY(md_nn_norm_load(&e->norm_out, w, be, err, "encoder.conv_norm_out", top));
    MD_TRY(md_nn_conv_load(&e->conv_out, w, be, err, "encoder.conv_out", top, lat2, 3));
    return md_nn_conv_load(&e->quant, w, be, err, "quant_conv", lat2, lat2, 1);
}

md_status md_vae_load_decoder(md_vae *v, md_weights *w, md_error *err)
{
    const md_vae_config *cfg = &v->cfg;
    md_vae_decoder *d = &v->dec;
    md_backend *be = v->be;
    int L = cfg->levels, lat = cfg->latent_channels;
    int top = cfg->block_out_channels[L - 1];
    char p[NAME_MAX_LEN];

    MD_TRY(md_nn_conv_load(&d->post_quant, w, be, err, "post_quant_conv", lat, lat, 1));
    MD_TRY(md_nn_conv_load(&d->conv_in, w, be, err, "decoder.conv_in", lat, top, 3));
    MD_TRY(load_mid(v, w, "decoder", top, &d->mid, err));
    int prev = top;
    for (int i = 0; i < L; i++) {
        int cout = cfg->block_out_channels[L - 1 - i];
        md_vae_level *l = &d->level[i];
        MD_TRY(alloc_resnets(l, cfg->layers_per_block + 1, err));
        for (int j = 0; j < l->nres; j++) {
            MD_TRY(md_nn_name(p, sizeof p, err, "decoder.up_blocks.%d.resnets.%d", i, j));
            MD_TRY(load_resnet(v, w, p, j == 0 ? prev : cout, cout, &l->res[j], err));
        }
        if (i < L - 1) {
            MD_TRY(md_nn_name(p, sizeof p, err, "decoder.up_blocks.%d.upsamplers.0.conv", i));
            MD_TRY(md_nn_conv_load(&l->resample, w, be, err, p, cout, cout, 3));
        }
        prev = cout;
    }
    int c0 = cfg->block_out_channels[0];
    MD_TRY(md_nn_norm_load(&d->norm_out, w, be, err, "decoder.conv_norm_out", c0));
    return md_nn_conv_load(&d->conv_out, w, be, err, "decoder.conv_out", c0, cfg->out_channels, 3);
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
