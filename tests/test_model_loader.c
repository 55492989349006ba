/* md_model_load on the golden folders and single files, variants of the
 * diffusers layout (fp16 file names, legacy VAE attention names) built in
 * a temp folder, and the errors for broken models. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config_json.h"
#include "models/model.h"
#include "test_support.h"

static md_backend *be;
static char tmp[256];

static md_model *load(const char *path, const cJSON *arch, const char *yaml, md_status want,
                      const char *needle)
{
    md_model_options opt = {.backend = be, .architecture = arch, .config_yaml = yaml};
    md_model *m = NULL;
    md_error err = {0};
    md_status s = md_model_load(path, &opt, &m, &err);
    CHECK(s == want && (!needle || strstr(err.msg, needle)) && (s == MD_OK) == (m != NULL),
          "loading %s: got %d '%s', want %d '%s'", path, (int)s, err.msg, (int)want,
          needle ? needle : "");
    return m;
}

static md_model *load_golden(const char *rel, const cJSON *arch, const char *yaml)
{
    char path[1024];
    md_test_golden_path(path, sizeof path, rel);
    return load(path, arch, yaml, MD_OK, NULL);
}

static cJSON *architecture_of(const char *case_name)
{
    char rel[512];
    snprintf(rel, sizeof rel, "%s/golden.json", case_name);
    cJSON *j = md_test_load_golden_config(rel);
    if (!j)
        return NULL;
    cJSON *a = cJSON_DetachItemFromObject(j, "architecture");
    cJSON_Delete(j);
    return a;
}

static void check_sd(const md_model *m, int nfiles)
{
    CHECK(m->family == MD_FAMILY_SD1 && m->nfiles == nfiles);
    CHECK(m->te && m->unet && m->vae && m->tokenizer && !m->te2 && !m->tokenizer2);
    CHECK(m->pad_id == 49407 && !m->force_zeros_for_empty_prompt);
    CHECK(m->te_cfg.bos_id == 49406 && m->te_cfg.eos_id == 49407 && m->te_cfg.pad_id == 49407);
    CHECK(m->te_cfg.projection_dim == 0 && m->te_cfg.hidden_size == 32);
    CHECK(m->unet_cfg.levels == 2 && m->unet_cfg.norm_groups == 16 && m->vae_cfg.norm_groups == 16);
    CHECK(m->sched_cfg.steps_offset == 1 && m->sched_cfg.beta_schedule == MD_BETA_SCALED_LINEAR);
}

static void check_sdxl(const md_model *m)
{
    CHECK(m->family == MD_FAMILY_SDXL && m->force_zeros_for_empty_prompt);
    CHECK(m->te && m->te2 && m->unet && m->vae && m->tokenizer && m->tokenizer2);
    CHECK(m->pad_id == 49407 && m->pad_id2 == 0);
    CHECK(m->te_cfg.projection_dim == 0 && m->te2_cfg.projection_dim == 24);
    CHECK(m->te2_cfg.pad_id == 0 && m->te2_cfg.act == MD_ACT_GELU && m->te2_cfg.num_layers == 3);
    CHECK(m->unet_cfg.text_time_embedding && m->vae_cfg.scaling_factor == 0.13025f);
    CHECK(m->sched_cfg.timestep_spacing == MD_SPACING_LEADING);
}

static void test_golden(void)
{
    md_model *m = load_golden("tiny-sd-dense", NULL, NULL);
    if (m) {
        check_sd(m, 3);
        CHECK(!m->unet_cfg.moe.enabled && m->sched_cfg.timestep_spacing == -1);
        md_model_free(m);
    }
    m = load_golden("tiny-sd-moe", NULL, NULL);
    if (m) {
        check_sd(m, 3);
        CHECK(m->unet_cfg.moe.enabled && m->unet_cfg.moe.num_experts == 4);
        md_model_free(m);
    }
    m = load_golden("tiny-sdxl", NULL, NULL);
    if (m) {
        check_sdxl(m);
        CHECK(m->nfiles == 4 && !m->unet_cfg.moe.enabled);
        md_model_free(m);
    }
    m = load_golden("tiny-segmoe-sdxl", NULL, NULL);
    if (m) {
        check_sdxl(m);
        CHECK(m->unet_cfg.moe.enabled && m->unet_cfg.moe.top_k == 1);
        md_model_free(m);
    }
    cJSON *arch = architecture_of("tiny-sdxl-singlefile");
    m = load_golden("tiny-sdxl-singlefile/model.safetensors", arch, NULL);
    if (m) {
        check_sdxl(m);
        CHECK(m->nfiles == 1);
        md_model_free(m);
    }
    cJSON_Delete(arch);

    arch = architecture_of("tiny-sd-dense-singlefile");
    m = load_golden("tiny-sd-dense-singlefile/model.safetensors", arch, NULL);
    if (m) {
        check_sd(m, 1);
        md_model_free(m);
    }
    /* Without the scheduler override, family defaults refined by a .yaml. */
    cJSON_DeleteItemFromObject(arch, "scheduler");
    char yaml[512];
    snprintf(yaml, sizeof yaml, "%s/v.yaml", tmp);
    FILE *f = fopen(yaml, "w");
    fputs("model:\n  params:\n    parameterization: v\n    linear_end: 0.02\n    linear_start: "
          "0.001\n    scale_factor: 0.5\n",
          f);
    fclose(f);
    m = load_golden("tiny-sd-dense-singlefile/model.safetensors", arch, yaml);
    if (m) {
        CHECK(m->sched_cfg.prediction_type == MD_PRED_V && m->sched_cfg.beta_end == 0.02f);
        CHECK(m->sched_cfg.beta_start == 0.001f && m->sched_cfg.steps_offset == 1);
        /* the VAE override wins over the .yaml */
        CHECK(m->vae_cfg.scaling_factor == 0.18215f);
        md_model_free(m);
    }
    cJSON_Delete(arch);

    /* The tiny text encoder (width 32) cannot be inferred: 64-wide heads. */
    char path[1024];
    md_test_golden_path(path, sizeof path, "tiny-sd-dense-singlefile/model.safetensors");
    load(path, NULL, NULL, MD_ERR_INVALID, "model.safetensors");
}

