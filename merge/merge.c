/* The merge (merge.h): plan the output from the base's U-Net, stream the
 * base's weights, then one source at a time its experts' weights and its
 * gate rows, then the gates and the configs; rename at the end. */
#include "merge.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../io/safetensors.h"
#include "../lora/lora_bind.h"
#include "../models/model.h"
#include "base_lora.h"
#include "gate_init.h"
#include "merge_files.h"
#include "st_stream.h"

#define MAX_PARAMS 4

/* One layer that becomes an MoE layer. */
typedef struct target {
    char module[200];  /* e.g. down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q */
    int ff;            /* a feed-forward (GEGLU) rather than one linear */
    int dim;           /* the gate's input width */
    int nparams;
    char params[MAX_PARAMS][24]; /* weight suffixes the base has: "weight", "net.0.proj.bias" */
    size_t first;      /* output entry of experts.0's first param; expert e at first + e * nparams */
    size_t gate;       /* output entry of gate.weight */
    float *rows;       /* [experts, dim] */
} target;

typedef struct merge_job {
    md_merge_config cfg;
    md_merge_options opt;
    const md_merge_hooks *h;
    char out[MD_MERGE_PATH_MAX], tmp[MD_MERGE_PATH_MAX + 32];
    cJSON *unet_cfg;       /* the base's unet/config.json */
    md_safetensors *base;  /* the base's U-Net weights */
    target *t;
    int nt;
    char **names;          /* output entries */
    md_tensor *specs;
    size_t *base_index;    /* entry -> tensor of the base file, SIZE_MAX for expert/gate */
    size_t n, cap;
    md_st_stream *st;
    md_backend *cpu;
    md_base_lora bl;       /* top-level LoRAs, fused into the base */
    int down0, down1, up0, up1; /* block ranges [start, end) */
} merge_job;

static int cancelled(merge_job *j, md_merge_phase phase, int expert)
{
    return j->h && j->h->progress &&
           j->h->progress(j->h->user, phase, expert, j->cfg.nexperts, 0, 0);
}

static int has(const merge_job *j, const char *fmt, const char *module, const char *suffix)
{
    char name[320];
    snprintf(name, sizeof name, fmt, module, suffix);
    return md_safetensors_find(j->base, name) != NULL;
}

/* ---- the plan ---- */

static md_status add_entry(merge_job *j, const char *name, const md_tensor *like, size_t base_index,
                           md_error *err)
{
    if (j->n == j->cap) {
        size_t cap = j->cap ? 2 * j->cap : 1024;
        char **nn = realloc(j->names, cap * sizeof *nn);
        if (nn)
            j->names = nn;
        md_tensor *ns = nn ? realloc(j->specs, cap * sizeof *ns) : NULL;
        if (ns)
            j->specs = ns;
        size_t *nb = ns ? realloc(j->base_index, cap * sizeof *nb) : NULL;
        if (!nb)
            return md_fail(err, MD_ERR_NOMEM, "merge: out of memory");
        j->base_index = nb;
        j->cap = cap;
    }
    if (!(j->names[j->n] = strdup(name)))
        return md_fail(err, MD_ERR_NOMEM, "merge: out of memory");
    md_tensor spec = *like;
    spec.data = NULL;
    if (spec.dtype == MD_F32 || spec.dtype == MD_F16 || spec.dtype == MD_BF16)
        spec.dtype = j->opt.dtype;
    j->specs[j->n] = spec;
    j->base_index[j->n] = base_index;
    j->n++;
    return MD_OK;
}

