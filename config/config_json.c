/* diffusers / transformers config.json -> component configs. */
#include "config_json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_get.h"

md_status md_json_read_file(const char *path, cJSON **out, md_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return md_fail(err, MD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    /* Config files are small; anything this large is not one. */
    const long max = 64L << 20;
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n <= max && fseek(f, 0, SEEK_SET) == 0)
        buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return md_fail(err, n > max ? MD_ERR_FORMAT : MD_ERR_IO, "%s: cannot read%s", path,
                       n > max ? " (file too large for a config)" : "");
    }
    fclose(f);
    buf[n] = '\0';
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(buf, &end, 1);
    if (!j) {
        long at = end ? (long)(end - buf) : -1;
        free(buf);
        return md_fail(err, MD_ERR_FORMAT, "%s: invalid JSON near byte %ld", path, at);
    }
    free(buf);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return md_fail(err, MD_ERR_FORMAT, "%s: expected a JSON object", path);
    }
    *out = j;
    return MD_OK;
}

/* Block type lists: kind 1 = with cross-attention, 0 = plain. */
static md_status block_types(const cJSON *j, const char *key, const char *attn_name,
                             const char *plain_name, int levels, const char *file, int *out,
                             md_error *err)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsArray(m))
        return md_fail(err, MD_ERR_INVALID, "%s: \"%s\" is missing or not a list", file, key);
    if (cJSON_GetArraySize(m) != levels)
        return md_fail(err, MD_ERR_INVALID,
                       "%s: \"%s\" has %d entries but block_out_channels has %d", file, key,
                       cJSON_GetArraySize(m), levels);
    int i = 0;
    for (const cJSON *e = m->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e))
            return md_fail(err, MD_ERR_INVALID, "%s: \"%s\" must hold strings", file, key);
        if (strcmp(e->valuestring, attn_name) == 0)
            out[i] = 1;
        else if (plain_name && strcmp(e->valuestring, plain_name) == 0)
            out[i] = 0;
        else
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "%s: \"%s\"[%d] = \"%s\" is not supported (only %s%s%s)", file, key, i,
                           e->valuestring, attn_name, plain_name ? " and " : "",
                           plain_name ? plain_name : "");
    }
    return MD_OK;
}

static md_status int_list(const cJSON *j, const char *key, const char *file, int *out, int *n,
                          md_error *err)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsArray(m))
        return md_fail(err, MD_ERR_INVALID, "%s: \"%s\" is missing or not a list", file, key);
    int count = cJSON_GetArraySize(m);
    if (count < 1 || count > MD_MAX_LEVELS)
        return md_fail(err, MD_ERR_INVALID, "%s: \"%s\" has %d entries (1..%d supported)", file,
                       key, count, MD_MAX_LEVELS);
    int i = 0;
    for (const cJSON *e = m->child; e; e = e->next, i++) {
        /* Range first: converting a double outside int's range is undefined. */
        if (!cJSON_IsNumber(e) || e->valuedouble < -2147483648.0 || e->valuedouble > 2147483647.0 ||
            e->valuedouble != (double)(int)e->valuedouble)
            return md_fail(err, MD_ERR_INVALID, "%s: \"%s\" must hold integers", file, key);
        out[i] = (int)e->valuedouble;
    }
    *n = count;
    return MD_OK;
}

/* Architecture switches of UNet2DConditionModel that this engine does not
 * implement must keep their default values. */
static md_status unet_expect_defaults(const cJSON *j, const char *file, md_error *err)
{
    MD_TRY(md_json_expect_string(j, "_class_name", "UNet2DConditionModel", file, err));
    MD_TRY(md_json_expect_string(j, "act_fn", "silu", file, err));
    MD_TRY(md_json_expect_string(j, "time_embedding_type", "positional", file, err));
    MD_TRY(md_json_expect_string(j, "resnet_time_scale_shift", "default", file, err));
    MD_TRY(md_json_expect_string(j, "attention_type", "default", file, err));
    MD_TRY(md_json_expect_null(j, "class_embed_type", file, err));
    MD_TRY(md_json_expect_null(j, "num_class_embeds", file, err));
    MD_TRY(md_json_expect_null(j, "time_embedding_dim", file, err));
    MD_TRY(md_json_expect_null(j, "time_embedding_act_fn", file, err));
    MD_TRY(md_json_expect_null(j, "timestep_post_act", file, err));
    MD_TRY(md_json_expect_null(j, "time_cond_proj_dim", file, err));
    MD_TRY(md_json_expect_null(j, "encoder_hid_dim", file, err));
    MD_TRY(md_json_expect_null(j, "encoder_hid_dim_type", file, err));
    MD_TRY(md_json_expect_null(j, "cross_attention_norm", file, err));
    MD_TRY(md_json_expect_null(j, "reverse_transformer_layers_per_block", file, err));
    MD_TRY(md_json_expect_bool(j, "dual_cross_attention", 0, file, err));
    MD_TRY(md_json_expect_bool(j, "center_input_sample", 0, file, err));
    MD_TRY(md_json_expect_bool(j, "resnet_skip_time_act", 0, file, err));
    MD_TRY(md_json_expect_bool(j, "class_embeddings_concat", 0, file, err));
    MD_TRY(md_json_expect_number(j, "mid_block_scale_factor", 1.0, file, err));
    MD_TRY(md_json_expect_number(j, "resnet_out_scale_factor", 1.0, file, err));
    return MD_OK;
}

