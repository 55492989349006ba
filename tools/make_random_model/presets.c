/* Architectures of the random models, as diffusers config.json objects. */
#include <string.h>

#include "random_model.h"

static cJSON *int_array(const int *v, int n)
{
    return cJSON_CreateIntArray(v, n);
}

static cJSON *string_array(const char *const *v, int n)
{
    return cJSON_CreateStringArray(v, n);
}

static const char *const down_attn = "CrossAttnDownBlock2D", *const down_plain = "DownBlock2D";
static const char *const up_attn = "CrossAttnUpBlock2D", *const up_plain = "UpBlock2D";

static cJSON *unet_config(int levels, const int *channels, int layers, int heads, int cross_dim,
                          int groups, int sample_size, int linear_proj)
{
    const char *down[8], *up[8];
    for (int i = 0; i < levels; i++) {
        down[i] = i < levels - 1 ? down_attn : down_plain; /* SD: no attention at the lowest level */
        up[i] = i == 0 ? up_plain : up_attn;
    }
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "_class_name", "UNet2DConditionModel");
    cJSON_AddNumberToObject(c, "in_channels", 4);
    cJSON_AddNumberToObject(c, "out_channels", 4);
    cJSON_AddNumberToObject(c, "sample_size", sample_size);
    cJSON_AddItemToObject(c, "block_out_channels", int_array(channels, levels));
    cJSON_AddNumberToObject(c, "layers_per_block", layers);
    cJSON_AddItemToObject(c, "down_block_types", string_array(down, levels));
    cJSON_AddItemToObject(c, "up_block_types", string_array(up, levels));
    cJSON_AddStringToObject(c, "mid_block_type", "UNetMidBlock2DCrossAttn");
    cJSON_AddNumberToObject(c, "attention_head_dim", heads);
    cJSON_AddNumberToObject(c, "cross_attention_dim", cross_dim);
    cJSON_AddNumberToObject(c, "norm_num_groups", groups);
    cJSON_AddNumberToObject(c, "norm_eps", 1e-5);
    cJSON_AddBoolToObject(c, "flip_sin_to_cos", 1);
    cJSON_AddNumberToObject(c, "freq_shift", 0);
    cJSON_AddBoolToObject(c, "use_linear_projection", linear_proj);
    cJSON_AddNumberToObject(c, "transformer_layers_per_block", 1);
    return c;
}

static cJSON *vae_config(int levels, const int *channels, int layers, int groups, int sample_size)
{
    const char *down[8], *up[8];
    for (int i = 0; i < levels; i++) {
        down[i] = "DownEncoderBlock2D";
        up[i] = "UpDecoderBlock2D";
    }
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "_class_name", "AutoencoderKL");
    cJSON_AddNumberToObject(c, "in_channels", 3);
    cJSON_AddNumberToObject(c, "out_channels", 3);
    cJSON_AddNumberToObject(c, "latent_channels", 4);
    cJSON_AddItemToObject(c, "block_out_channels", int_array(channels, levels));
    cJSON_AddItemToObject(c, "down_block_types", string_array(down, levels));
    cJSON_AddItemToObject(c, "up_block_types", string_array(up, levels));
    cJSON_AddNumberToObject(c, "layers_per_block", layers);
    cJSON_AddNumberToObject(c, "norm_num_groups", groups);
    cJSON_AddNumberToObject(c, "sample_size", sample_size);
    cJSON_AddNumberToObject(c, "scaling_factor", 0.18215);
    return c;
}

static cJSON *clip_config(int hidden, int layers, int heads, int inner)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToObject(c, "architectures", cJSON_CreateStringArray((const char *[]){"CLIPTextModel"}, 1));
    cJSON_AddStringToObject(c, "hidden_act", "quick_gelu");
    cJSON_AddNumberToObject(c, "hidden_size", hidden);
    cJSON_AddNumberToObject(c, "intermediate_size", inner);
    cJSON_AddNumberToObject(c, "num_attention_heads", heads);
    cJSON_AddNumberToObject(c, "num_hidden_layers", layers);
    cJSON_AddNumberToObject(c, "max_position_embeddings", 77);
    cJSON_AddNumberToObject(c, "vocab_size", 49408);
    cJSON_AddNumberToObject(c, "layer_norm_eps", 1e-5);
    cJSON_AddNumberToObject(c, "bos_token_id", 49406);
    cJSON_AddNumberToObject(c, "eos_token_id", 49407);
    cJSON_AddNumberToObject(c, "pad_token_id", 49407);
    return c;
}

