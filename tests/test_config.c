/* Parses the configs of every golden case and checks the values the
 * architecture notes of the golden README give; then bad configs. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config/config_json.h"
#include "test_support.h"

static md_status parse_unet(const char *rel, md_unet_config *c)
{
    cJSON *j = md_test_load_golden_config(rel);
    md_error err = {0};
    md_status s = j ? md_unet_config_from_json(j, rel, c, &err) : MD_ERR_IO;
    if (s != MD_OK)
        fprintf(stderr, "%s\n", err.msg);
    cJSON_Delete(j);
    return s;
}

static md_status parse_vae(const char *rel, md_vae_config *c)
{
    cJSON *j = md_test_load_golden_config(rel);
    md_error err = {0};
    md_status s = j ? md_vae_config_from_json(j, rel, c, &err) : MD_ERR_IO;
    if (s != MD_OK)
        fprintf(stderr, "%s\n", err.msg);
    cJSON_Delete(j);
    return s;
}

static md_status parse_clip(const char *rel, md_clip_config *c)
{
    cJSON *j = md_test_load_golden_config(rel);
    md_error err = {0};
    md_status s = j ? md_clip_config_from_json(j, rel, c, &err) : MD_ERR_IO;
    if (s != MD_OK)
        fprintf(stderr, "%s\n", err.msg);
    cJSON_Delete(j);
    return s;
}

static md_status parse_sched(const char *rel, md_sched_config *c)
{
    cJSON *j = md_test_load_golden_config(rel);
    md_error err = {0};
    md_status s = j ? md_sched_config_from_json(j, rel, c, &err) : MD_ERR_IO;
    if (s != MD_OK)
        fprintf(stderr, "%s\n", err.msg);
    cJSON_Delete(j);
    return s;
}

static void check_sd_unet(const md_unet_config *u)
{
    CHECK(u->levels == 2 && u->block_out_channels[0] == 32 && u->block_out_channels[1] == 64);
    CHECK(u->in_channels == 4 && u->out_channels == 4 && u->sample_size == 8);
    CHECK(u->layers_per_block == 1);
    CHECK(u->down_has_attn[0] == 1 && u->down_has_attn[1] == 0);
    CHECK(u->up_has_attn[0] == 0 && u->up_has_attn[1] == 1 && u->mid_has_attn == 1);
    CHECK(u->heads[0] == 8 && u->heads[1] == 8); /* attention_head_dim 8 = heads */
    CHECK(u->transformer_layers[0] == 1 && u->transformer_layers[1] == 1);
    CHECK(u->cross_attention_dim == 32 && !u->use_linear_projection && !u->upcast_attention);
    CHECK(u->norm_groups == 16 && fabsf(u->norm_eps - 1e-5f) < 1e-12f);
    CHECK(u->flip_sin_to_cos == 1 && u->freq_shift == 0.0f);
    CHECK(u->conv_in_kernel == 3 && u->conv_out_kernel == 3 && u->downsample_padding == 1);
    CHECK(!u->text_time_embedding);
}

static void check_sd_vae(const md_vae_config *v, float scale)
{
    CHECK(v->levels == 2 && v->block_out_channels[0] == 32 && v->block_out_channels[1] == 64);
    CHECK(v->in_channels == 3 && v->out_channels == 3 && v->latent_channels == 4);
    CHECK(v->layers_per_block == 1 && v->norm_groups == 16 && v->norm_eps == 1e-6f);
    CHECK(v->scaling_factor == scale && v->sample_size == 16 && v->force_upcast == 1);
}

static void check_sd_te(const md_clip_config *t)
{
    CHECK(t->hidden_size == 32 && t->num_layers == 2 && t->num_heads == 4);
    CHECK(t->intermediate_size == 128 && t->max_positions == 77 && t->vocab_size == 49408);
    CHECK(t->act == MD_ACT_QUICK_GELU && t->projection_dim == 0);
    CHECK(t->bos_id == 49406 && t->eos_id == 49407 && t->pad_id == 49407);
}

static void check_sd15_sched(const md_sched_config *s)
{
    CHECK(s->num_train_timesteps == 1000 && s->beta_start == 0.00085f && s->beta_end == 0.012f);
    CHECK(s->beta_schedule == MD_BETA_SCALED_LINEAR && s->steps_offset == 1);
    CHECK(s->set_alpha_to_one == 0 && s->prediction_type == MD_PRED_EPSILON);
    CHECK(s->timestep_spacing == -1);
}

