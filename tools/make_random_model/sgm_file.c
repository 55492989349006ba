/* Writes synthesized SDXL components as one SGM-layout checkpoint, the
 * form of SDXL single-file releases: conditioner.embedders.0 (HF CLIP-L),
 * conditioner.embedders.1 (OpenCLIP bigG with packed in_proj and a
 * transposed text_projection), model.diffusion_model, first_stage_model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "random_model.h"
#include "sgm_names.h"

typedef struct entry_list {
    md_safetensors_entry *e;
    char **names;
    void **owned; /* converted data, else NULL */
    size_t n, cap;
} entry_list;

static int push(entry_list *l, const char *key, const md_tensor *t, void *owned)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1024;
        md_safetensors_entry *e = realloc(l->e, cap * sizeof *e);
        if (e)
            l->e = e;
        char **names = realloc(l->names, cap * sizeof *names);
        if (names)
            l->names = names;
        void **owned_list = realloc(l->owned, cap * sizeof *owned_list);
        if (owned_list)
            l->owned = owned_list;
        if (!e || !names || !owned_list) {
            free(owned);
            return 0;
        }
        l->cap = cap;
    }
    l->names[l->n] = strdup(key);
    if (!l->names[l->n]) {
        free(owned);
        return 0;
    }
    l->e[l->n].name = l->names[l->n];
    l->e[l->n].tensor = *t;
    l->owned[l->n] = owned;
    l->n++;
    return 1;
}

static void entry_list_free(entry_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->names[i]);
        free(l->owned[i]);
    }
    free(l->e);
    free(l->names);
    free(l->owned);
}

/* [r, c] -> [c, r] */
static int push_transposed(entry_list *l, const char *key, const md_tensor *t)
{
    if (t->ndim != 2)
        return 0;
    int64_t r = t->shape[0], c = t->shape[1];
    size_t es = md_dtype_size(t->dtype);
    char *dst = malloc((size_t)(r * c) * es);
    if (!dst)
        return 0;
    const char *src = t->data;
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < c; j++)
            memcpy(dst + (size_t)(j * r + i) * es, src + (size_t)(i * c + j) * es, es);
    md_tensor tt = {.dtype = t->dtype, .ndim = 2, .shape = {c, r}, .data = dst};
    return push(l, key, &tt, dst);
}

/* q, k, v (same shape) stacked along dim 0; `name` is q's diffusers name. */
static int push_packed_qkv(entry_list *l, const char *key, md_weights *w, const char *name)
{
    const md_tensor *parts[3];
    char other[256];
    const char *at = strstr(name, "q_proj.");
    if (!at)
        return 0;
    for (int k = 0; k < 3; k++) {
        snprintf(other, sizeof other, "%.*s%c%s", (int)(at - name), name, "qkv"[k], at + 1);
        parts[k] = md_weights_find(w, other);
        if (!parts[k] || parts[k]->dtype != parts[0]->dtype || parts[k]->ndim != parts[0]->ndim ||
            md_tensor_numel(parts[k]) != md_tensor_numel(parts[0]))
            return 0;
    }
    size_t bytes = (size_t)md_tensor_numel(parts[0]) * md_dtype_size(parts[0]->dtype);
    char *dst = malloc(3 * bytes);
    if (!dst)
        return 0;
    for (int k = 0; k < 3; k++)
        memcpy(dst + k * bytes, parts[k]->data, bytes);
    md_tensor t = *parts[0];
    t.shape[0] *= 3;
    t.data = dst;
    return push(l, key, &t, dst);
}

static int fail(char *msg, size_t cap, const char *what, const char *name)
{
    snprintf(msg, cap, "%s: no SGM key for '%s'", what, name);
    return 0;
}

static int add_components(entry_list *l, const md_unet_config *unet, const md_vae_config *vae,
                          md_weights *te, md_weights *te2, md_weights *wu, md_weights *wv,
                          char *msg, size_t cap)
{
    char key[320];
    for (size_t i = 0; i < md_weights_count(te); i++) {
        snprintf(key, sizeof key, MD_LDM_SDXL_TE1_PREFIX "%s", md_weights_name(te, i));
        if (!push(l, key, md_weights_tensor(te, i), NULL))
            return fail(msg, cap, "text_encoder", md_weights_name(te, i));
    }
    for (size_t i = 0; i < md_weights_count(te2); i++) {
        const char *name = md_weights_name(te2, i);
        const md_tensor *t = md_weights_tensor(te2, i);
        int qkv, ok;
        if (!rm_sgm_open_clip_key(name, key, sizeof key, &qkv))
            return fail(msg, cap, "text_encoder_2", name);
        if (qkv == 0)
            ok = push_packed_qkv(l, key, te2, name);
        else if (qkv > 0)
            ok = 1; /* packed with q */
        else if (!strcmp(name, "text_projection.weight"))
            ok = push_transposed(l, key, t);
        else
            ok = push(l, key, t, NULL);
        if (!ok)
            return fail(msg, cap, "text_encoder_2", name);
    }
    for (size_t i = 0; i < md_weights_count(wu); i++) {
        const char *name = md_weights_name(wu, i);
        if (!rm_sgm_unet_key(unet, name, key, sizeof key) ||
            !push(l, key, md_weights_tensor(wu, i), NULL))
            return fail(msg, cap, "unet", name);
    }
    for (size_t i = 0; i < md_weights_count(wv); i++) {
        const char *name = md_weights_name(wv, i);
        md_tensor t = *md_weights_tensor(wv, i);
        int unsqueeze;
        if (!rm_sgm_vae_key(vae, name, key, sizeof key, &unsqueeze))
            return fail(msg, cap, "vae", name);
        if (unsqueeze && t.ndim == 2) {
            t.ndim = 4;
            t.shape[2] = t.shape[3] = 1;
        }
        if (!push(l, key, &t, NULL))
            return fail(msg, cap, "vae", name);
    }
    return 1;
}

int rm_write_sgm_file(const char *path, const md_unet_config *unet, const md_vae_config *vae,
                      md_weights *te, md_weights *te2, md_weights *wu, md_weights *wv, char *msg,
                      size_t cap)
{
    entry_list l = {0};
    int ok = add_components(&l, unet, vae, te, te2, wu, wv, msg, cap);
    if (ok) {
        md_error err = {0};
        ok = md_safetensors_write(path, l.e, l.n, &err) == MD_OK;
        if (!ok)
            snprintf(msg, cap, "%s", err.msg);
    }
    entry_list_free(&l);
    return ok;
}