static cJSON *scheduler_config(void)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "_class_name", "PNDMScheduler");
    cJSON_AddNumberToObject(c, "beta_start", 0.00085);
    cJSON_AddNumberToObject(c, "beta_end", 0.012);
    cJSON_AddStringToObject(c, "beta_schedule", "scaled_linear");
    cJSON_AddNumberToObject(c, "num_train_timesteps", 1000);
    cJSON_AddNumberToObject(c, "steps_offset", 1);
    cJSON_AddBoolToObject(c, "set_alpha_to_one", 0);
    cJSON_AddBoolToObject(c, "skip_prk_steps", 1);
    return c;
}

/* The scheduler config SDXL base ships. */
static cJSON *sdxl_scheduler_config(void)
{
    cJSON *c = scheduler_config();
    cJSON_ReplaceItemInObject(c, "_class_name", cJSON_CreateString("EulerDiscreteScheduler"));
    cJSON_AddStringToObject(c, "prediction_type", "epsilon");
    cJSON_AddStringToObject(c, "interpolation_type", "linear");
    cJSON_AddStringToObject(c, "timestep_spacing", "leading");
    cJSON_AddBoolToObject(c, "use_karras_sigmas", 0);
    cJSON_AddBoolToObject(c, "clip_sample", 0);
    cJSON_AddNullToObject(c, "trained_betas");
    return c;
}

/* SDXL's U-Net layout: no attention at the highest resolution, several
 * transformer layers per block, linear projections and the text_time added
 * conditioning (pooled te2 embedding + six sinusoidally embedded sizes). */
static cJSON *sdxl_unet_config(const int *channels, const int *depth, const int *heads,
                               int cross_dim, int time_dim, int pooled_dim, int sample_size)
{
    cJSON *c = unet_config(3, channels, 2, 1, cross_dim, 32, sample_size, 1);
    const char *down[] = {down_plain, down_attn, down_attn}, *up[] = {up_attn, up_attn, up_plain};
    cJSON_ReplaceItemInObject(c, "down_block_types", string_array(down, 3));
    cJSON_ReplaceItemInObject(c, "up_block_types", string_array(up, 3));
    cJSON_ReplaceItemInObject(c, "attention_head_dim", int_array(heads, 3));
    cJSON_ReplaceItemInObject(c, "transformer_layers_per_block", int_array(depth, 3));
    cJSON_AddStringToObject(c, "addition_embed_type", "text_time");
    cJSON_AddNumberToObject(c, "addition_embed_type_num_heads", 64);
    cJSON_AddNumberToObject(c, "addition_time_embed_dim", time_dim);
    cJSON_AddNumberToObject(c, "projection_class_embeddings_input_dim", pooled_dim + 6 * time_dim);
    return c;
}

/* te2: OpenCLIP-style encoder (exact GELU) with its text projection. */
static cJSON *clip_projected_config(int hidden, int layers, int heads, int inner, int proj)
{
    cJSON *c = clip_config(hidden, layers, heads, inner);
    cJSON_ReplaceItemInObject(c, "architectures",
                              cJSON_CreateStringArray((const char *[]){"CLIPTextModelWithProjection"}, 1));
    cJSON_ReplaceItemInObject(c, "hidden_act", cJSON_CreateString("gelu"));
    cJSON_ReplaceItemInObject(c, "pad_token_id", cJSON_CreateNumber(0));
    cJSON_AddNumberToObject(c, "projection_dim", proj);
    return c;
}

static cJSON *sdxl_vae_config(const int *channels)
{
    cJSON *c = vae_config(4, channels, 2, 32, 1024);
    cJSON_ReplaceItemInObject(c, "scaling_factor", cJSON_CreateNumber(0.13025));
    cJSON_AddBoolToObject(c, "force_upcast", 1);
    return c;
}

/* SegMoE layout (sequence routing): transformer blocks of down_blocks[0, L-1)
 * and up_blocks[1, L) become MoE, as SegMoE does for SD 1.x/2.x; on SDXL
 * down_blocks[1, L) and up_blocks[0, L-1), where its attentions are. Token
 * routing uses the engine's own "moe_config" form with the same bounds.
 * Either form may carry a shared expert (docs/moe-config.md). */