static void link_to(const char *target_rel, const char *link_rel)
{
    char target[1024], link[1024];
    md_test_golden_path(target, sizeof target, target_rel);
    snprintf(link, sizeof link, "%s/%s", tmp, link_rel);
    int rc = symlink(target, link);
    CHECK(rc == 0, "%s: %s", link, strerror(errno));
}

static void make_dir(const char *rel)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    mkdir(p, 0755);
}

static void write_text(const char *rel, const char *text)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

/* A copy of tiny-sd-dense with the VAE's mid attention under its legacy
 * names and the U-Net weights under the .fp16 file name. */
static void test_variants(void)
{
    make_dir("m");
    link_to("tiny-sd-dense/model_index.json", "m/model_index.json");
    link_to("tiny-sd-dense/text_encoder", "m/text_encoder");
    link_to("tiny-sd-dense/tokenizer", "m/tokenizer");
    link_to("tiny-sd-dense/scheduler", "m/scheduler");
    make_dir("m/unet");
    link_to("tiny-sd-dense/unet/config.json", "m/unet/config.json");
    link_to("tiny-sd-dense/unet/diffusion_pytorch_model.safetensors",
            "m/unet/diffusion_pytorch_model.fp16.safetensors");
    make_dir("m/vae");
    link_to("tiny-sd-dense/vae/config.json", "m/vae/config.json");

    char path[1024];
    md_test_golden_path(path, sizeof path, "tiny-sd-dense/vae/diffusion_pytorch_model.safetensors");
    md_safetensors *st = NULL;
    md_error err = {0};
    CHECK(md_safetensors_open(path, &st, &err) == MD_OK);
    if (!st)
        return;
    size_t n = md_safetensors_count(st);
    md_safetensors_entry *e = calloc(n, sizeof *e);
    char (*names)[256] = calloc(n, sizeof *names);
    static const char *const legacy[][2] = {
        {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}};
    int renamed = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = md_safetensors_name(st, i);
        snprintf(names[i], sizeof names[i], "%s", name);
        for (int k = 0; k < 4; k++) {
            const char *at = strstr(name, legacy[k][0]);
            if (at) {
                snprintf(names[i], sizeof names[i], "%.*s%s%s", (int)(at - name), name, legacy[k][1],
                         at + strlen(legacy[k][0]));
                renamed++;
            }
        }
        e[i].name = names[i];
        e[i].tensor = *md_safetensors_tensor(st, i);
    }
    CHECK(renamed == 16);
    snprintf(path, sizeof path, "%s/m/vae/diffusion_pytorch_model.safetensors", tmp);
    CHECK(md_safetensors_write(path, e, n, &err) == MD_OK);
    free(e);
    free(names);
    md_safetensors_close(st);

    snprintf(path, sizeof path, "%s/m", tmp);
    md_model *m = load(path, NULL, NULL, MD_OK, NULL);
    if (m) {
        check_sd(m, 3);
        md_model_free(m);
    }

    /* The U-Net in two shards with an index. */
    make_dir("sharded");
    link_to("tiny-sd-dense/model_index.json", "sharded/model_index.json");
    link_to("tiny-sd-dense/text_encoder", "sharded/text_encoder");
    link_to("tiny-sd-dense/tokenizer", "sharded/tokenizer");
    link_to("tiny-sd-dense/vae", "sharded/vae");
    make_dir("sharded/unet");
    link_to("tiny-sd-dense/unet/config.json", "sharded/unet/config.json");
    md_test_golden_path(path, sizeof path,
                        "tiny-sd-dense/unet/diffusion_pytorch_model.safetensors");
    CHECK(md_safetensors_open(path, &st, &err) == MD_OK);
    if (st) {
        n = md_safetensors_count(st);
        e = calloc(n, sizeof *e);
        cJSON *index = cJSON_CreateObject();
        cJSON *map = cJSON_AddObjectToObject(index, "weight_map");
        static const char *const shard[2] = {"diffusion_pytorch_model-00001-of-00002.safetensors",
                                             "diffusion_pytorch_model-00002-of-00002.safetensors"};
        for (size_t i = 0; i < n; i++) {
            e[i].name = md_safetensors_name(st, i);
            e[i].tensor = *md_safetensors_tensor(st, i);
            cJSON_AddStringToObject(map, e[i].name, shard[i >= n / 2]);
        }
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "%s/sharded/unet/%s", tmp, shard[k]);
            CHECK(md_safetensors_write(path, k ? e + n / 2 : e, k ? n - n / 2 : n / 2, &err) ==
                  MD_OK);
        }
        char *text = cJSON_Print(index);
        write_text("sharded/unet/diffusion_pytorch_model.safetensors.index.json", text);
        cJSON_free(text);
        cJSON_Delete(index);
        free(e);
        md_safetensors_close(st);
        snprintf(path, sizeof path, "%s/sharded", tmp);
        m = load(path, NULL, NULL, MD_OK, NULL);
        if (m) {
            check_sd(m, 4);
            md_model_free(m);
        }
    }

    /* Broken copies: an unsupported block type, then missing VAE weights. */
    make_dir("bad");
    link_to("tiny-sd-dense/model_index.json", "bad/model_index.json");
    link_to("tiny-sd-dense/text_encoder", "bad/text_encoder");
    link_to("tiny-sd-dense/tokenizer", "bad/tokenizer");
    link_to("tiny-sd-dense/vae", "bad/vae");
    make_dir("bad/unet");
    write_text("bad/unet/config.json",
               "{\"block_out_channels\": [32, 64], \"down_block_types\": "
               "[\"SimpleCrossAttnDownBlock2D\", \"DownBlock2D\"], \"up_block_types\": "
               "[\"UpBlock2D\", \"CrossAttnUpBlock2D\"]}");
    snprintf(path, sizeof path, "%s/bad", tmp);
    load(path, NULL, NULL, MD_ERR_UNSUPPORTED, "bad/unet/config.json");

    make_dir("novae");
    link_to("tiny-sd-dense/model_index.json", "novae/model_index.json");
    link_to("tiny-sd-dense/text_encoder", "novae/text_encoder");
    link_to("tiny-sd-dense/tokenizer", "novae/tokenizer");
    link_to("tiny-sd-dense/unet", "novae/unet");
    make_dir("novae/vae");
    link_to("tiny-sd-dense/vae/config.json", "novae/vae/config.json");
    write_text("novae/vae/diffusion_pytorch_model.bin", "pickle");
    snprintf(path, sizeof path, "%s/novae", tmp);
    load(path, NULL, NULL, MD_ERR_UNSUPPORTED, "diffusion_pytorch_model.bin");
    snprintf(path, sizeof path, "%s/novae/vae/diffusion_pytorch_model.bin", tmp);
    unlink(path);
    snprintf(path, sizeof path, "%s/novae", tmp);
    load(path, NULL, NULL, MD_ERR_IO, "novae/vae");

    /* Not models at all. */
    make_dir("empty");
    snprintf(path, sizeof path, "%s/empty", tmp);
    load(path, NULL, NULL, MD_ERR_FORMAT, "model_index.json");
    write_text("x.ckpt", "pickle");
    snprintf(path, sizeof path, "%s/x.ckpt", tmp);
    load(path, NULL, NULL, MD_ERR_UNSUPPORTED, "x.ckpt");
    snprintf(path, sizeof path, "%s/nothing-here", tmp);
    load(path, NULL, NULL, MD_ERR_IO, "nothing-here");
    /* A safetensors file that is not a Stable Diffusion checkpoint. */
    md_test_golden_path(path, sizeof path,
                        "tiny-sd-dense/unet/diffusion_pytorch_model.safetensors");
    load(path, NULL, NULL, MD_ERR_FORMAT, "model.diffusion_model");
}

int main(void)
{
    if (!md_test_golden_dir_required())
        return 1;
    if (!md_test_make_temp_dir(tmp, sizeof tmp, "md_loader_") || !(be = md_test_cpu_backend(1)))
        return 1;
    test_golden();
    test_variants();
    md_backend_destroy(be);
    md_test_remove_tree(tmp);
    return md_test_finish("test_model_loader");
}