static md_status add_target(merge_job *j, const char *block, int ff, const char *name,
                            md_error *err)
{
    target *nt = realloc(j->t, sizeof *nt * (size_t)(j->nt + 1));
    if (!nt)
        return md_fail(err, MD_ERR_NOMEM, "merge: out of memory");
    j->t = nt;
    target *t = &j->t[j->nt];
    memset(t, 0, sizeof *t);
    snprintf(t->module, sizeof t->module, "%s.%s", block, name);
    t->ff = ff;
    static const char *const lin[] = {"weight", "bias"};
    static const char *const ffp[] = {"net.0.proj.weight", "net.0.proj.bias", "net.2.weight",
                                      "net.2.bias"};
    const char *const *cand = ff ? ffp : lin;
    for (int i = 0; i < (ff ? 4 : 2); i++)
        if (has(j, "%s.%s", t->module, cand[i]))
            snprintf(t->params[t->nparams++], sizeof t->params[0], "%s", cand[i]);
    char wname[320];
    snprintf(wname, sizeof wname, "%s.%s", t->module, ff ? "net.0.proj.weight" : "weight");
    const md_tensor *w = md_safetensors_find(j->base, wname);
    if (!w || w->ndim != 2)
        return md_fail(err, MD_ERR_FORMAT, "%s: base_model: %s: missing or not a linear weight",
                       j->cfg.path, wname);
    t->dim = (int)w->shape[1];
    j->nt++;
    return MD_OK;
}

/* SegMoE's order: per transformer block, ff then attn1 q, k, v then attn2
 * q, k, v; down blocks, then up blocks. */
static md_status plan_blocks(merge_job *j, const char *kind, int from, int to, md_error *err)
{
    static const char *const attn[] = {"attn1.to_q", "attn1.to_k", "attn1.to_v",
                                       "attn2.to_q", "attn2.to_k", "attn2.to_v"};
    char block[160];
    for (int i = from; i < to; i++)
        for (int a = 0;; a++) {
            snprintf(block, sizeof block, "%s.%d.attentions.%d.transformer_blocks.0", kind, i, a);
            if (!has(j, "%s.%s", block, "norm1.weight"))
                break;
            for (int k = 0;; k++) {
                snprintf(block, sizeof block, "%s.%d.attentions.%d.transformer_blocks.%d", kind, i,
                         a, k);
                if (!has(j, "%s.%s", block, "norm1.weight"))
                    break;
                if (j->cfg.layers != MD_MERGE_LAYERS_ATTN)
                    MD_TRY(add_target(j, block, 1, "ff", err));
                if (j->cfg.layers != MD_MERGE_LAYERS_FF)
                    for (int q = 0; q < 6; q++)
                        MD_TRY(add_target(j, block, 0, attn[q], err));
            }
        }
    return MD_OK;
}

/* Which base tensor belongs to target t (then it is not copied). */
static int in_target(const merge_job *j, const char *name)
{
    for (int i = 0; i < j->nt; i++) {
        size_t l = strlen(j->t[i].module);
        if (!strncmp(name, j->t[i].module, l) && name[l] == '.')
            return 1;
    }
    return 0;
}

static md_status plan(merge_job *j, md_error *err)
{
    const int nd = cJSON_GetArraySize(cJSON_GetObjectItem(j->unet_cfg, "down_block_types"));
    const int nu = cJSON_GetArraySize(cJSON_GetObjectItem(j->unet_cfg, "up_block_types"));
    if (nd < 2 || nu < 2)
        return md_fail(err, MD_ERR_FORMAT, "%s: unet/config.json: down_block_types / "
                       "up_block_types: need at least two blocks each", j->cfg.base);
    /* SegMoE: SD skips the lowest-resolution blocks, SDXL the highest. */
    if (j->cfg.sdxl)
        j->down0 = 1, j->down1 = nd, j->up0 = 0, j->up1 = nu - 1;
    else
        j->down0 = 0, j->down1 = nd - 1, j->up0 = 1, j->up1 = nu;
    MD_TRY(plan_blocks(j, "down_blocks", j->down0, j->down1, err));
    MD_TRY(plan_blocks(j, "up_blocks", j->up0, j->up1, err));
    if (!j->nt)
        return md_fail(err, MD_ERR_FORMAT, "%s: base_model: no transformer block to make experts of",
                       j->cfg.path);
    for (size_t i = 0; i < md_safetensors_count(j->base); i++) {
        const char *name = md_safetensors_name(j->base, i);
        if (!in_target(j, name))
            MD_TRY(add_entry(j, name, md_safetensors_tensor(j->base, i), i, err));
    }
    char name[400];
    const int E = j->cfg.nexperts;
    for (int i = 0; i < j->nt; i++) {
        target *t = &j->t[i];
        t->first = j->n;
        for (int e = 0; e < E; e++)
            for (int p = 0; p < t->nparams; p++) {
                snprintf(name, sizeof name, "%s.%s", t->module, t->params[p]);
                const md_tensor *like = md_safetensors_find(j->base, name);
                snprintf(name, sizeof name, "%s.experts.%d.%s", t->module, e, t->params[p]);
                MD_TRY(add_entry(j, name, like, SIZE_MAX, err));
            }
        t->gate = j->n;
        snprintf(name, sizeof name, "%s.gate.weight", t->module);
        md_tensor g = {.dtype = MD_F32, .ndim = 2, .shape = {E, t->dim}};
        MD_TRY(add_entry(j, name, &g, SIZE_MAX, err));
        if (!(t->rows = calloc((size_t)E * (size_t)t->dim, sizeof(float))))
            return md_fail(err, MD_ERR_NOMEM, "merge: out of memory");
    }
    return MD_OK;
}