md_status md_unet_config_from_json(const cJSON *j, const char *file, md_unet_config *cfg,
                                   md_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (!cJSON_IsObject(j))
        return md_fail(err, MD_ERR_INVALID, "%s: the UNet config is not an object", file);
    MD_TRY(unet_expect_defaults(j, file, err));
    MD_TRY(int_list(j, "block_out_channels", file, cfg->block_out_channels, &cfg->levels, err));
    int L = cfg->levels;
    MD_TRY(md_json_int(j, "in_channels", 4, file, &cfg->in_channels, err));
    MD_TRY(md_json_int(j, "out_channels", 4, file, &cfg->out_channels, err));
    MD_TRY(md_json_uniform_int(j, "sample_size", 64, file, &cfg->sample_size, err));
    MD_TRY(md_json_uniform_int(j, "layers_per_block", 2, file, &cfg->layers_per_block, err));
    MD_TRY(block_types(j, "down_block_types", "CrossAttnDownBlock2D", "DownBlock2D", L, file,
                       cfg->down_has_attn, err));
    MD_TRY(block_types(j, "up_block_types", "CrossAttnUpBlock2D", "UpBlock2D", L, file,
                       cfg->up_has_attn, err));

    const cJSON *mid = cJSON_GetObjectItemCaseSensitive(j, "mid_block_type");
    if (!mid || (cJSON_IsString(mid) && !strcmp(mid->valuestring, "UNetMidBlock2DCrossAttn")))
        cfg->mid_has_attn = 1;
    else if (cJSON_IsString(mid) && !strcmp(mid->valuestring, "UNetMidBlock2D"))
        cfg->mid_has_attn = 0;
    else
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: \"mid_block_type\": %s is not supported", file,
                       cJSON_IsString(mid) ? mid->valuestring : "null (no mid block)");

    MD_TRY(md_json_int_or_list(j, "transformer_layers_per_block", 1, L, file,
                               cfg->transformer_layers, err));
    /* diffusers: num_attention_heads = num_attention_heads or
     * attention_head_dim, so attention_head_dim means the head count. */
    const cJSON *nh = cJSON_GetObjectItemCaseSensitive(j, "num_attention_heads");
    if (nh && !cJSON_IsNull(nh))
        MD_TRY(md_json_int_or_list(j, "num_attention_heads", 8, L, file, cfg->heads, err));
    else
        MD_TRY(md_json_int_or_list(j, "attention_head_dim", 8, L, file, cfg->heads, err));

    MD_TRY(md_json_uniform_int(j, "cross_attention_dim", 1280, file, &cfg->cross_attention_dim,
                               err));
    MD_TRY(md_json_bool(j, "use_linear_projection", 0, file, &cfg->use_linear_projection, err));
    MD_TRY(md_json_bool(j, "upcast_attention", 0, file, &cfg->upcast_attention, err));
    const cJSON *oca = cJSON_GetObjectItemCaseSensitive(j, "only_cross_attention");
    if (cJSON_IsArray(oca)) {
        int first = -1;
        for (const cJSON *e = oca->child; e; e = e->next) {
            int v = cJSON_IsTrue(e) ? 1 : 0;
            if (first >= 0 && v != first)
                return md_fail(err, MD_ERR_UNSUPPORTED,
                               "%s: \"only_cross_attention\" differing per block is not supported",
                               file);
            first = v;
        }
        cfg->only_cross_attention = first > 0;
    } else {
        MD_TRY(md_json_bool(j, "only_cross_attention", 0, file, &cfg->only_cross_attention, err));
    }
    int mid_oca;
    MD_TRY(md_json_bool(j, "mid_block_only_cross_attention", cfg->only_cross_attention, file,
                        &mid_oca, err));
    if (mid_oca != cfg->only_cross_attention)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: \"mid_block_only_cross_attention\" different from only_cross_attention "
                       "is not supported",
                       file);

    const cJSON *ng = cJSON_GetObjectItemCaseSensitive(j, "norm_num_groups");
    if (ng && cJSON_IsNull(ng))
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: \"norm_num_groups\": null (no output norm) is not supported", file);
    MD_TRY(md_json_int(j, "norm_num_groups", 32, file, &cfg->norm_groups, err));
    MD_TRY(md_json_float(j, "norm_eps", 1e-5f, file, &cfg->norm_eps, err));
    MD_TRY(md_json_bool(j, "flip_sin_to_cos", 1, file, &cfg->flip_sin_to_cos, err));
    MD_TRY(md_json_float(j, "freq_shift", 0.0f, file, &cfg->freq_shift, err));
    MD_TRY(md_json_int(j, "conv_in_kernel", 3, file, &cfg->conv_in_kernel, err));
    MD_TRY(md_json_int(j, "conv_out_kernel", 3, file, &cfg->conv_out_kernel, err));
    MD_TRY(md_json_int(j, "downsample_padding", 1, file, &cfg->downsample_padding, err));

    const char *add = NULL;
    MD_TRY(md_json_string(j, "addition_embed_type", NULL, file, &add, err));
    if (add && strcmp(add, "text_time") != 0)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: \"addition_embed_type\": \"%s\" is not supported (only \"text_time\")",
                       file, add);
    if (add) {
        cfg->text_time_embedding = 1;
        MD_TRY(md_json_int(j, "addition_time_embed_dim", 0, file, &cfg->addition_time_embed_dim,
                           err));
        MD_TRY(md_json_int(j, "projection_class_embeddings_input_dim", 0, file,
                           &cfg->projection_class_embeddings_input_dim, err));
        if (cfg->addition_time_embed_dim <= 0 || cfg->projection_class_embeddings_input_dim <= 0)
            return md_fail(err, MD_ERR_INVALID,
                           "%s: \"text_time\" needs positive addition_time_embed_dim and "
                           "projection_class_embeddings_input_dim",
                           file);
    }

    const cJSON *seg = cJSON_GetObjectItemCaseSensitive(j, "segmoe_config");
    const cJSON *own = cJSON_GetObjectItemCaseSensitive(j, "moe_config");
    if (seg && !cJSON_IsNull(seg) && own && !cJSON_IsNull(own))
        return md_fail(err, MD_ERR_INVALID, "%s: both \"segmoe_config\" and \"moe_config\" are set",
                       file);
    if (seg && !cJSON_IsNull(seg))
        MD_TRY(md_moe_config_from_json(seg, 1, L, file, &cfg->moe, err));
    else if (own && !cJSON_IsNull(own))
        MD_TRY(md_moe_config_from_json(own, 0, L, file, &cfg->moe, err));
    return md_unet_config_validate(cfg, file, err);
}

