/* Timestep embedding: the sinusoidal projection is computed on the host
 * (it is tiny) and the Linear-SiLU-Linear MLP on the backend. SDXL adds a
 * second MLP over [text_embeds, sinusoid(time_ids)]. */
#include <math.h>
#include <string.h>

#include "unet_internal.h"

void md_timestep_sinusoid(const float *t, int n, int dim, int flip_sin_to_cos, float freq_shift,
                          float *out)
{
    /* Each step is rounded to float32 in the reference's order, because at
     * t ~ 1000 the rounding of t * freq alone moves sin/cos by ~6e-5. */
    const int half = dim / 2;
    const float neg_log = (float)-log(10000.0);
    const float denom = (float)half - freq_shift;
    for (int r = 0; r < n; r++) {
        float *o = out + (size_t)r * (size_t)dim;
        for (int i = 0; i < half; i++) {
            float ex = (neg_log * (float)i) / denom;
            float arg = t[r] * expf(ex);
            float s = (float)sin((double)arg), c = (float)cos((double)arg);
            o[i] = flip_sin_to_cos ? c : s;
            o[half + i] = flip_sin_to_cos ? s : c;
        }
        if (dim % 2)
            o[dim - 1] = 0.0f;
    }
}

md_status md_time_embed_load(md_time_embed *te, md_weights *w, md_backend *be, md_error *err,
                             const md_unet_config *cfg)
{
    memset(te, 0, sizeof(*te));
    te->in_dim = cfg->block_out_channels[0];
    te->dim = 4 * cfg->block_out_channels[0];
    MD_TRY(
        md_nn_linear_load(&te->l1, w, be, err, "time_embedding.linear_1", te->in_dim, te->dim, 1));
    MD_TRY(md_nn_linear_load(&te->l2, w, be, err, "time_embedding.linear_2", te->dim, te->dim, 1));
    if (!cfg->text_time_embedding)
        return MD_OK;
    te->text_time = 1;
    te->add_time_dim = cfg->addition_time_embed_dim;
    te->add_in_dim = cfg->projection_class_embeddings_input_dim;
    if (te->add_time_dim < 1 || te->add_in_dim <= 6 * te->add_time_dim)
        return md_fail(err, MD_ERR_INVALID,
                       "%s: text_time embedding needs projection_class_embeddings_input_dim (%d) "
                       "> 6 * addition_time_embed_dim (%d)",
                       md_weights_label(w), te->add_in_dim, te->add_time_dim);
    MD_TRY(md_nn_linear_load(&te->a1, w, be, err, "add_embedding.linear_1", te->add_in_dim, te->dim,
                             1));
    MD_TRY(md_nn_linear_load(&te->a2, w, be, err, "add_embedding.linear_2", te->dim, te->dim, 1));
    return MD_OK;
}

/* y [B, dim] = l2(SiLU(l1(x))). */
static md_status mlp(md_backend *be, const md_nn_linear *l1, const md_nn_linear *l2, md_tensor *y,
                     const md_tensor *x, md_error *err)
{
    md_tensor h;
    MD_TRY(md_nn_tensor(be, &h, err, 2, (int64_t[]){x->shape[0], l1->out}));
    md_nn_linear_forward(be, &h, x, l1);
    be->activation(be, &h, &h, MD_ACT_SILU);
    md_nn_linear_forward(be, y, &h, l2);
    return MD_OK;
}

md_status md_time_embed_forward(const md_time_embed *te, md_backend *be, const md_unet_config *cfg,
                                const md_unet_inputs *in, float *host, md_tensor *temb,
                                md_error *err)
{
    const int64_t B = in->batch;
    size_t mark = be->arena_mark(be);
    md_tensor x, emb;
    MD_TRY(md_nn_tensor(be, &x, err, 2, (int64_t[]){B, te->in_dim}));
    MD_TRY(md_nn_tensor(be, &emb, err, 2, (int64_t[]){B, te->dim}));
    md_timestep_sinusoid(in->timesteps, (int)B, te->in_dim, cfg->flip_sin_to_cos, cfg->freq_shift,
                         host);
    be->upload(be, &x, host);
    MD_TRY(mlp(be, &te->l1, &te->l2, &emb, &x, err));

    if (te->text_time) {
        /* Row layout as in the reference: [text_embeds, sinusoid of the six
         * time ids one after another]. */
        const int d = te->add_time_dim, text = te->add_in_dim - 6 * d;
        for (int64_t b = 0; b < B; b++) {
            float *row = host + b * te->add_in_dim;
            memcpy(row, in->text_embeds + b * text, (size_t)text * sizeof(float));
            md_timestep_sinusoid(in->time_ids + b * 6, 6, d, cfg->flip_sin_to_cos, cfg->freq_shift,
                                 row + text);
        }
        md_tensor ax, aug;
        MD_TRY(md_nn_tensor(be, &ax, err, 2, (int64_t[]){B, te->add_in_dim}));
        MD_TRY(md_nn_tensor(be, &aug, err, 2, (int64_t[]){B, te->dim}));
        be->upload(be, &ax, host);
        MD_TRY(mlp(be, &te->a1, &te->a2, &aug, &ax, err));
        be->add(be, &emb, &emb, &aug);
    }
    /* Every resnet applies SiLU to the embedding before its projection. */
    be->activation(be, temb, &emb, MD_ACT_SILU);
    be->arena_reset(be, mark);
    return MD_OK;
}
