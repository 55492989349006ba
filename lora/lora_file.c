/* LoRA file keys -> entries (layouts: lora_file.h). */
#include "lora_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum role { ROLE_DOWN, ROLE_UP, ROLE_ALPHA } role;

typedef struct prefix_rule {
    const char *prefix;
    md_lora_part part;
    int underscored;
} prefix_rule;

/* Longer prefixes first: "text_encoder_2." also starts with "text_encoder". */
static const prefix_rule PREFIXES[] = {
    {"lora_unet_", MD_LORA_UNET, 1},       {"lora_te1_", MD_LORA_TE, 1},
    {"lora_te2_", MD_LORA_TE2, 1},         {"lora_te_", MD_LORA_TE, 1},
    {"unet.", MD_LORA_UNET, 0},            {"text_encoder_2.", MD_LORA_TE2, 0},
    {"text_encoder.", MD_LORA_TE, 0},
};

typedef struct suffix_rule {
    const char *suffix;
    role role;
} suffix_rule;

/* ".down.weight" / ".up.weight" last: they end the longer forms too and
 * alone mean the attention-processor layout. */
static const suffix_rule SUFFIXES[] = {
    {".lora_down.weight", ROLE_DOWN},
    {".lora_up.weight", ROLE_UP},
    {".lora.down.weight", ROLE_DOWN},
    {".lora.up.weight", ROLE_UP},
    {".lora_linear_layer.down.weight", ROLE_DOWN},
    {".lora_linear_layer.up.weight", ROLE_UP},
    {".lora_A.weight", ROLE_DOWN},
    {".lora_B.weight", ROLE_UP},
    {".lora_A.default.weight", ROLE_DOWN},
    {".lora_B.default.weight", ROLE_UP},
    {".alpha", ROLE_ALPHA},
    {".down.weight", ROLE_DOWN},
    {".up.weight", ROLE_UP},
};

/* The attention-processor layout names the projection inside the
 * processor: "<attn>.processor.to_out_lora" is "<attn>.to_out.0". */
static const char *const PROCESSOR_MAP[][2] = {
    {"to_q_lora", "to_q"}, {"to_k_lora", "to_k"}, {"to_v_lora", "to_v"}, {"to_out_lora", "to_out.0"}};

const char *md_lora_part_label(md_lora_part part)
{
    switch (part) {
    case MD_LORA_UNET: return "unet";
    case MD_LORA_TE: return "text_encoder";
    case MD_LORA_TE2: return "text_encoder_2";
    }
    return "?";
}

static int ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static int is_pickle_name(const char *path)
{
    return ends_with(path, ".pt") || ends_with(path, ".ckpt") || ends_with(path, ".bin") ||
           ends_with(path, ".pth");
}

/* Module path from the key stem of the diffusers layout (after the
 * component prefix); 0 when it does not fit. */
static int diffusers_module(const char *stem, int processor_form, char *out, size_t cap)
{
    if (!processor_form)
        return (size_t)snprintf(out, cap, "%s", stem) < cap;
    const char *p = strstr(stem, ".processor.");
    if (!p)
        return 0;
    for (size_t i = 0; i < sizeof PROCESSOR_MAP / sizeof *PROCESSOR_MAP; i++)
        if (strcmp(p + 11, PROCESSOR_MAP[i][0]) == 0)
            return (size_t)snprintf(out, cap, "%.*s.%s", (int)(p - stem), stem,
                                    PROCESSOR_MAP[i][1]) < cap;
    return 0;
}

static md_lora_entry *entry_for(md_lora_file *f, int *cap, md_lora_part part, const char *module,
                                int underscored, const char *stem)
{
    for (int i = 0; i < f->count; i++)
        if (f->entries[i].part == part && strcmp(f->entries[i].module, module) == 0)
            return &f->entries[i];
    if (f->count == *cap) {
        int ncap = *cap ? 2 * *cap : 64;
        md_lora_entry *ne = realloc(f->entries, sizeof *ne * (size_t)ncap);
        if (!ne)
            return NULL;
        f->entries = ne;
        *cap = ncap;
    }
    md_lora_entry *e = &f->entries[f->count++];
    memset(e, 0, sizeof *e);
    e->part = part;
    e->underscored = underscored;
    e->alpha = NAN;
    snprintf(e->module, sizeof e->module, "%s", module);
    snprintf(e->key, sizeof e->key, "%s", stem);
    return e;
}

static int is_float(md_dtype dt)
{
    return dt == MD_F32 || dt == MD_F16 || dt == MD_BF16;
}

static md_status read_alpha(const md_lora_file *f, const char *key, const md_tensor *t,
                            float *alpha, md_error *err)
{
    if (md_tensor_numel(t) != 1 || !(is_float(t->dtype) || t->dtype == MD_F64))
        return md_fail(err, MD_ERR_FORMAT, "%s: %s: alpha must be one float value (got %s, %lld "
                       "values)", f->path, key, md_dtype_name(t->dtype),
                       (long long)md_tensor_numel(t));
    if (t->dtype == MD_F64) {
        double d;
        memcpy(&d, t->data, sizeof d);
        *alpha = (float)d;
    } else {
        md_widen_to_f32(t->dtype, t->data, alpha, 1);
    }
    if (!isfinite(*alpha))
        return md_fail(err, MD_ERR_FORMAT, "%s: %s: alpha is not finite", f->path, key);
    return MD_OK;
}

