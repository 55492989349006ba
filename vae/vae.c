/* AutoencoderKL: loading, and the encode/decode passes. Images of a batch
 * go through one at a time: every op of the VAE is per image (GroupNorm
 * included), and activation memory then does not grow with the batch. */
#include <stdlib.h>
#include <string.h>

#include "vae_internal.h"

static md_status check_config(const md_vae_config *c, md_error *err)
{
    if (c->levels < 1 || c->levels > MD_MAX_LEVELS)
        return md_fail(err, MD_ERR_INVALID, "vae config: %d levels (want 1..%d)", c->levels,
                       MD_MAX_LEVELS);
    if (c->in_channels < 1 || c->out_channels < 1 || c->latent_channels < 1)
        return md_fail(err, MD_ERR_INVALID,
                       "vae config: in/out/latent channels %d/%d/%d must be positive",
                       c->in_channels, c->out_channels, c->latent_channels);
    if (c->layers_per_block < 1)
        return md_fail(err, MD_ERR_INVALID, "vae config: layers_per_block %d must be positive",
                       c->layers_per_block);
    if (c->norm_groups < 1)
        return md_fail(err, MD_ERR_INVALID, "vae config: norm_num_groups %d must be positive",
                       c->norm_groups);
    if (!(c->norm_eps > 0.0f))
        return md_fail(err, MD_ERR_INVALID, "vae config: GroupNorm eps %g must be positive",
                       (double)c->norm_eps);
    for (int i = 0; i < c->levels; i++)
        if (c->block_out_channels[i] < 1 || c->block_out_channels[i] % c->norm_groups)
            return md_fail(err, MD_ERR_INVALID,
                           "vae config: block_out_channels[%d] = %d is not a positive multiple of "
                           "norm_num_groups %d",
                           i, c->block_out_channels[i], c->norm_groups);
    return MD_OK;
}

md_status md_vae_load(md_vae **out, const md_vae_config *cfg, md_weights *w, md_backend *be,
                      md_error *err)
{
    *out = NULL;
    md_status st = check_config(cfg, err);
    if (st != MD_OK)
        return st;
    md_vae *v = calloc(1, sizeof *v);
    if (!v)
        return md_fail(err, MD_ERR_NOMEM, "vae: out of memory");
    v->cfg = *cfg;
    v->be = be;
    /* A checkpoint may carry only one half (e.g. a decoder for txt2img);
     * a half that is present must be complete. */
    v->has_encoder = md_weights_has_prefix(w, "encoder.");
    v->has_decoder = md_weights_has_prefix(w, "decoder.");
    if (!v->has_encoder && !v->has_decoder)
        st = md_fail(err, MD_ERR_FORMAT, "vae: the %s weights hold no encoder.* or decoder.* tensor",
                     md_weights_label(w));
    if (st == MD_OK && v->has_encoder)
        st = md_vae_load_encoder(v, w, err);
    if (st == MD_OK && v->has_decoder)
        st = md_vae_load_decoder(v, w, err);
    if (st != MD_OK) {
        md_vae_free(v);
        return st;
    }
    *out = v;
    return MD_OK;
}

void md_vae_free(md_vae *v)
{
    if (!v)
        return;
    md_vae_free_levels(v);
    free(v);
}

const md_vae_config *md_vae_config_of(const md_vae *v)
{
    return &v->cfg;
}