static void check_sdxl_unet(const md_unet_config *u)
{
    CHECK(u->levels == 2 && u->block_out_channels[0] == 32 && u->block_out_channels[1] == 64);
    CHECK(u->down_has_attn[0] == 0 && u->down_has_attn[1] == 1);
    CHECK(u->up_has_attn[0] == 1 && u->up_has_attn[1] == 0 && u->mid_has_attn);
    CHECK(u->transformer_layers[0] == 1 && u->transformer_layers[1] == 2);
    CHECK(u->heads[0] == 2 && u->heads[1] == 4);
    CHECK(u->use_linear_projection == 1 && u->cross_attention_dim == 32);
    CHECK(u->text_time_embedding == 1 && u->addition_time_embed_dim == 8);
    CHECK(u->projection_class_embeddings_input_dim == 72);
}

static void check_sdxl_te(const md_clip_config *t1, const md_clip_config *t2)
{
    CHECK(t1->hidden_size == 16 && t1->num_layers == 2 && t1->num_heads == 2);
    CHECK(t1->act == MD_ACT_QUICK_GELU && t1->projection_dim == 0 && t1->pad_id == 49407);
    CHECK(t2->hidden_size == 16 && t2->num_layers == 3 && t2->num_heads == 2);
    CHECK(t2->intermediate_size == 64 && t2->act == MD_ACT_GELU);
    CHECK(t2->projection_dim == 24 && t2->pad_id == 0 && t2->eos_id == 49407);
}

static void test_golden_folders(void)
{
    md_unet_config u;
    md_vae_config v;
    md_clip_config t, t2;
    md_sched_config s;

    CHECK(parse_unet("tiny-sd-dense/unet/config.json", &u) == MD_OK);
    check_sd_unet(&u);
    CHECK(!u.moe.enabled);
    CHECK(parse_vae("tiny-sd-dense/vae/config.json", &v) == MD_OK);
    check_sd_vae(&v, 0.18215f);
    CHECK(parse_clip("tiny-sd-dense/text_encoder/config.json", &t) == MD_OK);
    check_sd_te(&t);
    CHECK(parse_sched("tiny-sd-dense/scheduler/scheduler_config.json", &s) == MD_OK);
    check_sd15_sched(&s);

    CHECK(parse_unet("tiny-sd-moe/unet/config.json", &u) == MD_OK);
    check_sd_unet(&u);
    CHECK(u.moe.enabled && u.moe.num_experts == 4 && u.moe.top_k == 2);
    CHECK(u.moe.moe_ff && u.moe.moe_attn && u.moe.routing == MD_ROUTE_SEQUENCE_TOPK);
    CHECK(u.moe.down_start == 0 && u.moe.down_end == 1 && u.moe.up_start == 1 && u.moe.up_end == 2);
    CHECK(!u.moe.shared_expert);
    CHECK(parse_vae("tiny-sd-moe/vae/config.json", &v) == MD_OK);
    check_sd_vae(&v, 0.18215f);
    CHECK(parse_clip("tiny-sd-moe/text_encoder/config.json", &t) == MD_OK);
    check_sd_te(&t);
    CHECK(parse_sched("tiny-sd-moe/scheduler/scheduler_config.json", &s) == MD_OK);
    check_sd15_sched(&s);

    const char *xl[] = {"tiny-sdxl", "tiny-segmoe-sdxl"};
    for (int c = 0; c < 2; c++) {
        char rel[256];
        snprintf(rel, sizeof rel, "%s/unet/config.json", xl[c]);
        CHECK(parse_unet(rel, &u) == MD_OK);
        check_sdxl_unet(&u);
        snprintf(rel, sizeof rel, "%s/vae/config.json", xl[c]);
        CHECK(parse_vae(rel, &v) == MD_OK);
        check_sd_vae(&v, 0.13025f);
        snprintf(rel, sizeof rel, "%s/text_encoder/config.json", xl[c]);
        CHECK(parse_clip(rel, &t) == MD_OK);
        snprintf(rel, sizeof rel, "%s/text_encoder_2/config.json", xl[c]);
        CHECK(parse_clip(rel, &t2) == MD_OK);
        check_sdxl_te(&t, &t2);
        snprintf(rel, sizeof rel, "%s/scheduler/scheduler_config.json", xl[c]);
        CHECK(parse_sched(rel, &s) == MD_OK);
        CHECK(s.beta_schedule == MD_BETA_SCALED_LINEAR && s.steps_offset == 1);
        CHECK(s.timestep_spacing == MD_SPACING_LEADING && s.prediction_type == MD_PRED_EPSILON);
        CHECK(s.set_alpha_to_one == 0);
        if (c == 0) {
            CHECK(!u.moe.enabled);
        } else {
            CHECK(u.moe.enabled && u.moe.num_experts == 2 && u.moe.top_k == 1);
            CHECK(!u.moe.moe_ff && u.moe.moe_attn && u.moe.routing == MD_ROUTE_SEQUENCE_TOPK);
            CHECK(u.moe.down_start == 1 && u.moe.down_end == 2);
            CHECK(u.moe.up_start == 0 && u.moe.up_end == 1);
        }
    }
}