/* ---- the base ---- */

static md_status open_base(merge_job *j, md_error *err)
{
    char path[MD_MERGE_PATH_MAX + 64];
    struct stat st;
    if (stat(j->cfg.base, &st) != 0 || !S_ISDIR(st.st_mode))
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: base_model: '%s' is not a diffusers folder (a single-file base is not "
                       "supported yet)",
                       j->cfg.path, j->cfg.base);
    snprintf(path, sizeof path, "%s/unet/config.json", j->cfg.base);
    if (!(j->unet_cfg = md_merge_read_json(path, err)))
        return md_fail_context(err, "%s: base_model: ", j->cfg.path);
    const cJSON *add = cJSON_GetObjectItem(j->unet_cfg, "addition_embed_type");
    const int sdxl = cJSON_IsString(add) && !strcmp(add->valuestring, "text_time");
    if (sdxl != j->cfg.sdxl)
        return md_fail(err, MD_ERR_INVALID, "%s: type: '%s', but base_model %s is an %s model",
                       j->cfg.path, j->cfg.sdxl ? "sdxl" : "sd", j->cfg.base,
                       sdxl ? "SDXL" : "SD 1.x/2.x");
    if (cJSON_GetObjectItem(j->unet_cfg, "segmoe_config") ||
        cJSON_GetObjectItem(j->unet_cfg, "moe_config"))
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: base_model: %s is already an MoE model",
                       j->cfg.path, j->cfg.base);
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", j->cfg.base);
    if (stat(path, &st) != 0)
        snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.fp16.safetensors",
                 j->cfg.base);
    if (md_safetensors_open(path, &j->base, err) != MD_OK)
        return md_fail_context(err, "%s: base_model: ", j->cfg.path);
    return MD_OK;
}

static md_status write_base(merge_job *j, md_error *err)
{
    for (size_t i = 0; i < j->n; i++) {
        if (j->base_index[i] == SIZE_MAX)
            continue;
        const md_tensor *t = md_safetensors_tensor(j->base, j->base_index[i]);
        if (md_base_lora_modifies(&j->bl, j->names[i])) {
            float *fused = NULL;
            md_status s = md_base_lora_fused(&j->bl, j->names[i], &fused, err);
            if (s == MD_OK)
                s = md_st_stream_put(j->st, i, MD_F32, fused, err);
            free(fused);
            MD_TRY(s);
            continue;
        }
        MD_TRY(md_st_stream_put(j->st, i, t->dtype, t->data, err));
    }
    /* Unmapped now: from here on only one source is in memory. */
    md_safetensors_close(j->base);
    j->base = NULL;
    return MD_OK;
}

/* ---- one source ---- */

typedef struct fused {
    md_tensor *w;
    void *old_data;
    md_dtype old_dtype;
    float *data;
} fused;

/* Fuses the expert's LoRAs into the loaded source in place (its weights
 * then compute and are copied as fused f32; undone before it is freed). */
