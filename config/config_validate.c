/* Range and consistency checks of component configs, whatever their source. */
#include <stdio.h>

#include "config_validate.h"

static int divides(int groups, int channels)
{
    return groups > 0 && channels > 0 && channels % groups == 0;
}

/* Every GroupNorm of the U-Net normalises one of these channel counts: the
 * level widths, and in the up path a level width or the previous width plus
 * a skip connection (the skips are popped in reverse order of creation). */
static md_status unet_groups(const md_unet_config *c, const char *file, md_error *err)
{
    int skips[1 + MD_MAX_LEVELS * 64];
    int ns = 0;
    if (c->layers_per_block > 63)
        return md_fail(err, MD_ERR_INVALID, "%s: layers_per_block %d is out of range", file,
                       c->layers_per_block);
    skips[ns++] = c->block_out_channels[0];
    for (int l = 0; l < c->levels; l++) {
        for (int j = 0; j < c->layers_per_block; j++)
            skips[ns++] = c->block_out_channels[l];
        if (l + 1 < c->levels)
            skips[ns++] = c->block_out_channels[l];
    }
    for (int i = 0; i < c->levels; i++) {
        int l = c->levels - 1 - i;
        int out = c->block_out_channels[l];
        int prev = i == 0 ? c->block_out_channels[c->levels - 1] : c->block_out_channels[l + 1];
        for (int j = 0; j <= c->layers_per_block; j++) {
            int in = (j == 0 ? prev : out) + skips[--ns];
            if (!divides(c->norm_groups, in))
                return md_fail(err, MD_ERR_INVALID,
                               "%s: norm_num_groups %d does not divide the %d input channels of "
                               "up_blocks.%d.resnets.%d",
                               file, c->norm_groups, in, i, j);
        }
    }
    return MD_OK;
}

static md_status unet_attention(const md_unet_config *c, int level, const char *where,
                                const char *file, md_error *err)
{
    int ch = c->block_out_channels[level];
    if (c->transformer_layers[level] < 1)
        return md_fail(err, MD_ERR_INVALID, "%s: %s needs at least one transformer layer", file,
                       where);
    if (c->heads[level] < 1 || ch % c->heads[level] != 0)
        return md_fail(err, MD_ERR_INVALID, "%s: %d attention heads do not divide the %d channels of %s",
                       file, c->heads[level], ch, where);
    return MD_OK;
}

md_status md_unet_config_validate(const md_unet_config *c, const char *file, md_error *err)
{
    if (c->levels < 1 || c->levels > MD_MAX_LEVELS)
        return md_fail(err, MD_ERR_INVALID, "%s: %d levels (block_out_channels) is out of 1..%d",
                       file, c->levels, MD_MAX_LEVELS);
    if (c->in_channels < 1 || c->out_channels < 1 || c->layers_per_block < 1)
        return md_fail(err, MD_ERR_INVALID,
                       "%s: in_channels, out_channels and layers_per_block must be positive", file);
    if (!(c->norm_eps > 0.0f) || c->norm_groups < 1)
        return md_fail(err, MD_ERR_INVALID, "%s: norm_num_groups and norm_eps must be positive",
                       file);
    if (c->conv_in_kernel < 1 || c->conv_in_kernel % 2 == 0 || c->conv_out_kernel < 1 ||
        c->conv_out_kernel % 2 == 0)
        return md_fail(err, MD_ERR_INVALID, "%s: conv_in_kernel/conv_out_kernel must be odd", file);
    int any_attn = c->mid_has_attn;
    for (int l = 0; l < c->levels; l++) {
        if (c->block_out_channels[l] < 1)
            return md_fail(err, MD_ERR_INVALID, "%s: block_out_channels[%d] = %d is not positive",
                           file, l, c->block_out_channels[l]);
        if (!divides(c->norm_groups, c->block_out_channels[l]))
            return md_fail(err, MD_ERR_INVALID,
                           "%s: norm_num_groups %d does not divide block_out_channels[%d] = %d",
                           file, c->norm_groups, l, c->block_out_channels[l]);
        char where[48];
        if (c->down_has_attn[l]) {
            snprintf(where, sizeof where, "down_blocks.%d", l);
            md_status s = unet_attention(c, l, where, file, err);
            if (s != MD_OK)
                return s;
        }
        /* up_blocks[i] works at level levels-1-i with the reversed lists */
        if (c->up_has_attn[c->levels - 1 - l]) {
            snprintf(where, sizeof where, "up_blocks.%d", c->levels - 1 - l);
            md_status s = unet_attention(c, l, where, file, err);
            if (s != MD_OK)
                return s;
        }
        any_attn |= c->down_has_attn[l] | c->up_has_attn[l];
    }
    if (c->mid_has_attn) {
        md_status s = unet_attention(c, c->levels - 1, "mid_block", file, err);
        if (s != MD_OK)
            return s;
    }
    if (any_attn && c->cross_attention_dim < 1)
        return md_fail(err, MD_ERR_INVALID, "%s: cross_attention_dim must be positive", file);
    if (c->text_time_embedding &&
        (c->addition_time_embed_dim < 1 || c->projection_class_embeddings_input_dim < 1))
        return md_fail(err, MD_ERR_INVALID, "%s: text_time embedding sizes must be positive", file);
    const md_moe_config *m = &c->moe;
    if (m->enabled &&
        (m->num_experts < 1 || m->top_k < 1 || m->top_k > m->num_experts || !(m->moe_ff || m->moe_attn) ||
         m->down_start < 0 || m->down_start > m->down_end || m->down_end > c->levels ||
         m->up_start < 0 || m->up_start > m->up_end || m->up_end > c->levels))
        return md_fail(err, MD_ERR_INVALID,
                       "%s: MoE settings out of range (%d experts, top-%d, down [%d, %d), up [%d, "
                       "%d), %d levels)",
                       file, m->num_experts, m->top_k, m->down_start, m->down_end, m->up_start,
                       m->up_end, c->levels);
    return unet_groups(c, file, err);
}