static md_status add_key(md_lora_file *f, int *cap, const char *name, const md_tensor *t,
                         md_error *err)
{
    const prefix_rule *pr = NULL;
    for (size_t i = 0; i < sizeof PREFIXES / sizeof *PREFIXES && !pr; i++)
        if (strncmp(name, PREFIXES[i].prefix, strlen(PREFIXES[i].prefix)) == 0)
            pr = &PREFIXES[i];
    const suffix_rule *sr = NULL;
    for (size_t i = 0; i < sizeof SUFFIXES / sizeof *SUFFIXES && !sr; i++)
        if (ends_with(name, SUFFIXES[i].suffix))
            sr = &SUFFIXES[i];
    size_t lp = pr ? strlen(pr->prefix) : 0, ls = sr ? strlen(sr->suffix) : 0;
    if (strlen(name) >= MD_LORA_NAME_MAX)
        return md_fail(err, MD_ERR_FORMAT, "%s: key %.64s... is longer than %d characters",
                       f->path, name, MD_LORA_NAME_MAX - 1);
    if (!pr || !sr || strlen(name) <= lp + ls)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: key %s is not a LoRA key of a known layout (lora_unet_*, lora_te_*, "
                       "unet.*, text_encoder.* with lora_down/lora_up/alpha or lora.down/up, "
                       "lora_A/lora_B)",
                       f->path, name);
    char stem[MD_LORA_NAME_MAX], module[MD_LORA_NAME_MAX];
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(name) - ls), name);
    const char *path = stem + lp;
    if (pr->underscored && !(ends_with(name, ".lora_down.weight") ||
                             ends_with(name, ".lora_up.weight") || ends_with(name, ".alpha")))
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: key %s: kohya keys end in .lora_down.weight, .lora_up.weight or .alpha",
                       f->path, name);
    /* A bare ".down.weight" / ".up.weight" is the attention-processor form. */
    int processor_form = !pr->underscored && (strcmp(sr->suffix, ".down.weight") == 0 ||
                                              strcmp(sr->suffix, ".up.weight") == 0);
    if (pr->underscored)
        snprintf(module, sizeof module, "%s", path);
    else if (!diffusers_module(path, processor_form, module, sizeof module))
        return md_fail(err, MD_ERR_FORMAT, "%s: key %s: cannot tell which module it changes",
                       f->path, name);
    md_lora_entry *e = entry_for(f, cap, pr->part, module, pr->underscored, stem);
    if (!e)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", f->path);
    if (sr->role == ROLE_ALPHA)
        return read_alpha(f, name, t, &e->alpha, err);
    const md_tensor **slot = sr->role == ROLE_DOWN ? &e->down : &e->up;
    if (*slot)
        return md_fail(err, MD_ERR_FORMAT, "%s: key %s: a second %s matrix for module %s", f->path,
                       name, sr->role == ROLE_DOWN ? "down" : "up", module);
    if (!is_float(t->dtype) || (t->ndim != 2 && t->ndim != 4))
        return md_fail(err, MD_ERR_FORMAT, "%s: key %s: expected a 2-d or 4-d float matrix, got "
                       "%s with %d dims", f->path, name, md_dtype_name(t->dtype), t->ndim);
    *slot = t;
    return MD_OK;
}

/* Both matrices present, ranks agree, up is [out, rank(, 1, 1)]. */
static md_status check_entry(const md_lora_file *f, md_lora_entry *e, md_error *err)
{
    char a[64], b[64];
    if (!e->down || !e->up)
        return md_fail(err, MD_ERR_FORMAT, "%s: %s: has no %s matrix", f->path, e->key,
                       e->down ? "up" : "down");
    int64_t rank = e->down->shape[0];
    if (rank < 1 || rank > 65536 || e->up->shape[1] != rank ||
        (e->up->ndim == 4 && (e->up->shape[2] != 1 || e->up->shape[3] != 1)) ||
        (e->down->ndim == 2 && e->up->ndim == 4))
        return md_fail(err, MD_ERR_FORMAT, "%s: %s: down %s and up %s do not form a LoRA pair "
                       "(down [rank, in(, kh, kw)], up [out, rank(, 1, 1)])", f->path, e->key,
                       md_shape_str(e->down, a, sizeof a), md_shape_str(e->up, b, sizeof b));
    e->rank = (int)rank;
    if (isnan(e->alpha))
        e->alpha = (float)rank;
    return MD_OK;
}

md_status md_lora_file_open(const char *path, md_lora_file **out, md_error *err)
{
    *out = NULL;
    if (is_pickle_name(path))
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: a pickle checkpoint; loading one can run code, so only .safetensors "
                       "LoRA files are read (convert it first)", path);
    md_lora_file *f = calloc(1, sizeof *f);
    if (!f)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    snprintf(f->path, sizeof f->path, "%s", path);
    md_status s = md_safetensors_open(path, &f->st, err);
    int cap = 0;
    size_t n = s == MD_OK ? md_safetensors_count(f->st) : 0;
    for (size_t i = 0; s == MD_OK && i < n; i++)
        s = add_key(f, &cap, md_safetensors_name(f->st, i), md_safetensors_tensor(f->st, i), err);
    for (int i = 0; s == MD_OK && i < f->count; i++)
        s = check_entry(f, &f->entries[i], err);
    if (s == MD_OK && f->count == 0)
        s = md_fail(err, MD_ERR_FORMAT, "%s: holds no LoRA weights", path);
    if (s != MD_OK) {
        md_lora_file_free(f);
        return s;
    }
    *out = f;
    return MD_OK;
}

void md_lora_file_free(md_lora_file *f)
{
    if (!f)
        return;
    if (f->st)
        md_safetensors_close(f->st);
    free(f->entries);
    free(f);
}