static md_status fuse_loras(merge_job *j, int e, md_model *m, fused **out, int *nout,
                            md_error *err)
{
    const md_merge_expert *x = &j->cfg.experts[e];
    md_lora_binding b = {0};
    md_lora_file **files = calloc((size_t)x->nloras + 1, sizeof *files);
    md_status s = files ? MD_OK : md_fail(err, MD_ERR_NOMEM, "merge: out of memory");
    for (int i = 0; s == MD_OK && i < x->nloras; i++) {
        s = md_lora_file_open(x->loras[i].path, &files[i], err);
        if (s == MD_OK)
            s = md_lora_bind_maps(&b, m->weights, m->nweights, &m->unet_cfg, files[i],
                                  x->loras[i].scale, 0, err);
        if (s != MD_OK)
            md_fail_context(err, "%s: experts[%d].loras[%d]: ", j->cfg.path, e, i);
    }
    fused *f = s == MD_OK ? calloc((size_t)b.count + 1, sizeof *f) : NULL;
    int n = 0;
    if (s == MD_OK && !f)
        s = md_fail(err, MD_ERR_NOMEM, "merge: out of memory");
    for (int i = 0; s == MD_OK && i < b.count; i++) {
        md_tensor *w = b.targets[i].w;
        int seen = 0;
        for (int k = 0; k < n && !seen; k++)
            seen = f[k].w == w;
        if (seen)
            continue;
        f[n].w = w;
        f[n].data = malloc(sizeof(float) * (size_t)md_tensor_numel(w));
        s = f[n].data ? md_lora_fused_weight(&b, w, NULL, f[n].data, err)
                      : md_fail(err, MD_ERR_NOMEM, "merge: out of memory for a fused weight");
        n++;
    }
    /* Swapped only once every fused value is computed from the originals. */
    for (int k = 0; s == MD_OK && k < n; k++) {
        f[k].old_data = f[k].w->data, f[k].old_dtype = f[k].w->dtype;
        f[k].w->data = f[k].data, f[k].w->dtype = MD_F32;
    }
    if (s != MD_OK) {
        for (int k = 0; k < n; k++)
            free(f[k].data);
        free(f);
        f = NULL, n = 0;
    }
    md_lora_binding_clear(&b);
    for (int i = 0; files && i < x->nloras; i++)
        md_lora_file_free(files[i]);
    free(files);
    *out = f, *nout = n;
    return s;
}

static void unfuse(fused *f, int n)
{
    for (int k = 0; k < n; k++) {
        if (f[k].old_data)
            f[k].w->data = f[k].old_data, f[k].w->dtype = f[k].old_dtype;
        free(f[k].data);
    }
    free(f);
}

static md_weights *unet_map(const md_model *m)
{
    for (int i = 0; i < m->nweights; i++)
        if (!strcmp(md_weights_label(m->weights[i]), "unet"))
            return m->weights[i];
    return NULL;
}

/* Every expert param of the source, with the base's shape. */
static md_status check_source(merge_job *j, int e, const md_model *m, const md_weights *u,
                              md_error *err)
{
    if ((m->family == MD_FAMILY_SDXL) != j->cfg.sdxl)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: experts[%d].source_model: %s is an %s model, the base is not: "
                       "experts must share the base's architecture",
                       j->cfg.path, e, j->cfg.experts[e].source,
                       m->family == MD_FAMILY_SDXL ? "SDXL" : "SD 1.x/2.x");
    char name[400], a[64], b[64];
    for (int i = 0; i < j->nt; i++)
        for (int p = 0; p < j->t[i].nparams; p++) {
            snprintf(name, sizeof name, "%s.%s", j->t[i].module, j->t[i].params[p]);
            const md_tensor *w = md_weights_find(u, name);
            const md_tensor *spec = &j->specs[j->t[i].first + (size_t)p];
            if (!w)
                return md_fail(err, MD_ERR_UNSUPPORTED,
                               "%s: experts[%d].source_model: %s has no %s: experts must share "
                               "the base's architecture",
                               j->cfg.path, e, j->cfg.experts[e].source, name);
            if (!md_shape_equal(w, spec->ndim, spec->shape))
                return md_fail(err, MD_ERR_UNSUPPORTED,
                               "%s: experts[%d].source_model: %s: %s is %s, the base's is %s: "
                               "experts must share the base's architecture",
                               j->cfg.path, e, j->cfg.experts[e].source, name,
                               md_shape_str(w, a, sizeof a), md_shape_str(spec, b, sizeof b));
        }
    return MD_OK;
}