static void add_moe(cJSON *unet, int levels, int xl, const rm_options *o)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddNumberToObject(m, "num_experts", o->experts);
    cJSON_AddNumberToObject(m, "num_experts_per_tok", o->top_k);
    cJSON_AddStringToObject(m, "moe_layers", o->moe_layers);
    cJSON_AddNumberToObject(m, "down_idx_start", xl ? 1 : 0);
    cJSON_AddNumberToObject(m, "down_idx_end", xl ? levels : levels - 1);
    cJSON_AddNumberToObject(m, "up_idx_start", xl ? 0 : 1);
    cJSON_AddNumberToObject(m, "up_idx_end", xl ? levels - 1 : levels);
    if (o->shared_expert)
        cJSON_AddBoolToObject(m, "shared_expert", 1);
    if (o->token_routing) {
        cJSON_AddStringToObject(m, "routing", "token");
        cJSON_AddItemToObject(unet, "moe_config", m);
    } else {
        cJSON_AddStringToObject(m, "type", xl ? "sdxl" : "sd");
        cJSON_AddItemToObject(unet, "segmoe_config", m);
    }
}

/* SDXL base sizes, or (small) the same structure with 64-wide heads, the
 * 256-wide time embedding and 32 norm groups kept, so a single file of it
 * is inferable from its shapes like a real SDXL checkpoint. */
static void sdxl_preset(int small, rm_configs *out)
{
    static const int ch[] = {320, 640, 1280}, depth[] = {1, 2, 10}, heads[] = {5, 10, 20};
    static const int vch[] = {128, 256, 512, 512};
    static const int sch[] = {64, 128, 256}, sdepth[] = {1, 2, 3}, sheads[] = {1, 2, 4};
    static const int svch[] = {32, 64, 128, 128};
    if (small) {
        out->text_encoder = clip_config(64, 2, 1, 256);
        out->text_encoder_2 = clip_projected_config(128, 3, 2, 512, 64);
        out->unet = sdxl_unet_config(sch, sdepth, sheads, 64 + 128, 256, 64, 128);
        out->vae = sdxl_vae_config(svch);
    } else {
        out->text_encoder = clip_config(768, 12, 12, 3072);
        out->text_encoder_2 = clip_projected_config(1280, 32, 20, 5120, 1280);
        out->unet = sdxl_unet_config(ch, depth, heads, 768 + 1280, 256, 1280, 128);
        out->vae = sdxl_vae_config(vch);
    }
    out->scheduler = sdxl_scheduler_config();
    out->sdxl = 1;
}

/* A SegMoE 4x2 (sequence routing) of the given MoE layers; the other
 * options (a shared expert, the seed, f16) stay the caller's. */
static rm_options segmoe_4x2(const rm_options *o, const char *moe_layers)
{
    rm_options m = *o;
    m.experts = 4;
    m.top_k = 2;
    m.moe_layers = moe_layers;
    m.token_routing = 0;
    return m;
}

int rm_preset(const rm_options *o, rm_configs *out)
{
    memset(out, 0, sizeof *out);
    if (strcmp(o->preset, "tiny") == 0) {
        const int ch[] = {32, 64};
        out->unet = unet_config(2, ch, 1, 8, 32, 16, 32, 0);
        out->vae = vae_config(2, ch, 1, 16, 64);
        out->text_encoder = clip_config(32, 2, 4, 128);
        if (o->experts)
            add_moe(out->unet, 2, 0, o);
    } else if (strcmp(o->preset, "sd15") == 0 || strcmp(o->preset, "segmoe-sd15-4x2") == 0) {
        const int ch[] = {320, 640, 1280, 1280}, vch[] = {128, 256, 512, 512};
        out->unet = unet_config(4, ch, 2, 8, 768, 32, 64, 0);
        out->vae = vae_config(4, vch, 2, 32, 512);
        out->text_encoder = clip_config(768, 12, 12, 3072);
        if (strcmp(o->preset, "segmoe-sd15-4x2") == 0) {
            /* SegMoE's SD 1.5 recipe (its segmoe_config_sd.yaml): 4 experts,
             * 2 active, feed-forwards and attention projections MoE. */
            rm_options m = segmoe_4x2(o, "all");
            add_moe(out->unet, 4, 0, &m);
        } else if (o->experts) {
            add_moe(out->unet, 4, 0, o);
        }
    } else if (strcmp(o->preset, "sdxl") == 0 || strcmp(o->preset, "sdxl-small") == 0) {
        sdxl_preset(strcmp(o->preset, "sdxl-small") == 0, out);
        if (o->experts)
            add_moe(out->unet, 3, 1, o);
        return 1;
    } else if (strcmp(o->preset, "segmoe-sdxl-4x2") == 0) {
        /* SegMoE's published SDXL layout: 4 experts, 2 active, attention MoE */
        rm_options m = segmoe_4x2(o, "attn");
        sdxl_preset(0, out);
        add_moe(out->unet, 3, 1, &m);
        return 1;
    } else {
        return 0;
    }
    out->scheduler = scheduler_config();
    return 1;
}
