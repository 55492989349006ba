/* Text encoders of single files -> HF CLIPTextModel names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldm_names.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

md_status md_ldm_rename_clip(const md_safetensors *st, const char *prefix, md_weights *out,
                             md_error *err)
{
    const char *path = md_safetensors_path(st);
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < md_safetensors_count(st); i++) {
        const char *key = md_safetensors_name(st, i);
        if (strncmp(key, prefix, plen) != 0)
            continue;
        const char *rest = key + plen;
        /* a buffer of HF's module, not a weight */
        if (ends_with(rest, "embeddings.position_ids"))
            continue;
        char name[256];
        /* Old transformers versions saved the text model without the
         * text_model. level. */
        if (!strncmp(rest, "text_model.", 11))
            snprintf(name, sizeof name, "%s", rest);
        else
            snprintf(name, sizeof name, "text_model.%s", rest);
        md_status s = md_weights_add(out, name, md_safetensors_tensor(st, i), path, err);
        if (s != MD_OK)
            return s;
    }
    return MD_OK;
}

/* Parses "transformer.resblocks.N." and returns what follows, or NULL. */
static const char *resblock(const char *rest, int *n)
{
    const char *p = "transformer.resblocks.";
    size_t pl = strlen(p);
    if (strncmp(rest, p, pl) != 0)
        return NULL;
    rest += pl;
    int v = 0, digits = 0;
    while (*rest >= '0' && *rest <= '9' && digits < 6) {
        v = v * 10 + (*rest++ - '0');
        digits++;
    }
    if (!digits || *rest != '.')
        return NULL;
    *n = v;
    return rest + 1;
}

int md_ldm_open_clip_layers(const md_safetensors *st, const char *prefix)
{
    size_t plen = strlen(prefix);
    int layers = 0;
    for (size_t i = 0; i < md_safetensors_count(st); i++) {
        const char *key = md_safetensors_name(st, i);
        int n;
        if (!strncmp(key, prefix, plen) && resblock(key + plen, &n) && n + 1 > layers)
            layers = n + 1;
    }
    return layers;
}

/* in_proj_weight [3W, W] / in_proj_bias [3W] -> q, k, v row-slice views. */
static md_status split_qkv(md_weights *out, const char *layer, const md_tensor *t, int is_weight,
                           const char *path, const char *key, md_error *err)
{
    if (t->ndim != (is_weight ? 2 : 1) || t->shape[0] % 3 != 0 ||
        (is_weight && t->shape[0] != 3 * t->shape[1]))
        return md_fail(err, MD_ERR_FORMAT, "%s: '%s' is not a [3W%s] in-projection", path, key,
                       is_weight ? ", W" : "");
    static const char *const names[3] = {"q_proj", "k_proj", "v_proj"};
    int64_t rows = t->shape[0] / 3;
    size_t row_bytes = (is_weight ? (size_t)t->shape[1] : 1) * md_dtype_size(t->dtype);
    for (int k = 0; k < 3; k++) {
        md_tensor v = *t;
        v.shape[0] = rows;
        v.data = (char *)t->data + (size_t)k * (size_t)rows * row_bytes;
        char name[256];
        snprintf(name, sizeof name, "%sself_attn.%s.%s", layer, names[k], is_weight ? "weight" : "bias");
        md_status s = md_weights_add(out, name, &v, path, err);
        if (s != MD_OK)
            return s;
    }
    return MD_OK;
}

/* OpenCLIP stores text_projection as [W, P] for x @ P; HF's Linear wants
 * [P, W]. */
static md_status add_transposed(md_weights *out, const char *name, const md_tensor *t,
                                const char *path, const char *key, md_error *err)
{
    if (t->ndim != 2)
        return md_fail(err, MD_ERR_FORMAT, "%s: '%s' is not a 2-D projection", path, key);
    int64_t r = t->shape[0], c = t->shape[1];
    size_t es = md_dtype_size(t->dtype);
    char *dst = malloc((size_t)(r * c) * es + 1);
    if (!dst)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    const char *src = t->data;
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < c; j++)
            memcpy(dst + (size_t)(j * r + i) * es, src + (size_t)(i * c + j) * es, es);
    md_tensor tt = {.dtype = t->dtype, .ndim = 2, .shape = {c, r}, .data = dst};
    return md_weights_add_owned(out, name, &tt, path, err);
}

static const char *const layer_map[][2] = {
    {"ln_1.", "layer_norm1."},
    {"ln_2.", "layer_norm2."},
    {"mlp.c_fc.", "mlp.fc1."},
    {"mlp.c_proj.", "mlp.fc2."},
    {"attn.out_proj.", "self_attn.out_proj."},
};

static md_status rename_one(md_weights *out, const char *key, const char *rest, const md_tensor *t,
                            int layers, int with_projection, const char *path, int *handled,
                            md_error *err)
{
    char name[256];
    *handled = 1;
    if (!strcmp(rest, "token_embedding.weight"))
        return md_weights_add(out, "text_model.embeddings.token_embedding.weight", t, path, err);
    if (!strcmp(rest, "positional_embedding"))
        return md_weights_add(out, "text_model.embeddings.position_embedding.weight", t, path, err);
    if (!strcmp(rest, "ln_final.weight") || !strcmp(rest, "ln_final.bias")) {
        snprintf(name, sizeof name, "text_model.final_layer_norm.%s", rest + 9);
        return md_weights_add(out, name, t, path, err);
    }
    if (!strcmp(rest, "text_projection"))
        return with_projection ? add_transposed(out, "text_projection.weight", t, path, key, err)
                               : MD_OK;
    /* logit_scale pairs the text and image towers; attn_mask is the causal
     * mask as a buffer. Neither is a text-encoder weight. */
    if (!strcmp(rest, "logit_scale") || !strcmp(rest, "attn_mask"))
        return MD_OK;
    int n;
    const char *sub = resblock(rest, &n);
    if (sub) {
        if (n >= layers)
            return MD_OK;
        char layer[96];
        snprintf(layer, sizeof layer, "text_model.encoder.layers.%d.", n);
        if (!strcmp(sub, "attn.in_proj_weight"))
            return split_qkv(out, layer, t, 1, path, key, err);
        if (!strcmp(sub, "attn.in_proj_bias"))
            return split_qkv(out, layer, t, 0, path, key, err);
        for (size_t i = 0; i < sizeof layer_map / sizeof layer_map[0]; i++) {
            size_t ln = strlen(layer_map[i][0]);
            if (!strncmp(sub, layer_map[i][0], ln) &&
                (!strcmp(sub + ln, "weight") || !strcmp(sub + ln, "bias"))) {
                snprintf(name, sizeof name, "%s%s%s", layer, layer_map[i][1], sub + ln);
                return md_weights_add(out, name, t, path, err);
            }
        }
    }
    *handled = 0;
    return MD_OK;
}

md_status md_ldm_rename_open_clip(const md_safetensors *st, const char *prefix, int layers,
                                  int with_projection, md_weights *out, md_error *err)
{
    const char *path = md_safetensors_path(st);
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < md_safetensors_count(st); i++) {
        const char *key = md_safetensors_name(st, i);
        if (strncmp(key, prefix, plen) != 0)
            continue;
        int handled = 0;
        md_status s = rename_one(out, key, key + plen, md_safetensors_tensor(st, i), layers,
                                 with_projection, path, &handled, err);
        if (s != MD_OK)
            return s;
        if (!handled)
            return md_fail(err, MD_ERR_FORMAT, "%s: '%s' is not an OpenCLIP text-encoder weight",
                           path, key);
    }
    return MD_OK;
}
