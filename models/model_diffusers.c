/* Loading a diffusers pipeline folder (model_index.json). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../config/config_json.h"
#include "../config/json_get.h"
#include "model_internal.h"

static int is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* A component's config: the architecture override when given, else
 * dir/sub/config_name. *owned must be freed by the caller. */
static md_status component_config(const char *dir, const char *sub, const char *config_name,
                                  const md_model_options *opt, cJSON **owned, const cJSON **cfg,
                                  char *label, size_t cap, md_error *err)
{
    *owned = NULL;
    *cfg = md_model_override(opt, sub);
    if (*cfg) {
        snprintf(label, cap, "architecture.%s", sub);
        return MD_OK;
    }
    MD_TRY(md_path_join(label, cap, dir, sub, config_name, err));
    MD_TRY(md_json_read_file(label, owned, err));
    *cfg = *owned;
    return MD_OK;
}

/* Old diffusers VAEs name the mid-block attention query/key/value/
 * proj_attn; today's names are to_q/to_k/to_v/to_out.0. */
static const char *modern_vae_name(const char *name, char *buf, size_t cap)
{
    static const char *const renames[][2] = {
        {".query.", ".to_q."}, {".key.", ".to_k."}, {".value.", ".to_v."}, {".proj_attn.", ".to_out.0."}};
    if (!strstr(name, "mid_block.attentions."))
        return name;
    for (size_t i = 0; i < sizeof renames / sizeof renames[0]; i++) {
        const char *at = strstr(name, renames[i][0]);
        if (at) {
            snprintf(buf, cap, "%.*s%s%s", (int)(at - name), name, renames[i][1],
                     at + strlen(renames[i][0]));
            return buf;
        }
    }
    return name;
}

static md_status add_file(md_model *m, md_weights *w, const char *path, int is_vae, md_error *err)
{
    md_safetensors *st;
    MD_TRY(md_model_open_file(m, path, &st, err));
    for (size_t i = 0; i < md_safetensors_count(st); i++) {
        char buf[512];
        const char *name = md_safetensors_name(st, i);
        if (is_vae)
            name = modern_vae_name(name, buf, sizeof buf);
        MD_TRY(md_weights_add(w, name, md_safetensors_tensor(st, i), path, err));
    }
    return MD_OK;
}

/* A sharded checkpoint: index.json's weight_map names the shard files. */
static md_status add_sharded(md_model *m, md_weights *w, const char *dir, const char *index,
                             int is_vae, md_error *err)
{
    cJSON *j;
    MD_TRY(md_json_read_file(index, &j, err));
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    md_status s = MD_OK;
    if (!cJSON_IsObject(map))
        s = md_fail(err, MD_ERR_FORMAT, "%s: no \"weight_map\" object", index);
    for (const cJSON *e = map ? map->child : NULL; e && s == MD_OK; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || !e->valuestring[0]) {
            s = md_fail(err, MD_ERR_FORMAT, "%s: weight_map entry '%s' is not a file name", index,
                        e->string);
            break;
        }
        int seen = 0; /* each shard once, in order of first mention */
        for (const cJSON *p = map->child; p != e && !seen; p = p->next)
            seen = cJSON_IsString(p) && !strcmp(p->valuestring, e->valuestring);
        if (seen)
            continue;
        char path[MD_PATH_MAX];
        s = md_path_join(path, sizeof path, dir, e->valuestring, NULL, err);
        if (s == MD_OK)
            s = add_file(m, w, path, is_vae, err);
    }
    cJSON_Delete(j);
    return s;
}

static void note_hash_file(md_model *m, const char *sub, const char *path)
{
    if (!strcmp(sub, "unet"))
        snprintf(m->hash_file, sizeof m->hash_file, "%s", path);
}

/* Finds and adds the weights of dir/sub: stem.safetensors, its .fp16
 * variant, or a sharded index of either. */
