/* LoRA entries -> the model weights they modify (rules: lora_bind.h). */
#include "lora_bind.h"

#include "../models/ldm_names.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The dense module path of a weight name: without ".weight" and without an
 * ".experts.<n>" segment; 0 when the name is not a ".weight". */
static int dense_module(const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    if (n <= 7 || strcmp(name + n - 7, ".weight") != 0 || n - 7 >= cap)
        return 0;
    memcpy(out, name, n - 7);
    out[n - 7] = 0;
    char *e = strstr(out, ".experts.");
    if (e) {
        char *d = e + 9;
        while (isdigit((unsigned char)*d))
            d++;
        if (d > e + 9 && (*d == '.' || *d == 0))
            memmove(e, d, strlen(d) + 1);
    }
    return 1;
}

/* The module equals the entry's path ('.' compared as '_' for kohya). */
static int module_matches(const char *module, const md_lora_entry *e)
{
    if (!e->underscored)
        return strcmp(module, e->module) == 0;
    const char *a = module, *k = e->module;
    for (; *a && *k; a++, k++)
        if ((*a == '.' ? '_' : *a) != *k)
            return 0;
    return *a == 0 && *k == 0;
}

static md_weights *find_map(md_weights *const *maps, int nmaps, md_lora_part part)
{
    for (int i = 0; i < nmaps; i++)
        if (strcmp(md_weights_label(maps[i]), md_lora_part_label(part)) == 0)
            return maps[i];
    return NULL;
}

/* up [out, r(,1,1)] @ down [r, in(, kh, kw)] has w's shape. */
static md_status check_shapes(const md_lora_file *f, const md_lora_entry *e, const char *wname,
                              const md_tensor *w, md_error *err)
{
    int ok = w->ndim >= 2 && e->up->shape[0] == w->shape[0] && e->down->shape[1] == w->shape[1];
    for (int d = 2; ok && d < 4; d++) {
        int64_t wd = d < w->ndim ? w->shape[d] : 1, dd = d < e->down->ndim ? e->down->shape[d] : 1;
        ok = wd == dd;
    }
    if (ok)
        return MD_OK;
    char a[64], b[64], c[64];
    return md_fail(err, MD_ERR_INVALID,
                   "%s: %s: LoRA up %s x down %s does not fit %s %s (a LoRA for another model?)",
                   f->path, e->key, md_shape_str(e->up, a, sizeof a),
                   md_shape_str(e->down, b, sizeof b), wname, md_shape_str(w, c, sizeof c));
}

static md_status push(md_lora_binding *b, const md_lora_target *t, md_error *err)
{
    if (b->count == b->cap) {
        int ncap = b->cap ? 2 * b->cap : 64;
        md_lora_target *nt = realloc(b->targets, sizeof *nt * (size_t)ncap);
        if (!nt)
            return md_fail(err, MD_ERR_NOMEM, "LoRA binding: out of memory");
        b->targets = nt;
        b->cap = ncap;
    }
    b->targets[b->count++] = *t;
    return MD_OK;
}

/* The LDM module path of each weight of a U-Net map (dense path, LDM
 * name, without prefix and ".weight"; "" where there is none), made once
 * per binding call when a kohya U-Net path needs it. */
typedef struct ldm_names {
    char (*names)[MD_LORA_NAME_MAX];
    size_t n;
} ldm_names;

static md_status ldm_names_make(ldm_names *l, const md_weights *map, const md_unet_config *cfg,
                                md_error *err)
{
    l->n = md_weights_count(map);
    l->names = calloc(l->n + 1, sizeof *l->names);
    if (!l->names)
        return md_fail(err, MD_ERR_NOMEM, "LoRA binding: out of memory");
    const size_t lp = strlen(MD_LDM_UNET_PREFIX);
    for (size_t i = 0; i < l->n; i++) {
        char dense[MD_LORA_NAME_MAX], name[MD_LORA_NAME_MAX + 8], key[MD_LORA_NAME_MAX + 64];
        if (!dense_module(md_weights_name(map, i), dense, sizeof dense))
            continue;
        snprintf(name, sizeof name, "%s.weight", dense);
        size_t n = md_ldm_unet_key(cfg, name, key, sizeof key) ? strlen(key) : 0;
        if (n > lp + 7 && strncmp(key, MD_LDM_UNET_PREFIX, lp) == 0 &&
            strcmp(key + n - 7, ".weight") == 0 && n - lp - 7 < MD_LORA_NAME_MAX)
            snprintf(l->names[i], MD_LORA_NAME_MAX, "%.*s", (int)(n - lp - 7), key + lp);
    }
    return MD_OK;
}

/* Appends the targets of one entry; *found = how many. With ldm, the
 * map's names are matched through their LDM names. */