int md_vae_factor(const md_vae *v)
{
    return 1 << (v->cfg.levels - 1);
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Largest activation (elements) of one decoder pass from an h x w latent. */
static int64_t decode_slot_size(const md_vae_config *c, int64_t h, int64_t w)
{
    int L = c->levels;
    int64_t top = c->block_out_channels[L - 1], prev = top;
    int64_t cap = max64(c->latent_channels, top) * h * w;
    for (int i = 0; i < L; i++) {
        int64_t cout = c->block_out_channels[L - 1 - i], area = (h << i) * (w << i);
        cap = max64(cap, max64(prev, cout) * area);
        if (i < L - 1)
            cap = max64(cap, cout * 4 * area); /* upsampled */
        else
            cap = max64(cap, (int64_t)c->out_channels * area);
        prev = cout;
    }
    return cap;
}

/* Largest activation (elements) of one encoder pass over an H x W image. */
static int64_t encode_slot_size(const md_vae_config *c, int64_t H, int64_t W)
{
    int L = c->levels;
    int64_t cap = (int64_t)c->in_channels * H * W, prev = c->block_out_channels[0];
    for (int i = 0; i < L; i++) {
        int64_t cout = c->block_out_channels[i], area = (H >> i) * (W >> i);
        cap = max64(cap, max64(prev, cout) * area);
        prev = cout;
    }
    int64_t low = (H >> (L - 1)) * (W >> (L - 1));
    return max64(cap, 2 * (int64_t)c->latent_channels * low);
}

static md_status make_slots(md_backend *be, md_vae_pingpong *pp, int64_t cap, md_error *err)
{
    memset(pp, 0, sizeof *pp);
    pp->cap = cap;
    for (int i = 0; i < 2; i++) {
        pp->slot[i] = be->new_tensor(be, 1, &cap);
        if (!pp->slot[i].data)
            return md_fail(err, MD_ERR_NOMEM,
                           "vae: out of activation memory for a %lld-element buffer",
                           (long long)cap);
    }
    return MD_OK;
}

/* A view larger than the slots means the sizing above missed a stage. */
static md_status check_peak(const md_vae_pingpong *pp, const char *what, md_error *err)
{
    if (pp->peak <= pp->cap)
        return MD_OK;
    return md_fail(err, MD_ERR_INVALID, "vae %s: internal error: an activation of %lld elements "
                   "exceeded the %lld-element buffers", what, (long long)pp->peak,
                   (long long)pp->cap);
}

static md_status decode_one(const md_vae *v, md_backend *be, md_vae_pingpong *pp, const float *z,
                            int64_t h, int64_t w, float *image, md_error *err)
{
    const md_vae_config *c = &v->cfg;
    const md_vae_decoder *d = &v->dec;
    int L = c->levels;
    int64_t lat = c->latent_channels, top = c->block_out_channels[L - 1];

    pp->cur = 0;
    md_tensor in = md_vae_view(pp, 0, lat, h, w);
    be->upload(be, &in, z);
    md_vae_conv_fwd(be, pp, d->post_quant.w, d->post_quant.b, lat, lat, h, w, 1, 0, h, w);
    md_vae_conv_fwd(be, pp, d->conv_in.w, d->conv_in.b, lat, top, h, w, 1, 1, h, w);
    md_status st = md_vae_mid_fwd(be, c, &d->mid, pp, h, w, err);
    for (int i = 0; i < L && st == MD_OK; i++) {
        const md_vae_level *l = &d->level[i];
        for (int j = 0; j < l->nres && st == MD_OK; j++)
            st = md_vae_resnet_fwd(be, c, &l->res[j], pp, h, w, err);
        if (st == MD_OK && l->resample.w) {
            md_vae_upsample_fwd(be, pp, l, l->res[l->nres - 1].cout, h, w);
            h *= 2;
            w *= 2;
        }
    }
    if (st != MD_OK)
        return st;
    int64_t c0 = c->block_out_channels[0];
    md_tensor x = md_vae_view(pp, pp->cur, c0, h, w);
    be->group_norm(be, &x, &x, d->norm_out.g, d->norm_out.b, c->norm_groups, c->norm_eps, 1);
    md_vae_conv_fwd(be, pp, d->conv_out.w, d->conv_out.b, c0, c->out_channels, h, w, 1, 1, h, w);
    md_tensor out = md_vae_view(pp, pp->cur, c->out_channels, h, w);
    be->download(be, &out, image);
    return MD_OK;
}

/* Refuses a backend that cannot use the weights v was loaded with. */
static md_status check_backend(const md_vae *v, md_backend *be, md_error *err)
{
    if (!be)
        return md_fail(err, MD_ERR_INVALID, "vae: no backend given");
    if (!md_backend_shares_weights(v->be, be))
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "vae: weights prepared on backend %s cannot be used by another %s backend",
                       v->be->name, be->name);
    return MD_OK;
}

md_status md_vae_decode(const md_vae *v, md_backend *be, const float *z, int batch, int h, int w,
                        float *image, md_error *err)
{
    md_status bs = check_backend(v, be, err);
    if (bs != MD_OK)
        return bs;
    if (!v->has_decoder)
        return md_fail(err, MD_ERR_UNSUPPORTED, "vae decode: the weights have no decoder");
    if (batch < 1 || h < 1 || w < 1)
        return md_fail(err, MD_ERR_INVALID, "vae decode: bad latent size batch %d, %dx%d", batch,
                       h, w);
    const md_vae_config *c = &v->cfg;
    int f = md_vae_factor(v);
    size_t nin = (size_t)c->latent_channels * (size_t)h * (size_t)w;
    size_t nout = (size_t)c->out_channels * (size_t)h * (size_t)w * (size_t)f * (size_t)f;
    size_t mark = be->arena_mark(be);
    /* f32 even where the backend computes in fp16: SDXL's VAE decoder has
     * activations beyond fp16's range (the known fp16 overflow). */
    int was_f32 = be->force_f32 ? be->force_f32(be, 1) : 1;
    md_vae_pingpong pp;
    md_status st = make_slots(be, &pp, decode_slot_size(c, h, w), err);
    for (int b = 0; b < batch && st == MD_OK; b++)
        st = decode_one(v, be, &pp, z + (size_t)b * nin, h, w, image + (size_t)b * nout, err);
    if (be->force_f32)
        be->force_f32(be, was_f32);
    if (st == MD_OK)
        st = check_peak(&pp, "decode", err);
    be->arena_reset(be, mark);
    return st;
}

