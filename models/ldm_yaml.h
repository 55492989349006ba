/* The few settings of an original LDM / SGM inference .yaml that tensor
 * shapes cannot tell. Reads model.params.{parameterization, linear_start,
 * linear_end, timesteps, scale_factor}, the UNet's params under
 * unet_config (LDM) or network_config (SGM): num_head_channels,
 * num_heads, use_linear_in_transformer, context_dim; and SGM's
 * denoiser_config.params.scaling_config.target (VScaling = v-prediction). */
#ifndef MD_LDM_YAML_H
#define MD_LDM_YAML_H

#include "../config/config.h"

typedef struct md_ldm_yaml {
    int has_prediction;
    md_prediction prediction;
    int has_betas;
    float beta_start, beta_end;
    int num_train_timesteps;      /* 0 = absent */
    float scale_factor;           /* 0 = absent */
    int num_head_channels;        /* 0 = absent, -1 = use num_heads */
    int num_heads;                /* 0 = absent */
    int use_linear_in_transformer; /* -1 = absent */
    int context_dim;              /* 0 = absent */
} md_ldm_yaml;

md_status md_ldm_yaml_read(const char *path, md_ldm_yaml *out, md_error *err);

/* Applies what the file set to configs inferred from shapes. */
md_status md_ldm_yaml_apply(const md_ldm_yaml *y, const char *path, md_unet_config *unet,
                            md_vae_config *vae, md_sched_config *sched, md_error *err);

#endif
