/* UNet2DConditionModel (SD 1.x/2.x, SDXL) with optional SegMoE / per-token
 * MoE layers in its transformer blocks. Built from md_unet_config and a
 * md_weights in diffusers naming. */
#ifndef MD_UNET_H
#define MD_UNET_H

#include "../config/config.h"
#include "../io/weights.h"
#include "../moe/moe.h"

typedef struct md_unet md_unet;

md_status md_unet_load(md_unet **out, const md_unet_config *cfg, md_weights *w, md_backend *be,
                       md_error *err);
void md_unet_free(md_unet *u);
const md_unet_config *md_unet_config_of(const md_unet *u);

/* Called for every MoE layer call during forward (NULL = none). */
void md_unet_set_moe_observer(md_unet *u, md_moe_observer fn, void *user);

typedef struct md_unet_inputs {
    int batch;
    int height, width;        /* latent size */
    const float *sample;      /* [B, in_channels, H, W] */
    const float *timesteps;   /* [B] */
    const float *context;     /* [B, context_len, cross_attention_dim] */
    int context_len;
    const float *text_embeds; /* SDXL: [B, projection dim]; else NULL */
    const float *time_ids;    /* SDXL: [B, 6]; else NULL */
} md_unet_inputs;

/* eps [B, out_channels, H, W] (host). */
md_status md_unet_forward(md_unet *u, const md_unet_inputs *in, float *eps, md_error *err);

#endif