static void ddpm_settings(const char *source, md_ddpm_settings *d)
{
    /* diffusers' DDPMScheduler defaults; a single file has no config. */
    d->clip_sample = 1;
    d->clip_sample_range = 1.0f;
    char path[MD_MERGE_PATH_MAX + 40];
    snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", source);
    struct stat st;
    if (stat(source, &st) != 0 || !S_ISDIR(st.st_mode)) {
        d->clip_sample = 0;
        return;
    }
    cJSON *c = md_merge_read_json(path, NULL);
    const cJSON *cs = cJSON_GetObjectItem(c, "clip_sample");
    const cJSON *cr = cJSON_GetObjectItem(c, "clip_sample_range");
    if (cJSON_IsBool(cs))
        d->clip_sample = cJSON_IsTrue(cs);
    if (cJSON_IsNumber(cr))
        d->clip_sample_range = (float)cr->valuedouble;
    cJSON_Delete(c);
}

static md_status gate_rows(merge_job *j, int e, const md_model *m, const md_weights *u,
                           md_error *err)
{
    const md_tensor **watch = calloc((size_t)j->nt + 1, sizeof *watch);
    float **rows = calloc((size_t)j->nt + 1, sizeof *rows);
    md_status s = watch && rows ? MD_OK : md_fail(err, MD_ERR_NOMEM, "merge: out of memory");
    char name[400];
    for (int i = 0; s == MD_OK && i < j->nt; i++) {
        snprintf(name, sizeof name, "%s.%s", j->t[i].module,
                 j->t[i].ff ? "net.0.proj.weight" : "weight");
        watch[i] = md_weights_find(u, name);
        rows[i] = j->t[i].rows + (size_t)e * (size_t)j->t[i].dim;
    }
    md_ddpm_settings dd;
    ddpm_settings(j->cfg.experts[e].source, &dd);
    md_gate_job job = {.m = m, .be = j->cpu, .ddpm = &dd,
                       .positive = j->cfg.experts[e].positive,
                       .negative = j->cfg.experts[e].negative, .watch = watch, .nwatch = j->nt,
                       .expert = e, .experts = j->cfg.nexperts, .seed = j->opt.seed,
                       .hooks = j->h};
    if (s == MD_OK && (s = md_gate_init_run(&job, rows, err)) != MD_OK && s != MD_ERR_CANCELLED)
        md_fail_context(err, "%s: experts[%d] (%s): gate initialisation: ", j->cfg.path, e,
                        j->cfg.experts[e].source);
    free(watch);
    free(rows);
    return s;
}

static md_status write_expert(merge_job *j, int e, const md_weights *u, md_error *err)
{
    char name[400];
    for (int i = 0; i < j->nt; i++)
        for (int p = 0; p < j->t[i].nparams; p++) {
            snprintf(name, sizeof name, "%s.%s", j->t[i].module, j->t[i].params[p]);
            const md_tensor *w = md_weights_find(u, name);
            size_t idx = j->t[i].first + (size_t)e * (size_t)j->t[i].nparams + (size_t)p;
            MD_TRY(md_st_stream_put(j->st, idx, w->dtype, w->data, err));
        }
    return MD_OK;
}

/* Every source opened and checked before any long work, so a wrong
 * source fails in seconds rather than after the gate runs before it. */
static md_status check_sources(merge_job *j, md_error *err)
{
    for (int e = 0; e < j->cfg.nexperts; e++) {
        md_model *m = NULL;
        md_model_options mo = {.backend = j->cpu};
        if (md_model_load(j->cfg.experts[e].source, &mo, &m, err) != MD_OK)
            return md_fail_context(err, "%s: experts[%d].source_model: ", j->cfg.path, e);
        const md_weights *u = unet_map(m);
        md_status s = u ? check_source(j, e, m, u, err)
                        : md_fail(err, MD_ERR_FORMAT, "%s: experts[%d].source_model: %s has no "
                                  "U-Net", j->cfg.path, e, j->cfg.experts[e].source);
        md_model_free(m);
        MD_TRY(s);
    }
    return MD_OK;
}

