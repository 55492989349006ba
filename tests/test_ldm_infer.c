/* Architecture inference from single-file shapes, and LDM .yaml settings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config_json.h"
#include "io/safetensors.h"
#include "models/ldm_infer.h"
#include "models/ldm_names.h"
#include "models/ldm_yaml.h"
#include "test_support.h"

static void test_sd(void)
{
    md_safetensors *st =
        md_test_open_golden_safetensors("tiny-sd-dense-singlefile/model.safetensors");
    if (!st)
        return;
    md_family fam;
    md_error err = {0};
    CHECK(md_ldm_detect_family(st, &fam, &err) == MD_OK && fam == MD_FAMILY_SD1);
    md_unet_config u;
    /* the tiny model uses 16 norm groups, the family default 32 also divides its widths */
    CHECK(md_ldm_infer_unet(st, fam, &u, &err) == MD_OK);
    CHECK(u.levels == 2 && u.block_out_channels[0] == 32 && u.block_out_channels[1] == 64);
    CHECK(u.in_channels == 4 && u.out_channels == 4 && u.layers_per_block == 1);
    CHECK(u.down_has_attn[0] && !u.down_has_attn[1] && !u.up_has_attn[0] && u.up_has_attn[1]);
    CHECK(u.mid_has_attn && u.transformer_layers[0] == 1 && u.transformer_layers[1] == 1);
    CHECK(u.cross_attention_dim == 32 && !u.use_linear_projection && !u.text_time_embedding);
    CHECK(u.heads[0] == 8 && u.heads[1] == 8 && u.norm_groups == 32);
    CHECK(u.conv_in_kernel == 3 && u.conv_out_kernel == 3);
    md_vae_config v;
    CHECK(md_ldm_infer_vae(st, fam, &v, &err) == MD_OK);
    CHECK(v.levels == 2 && v.block_out_channels[1] == 64 && v.layers_per_block == 1);
    CHECK(v.latent_channels == 4 && v.in_channels == 3 && v.out_channels == 3);
    CHECK(v.scaling_factor == 0.18215f && v.norm_eps == 1e-6f);
    /* width 32 cannot have 64-wide heads: inference must say so, naming the file */
    md_clip_config t;
    CHECK(md_ldm_infer_clip(st, MD_LDM_SD1_TE_PREFIX, &t, &err) == MD_ERR_INVALID);
    CHECK(strstr(err.msg, "model.safetensors") && strstr(err.msg, "heads"));
    CHECK(t.num_layers == 2 && t.hidden_size == 32 && t.intermediate_size == 128);
    CHECK(t.vocab_size == 49408 && t.max_positions == 77 && t.act == MD_ACT_QUICK_GELU);
    md_safetensors_close(st);
}

static void test_sdxl(void)
{
    md_safetensors *st =
        md_test_open_golden_safetensors("tiny-sdxl-singlefile/model.safetensors");
    if (!st)
        return;
    md_family fam;
    md_error err = {0};
    CHECK(md_ldm_detect_family(st, &fam, &err) == MD_OK && fam == MD_FAMILY_SDXL);
    md_unet_config u;
    /* 64-wide heads: level 1 (64 channels, the only one with attention)
     * gets one head; the .yaml settings then give the heads explicitly */
    CHECK(md_ldm_infer_unet(st, fam, &u, &err) == MD_OK);
    CHECK(u.heads[1] == 1 && u.sample_size == 128 && u.addition_time_embed_dim == 256);
    md_ldm_yaml y = {.num_heads = 2, .use_linear_in_transformer = -1};
    md_vae_config v = {0};
    md_sched_config s;
    md_ldm_sched_defaults(fam, &s);
    CHECK(s.timestep_spacing == MD_SPACING_LEADING && s.steps_offset == 1);
    CHECK(md_ldm_yaml_apply(&y, "x.yaml", &u, &v, &s, &err) == MD_OK);
    CHECK(u.heads[0] == 2 && u.heads[1] == 2);
    u.norm_groups = 16;
    CHECK(md_unet_config_validate(&u, "x", &err) == MD_OK);
    CHECK(u.levels == 2 && !u.down_has_attn[0] && u.down_has_attn[1]);
    CHECK(u.up_has_attn[0] && !u.up_has_attn[1] && u.mid_has_attn);
    CHECK(u.transformer_layers[0] == 1 && u.transformer_layers[1] == 2);
    CHECK(u.use_linear_projection && u.cross_attention_dim == 32);
    CHECK(u.text_time_embedding && u.projection_class_embeddings_input_dim == 72);
    md_clip_config t;
    CHECK(md_ldm_infer_open_clip(st, MD_LDM_SDXL_TE2_PREFIX, 0, 1, &t, &err) == MD_ERR_INVALID);
    CHECK(t.num_layers == 3 && t.projection_dim == 24 && t.act == MD_ACT_GELU && t.pad_id == 0);
    CHECK(md_ldm_infer_open_clip(st, MD_LDM_SDXL_TE2_PREFIX, 1, 0, &t, &err) == MD_ERR_INVALID);
    CHECK(t.num_layers == 2 && t.projection_dim == 0);
    md_safetensors_close(st);
}