static md_status encode_one(const md_vae *v, md_backend *be, md_vae_pingpong *pp,
                            const float *image, int64_t h, int64_t w, float *moments, md_error *err)
{
    const md_vae_config *c = &v->cfg;
    const md_vae_encoder *e = &v->enc;
    int L = c->levels;
    int64_t c0 = c->block_out_channels[0], top = c->block_out_channels[L - 1];
    int64_t lat2 = 2 * (int64_t)c->latent_channels;

    pp->cur = 0;
    md_tensor in = md_vae_view(pp, 0, c->in_channels, h, w);
    be->upload(be, &in, image);
    md_vae_conv_fwd(be, pp, e->conv_in.w, e->conv_in.b, c->in_channels, c0, h, w, 1, 1, h, w);
    md_status st = MD_OK;
    for (int i = 0; i < L && st == MD_OK; i++) {
        const md_vae_level *l = &e->level[i];
        for (int j = 0; j < l->nres && st == MD_OK; j++)
            st = md_vae_resnet_fwd(be, c, &l->res[j], pp, h, w, err);
        if (st == MD_OK && l->resample.w) {
            md_vae_downsample_fwd(be, pp, l, l->res[l->nres - 1].cout, h, w);
            h = (h - 2) / 2 + 1;
            w = (w - 2) / 2 + 1;
        }
    }
    if (st == MD_OK)
        st = md_vae_mid_fwd(be, c, &e->mid, pp, h, w, err);
    if (st != MD_OK)
        return st;
    md_tensor x = md_vae_view(pp, pp->cur, top, h, w);
    be->group_norm(be, &x, &x, e->norm_out.g, e->norm_out.b, c->norm_groups, c->norm_eps, 1);
    md_vae_conv_fwd(be, pp, e->conv_out.w, e->conv_out.b, top, lat2, h, w, 1, 1, h, w);
    md_vae_conv_fwd(be, pp, e->quant.w, e->quant.b, lat2, lat2, h, w, 1, 0, h, w);
    md_tensor out = md_vae_view(pp, pp->cur, lat2, h, w);
    be->download(be, &out, moments);
    return MD_OK;
}

md_status md_vae_encode(const md_vae *v, md_backend *be, const float *image, int batch, int H,
                        int W, float *mean, float *logvar, md_error *err)
{
    md_status bs = check_backend(v, be, err);
    if (bs != MD_OK)
        return bs;
    if (!v->has_encoder)
        return md_fail(err, MD_ERR_UNSUPPORTED, "vae encode: the weights have no encoder");
    int f = md_vae_factor(v);
    if (batch < 1 || H < 1 || W < 1 || H % f || W % f)
        return md_fail(err, MD_ERR_INVALID,
                       "vae encode: image batch %d, %dx%d (sides must be positive multiples of %d)",
                       batch, H, W, f);
    const md_vae_config *c = &v->cfg;
    size_t nin = (size_t)c->in_channels * (size_t)H * (size_t)W;
    size_t nlat = (size_t)c->latent_channels * (size_t)(H / f) * (size_t)(W / f);
    /* The quant_conv output holds mean then logvar along channels. */
    float *moments = malloc(2 * nlat * sizeof *moments);
    if (!moments)
        return md_fail(err, MD_ERR_NOMEM, "vae encode: out of memory");
    size_t mark = be->arena_mark(be);
    int was_f32 = be->force_f32 ? be->force_f32(be, 1) : 1; /* as in decode */
    md_vae_pingpong pp;
    md_status st = make_slots(be, &pp, encode_slot_size(c, H, W), err);
    for (int b = 0; b < batch && st == MD_OK; b++) {
        st = encode_one(v, be, &pp, image + (size_t)b * nin, H, W, moments, err);
        if (st == MD_OK)
            st = check_peak(&pp, "encode", err);
        if (st != MD_OK)
            break;
        memcpy(mean + (size_t)b * nlat, moments, nlat * sizeof *moments);
        float *lv = logvar + (size_t)b * nlat;
        for (size_t i = 0; i < nlat; i++) {
            float x = moments[nlat + i];
            lv[i] = x < -30.0f ? -30.0f : x > 20.0f ? 20.0f : x;
        }
    }
    if (be->force_f32)
        be->force_f32(be, was_f32);
    be->arena_reset(be, mark);
    free(moments);
    return st;
}