static md_status do_expert(merge_job *j, int e, md_error *err)
{
    if (cancelled(j, MD_MERGE_PHASE_EXPERT, e))
        return md_fail(err, MD_ERR_CANCELLED, "merge: cancelled");
    md_model *m = NULL;
    md_model_options mo = {.backend = j->cpu};
    md_status s = md_model_load(j->cfg.experts[e].source, &mo, &m, err);
    if (s != MD_OK)
        return md_fail_context(err, "%s: experts[%d].source_model: ", j->cfg.path, e);
    md_weights *u = unet_map(m);
    fused *f = NULL;
    int nf = 0;
    if (!u)
        s = md_fail(err, MD_ERR_FORMAT, "%s: experts[%d].source_model: %s has no U-Net",
                    j->cfg.path, e, j->cfg.experts[e].source);
    if (s == MD_OK)
        s = check_source(j, e, m, u, err);
    if (s == MD_OK)
        s = fuse_loras(j, e, m, &f, &nf, err);
    if (s == MD_OK && j->cfg.init == MD_MERGE_INIT_HIDDEN)
        s = gate_rows(j, e, m, u, err);
    if (s == MD_OK)
        s = write_expert(j, e, u, err);
    unfuse(f, nf);
    md_model_free(m);
    return s;
}

/* ---- configs and the rest of the folder ---- */

static md_status write_unet_config(merge_job *j, int used_seed, md_error *err)
{
    char path[MD_MERGE_PATH_MAX + 64];
    cJSON *c = cJSON_Duplicate(j->unet_cfg, 1), *y = cJSON_Duplicate(j->cfg.yaml, 1);
    if (!c || !y) {
        cJSON_Delete(c), cJSON_Delete(y);
        return md_fail(err, MD_ERR_NOMEM, "merge: out of memory");
    }
    cJSON_AddNumberToObject(y, "up_idx_start", j->up0);
    cJSON_AddNumberToObject(y, "up_idx_end", j->up1);
    cJSON_AddNumberToObject(y, "down_idx_start", j->down0);
    cJSON_AddNumberToObject(y, "down_idx_end", j->down1);
    if (j->cfg.init == MD_MERGE_INIT_RANDOM && !cJSON_GetObjectItem(y, "init"))
        cJSON_AddStringToObject(y, "init", "random");
    /* The seed that drew the gate-init noise, so the merge can be repeated. */
    if (used_seed)
        cJSON_AddNumberToObject(y, "gate_init_seed", (double)j->opt.seed);
    cJSON_AddItemToObject(c, "segmoe_config", y);
    snprintf(path, sizeof path, "%s/unet/config.json", j->tmp);
    md_status s = md_merge_write_json(path, c, err);
    cJSON_Delete(c);
    return s;
}

/* SegMoE saves DDPMScheduler.from_config(base scheduler config): the
 * base's keys with every DDPM default written out. */