/* The "architecture" objects of the single-file cases parse to the same
 * configs as the diffusers folders. */
static void test_singlefile_architecture(void)
{
    const char *cases[] = {"tiny-sd-dense-singlefile/golden.json", "tiny-sdxl-singlefile/golden.json"};
    for (int c = 0; c < 2; c++) {
        cJSON *g = md_test_load_golden_config(cases[c]);
        if (!g)
            continue;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(g, "architecture");
        md_unet_config u;
        md_vae_config v;
        md_clip_config t, t2;
        md_sched_config s;
        md_error err = {0};
        CHECK(md_unet_config_from_json(cJSON_GetObjectItem(a, "unet"), "arch", &u, &err) == MD_OK);
        CHECK(md_vae_config_from_json(cJSON_GetObjectItem(a, "vae"), "arch", &v, &err) == MD_OK);
        CHECK(md_clip_config_from_json(cJSON_GetObjectItem(a, "text_encoder"), "arch", &t, &err) ==
              MD_OK);
        CHECK(md_sched_config_from_json(cJSON_GetObjectItem(a, "scheduler"), "arch", &s, &err) ==
              MD_OK);
        if (c == 0) {
            check_sd_unet(&u);
            check_sd_vae(&v, 0.18215f);
            check_sd_te(&t);
            check_sd15_sched(&s);
        } else {
            check_sdxl_unet(&u);
            check_sd_vae(&v, 0.13025f);
            CHECK(md_clip_config_from_json(cJSON_GetObjectItem(a, "text_encoder_2"), "arch", &t2,
                                           &err) == MD_OK);
            check_sdxl_te(&t, &t2);
            CHECK(s.timestep_spacing == MD_SPACING_LEADING);
        }
        cJSON_Delete(g);
    }
}

/* Parses `json` (a UNet config) and expects `code` with `needle` and the
 * file label in the message. */
static void expect_unet(const char *json, md_status code, const char *needle)
{
    cJSON *j = cJSON_Parse(json);
    md_unet_config u;
    md_error err = {0};
    md_status s = md_unet_config_from_json(j, "bad/unet/config.json", &u, &err);
    if (s != code || (code != MD_OK && (!strstr(err.msg, "bad/unet/config.json") ||
                                        (needle && !strstr(err.msg, needle))))) {
        FAIL("unet config %s: got %d '%s', want %d '%s'", json, (int)s, err.msg, (int)code,
             needle ? needle : "");
    }
    cJSON_Delete(j);
}

#define BASE                                                                                    \
    "\"block_out_channels\": [32, 64], \"layers_per_block\": 1, \"norm_num_groups\": 16, "      \
    "\"cross_attention_dim\": 32, \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"]"