static md_status component_weights(md_model *m, md_weights *w, const char *dir, const char *sub,
                                   const char *stem, int is_vae, md_error *err)
{
    char cdir[MD_PATH_MAX], path[MD_PATH_MAX], name[256];
    MD_TRY(md_path_join(cdir, sizeof cdir, dir, sub, NULL, err));
    static const char *const variants[] = {".safetensors", ".fp16.safetensors"};
    for (int v = 0; v < 2; v++) {
        snprintf(name, sizeof name, "%s%s", stem, variants[v]);
        MD_TRY(md_path_join(path, sizeof path, cdir, name, NULL, err));
        if (is_file(path)) {
            note_hash_file(m, sub, path);
            return add_file(m, w, path, is_vae, err);
        }
        snprintf(name, sizeof name, "%s%s.index.json", stem, variants[v]);
        MD_TRY(md_path_join(path, sizeof path, cdir, name, NULL, err));
        if (is_file(path)) {
            note_hash_file(m, sub, path);
            return add_sharded(m, w, cdir, path, is_vae, err);
        }
    }
    static const char *const pickles[] = {".bin", ".fp16.bin", ".ckpt"};
    for (int v = 0; v < 3; v++) {
        snprintf(name, sizeof name, "%s%s", stem, pickles[v]);
        MD_TRY(md_path_join(path, sizeof path, cdir, name, NULL, err));
        if (is_file(path))
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "%s: pickle weights are not supported; convert them to %s.safetensors",
                           path, stem);
    }
    return md_fail(err, MD_ERR_IO, "%s: no weights (looked for %s.safetensors and %s.fp16.safetensors)",
                   cdir, stem, stem);
}

/* The pad token named by the tokenizer folder (special_tokens_map.json,
 * then tokenizer_config.json), as an id; the end token when none is named. */
static md_status tokenizer_pad(const char *tdir, const md_tokenizer *tok, int32_t *pad,
                               md_error *err)
{
    *pad = md_tokenizer_eos(tok);
    static const char *const files[] = {"special_tokens_map.json", "tokenizer_config.json"};
    for (int f = 0; f < 2; f++) {
        char path[MD_PATH_MAX];
        MD_TRY(md_path_join(path, sizeof path, tdir, files[f], NULL, err));
        if (!is_file(path))
            continue;
        cJSON *j;
        MD_TRY(md_json_read_file(path, &j, err));
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "pad_token");
        if (cJSON_IsObject(p))
            p = cJSON_GetObjectItemCaseSensitive(p, "content");
        md_status s = MD_OK;
        if (cJSON_IsString(p)) {
            int32_t id = md_tokenizer_token_id(tok, p->valuestring);
            if (id < 0)
                s = md_fail(err, MD_ERR_FORMAT, "%s: pad token '%s' is not in the vocabulary", path,
                            p->valuestring);
            else
                *pad = id;
        }
        cJSON_Delete(j);
        if (s != MD_OK || cJSON_IsString(p))
            return s;
    }
    return MD_OK;
}

/* Without a tokenizer folder: the builtin vocabulary, padding with the end
 * token, or with '!' (id 0) for SDXL's tokenizer_2 as SDXL releases and the
 * single-file loader do. */
static md_status load_tokenizer(const char *dir, const char *sub, md_tokenizer **tok, int32_t *pad,
                                md_error *err)
{
    char tdir[MD_PATH_MAX];
    MD_TRY(md_path_join(tdir, sizeof tdir, dir, sub, NULL, err));
    if (!is_dir(tdir)) {
        MD_TRY(md_tokenizer_load_builtin(tok, err));
        *pad = strcmp(sub, "tokenizer_2") ? md_tokenizer_eos(*tok) : md_tokenizer_token_id(*tok, "!");
        if (*pad < 0)
            return md_fail(err, MD_ERR_FORMAT, "%s: the builtin vocabulary has no '!' token", dir);
        return MD_OK;
    }
    MD_TRY(md_tokenizer_load_dir(tdir, tok, err));
    return tokenizer_pad(tdir, *tok, pad, err);
}

typedef md_status (*parse_fn)(const cJSON *j, const char *file, void *cfg, md_error *err);

static md_status parse_unet(const cJSON *j, const char *f, void *c, md_error *e)
{
    return md_unet_config_from_json(j, f, c, e);
}
static md_status parse_vae(const cJSON *j, const char *f, void *c, md_error *e)
{
    return md_vae_config_from_json(j, f, c, e);
}
static md_status parse_clip(const cJSON *j, const char *f, void *c, md_error *e)
{
    return md_clip_config_from_json(j, f, c, e);
}

static md_status read_config(const char *dir, const char *sub, const md_model_options *opt,
                             parse_fn parse, void *cfg, md_error *err)
{
    cJSON *owned;
    const cJSON *j;
    char label[MD_PATH_MAX];
    MD_TRY(component_config(dir, sub, "config.json", opt, &owned, &j, label, sizeof label, err));
    md_status s = parse(j, label, cfg, err);
    cJSON_Delete(owned);
    return s;
}