static md_status bind_entry(md_lora_binding *b, md_weights *map, const ldm_names *ldm,
                            const md_lora_file *f, const md_lora_entry *e, float scale,
                            int *found, md_error *err)
{
    char module[MD_LORA_NAME_MAX];
    *found = 0;
    for (size_t i = 0; i < md_weights_count(map); i++) {
        const char *name = md_weights_name(map, i);
        if (ldm ? !ldm->names[i][0] || !module_matches(ldm->names[i], e)
                : !dense_module(name, module, sizeof module) || !module_matches(module, e))
            continue;
        md_lora_target t = {.w = md_weights_tensor(map, i), .entry = e,
                            .factor = scale * e->alpha / (float)e->rank};
        snprintf(t.name, sizeof t.name, "%s", name);
        MD_TRY(check_shapes(f, e, name, t.w, err));
        MD_TRY(push(b, &t, err));
        (*found)++;
    }
    return MD_OK;
}

md_status md_lora_bind_maps(md_lora_binding *b, md_weights *const *maps, int nmaps,
                            const md_unet_config *unet_cfg, const md_lora_file *f, float scale,
                            int allow_unmatched, md_error *err)
{
    ldm_names ldm = {0};
    const int start = b->count;
    int unmatched = 0;
    char list[1024] = "";
    md_status s = MD_OK;
    for (int i = 0; s == MD_OK && i < f->count; i++) {
        const md_lora_entry *e = &f->entries[i];
        md_weights *map = find_map(maps, nmaps, e->part);
        if (!map) {
            s = md_fail(err, MD_ERR_INVALID, "%s: %s: a LoRA for a %s, which this model does not "
                        "have (a LoRA for another model family?)", f->path, e->key,
                        md_lora_part_label(e->part));
            break;
        }
        int found = 0;
        s = bind_entry(b, map, NULL, f, e, scale, &found, err);
        if (s == MD_OK && !found && e->underscored && e->part == MD_LORA_UNET && unet_cfg) {
            if (!ldm.names)
                s = ldm_names_make(&ldm, map, unet_cfg, err);
            if (s == MD_OK)
                s = bind_entry(b, map, &ldm, f, e, scale, &found, err);
        }
        if (s == MD_OK && !found) {
            size_t len = strlen(list);
            if (unmatched++ < 3)
                snprintf(list + len, sizeof list - len, "%s%.200s", len ? ", " : "", e->key);
        }
    }
    if (s == MD_OK && unmatched && !allow_unmatched)
        s = md_fail(err, MD_ERR_INVALID, "%s: %d LoRA module(s) match no layer of the model: %s%s",
                    f->path, unmatched, list, unmatched > 3 ? ", ..." : "");
    if (s != MD_OK)
        b->count = start;
    free(ldm.names);
    return s;
}

md_status md_lora_bind(md_lora_binding *b, const md_model *m, const md_lora_file *f, float scale,
                       int allow_unmatched, md_error *err)
{
    return md_lora_bind_maps(b, m->weights, m->nweights, &m->unet_cfg, f, scale, allow_unmatched,
                             err);
}

void md_lora_binding_clear(md_lora_binding *b)
{
    free(b->targets);
    memset(b, 0, sizeof *b);
}

/* out [out_dim, k] += factor * up [out_dim, r] @ down [r, k], in double. */
static md_status add_update(const md_lora_target *t, float *out, md_error *err)
{
    const md_lora_entry *e = t->entry;
    const int64_t rows = e->up->shape[0], r = e->rank, k = md_tensor_numel(e->down) / r;
    float *up = malloc(sizeof(float) * (size_t)(rows * r));
    float *down = malloc(sizeof(float) * (size_t)(r * k));
    double *acc = malloc(sizeof(double) * (size_t)k);
    if (!up || !down || !acc) {
        free(up), free(down), free(acc);
        return md_fail(err, MD_ERR_NOMEM, "fusing a LoRA into %s: out of memory", t->name);
    }
    md_widen_to_f32(e->up->dtype, e->up->data, up, (size_t)(rows * r));
    md_widen_to_f32(e->down->dtype, e->down->data, down, (size_t)(r * k));
    for (int64_t o = 0; o < rows; o++) {
        for (int64_t j = 0; j < k; j++)
            acc[j] = 0;
        for (int64_t q = 0; q < r; q++) {
            const double u = up[o * r + q];
            const float *dr = down + q * k;
            for (int64_t j = 0; j < k; j++)
                acc[j] += u * dr[j];
        }
        float *orow = out + o * k;
        for (int64_t j = 0; j < k; j++)
            orow[j] = (float)((double)orow[j] + (double)t->factor * acc[j]);
    }
    free(up), free(down), free(acc);
    return MD_OK;
}

md_status md_lora_fused_weight(const md_lora_binding *b, const md_tensor *w, const void *w_host,
                               float *out, md_error *err)
{
    md_widen_to_f32(w->dtype, w_host ? w_host : w->data, out, (size_t)md_tensor_numel(w));
    for (int i = 0; i < b->count; i++)
        if (b->targets[i].w == w)
            MD_TRY(add_update(&b->targets[i], out, err));
    return MD_OK;
}

md_tensor *md_lora_bound_weight(const md_lora_binding *b, const char *name)
{
    for (int i = 0; i < b->count; i++)
        if (strcmp(b->targets[i].name, name) == 0)
            return b->targets[i].w;
    return NULL;
}