static void test_bad_configs(void)
{
    expect_unet("{" BASE ", \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"]}",
                MD_OK, NULL);
    expect_unet("{" BASE ", \"down_block_types\": [\"SimpleCrossAttnDownBlock2D\", \"DownBlock2D\"]}",
                MD_ERR_UNSUPPORTED, "SimpleCrossAttnDownBlock2D");
    expect_unet("{" BASE ", \"down_block_types\": [\"CrossAttnDownBlock2D\"]}", MD_ERR_INVALID,
                "down_block_types");
    expect_unet("{" BASE ", \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], "
                "\"addition_embed_type\": \"text\"}",
                MD_ERR_UNSUPPORTED, "addition_embed_type");
    expect_unet("{" BASE ", \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], "
                "\"class_embed_type\": \"timestep\"}",
                MD_ERR_UNSUPPORTED, "class_embed_type");
    expect_unet("{" BASE ", \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], "
                "\"mid_block_type\": \"UNetMidBlock2DSimpleCrossAttn\"}",
                MD_ERR_UNSUPPORTED, "mid_block_type");
    /* a channel count beyond int is refused, not converted (found by fuzzing) */
    expect_unet("{\"block_out_channels\": [2.2e22, 32]}", MD_ERR_INVALID, "must hold integers");
    expect_unet("{\"block_out_channels\": [32, -3e9]}", MD_ERR_INVALID, "must hold integers");
    /* 24 groups divide 48, 96 and the up-path sums 144 and 192 */
    expect_unet("{\"block_out_channels\": [48, 96], \"layers_per_block\": 1, \"norm_num_groups\": "
                "24, \"cross_attention_dim\": 32, \"up_block_types\": [\"UpBlock2D\", "
                "\"UpBlock2D\"], \"down_block_types\": [\"DownBlock2D\", \"DownBlock2D\"], "
                "\"mid_block_type\": \"UNetMidBlock2D\"}",
                MD_OK, NULL);
    /* ... but neither 32 nor 64 */
    expect_unet("{\"block_out_channels\": [32, 64], \"layers_per_block\": 1, \"norm_num_groups\": "
                "24, \"up_block_types\": [\"UpBlock2D\", \"UpBlock2D\"], \"down_block_types\": "
                "[\"DownBlock2D\", \"DownBlock2D\"]}",
                MD_ERR_INVALID, "norm_num_groups");
    expect_unet("{\"block_out_channels\": [1,1,1,1,1,1,1,1,1], \"norm_num_groups\": 1}",
                MD_ERR_INVALID, "block_out_channels");
    expect_unet("{\"block_out_channels\": [32, -64]," "\"norm_num_groups\": 16, \"up_block_types\": "
                "[\"UpBlock2D\", \"UpBlock2D\"], \"down_block_types\": [\"DownBlock2D\", "
                "\"DownBlock2D\"]}",
                MD_ERR_INVALID, NULL);
    /* 3 heads do not divide 32 channels */
    expect_unet("{" BASE ", \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], "
                "\"attention_head_dim\": 3}",
                MD_ERR_INVALID, "heads");
    expect_unet("{" BASE ", \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], "
                "\"transformer_layers_per_block\": [1, 2, 3]}",
                MD_ERR_INVALID, "transformer_layers_per_block");
    expect_unet("{" BASE ", \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], "
                "\"segmoe_config\": {\"num_experts\": 4, \"num_experts_per_tok\": 5}}",
                MD_ERR_INVALID, "top-k");
    expect_unet("{" BASE ", \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], "
                "\"segmoe_config\": {\"num_experts\": 4, \"moe_layers\": \"norm\"}}",
                MD_ERR_UNSUPPORTED, "moe_layers");
    expect_unet("{" BASE ", \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], "
                "\"segmoe_config\": {\"num_experts\": 2, \"down_idx_end\": 3}}",
                MD_ERR_INVALID, "levels");

    /* num_attention_heads overrides attention_head_dim; our own moe_config. */
    cJSON *j = cJSON_Parse("{" BASE ", \"down_block_types\": [\"CrossAttnDownBlock2D\", "
                           "\"DownBlock2D\"], \"attention_head_dim\": 8, \"num_attention_heads\": "
                           "[2, 4], \"moe_config\": {\"num_experts\": 8, \"top_k\": 2, "
                           "\"moe_layers\": \"ff\", \"shared_expert\": true}}");
    md_unet_config u;
    md_error err = {0};
    CHECK(md_unet_config_from_json(j, "own", &u, &err) == MD_OK);
    CHECK(u.heads[0] == 2 && u.heads[1] == 4);
    CHECK(u.moe.enabled && u.moe.routing == MD_ROUTE_TOKEN_TOPK && u.moe.num_experts == 8);
    CHECK(u.moe.top_k == 2 && u.moe.moe_ff && !u.moe.moe_attn && u.moe.shared_expert);
    CHECK(u.moe.down_start == 0 && u.moe.down_end == 2 && u.moe.up_start == 0 && u.moe.up_end == 2);
    cJSON_Delete(j);

    /* SegMoE defaults of the index bounds by type. */
    j = cJSON_Parse("{" BASE ", \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], "
                    "\"segmoe_config\": {\"num_experts\": 2, \"type\": \"sdxl\"}}");
    CHECK(md_unet_config_from_json(j, "seg", &u, &err) == MD_OK);
    CHECK(u.moe.down_start == 1 && u.moe.down_end == 2 && u.moe.up_start == 0 && u.moe.up_end == 1);
    CHECK(u.moe.moe_attn && !u.moe.moe_ff && u.moe.top_k == 1);
    cJSON_Delete(j);

    /* Text encoder: legacy ids, activation names, projection by architecture. */
    md_clip_config t;
    j = cJSON_Parse("{\"hidden_size\": 768, \"num_attention_heads\": 12, \"bos_token_id\": 0, "
                    "\"eos_token_id\": 2, \"pad_token_id\": 1, \"projection_dim\": 768}");
    CHECK(md_clip_config_from_json(j, "te", &t, &err) == MD_OK);
    CHECK(t.bos_id == 49406 && t.eos_id == 49407 && t.pad_id == 49407 && t.projection_dim == 0);
    CHECK(t.act == MD_ACT_QUICK_GELU && t.num_layers == 12);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"hidden_act\": \"relu\"}");
    CHECK(md_clip_config_from_json(j, "te/config.json", &t, &err) == MD_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "te/config.json") && strstr(err.msg, "hidden_act"));
    cJSON_Delete(j);
    j = cJSON_Parse("{\"architectures\": [\"T5EncoderModel\"]}");
    CHECK(md_clip_config_from_json(j, "te/config.json", &t, &err) == MD_ERR_UNSUPPORTED);
    cJSON_Delete(j);

    /* VAE */
    md_vae_config v;
    j = cJSON_Parse("{\"block_out_channels\": [128, 256, 512, 512], \"layers_per_block\": 2}");
    CHECK(md_vae_config_from_json(j, "vae", &v, &err) == MD_OK);
    CHECK(v.levels == 4 && v.norm_groups == 32 && v.scaling_factor == 0.18215f && v.norm_eps == 1e-6f);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"_class_name\": \"AutoencoderTiny\", \"block_out_channels\": [64]}");
    CHECK(md_vae_config_from_json(j, "vae/config.json", &v, &err) == MD_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "AutoencoderTiny") != NULL);
    cJSON_Delete(j);

    /* Scheduler */
    md_sched_config s;
    j = cJSON_Parse("{\"beta_schedule\": \"sigmoid\"}");
    CHECK(md_sched_config_from_json(j, "scheduler_config.json", &s, &err) == MD_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "beta_schedule") && strstr(err.msg, "scheduler_config.json"));
    cJSON_Delete(j);
    j = cJSON_Parse("{\"prediction_type\": \"v_prediction\", \"timestep_spacing\": \"trailing\"}");
    CHECK(md_sched_config_from_json(j, "s", &s, &err) == MD_OK);
    CHECK(s.prediction_type == MD_PRED_V && s.timestep_spacing == MD_SPACING_TRAILING);
    CHECK(s.beta_schedule == MD_BETA_LINEAR && s.set_alpha_to_one == 1 && s.steps_offset == 0);
    cJSON_Delete(j);

    /* Reading files: missing and malformed. */
    cJSON *out = NULL;
    CHECK(md_json_read_file("/nonexistent/config.json", &out, &err) == MD_ERR_IO);
    CHECK(strstr(err.msg, "/nonexistent/config.json") != NULL && out == NULL);
}

int main(void)
{
    char path[1024];
    if (!md_test_golden_path(path, sizeof path, "tiny-sd-dense/unet/config.json") ||
        !md_test_exists(path)) {
        fprintf(stderr, "MD_GOLDEN_DIR is not set or has no golden cases\n");
        return 1;
    }
    test_golden_folders();
    test_singlefile_architecture();
    test_bad_configs();
    return md_test_finish("test_config");
}