static md_status read_scheduler(const char *dir, const md_model_options *opt, md_sched_config *cfg,
                                md_error *err)
{
    char path[MD_PATH_MAX];
    MD_TRY(md_path_join(path, sizeof path, dir, "scheduler", "scheduler_config.json", err));
    if (!md_model_override(opt, "scheduler") && !is_file(path)) {
        md_sched_config_default(cfg);
        return MD_OK;
    }
    cJSON *owned;
    const cJSON *j;
    char label[MD_PATH_MAX];
    MD_TRY(component_config(dir, "scheduler", "scheduler_config.json", opt, &owned, &j, label,
                            sizeof label, err));
    md_status s = md_sched_config_from_json(j, label, cfg, err);
    cJSON_Delete(owned);
    return s;
}

/* Family from model_index.json's class; SD 2.x is told by its OpenCLIP
 * text encoder (exact GELU) once that config is read. */
static md_status read_index(md_model *m, const char *dir, md_error *err)
{
    char path[MD_PATH_MAX];
    MD_TRY(md_path_join(path, sizeof path, dir, "model_index.json", NULL, err));
    if (!is_file(path))
        return md_fail(err, MD_ERR_FORMAT, "%s: no model_index.json (not a diffusers pipeline folder)",
                       dir);
    cJSON *j;
    MD_TRY(md_json_read_file(path, &j, err));
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(j, "_class_name");
    md_status s = MD_OK;
    if (!cJSON_IsString(cls)) {
        s = md_fail(err, MD_ERR_FORMAT, "%s: no \"_class_name\"", path);
    } else if (!strncmp(cls->valuestring, "StableDiffusionXL", 17)) {
        m->family = MD_FAMILY_SDXL;
        const cJSON *fz = cJSON_GetObjectItemCaseSensitive(j, "force_zeros_for_empty_prompt");
        m->force_zeros_for_empty_prompt = fz ? cJSON_IsTrue(fz) : 1;
    } else if (!strncmp(cls->valuestring, "StableDiffusion", 15)) {
        m->family = MD_FAMILY_SD1;
    } else {
        s = md_fail(err, MD_ERR_UNSUPPORTED,
                    "%s: pipeline class \"%s\" is not supported (Stable Diffusion 1.x/2.x/XL)", path,
                    cls->valuestring);
    }
    /* A model may name the guidance it was tuned for (0 = the family's). */
    if (s == MD_OK)
        s = md_json_float(j, "_default_guidance_scale", 0.0f, path, &m->default_cfg, err);
    if (s == MD_OK && !(m->default_cfg >= 0.0f && m->default_cfg <= 30.0f))
        s = md_fail(err, MD_ERR_FORMAT, "%s: \"_default_guidance_scale\" %g is outside 0..30", path,
                    (double)m->default_cfg);
    cJSON_Delete(j);
    return s;
}

md_status md_model_load_diffusers(md_model *m, const char *dir, const md_model_options *opt,
                                  md_error *err)
{
    MD_TRY(read_index(m, dir, err));
    int xl = m->family == MD_FAMILY_SDXL;
    MD_TRY(read_config(dir, "unet", opt, parse_unet, &m->unet_cfg, err));
    MD_TRY(read_config(dir, "vae", opt, parse_vae, &m->vae_cfg, err));
    MD_TRY(read_config(dir, "text_encoder", opt, parse_clip, &m->te_cfg, err));
    if (xl)
        MD_TRY(read_config(dir, "text_encoder_2", opt, parse_clip, &m->te2_cfg, err));
    else if (m->te_cfg.act == MD_ACT_GELU)
        m->family = MD_FAMILY_SD2;
    MD_TRY(read_scheduler(dir, opt, &m->sched_cfg, err));

    MD_TRY(load_tokenizer(dir, "tokenizer", &m->tokenizer, &m->pad_id, err));
    if (xl)
        MD_TRY(load_tokenizer(dir, "tokenizer_2", &m->tokenizer2, &m->pad_id2, err));

    md_weights *te, *te2 = NULL, *unet, *vae;
    MD_TRY(md_model_new_weights(m, "text_encoder", &te, err));
    MD_TRY(component_weights(m, te, dir, "text_encoder", "model", 0, err));
    if (xl) {
        MD_TRY(md_model_new_weights(m, "text_encoder_2", &te2, err));
        MD_TRY(component_weights(m, te2, dir, "text_encoder_2", "model", 0, err));
    }
    MD_TRY(md_model_new_weights(m, "unet", &unet, err));
    MD_TRY(component_weights(m, unet, dir, "unet", "diffusion_pytorch_model", 0, err));
    MD_TRY(md_model_new_weights(m, "vae", &vae, err));
    MD_TRY(component_weights(m, vae, dir, "vae", "diffusion_pytorch_model", 1, err));
    return md_model_build(m, te, te2, unet, vae, opt->backend, err);
}
