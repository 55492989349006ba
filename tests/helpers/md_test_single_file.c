/* md-test-single-file DIR OUT [--drop KEY] [--no-moe-config] [--infer-unet]:
 * writes an SD 1.x diffusers folder (unet, vae, text_encoder, scheduler)
 * as one original-LDM checkpoint OUT: model.diffusion_model.* (MoE layers
 * keep their diffusers suffixes:
 * ...transformer_blocks.0.ff.experts.1.net.0.proj.weight),
 * first_stage_model.*, cond_stage_model.transformer.*, tensors unchanged
 * (same dtypes and values). The metadata carries what the shapes cannot
 * tell: "architecture" (the component configs, the U-Net's without its MoE
 * member) and the U-Net's "segmoe_config" or "moe_config" as its own key,
 * the layout docs/moe-config.md ("Single files") describes. --drop KEY
 * leaves the tensor KEY (its key in OUT) out, --no-moe-config the MoE
 * settings (the experts' tensors stay), for tests of the errors;
 * --infer-unet leaves the U-Net out of the "architecture" entry (the
 * loader then infers its config from the shapes, as for most published
 * files, and takes only the MoE settings from the metadata).
 * Exit 0 on success, 1 on failure, 2 on usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_json.h"
#include "io/safetensors.h"
#include "models/ldm_names.h"
#include "tools/make_random_model/sgm_names.h"

typedef struct writer {
    md_safetensors_entry *e;
    char **names;
    size_t n, cap;
} writer;

static int push(writer *w, const char *key, const md_tensor *t, const char *drop, int *dropped)
{
    if (drop && !strcmp(key, drop)) {
        *dropped = 1;
        return 1;
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 512;
        md_safetensors_entry *e = realloc(w->e, cap * sizeof *e);
        if (!e)
            return 0;
        w->e = e;
        char **names = realloc(w->names, cap * sizeof *names);
        if (!names)
            return 0;
        w->names = names;
        w->cap = cap;
    }
    w->names[w->n] = strdup(key);
    if (!w->names[w->n])
        return 0;
    w->e[w->n].name = w->names[w->n];
    w->e[w->n].tensor = *t;
    w->n++;
    return 1;
}

static int fail(const char *what, const char *detail)
{
    fprintf(stderr, "md-test-single-file: %s%s%s\n", what, detail ? ": " : "",
            detail ? detail : "");
    return 0;
}

/* DIR/rel as JSON (j) or as a safetensors file (st). */
static int load(const char *dir, const char *rel, cJSON **j, md_safetensors **st)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    md_error err = {0};
    md_status s = j ? md_json_read_file(path, j, &err) : md_safetensors_open(path, st, &err);
    return s == MD_OK ? 1 : fail(err.msg, NULL);
}

