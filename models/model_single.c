/* Loading a single-file checkpoint (original LDM / SGM layout). The
 * architecture comes from the tensor shapes and family defaults, refined by
 * an optional LDM .yaml; an explicit per-component override (the options'
 * architecture, else the file's "architecture" metadata) replaces the
 * inferred config of that component entirely. MoE settings come with a
 * U-Net config or from the "segmoe_config" / "moe_config" metadata
 * (docs/moe-config.md, "Single files"). */
#include <stdio.h>
#include <string.h>

#include "../config/config_json.h"
#include "ldm_infer.h"
#include "ldm_names.h"
#include "ldm_yaml.h"
#include "model_internal.h"

typedef struct overrides {
    const cJSON *unet, *vae, *te, *te2, *sched;
} overrides;

static md_status infer_text_encoders(md_model *m, const md_safetensors *st, const overrides *o,
                                     md_error *err)
{
    switch (m->family) {
    case MD_FAMILY_SD1:
        if (!o->te)
            return md_ldm_infer_clip(st, MD_LDM_SD1_TE_PREFIX, &m->te_cfg, err);
        break;
    case MD_FAMILY_SD2:
        if (!o->te)
            return md_ldm_infer_open_clip(st, MD_LDM_SD2_TE_PREFIX, 1, 0, &m->te_cfg, err);
        break;
    case MD_FAMILY_SDXL:
        if (!o->te)
            MD_TRY(md_ldm_infer_clip(st, MD_LDM_SDXL_TE1_PREFIX, &m->te_cfg, err));
        if (!o->te2)
            MD_TRY(md_ldm_infer_open_clip(st, MD_LDM_SDXL_TE2_PREFIX, 0, 1, &m->te2_cfg, err));
        break;
    }
    return MD_OK;
}

static md_status configs(md_model *m, const md_safetensors *st, const md_model_options *opt,
                         const overrides *o, md_error *err)
{
    /* Inferred first (only where no override exists: tiny or unusual
     * models may not be inferable at all), then the .yaml, then overrides. */
    if (!o->unet)
        MD_TRY(md_ldm_infer_unet(st, m->family, &m->unet_cfg, err));
    if (!o->vae)
        MD_TRY(md_ldm_infer_vae(st, m->family, &m->vae_cfg, err));
    MD_TRY(infer_text_encoders(m, st, o, err));
    md_ldm_sched_defaults(m->family, &m->sched_cfg);
    if (opt->config_yaml) {
        md_ldm_yaml y;
        MD_TRY(md_ldm_yaml_read(opt->config_yaml, &y, err));
        md_unet_config u = m->unet_cfg;
        md_vae_config v = m->vae_cfg;
        md_sched_config s = m->sched_cfg;
        MD_TRY(md_ldm_yaml_apply(&y, opt->config_yaml, &u, &v, &s, err));
        if (!o->unet)
            MD_TRY(md_unet_config_validate(&u, opt->config_yaml, err));
        m->unet_cfg = u;
        m->vae_cfg = v;
        m->sched_cfg = s;
    }
    if (o->unet)
        MD_TRY(md_unet_config_from_json(o->unet, "architecture.unet", &m->unet_cfg, err));
    if (o->vae)
        MD_TRY(md_vae_config_from_json(o->vae, "architecture.vae", &m->vae_cfg, err));
    if (o->te)
        MD_TRY(md_clip_config_from_json(o->te, "architecture.text_encoder", &m->te_cfg, err));
    if (o->te2 && m->family == MD_FAMILY_SDXL)
        MD_TRY(md_clip_config_from_json(o->te2, "architecture.text_encoder_2", &m->te2_cfg, err));
    if (o->sched)
        MD_TRY(md_sched_config_from_json(o->sched, "architecture.scheduler", &m->sched_cfg, err));
    return MD_OK;
}

/* The builtin vocabulary; OpenCLIP encoders pad with '!' (id 0), CLIP-L
 * with the end token. */
static md_status tokenizer(md_tokenizer **tok, int32_t *pad, int open_clip, const char *path,
                           md_error *err)
{
    MD_TRY(md_tokenizer_load_builtin(tok, err));
    *pad = open_clip ? md_tokenizer_token_id(*tok, "!") : md_tokenizer_eos(*tok);
    if (*pad < 0)
        return md_fail(err, MD_ERR_FORMAT, "%s: the builtin vocabulary has no '!' token", path);
    return MD_OK;
}

/* A JSON object stored as the metadata string `key`; *out NULL when the
 * key is absent. */
static md_status metadata_json(const md_safetensors *st, const char *key, cJSON **out,
                               md_error *err)
{
    *out = NULL;
    const char *text = md_safetensors_metadata(st, key);
    if (!text)
        return MD_OK;
    cJSON *j = cJSON_Parse(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return md_fail(err, MD_ERR_FORMAT, "%s: __metadata__ \"%s\" is not a JSON object",
                       md_safetensors_path(st), key);
    }
    *out = j;
    return MD_OK;
}

/* The component config from the options' architecture, else from the
 * file's own "architecture" metadata. */
static const cJSON *component(const md_model_options *opt, const cJSON *meta, const char *name)
{
    const cJSON *c = md_model_override(opt, name);
    if (c || !meta)
        return c;
    c = cJSON_GetObjectItemCaseSensitive(meta, name);
    return cJSON_IsObject(c) ? c : NULL;
}