md_status md_vae_config_from_json(const cJSON *j, const char *file, md_vae_config *cfg,
                                  md_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (!cJSON_IsObject(j))
        return md_fail(err, MD_ERR_INVALID, "%s: the VAE config is not an object", file);
    MD_TRY(md_json_expect_string(j, "_class_name", "AutoencoderKL", file, err));
    MD_TRY(md_json_expect_string(j, "act_fn", "silu", file, err));
    MD_TRY(md_json_expect_null(j, "latents_mean", file, err));
    MD_TRY(md_json_expect_null(j, "latents_std", file, err));
    MD_TRY(md_json_expect_null(j, "shift_factor", file, err));
    MD_TRY(md_json_expect_bool(j, "use_quant_conv", 1, file, err));
    MD_TRY(md_json_expect_bool(j, "use_post_quant_conv", 1, file, err));
    MD_TRY(md_json_expect_bool(j, "mid_block_add_attention", 1, file, err));
    MD_TRY(int_list(j, "block_out_channels", file, cfg->block_out_channels, &cfg->levels, err));
    int kinds[MD_MAX_LEVELS];
    if (cJSON_GetObjectItemCaseSensitive(j, "down_block_types"))
        MD_TRY(block_types(j, "down_block_types", "DownEncoderBlock2D", NULL, cfg->levels, file,
                           kinds, err));
    if (cJSON_GetObjectItemCaseSensitive(j, "up_block_types"))
        MD_TRY(block_types(j, "up_block_types", "UpDecoderBlock2D", NULL, cfg->levels, file, kinds,
                           err));
    MD_TRY(md_json_int(j, "in_channels", 3, file, &cfg->in_channels, err));
    MD_TRY(md_json_int(j, "out_channels", 3, file, &cfg->out_channels, err));
    MD_TRY(md_json_int(j, "latent_channels", 4, file, &cfg->latent_channels, err));
    MD_TRY(md_json_int(j, "layers_per_block", 1, file, &cfg->layers_per_block, err));
    MD_TRY(md_json_int(j, "norm_num_groups", 32, file, &cfg->norm_groups, err));
    MD_TRY(md_json_float(j, "scaling_factor", 0.18215f, file, &cfg->scaling_factor, err));
    MD_TRY(md_json_uniform_int(j, "sample_size", 32, file, &cfg->sample_size, err));
    MD_TRY(md_json_bool(j, "force_upcast", 1, file, &cfg->force_upcast, err));
    cfg->norm_eps = 1e-6f; /* fixed in diffusers' Encoder/Decoder */
    return md_vae_config_validate(cfg, file, err);
}