static int convert(const char *dir, const char *out, const char *drop, int no_moe, int infer_unet)
{
    cJSON *unet_j = NULL, *vae_j = NULL, *te_j = NULL, *sched_j = NULL, *arch = NULL, *moe = NULL;
    md_safetensors *su = NULL, *sv = NULL, *st = NULL;
    writer w = {0};
    char *moe_text = NULL, *arch_text = NULL;
    int ok = load(dir, "unet/config.json", &unet_j, NULL) &&
             load(dir, "vae/config.json", &vae_j, NULL) &&
             load(dir, "text_encoder/config.json", &te_j, NULL) &&
             load(dir, "scheduler/scheduler_config.json", &sched_j, NULL) &&
             load(dir, "unet/diffusion_pytorch_model.safetensors", NULL, &su) &&
             load(dir, "vae/diffusion_pytorch_model.safetensors", NULL, &sv) &&
             load(dir, "text_encoder/model.safetensors", NULL, &st);
    md_unet_config uc;
    md_vae_config vc;
    md_error err = {0};
    if (ok && (md_unet_config_from_json(unet_j, "unet/config.json", &uc, &err) != MD_OK ||
               md_vae_config_from_json(vae_j, "vae/config.json", &vc, &err) != MD_OK))
        ok = fail(err.msg, NULL);
    int dropped = 0;
    char key[320];
    for (size_t i = 0; ok && su && i < md_safetensors_count(su); i++) {
        const char *name = md_safetensors_name(su, i);
        if (!rm_sgm_unet_key(&uc, name, key, sizeof key))
            ok = fail("unet: no LDM key for", name);
        else
            ok = push(&w, key, md_safetensors_tensor(su, i), drop, &dropped);
    }
    for (size_t i = 0; ok && sv && i < md_safetensors_count(sv); i++) {
        const char *name = md_safetensors_name(sv, i);
        md_tensor t = *md_safetensors_tensor(sv, i);
        int unsqueeze;
        if (!rm_sgm_vae_key(&vc, name, key, sizeof key, &unsqueeze)) {
            ok = fail("vae: no LDM key for", name);
            break;
        }
        if (unsqueeze && t.ndim == 2) {
            t.ndim = 4;
            t.shape[2] = t.shape[3] = 1;
        }
        ok = push(&w, key, &t, drop, &dropped);
    }
    for (size_t i = 0; ok && st && i < md_safetensors_count(st); i++) {
        snprintf(key, sizeof key, MD_LDM_SD1_TE_PREFIX "%s", md_safetensors_name(st, i));
        ok = push(&w, key, md_safetensors_tensor(st, i), drop, &dropped);
    }
    if (ok && drop && !dropped)
        ok = fail("--drop: no such tensor", drop);

    /* the MoE member goes to its own metadata key */
    const char *moe_key = NULL;
    if (ok) {
        const char *keys[] = {"segmoe_config", "moe_config"};
        for (int k = 0; k < 2 && !moe_key; k++) {
            cJSON *m = cJSON_GetObjectItemCaseSensitive(unet_j, keys[k]);
            if (m && !cJSON_IsNull(m)) {
                moe = cJSON_DetachItemViaPointer(unet_j, m);
                moe_key = keys[k];
            }
        }
        arch = cJSON_CreateObject();
        ok = arch && (infer_unet || cJSON_AddItemReferenceToObject(arch, "unet", unet_j)) &&
             cJSON_AddItemReferenceToObject(arch, "vae", vae_j) &&
             cJSON_AddItemReferenceToObject(arch, "text_encoder", te_j) &&
             cJSON_AddItemReferenceToObject(arch, "scheduler", sched_j) &&
             (arch_text = cJSON_PrintUnformatted(arch)) != NULL &&
             (!moe || (moe_text = cJSON_PrintUnformatted(moe)) != NULL);
        if (!ok)
            fail("out of memory", NULL);
    }
    if (ok) {
        if (no_moe)
            moe_key = NULL;
        const char *meta[4] = {"architecture", arch_text, moe_key, moe_text};
        if (md_safetensors_write_meta(out, w.e, w.n, meta, moe_key ? 2 : 1, &err) != MD_OK)
            ok = fail(err.msg, NULL);
    }
    if (ok)
        printf("md-test-single-file: wrote %zu tensors to %s%s%s\n", w.n, out,
               moe_key ? " with " : "", moe_key ? moe_key : "");
    for (size_t i = 0; i < w.n; i++)
        free(w.names[i]);
    free(w.names);
    free(w.e);
    cJSON_free(arch_text);
    cJSON_free(moe_text);
    cJSON_Delete(arch);
    cJSON_Delete(moe);
    cJSON_Delete(unet_j);
    cJSON_Delete(vae_j);
    cJSON_Delete(te_j);
    cJSON_Delete(sched_j);
    if (su)
        md_safetensors_close(su);
    if (sv)
        md_safetensors_close(sv);
    if (st)
        md_safetensors_close(st);
    return ok;
}

int main(int argc, char **argv)
{
    const char *drop = NULL;
    int no_moe = 0, infer_unet = 0, bad = argc < 3;
    for (int i = 3; i < argc && !bad; i++) {
        if (!strcmp(argv[i], "--drop") && i + 1 < argc)
            drop = argv[++i];
        else if (!strcmp(argv[i], "--no-moe-config"))
            no_moe = 1;
        else if (!strcmp(argv[i], "--infer-unet"))
            infer_unet = 1;
        else
            bad = 1;
    }
    if (bad) {
        fprintf(stderr, "usage: md-test-single-file DIR OUT [--drop KEY] [--no-moe-config] "
                        "[--infer-unet]\n");
        return 2;
    }
    return convert(argv[1], argv[2], drop, no_moe, infer_unet) ? 0 : 1;
}
