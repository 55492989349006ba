/* Architecture descriptions of each component, in diffusers terms. They are
 * filled from a diffusers config.json (config/config_json.c), inferred from
 * single-file tensor shapes (models/ldm_infer.c) or from an LDM .yaml. */
#ifndef MD_CONFIG_H
#define MD_CONFIG_H

#include "../runtime/backend.h"

#define MD_MAX_LEVELS 8

typedef enum md_routing {
    MD_ROUTE_SEQUENCE_TOPK = 0, /* SegMoE: top-k experts chosen once per call from
                                   logits summed over all rows of the batch */
    MD_ROUTE_TOKEN_TOPK = 1     /* each token picks its own top-k experts */
} md_routing;

typedef struct md_moe_config {
    int enabled;
    int num_experts;
    int top_k;             /* num_experts_per_tok */
    int moe_ff;            /* feed-forwards are MoE */
    int moe_attn;          /* q/k/v projections of attn1 and attn2 are MoE */
    md_routing routing;
    /* Transformer blocks of down_blocks[down_start, down_end) and
     * up_blocks[up_start, up_end) are MoE; the mid block never is. */
    int down_start, down_end, up_start, up_end;
    int shared_expert;     /* an always-on expert beside the routed ones (demo models) */
    /* Not from a file: set by the U-Net loader when the routed experts are
     * to be left unprepared for the expert cache (md_unet_load_with). */
    int defer_experts;
} md_moe_config;

typedef enum md_prediction { MD_PRED_EPSILON = 0, MD_PRED_V = 1, MD_PRED_SAMPLE = 2 } md_prediction;

typedef struct md_unet_config {
    int in_channels, out_channels;
    int sample_size; /* native latent size */
    int levels;      /* len(block_out_channels) */
    int block_out_channels[MD_MAX_LEVELS];
    int layers_per_block;
    int down_has_attn[MD_MAX_LEVELS];   /* CrossAttnDownBlock2D vs DownBlock2D */
    int up_has_attn[MD_MAX_LEVELS];     /* in up-block order (up_blocks[0] = lowest resolution) */
    int mid_has_attn;                   /* UNetMidBlock2DCrossAttn */
    int transformer_layers[MD_MAX_LEVELS]; /* per down level; up blocks use the reverse */
    int heads[MD_MAX_LEVELS];           /* attention heads per down level (diffusers' quirk:
                                           attention_head_dim means heads when num_attention_heads
                                           is null); up blocks use the reverse */
    int cross_attention_dim;
    int use_linear_projection;
    int upcast_attention;
    int only_cross_attention;
    int norm_groups;
    float norm_eps;
    int flip_sin_to_cos;
    float freq_shift;
    int conv_in_kernel, conv_out_kernel;
    int downsample_padding;
    /* SDXL added conditioning (addition_embed_type "text_time") */
    int text_time_embedding;
    int addition_time_embed_dim;
    int projection_class_embeddings_input_dim;
    md_moe_config moe;
} md_unet_config;

typedef struct md_vae_config {
    int in_channels, out_channels, latent_channels;
    int levels;
    int block_out_channels[MD_MAX_LEVELS];
    int layers_per_block;
    int norm_groups;
    float norm_eps;        /* 1e-6 in diffusers' VAE */
    float scaling_factor;
    int sample_size;
    int force_upcast;
} md_vae_config;

typedef struct md_clip_config {
    int hidden_size, num_layers, num_heads, intermediate_size;
    int max_positions, vocab_size;
    float layer_norm_eps;
    md_act act;            /* quick_gelu (CLIP-L) or gelu (OpenCLIP) */
    int projection_dim;    /* 0 when the model has no text projection */
    int bos_id, eos_id, pad_id;
} md_clip_config;

typedef enum md_beta_schedule { MD_BETA_LINEAR, MD_BETA_SCALED_LINEAR, MD_BETA_SQUAREDCOS } md_beta_schedule;
typedef enum md_spacing { MD_SPACING_LEADING, MD_SPACING_LINSPACE, MD_SPACING_TRAILING } md_spacing;

typedef struct md_sched_config {
    int num_train_timesteps;
    float beta_start, beta_end;
    md_beta_schedule beta_schedule;
    int steps_offset;
    int set_alpha_to_one;
    md_prediction prediction_type;
    /* Spacing is a property of the sampler in use; -1 = the sampler's own
     * default for SD (DDIM leading, Euler/DPM linspace). */
    int timestep_spacing;
} md_sched_config;

#endif