static md_status write_scheduler(merge_job *j, md_error *err)
{
    char path[MD_MERGE_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", j->cfg.base);
    cJSON *c = md_merge_read_json(path, err);
    if (!c)
        return md_fail_context(err, "%s: base_model: ", j->cfg.path);
    cJSON_DeleteItemFromObject(c, "_use_default_values");
    cJSON_DeleteItemFromObject(c, "_class_name");
    cJSON_AddStringToObject(c, "_class_name", "DDPMScheduler");
    static const struct { const char *key; const char *s; double v; int kind; } d[] = {
        {"num_train_timesteps", NULL, 1000, 0}, {"beta_start", NULL, 0.0001, 0},
        {"beta_end", NULL, 0.02, 0}, {"beta_schedule", "linear", 0, 1},
        {"trained_betas", NULL, 0, 2}, {"variance_type", "fixed_small", 0, 1},
        {"clip_sample", NULL, 1, 3}, {"prediction_type", "epsilon", 0, 1},
        {"thresholding", NULL, 0, 3}, {"dynamic_thresholding_ratio", NULL, 0.995, 0},
        {"clip_sample_range", NULL, 1.0, 0}, {"sample_max_value", NULL, 1.0, 0},
        {"timestep_spacing", "leading", 0, 1}, {"steps_offset", NULL, 0, 0},
        {"rescale_betas_zero_snr", NULL, 0, 3}};
    for (size_t i = 0; i < sizeof d / sizeof *d; i++) {
        if (cJSON_GetObjectItem(c, d[i].key))
            continue;
        cJSON *v = d[i].kind == 0   ? cJSON_CreateNumber(d[i].v)
                   : d[i].kind == 1 ? cJSON_CreateString(d[i].s)
                   : d[i].kind == 2 ? cJSON_CreateNull()
                                    : cJSON_CreateBool(d[i].v != 0);
        cJSON_AddItemToObject(c, d[i].key, v);
    }
    snprintf(path, sizeof path, "%s/scheduler", j->tmp);
    md_status s = mkdir(path, 0755) == 0
                      ? MD_OK
                      : md_fail(err, MD_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", j->tmp);
    if (s == MD_OK)
        s = md_merge_write_json(path, c, err);
    cJSON_Delete(c);
    return s;
}

static md_status write_folder_rest(merge_job *j, md_error *err)
{
    char a[MD_MERGE_PATH_MAX + 64], b[MD_MERGE_PATH_MAX + 64];
    snprintf(a, sizeof a, "%s/model_index.json", j->cfg.base);
    cJSON *idx = md_merge_read_json(a, err);
    if (!idx)
        return md_fail_context(err, "%s: base_model: ", j->cfg.path);
    cJSON *sched = cJSON_CreateArray();
    cJSON_AddItemToArray(sched, cJSON_CreateString("diffusers"));
    cJSON_AddItemToArray(sched, cJSON_CreateString("DDPMScheduler"));
    cJSON_DeleteItemFromObject(idx, "scheduler");
    cJSON_AddItemToObject(idx, "scheduler", sched);
    snprintf(b, sizeof b, "%s/model_index.json", j->tmp);
    md_status s = md_merge_write_json(b, idx, err);
    cJSON_Delete(idx);
    static const char *const parts[] = {"text_encoder", "tokenizer", "vae", "text_encoder_2",
                                        "tokenizer_2"};
    for (size_t i = 0; s == MD_OK && i < sizeof parts / sizeof *parts; i++) {
        struct stat st;
        snprintf(a, sizeof a, "%s/%s", j->cfg.base, parts[i]);
        snprintf(b, sizeof b, "%s/%s", j->tmp, parts[i]);
        if (stat(a, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        s = md_merge_copy_dir(a, b, err);
        /* Top-level LoRAs change the text encoders too. */
        if (s == MD_OK && (i == 0 || i == 3)) {
            snprintf(b, sizeof b, "%s/%s/model.safetensors", j->tmp, parts[i]);
            s = md_base_lora_write_te(&j->bl, i == 3, b, err);
        }
    }
    return s == MD_OK ? write_scheduler(j, err) : s;
}

/* ---- the whole merge ---- */

static md_status run(merge_job *j, md_error *err)
{
    MD_TRY(open_base(j, err));
    MD_TRY(md_base_lora_open(&j->bl, &j->cfg, j->base, err));
    MD_TRY(plan(j, err));
    /* Sources load on it (weights stay in their mapped files); the
     * gate-init runs compute on it. */
    MD_TRY(md_backend_cpu_create(&j->cpu, j->opt.threads, err));
    MD_TRY(check_sources(j, err));
    char path[MD_MERGE_PATH_MAX + 96];
    snprintf(path, sizeof path, "%s/unet", j->tmp);
    if (mkdir(path, 0755) != 0)
        return md_fail(err, MD_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", j->tmp);
    MD_TRY(md_st_stream_open(path, (const char *const *)j->names, j->specs, j->n, &j->st, err));
    if (cancelled(j, MD_MERGE_PHASE_BASE, 0))
        return md_fail(err, MD_ERR_CANCELLED, "merge: cancelled");
    MD_TRY(write_base(j, err));
    for (int e = 0; e < j->cfg.nexperts; e++)
        MD_TRY(do_expert(j, e, err));
    if (cancelled(j, MD_MERGE_PHASE_WRITE, j->cfg.nexperts))
        return md_fail(err, MD_ERR_CANCELLED, "merge: cancelled");
    for (int i = 0; i < j->nt; i++) {
        if (j->cfg.init == MD_MERGE_INIT_RANDOM)
            for (int e = 0; e < j->cfg.nexperts; e++)
                md_gate_init_random(j->opt.seed, i, e, j->t[i].rows + (size_t)e * j->t[i].dim,
                                    j->t[i].dim);
        MD_TRY(md_st_stream_put(j->st, j->t[i].gate, MD_F32, j->t[i].rows, err));
    }
    md_status s = md_st_stream_close(j->st, err);
    j->st = NULL;
    MD_TRY(s);
    int used_seed = j->cfg.init == MD_MERGE_INIT_RANDOM || !j->h || !j->h->noise;
    MD_TRY(write_unet_config(j, used_seed, err));
    MD_TRY(write_folder_rest(j, err));
    /* rename() would replace an empty folder made meanwhile: check again. */
    struct stat st;
    if (stat(j->out, &st) == 0)
        return md_fail(err, MD_ERR_IO, "%s: the output exists (made during the merge)", j->out);
    if (rename(j->tmp, j->out) != 0)
        return md_fail(err, MD_ERR_IO, "%s: cannot rename %s to it: %s", j->out, j->tmp,
                       strerror(errno));
    return MD_OK;
}

static void job_free(merge_job *j)
{
    md_st_stream_abort(j->st);
    md_base_lora_close(&j->bl);
    md_safetensors_close(j->base);
    cJSON_Delete(j->unet_cfg);
    for (int i = 0; i < j->nt; i++)
        free(j->t[i].rows);
    free(j->t);
    for (size_t i = 0; i < j->n; i++)
        free(j->names[i]);
    free(j->names);
    free(j->specs);
    free(j->base_index);
    md_backend_destroy(j->cpu);
    md_merge_config_free(&j->cfg);
}

md_status md_merge(const char *config_path, const char *out_dir, const md_merge_options *opt,
                   const md_merge_hooks *hooks, md_error *err)
{
    merge_job *j = calloc(1, sizeof *j);
    if (!j)
        return md_fail(err, MD_ERR_NOMEM, "merge: out of memory");
    j->opt = opt ? *opt : (md_merge_options){.dtype = MD_F16, .gate_init = -1};
    j->h = hooks;
    md_status s = MD_OK;
    struct stat st;
    if (j->opt.dtype != MD_F16 && j->opt.dtype != MD_F32)
        s = md_fail(err, MD_ERR_INVALID, "merge: the output dtype must be f16 or f32");
    else if (!out_dir || !*out_dir ||
             snprintf(j->out, sizeof j->out, "%s", out_dir) >= (int)sizeof j->out)
        s = md_fail(err, MD_ERR_INVALID, "merge: bad output folder name");
    else if (stat(out_dir, &st) == 0)
        s = md_fail(err, MD_ERR_IO, "%s: the output exists; choose a new folder", out_dir);
    if (s == MD_OK)
        s = md_merge_config_read(config_path, &j->cfg, err);
    if (s == MD_OK && j->opt.gate_init >= 0)
        j->cfg.init = (md_merge_init)j->opt.gate_init;
    if (s == MD_OK) {
        size_t l = strlen(j->out);
        while (l > 1 && j->out[l - 1] == '/')
            j->out[--l] = '\0';
        snprintf(j->tmp, sizeof j->tmp, "%s.partial-XXXXXX", j->out);
        if (!mkdtemp(j->tmp))
            s = md_fail(err, MD_ERR_IO, "%s: cannot create a folder beside it: %s", out_dir,
                        strerror(errno));
        else if (chmod(j->tmp, 0755) != 0) /* mkdtemp makes it private */
            s = md_fail(err, MD_ERR_IO, "%s: %s", j->tmp, strerror(errno));
        if (s != MD_OK && j->tmp[0] && access(j->tmp, F_OK) == 0)
            md_merge_remove_tree(j->tmp);
        else if (s == MD_OK && (s = run(j, err)) != MD_OK)
            md_merge_remove_tree(j->tmp);
    }
    job_free(j);
    free(j);
    return s;
}