md_status md_vae_config_validate(const md_vae_config *c, const char *file, md_error *err)
{
    if (c->levels < 1 || c->levels > MD_MAX_LEVELS)
        return md_fail(err, MD_ERR_INVALID, "%s: %d VAE levels is out of 1..%d", file, c->levels,
                       MD_MAX_LEVELS);
    if (c->in_channels < 1 || c->out_channels < 1 || c->latent_channels < 1 ||
        c->layers_per_block < 1 || c->norm_groups < 1)
        return md_fail(err, MD_ERR_INVALID, "%s: VAE channel counts and layers must be positive",
                       file);
    if (!(c->scaling_factor > 0.0f) || !(c->norm_eps > 0.0f))
        return md_fail(err, MD_ERR_INVALID, "%s: VAE scaling_factor and norm eps must be positive",
                       file);
    for (int l = 0; l < c->levels; l++)
        if (!divides(c->norm_groups, c->block_out_channels[l]))
            return md_fail(err, MD_ERR_INVALID,
                           "%s: norm_num_groups %d does not divide VAE block_out_channels[%d] = %d",
                           file, c->norm_groups, l, c->block_out_channels[l]);
    return MD_OK;
}

md_status md_clip_config_validate(const md_clip_config *c, const char *file, md_error *err)
{
    if (c->hidden_size < 1 || c->num_layers < 1 || c->num_heads < 1 || c->intermediate_size < 1 ||
        c->max_positions < 1 || c->vocab_size < 1 || c->projection_dim < 0)
        return md_fail(err, MD_ERR_INVALID,
                       "%s: text encoder sizes must be positive (hidden %d, layers %d, heads %d, "
                       "mlp %d, positions %d, vocabulary %d, projection %d)",
                       file, c->hidden_size, c->num_layers, c->num_heads, c->intermediate_size,
                       c->max_positions, c->vocab_size, c->projection_dim);
    if (c->hidden_size % c->num_heads != 0)
        return md_fail(err, MD_ERR_INVALID, "%s: %d heads do not divide hidden_size %d", file,
                       c->num_heads, c->hidden_size);
    if (!(c->layer_norm_eps > 0.0f))
        return md_fail(err, MD_ERR_INVALID, "%s: layer_norm_eps must be positive", file);
    if (c->bos_id < 0 || c->bos_id >= c->vocab_size || c->eos_id < 0 || c->eos_id >= c->vocab_size ||
        c->pad_id < 0 || c->pad_id >= c->vocab_size)
        return md_fail(err, MD_ERR_INVALID, "%s: token ids (bos %d, eos %d, pad %d) outside the "
                       "vocabulary of %d", file, c->bos_id, c->eos_id, c->pad_id, c->vocab_size);
    return MD_OK;
}