/* Legacy CLIP-L configs carry the ids of the original (pre-BPE-release)
 * vocabulary: bos 0, pad 1, eos 2. The real vocabulary's are 49406/49407. */
static int fix_legacy_id(int id, int legacy, int real)
{
    return id == legacy ? real : id;
}

md_status md_clip_config_from_json(const cJSON *j, const char *file, md_clip_config *cfg,
                                   md_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (!cJSON_IsObject(j))
        return md_fail(err, MD_ERR_INVALID, "%s: the text encoder config is not an object", file);
    MD_TRY(md_json_expect_string(j, "model_type", "clip_text_model", file, err));
    int with_projection = 0;
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(j, "architectures");
    if (cJSON_IsArray(arch)) {
        for (const cJSON *e = arch->child; e; e = e->next) {
            if (!cJSON_IsString(e))
                continue;
            if (!strcmp(e->valuestring, "CLIPTextModelWithProjection"))
                with_projection = 1;
            else if (strcmp(e->valuestring, "CLIPTextModel") != 0)
                return md_fail(err, MD_ERR_UNSUPPORTED,
                               "%s: \"architectures\": \"%s\" is not supported (only CLIPTextModel "
                               "and CLIPTextModelWithProjection)",
                               file, e->valuestring);
        }
    }
    MD_TRY(md_json_int(j, "hidden_size", 512, file, &cfg->hidden_size, err));
    MD_TRY(md_json_int(j, "num_hidden_layers", 12, file, &cfg->num_layers, err));
    MD_TRY(md_json_int(j, "num_attention_heads", 8, file, &cfg->num_heads, err));
    MD_TRY(md_json_int(j, "intermediate_size", 2048, file, &cfg->intermediate_size, err));
    MD_TRY(md_json_int(j, "max_position_embeddings", 77, file, &cfg->max_positions, err));
    MD_TRY(md_json_int(j, "vocab_size", 49408, file, &cfg->vocab_size, err));
    MD_TRY(md_json_float(j, "layer_norm_eps", 1e-5f, file, &cfg->layer_norm_eps, err));
    const char *act = NULL;
    MD_TRY(md_json_string(j, "hidden_act", "quick_gelu", file, &act, err));
    if (!strcmp(act, "quick_gelu"))
        cfg->act = MD_ACT_QUICK_GELU;
    else if (!strcmp(act, "gelu"))
        cfg->act = MD_ACT_GELU;
    else if (!strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh"))
        cfg->act = MD_ACT_GELU_TANH;
    else
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: \"hidden_act\": \"%s\" is not supported (quick_gelu, gelu, gelu_new)",
                       file, act);
    if (with_projection)
        MD_TRY(md_json_int(j, "projection_dim", 512, file, &cfg->projection_dim, err));
    MD_TRY(md_json_int(j, "bos_token_id", 49406, file, &cfg->bos_id, err));
    MD_TRY(md_json_int(j, "eos_token_id", 49407, file, &cfg->eos_id, err));
    MD_TRY(md_json_int(j, "pad_token_id", cfg->eos_id, file, &cfg->pad_id, err));
    cfg->bos_id = fix_legacy_id(cfg->bos_id, 0, 49406);
    cfg->eos_id = fix_legacy_id(cfg->eos_id, 2, 49407);
    cfg->pad_id = fix_legacy_id(cfg->pad_id, 1, 49407);
    return md_clip_config_validate(cfg, file, err);
}