static void test_yaml(void)
{
    char path[] = "/tmp/md_yaml_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return;
    const char *text = "model:\n"
                       "  target: ldm.models.diffusion.ddpm.LatentDiffusion\n"
                       "  params:\n"
                       "    parameterization: \"v\"\n"
                       "    linear_start: 0.00085\n"
                       "    linear_end: 0.0120\n"
                       "    timesteps: 1000\n"
                       "    scale_factor: 0.18215\n"
                       "    unet_config:\n"
                       "      params:\n"
                       "        num_head_channels: 64\n"
                       "        use_linear_in_transformer: True\n"
                       "        context_dim: 1024\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    md_ldm_yaml y;
    md_error err = {0};
    CHECK(md_ldm_yaml_read(path, &y, &err) == MD_OK);
    CHECK(y.has_prediction && y.prediction == MD_PRED_V);
    CHECK(y.has_betas && y.beta_start == 0.00085f && y.beta_end == 0.012f);
    CHECK(y.num_train_timesteps == 1000 && y.scale_factor == 0.18215f);
    CHECK(y.num_head_channels == 64 && y.use_linear_in_transformer == 1 && y.context_dim == 1024);
    md_unet_config u = {.levels = 2, .block_out_channels = {320, 640}};
    md_vae_config v = {0};
    md_sched_config s;
    md_sched_config_default(&s);
    CHECK(md_ldm_yaml_apply(&y, path, &u, &v, &s, &err) == MD_OK);
    CHECK(u.heads[0] == 5 && u.heads[1] == 10 && u.use_linear_projection && u.cross_attention_dim == 1024);
    CHECK(s.prediction_type == MD_PRED_V && v.scaling_factor == 0.18215f);

    /* SGM: network_config and VScaling */
    FILE *f = fopen(path, "w");
    fputs("model:\n  params:\n    scale_factor: 0.13025\n    denoiser_config:\n      params:\n"
          "        scaling_config:\n          target: sgm.modules.diffusionmodules.denoiser_scaling.VScaling\n"
          "    network_config:\n      params:\n        num_head_channels: 64\n",
          f);
    fclose(f);
    CHECK(md_ldm_yaml_read(path, &y, &err) == MD_OK);
    CHECK(y.prediction == MD_PRED_V && y.scale_factor == 0.13025f && y.num_head_channels == 64);
    CHECK(!y.has_betas && y.use_linear_in_transformer == -1);

    /* an integer beyond int is refused, not converted (found by fuzzing) */
    f = fopen(path, "w");
    fputs("model:\n  params:\n    unet_config:\n      params:\n        context_dim: 8.9e26\n", f);
    fclose(f);
    CHECK(md_ldm_yaml_read(path, &y, &err) == MD_ERR_FORMAT && strstr(err.msg, "context_dim") &&
          strstr(err.msg, "out of range"));

    f = fopen(path, "w");
    fputs("model:\n  params: [1, 2\n", f);
    fclose(f);
    CHECK(md_ldm_yaml_read(path, &y, &err) == MD_ERR_FORMAT && strstr(err.msg, path));
    f = fopen(path, "w");
    fputs("model:\n  params:\n    linear_start: abc\n    linear_end: 0.1\n", f);
    fclose(f);
    CHECK(md_ldm_yaml_read(path, &y, &err) == MD_ERR_FORMAT && strstr(err.msg, "linear_start"));
    f = fopen(path, "w");
    fputs("other: 1\n", f);
    fclose(f);
    CHECK(md_ldm_yaml_read(path, &y, &err) == MD_ERR_FORMAT && strstr(err.msg, "model.params"));
    unlink(path);
    CHECK(md_ldm_yaml_read(path, &y, &err) == MD_ERR_IO);
}

int main(void)
{
    if (!md_test_golden_dir_required())
        return 1;
    test_sd();
    test_sdxl();
    test_yaml();
    return md_test_finish("test_ldm_infer");
}