/* An MoE single file may carry its MoE settings as the metadata string
 * "segmoe_config" or "moe_config" (the JSON object of unet/config.json).
 * They apply to a U-Net config that has none of its own (inferred, or an
 * architecture without MoE members); one that has them wins. */
static md_status metadata_moe(md_model *m, const md_safetensors *st, md_error *err)
{
    const char *path = md_safetensors_path(st);
    cJSON *seg, *own;
    MD_TRY(metadata_json(st, "segmoe_config", &seg, err));
    md_status s = metadata_json(st, "moe_config", &own, err);
    if (s == MD_OK && seg && own)
        s = md_fail(err, MD_ERR_INVALID,
                    "%s: __metadata__ has both \"segmoe_config\" and \"moe_config\"", path);
    if (s == MD_OK && (seg || own) && m->unet_cfg.moe.num_experts == 0) {
        char label[600];
        snprintf(label, sizeof label, "%s: __metadata__", path);
        md_unet_config u = m->unet_cfg;
        s = md_moe_config_from_json(seg ? seg : own, seg != NULL, u.levels, label, &u.moe, err);
        if (s == MD_OK)
            s = md_unet_config_validate(&u, label, err);
        if (s == MD_OK)
            m->unet_cfg = u;
    }
    cJSON_Delete(seg);
    cJSON_Delete(own);
    if (s != MD_OK || m->unet_cfg.moe.num_experts > 0)
        return s;
    /* Expert weights with no MoE config would otherwise fail as a missing
     * dense weight, which does not say what is wrong. */
    for (size_t i = 0; i < md_safetensors_count(st); i++) {
        const char *key = md_safetensors_name(st, i);
        if (!strncmp(key, MD_LDM_UNET_PREFIX, strlen(MD_LDM_UNET_PREFIX)) &&
            (strstr(key, ".gate.weight") || strstr(key, ".experts.0.")))
            return md_fail(err, MD_ERR_FORMAT,
                           "%s: the U-Net has MoE weights ('%s') but no MoE config: a single "
                           "file needs the __metadata__ entry \"segmoe_config\" or "
                           "\"moe_config\" (or an architecture whose unet has one; "
                           "docs/moe-config.md, \"Single files\")",
                           path, key);
    }
    return MD_OK;
}

/* Missing U-Net weights are named by their key in the file. */
static int unet_key(void *user, const char *name, char *key, size_t cap)
{
    return md_ldm_unet_key(user, name, key, cap);
}

md_status md_model_load_single(md_model *m, const char *file, const md_model_options *opt,
                               md_error *err)
{
    md_safetensors *st;
    MD_TRY(md_model_open_file(m, file, &st, err));
    MD_TRY(md_ldm_detect_family(st, &m->family, err));
    cJSON *arch;
    MD_TRY(metadata_json(st, "architecture", &arch, err));
    overrides o = {component(opt, arch, "unet"), component(opt, arch, "vae"),
                   component(opt, arch, "text_encoder"), component(opt, arch, "text_encoder_2"),
                   component(opt, arch, "scheduler")};
    md_status cs = configs(m, st, opt, &o, err);
    cJSON_Delete(arch);
    MD_TRY(cs);
    MD_TRY(metadata_moe(m, st, err));
    m->force_zeros_for_empty_prompt = m->family == MD_FAMILY_SDXL;

    md_weights *te, *te2 = NULL, *unet, *vae;
    MD_TRY(md_model_new_weights(m, "unet", &unet, err));
    md_weights_set_key_namer(unet, unet_key, &m->unet_cfg);
    MD_TRY(md_ldm_rename_unet(st, &m->unet_cfg, unet, err));
    MD_TRY(md_model_new_weights(m, "vae", &vae, err));
    MD_TRY(md_ldm_rename_vae(st, &m->vae_cfg, vae, err));
    MD_TRY(md_model_new_weights(m, "text_encoder", &te, err));
    switch (m->family) {
    case MD_FAMILY_SD1:
        MD_TRY(md_ldm_rename_clip(st, MD_LDM_SD1_TE_PREFIX, te, err));
        MD_TRY(tokenizer(&m->tokenizer, &m->pad_id, 0, file, err));
        break;
    case MD_FAMILY_SD2:
        MD_TRY(md_ldm_rename_open_clip(st, MD_LDM_SD2_TE_PREFIX, m->te_cfg.num_layers,
                                       m->te_cfg.projection_dim > 0, te, err));
        MD_TRY(tokenizer(&m->tokenizer, &m->pad_id, 1, file, err));
        break;
    case MD_FAMILY_SDXL:
        MD_TRY(md_ldm_rename_clip(st, MD_LDM_SDXL_TE1_PREFIX, te, err));
        MD_TRY(md_model_new_weights(m, "text_encoder_2", &te2, err));
        MD_TRY(md_ldm_rename_open_clip(st, MD_LDM_SDXL_TE2_PREFIX, m->te2_cfg.num_layers,
                                       m->te2_cfg.projection_dim > 0, te2, err));
        MD_TRY(tokenizer(&m->tokenizer, &m->pad_id, 0, file, err));
        MD_TRY(tokenizer(&m->tokenizer2, &m->pad_id2, 1, file, err));
        break;
    }
    return md_model_build(m, te, te2, unet, vae, opt->backend, err);
}