void md_sched_config_default(md_sched_config *cfg)
{
    cfg->num_train_timesteps = 1000;
    cfg->beta_start = 0.00085f;
    cfg->beta_end = 0.012f;
    cfg->beta_schedule = MD_BETA_SCALED_LINEAR;
    cfg->steps_offset = 1;
    cfg->set_alpha_to_one = 0;
    cfg->prediction_type = MD_PRED_EPSILON;
    cfg->timestep_spacing = -1;
}

md_status md_sched_config_from_json(const cJSON *j, const char *file, md_sched_config *cfg,
                                    md_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (!cJSON_IsObject(j))
        return md_fail(err, MD_ERR_INVALID, "%s: the scheduler config is not an object", file);
    MD_TRY(md_json_expect_null(j, "trained_betas", file, err));
    MD_TRY(md_json_expect_bool(j, "rescale_betas_zero_snr", 0, file, err));
    /* Missing members take diffusers' class defaults (DDIM's for
     * set_alpha_to_one, the only sampler that reads it). */
    MD_TRY(md_json_int(j, "num_train_timesteps", 1000, file, &cfg->num_train_timesteps, err));
    MD_TRY(md_json_float(j, "beta_start", 0.0001f, file, &cfg->beta_start, err));
    MD_TRY(md_json_float(j, "beta_end", 0.02f, file, &cfg->beta_end, err));
    MD_TRY(md_json_int(j, "steps_offset", 0, file, &cfg->steps_offset, err));
    MD_TRY(md_json_bool(j, "set_alpha_to_one", 1, file, &cfg->set_alpha_to_one, err));
    const char *s = NULL;
    MD_TRY(md_json_string(j, "beta_schedule", "linear", file, &s, err));
    if (!strcmp(s, "linear"))
        cfg->beta_schedule = MD_BETA_LINEAR;
    else if (!strcmp(s, "scaled_linear"))
        cfg->beta_schedule = MD_BETA_SCALED_LINEAR;
    else if (!strcmp(s, "squaredcos_cap_v2"))
        cfg->beta_schedule = MD_BETA_SQUAREDCOS;
    else
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: \"beta_schedule\": \"%s\" is not supported (linear, scaled_linear, "
                       "squaredcos_cap_v2)",
                       file, s);
    MD_TRY(md_json_string(j, "prediction_type", "epsilon", file, &s, err));
    if (!strcmp(s, "epsilon"))
        cfg->prediction_type = MD_PRED_EPSILON;
    else if (!strcmp(s, "v_prediction"))
        cfg->prediction_type = MD_PRED_V;
    else if (!strcmp(s, "sample"))
        cfg->prediction_type = MD_PRED_SAMPLE;
    else
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: \"prediction_type\": \"%s\" is not supported (epsilon, v_prediction, "
                       "sample)",
                       file, s);
    MD_TRY(md_json_string(j, "timestep_spacing", NULL, file, &s, err));
    if (!s)
        cfg->timestep_spacing = -1;
    else if (!strcmp(s, "leading"))
        cfg->timestep_spacing = MD_SPACING_LEADING;
    else if (!strcmp(s, "linspace"))
        cfg->timestep_spacing = MD_SPACING_LINSPACE;
    else if (!strcmp(s, "trailing"))
        cfg->timestep_spacing = MD_SPACING_TRAILING;
    else
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: \"timestep_spacing\": \"%s\" is not supported (leading, linspace, "
                       "trailing)",
                       file, s);
    if (cfg->num_train_timesteps < 2 || !(cfg->beta_start > 0.0f) || !(cfg->beta_end > 0.0f) ||
        cfg->beta_end >= 1.0f || cfg->steps_offset < 0)
        return md_fail(err, MD_ERR_INVALID,
                       "%s: scheduler values out of range (num_train_timesteps %d, betas %g..%g, "
                       "steps_offset %d)",
                       file, cfg->num_train_timesteps, cfg->beta_start, cfg->beta_end,
                       cfg->steps_offset);
    return MD_OK;
}
