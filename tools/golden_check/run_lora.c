/* LoRA cases (CHECKING.md item 8): the base model with one LoRA file
 * bound at lora_scale, generation through the LoRA backend wrapper, and
 * the lora.fused.<part>.<weight> records. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gc.h"
#include "lora/lora_backend.h"

/* The weight as stored in its file (host memory also when the backend
 * moved it to a device): the map's source file, opened by the model. */
static const void *host_data(const md_model *m, const md_weights *map, const char *name,
                             const md_tensor *w)
{
    for (size_t i = 0; i < md_weights_count(map); i++) {
        if (strcmp(md_weights_name(map, i), name) != 0)
            continue;
        for (int f = 0; f < m->nfiles; f++) {
            if (strcmp(md_safetensors_path(m->files[f]), md_weights_source(map, i)) != 0)
                continue;
            const md_tensor *t = md_safetensors_find(m->files[f], name);
            if (t && t->dtype == w->dtype && md_tensor_numel(t) == md_tensor_numel(w))
                return t->data;
        }
    }
    return NULL;
}

static void put_fused(gc_case *c, const char *record)
{
    static const char *const parts[] = {"text_encoder_2", "text_encoder", "unet"};
    const char *rest = record + strlen("lora.fused.");
    for (size_t p = 0; p < sizeof parts / sizeof *parts; p++) {
        size_t lp = strlen(parts[p]);
        if (strncmp(rest, parts[p], lp) != 0 || rest[lp] != '.')
            continue;
        const char *name = rest + lp + 1;
        for (int i = 0; i < c->model->nweights; i++) {
            const md_weights *map = c->model->weights[i];
            md_tensor *w = strcmp(md_weights_label(map), parts[p]) == 0
                               ? md_weights_find(map, name) : NULL;
            const void *host = w ? host_data(c->model, map, name, w) : NULL;
            if (!w || (!host && !c->inner_be->host_weights))
                continue;
            float *out = malloc(sizeof(float) * (size_t)md_tensor_numel(w));
            md_error err = {0};
            if (out && md_lora_fused_weight(&c->lora, w, host, out, &err) == MD_OK)
                gc_put(c, record, out, (size_t)md_tensor_numel(w), 0);
            else
                fprintf(stderr, "golden-check: %s: %s\n", record, out ? err.msg : "no memory");
            free(out);
            return;
        }
    }
}

void gc_run_lora_fused(gc_case *c)
{
    if (!c->lora_file || !c->model)
        return;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, cJSON_GetObjectItem(c->golden_json, "tensors"))
    {
        if (strncmp(rec->string, "lora.fused.", 11) == 0)
            put_fused(c, rec->string);
    }
}

int gc_lora_begin(gc_case *c, const char *file, md_lora_apply how)
{
    md_error err = {0};
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", c->dir, file);
    const cJSON *scale = cJSON_GetObjectItem(c->case_json, "lora_scale");
    if (!gc_model(c))
        return 0;
    if (!cJSON_IsNumber(scale)) {
        fprintf(stderr, "golden-check: %s/golden.json: lora_scale missing\n", c->dir);
        return 0;
    }
    c->inner_be = c->be;
    md_backend *wrapped = NULL;
    if (md_lora_file_open(path, &c->lora_file, &err) != MD_OK ||
        md_lora_bind(&c->lora, c->model, c->lora_file, (float)scale->valuedouble, 0, &err) !=
            MD_OK ||
        md_lora_backend_new(c->inner_be, &c->lora, how, &wrapped, &err) != MD_OK) {
        fprintf(stderr, "golden-check: %s\n", err.msg);
        gc_lora_end(c);
        return 0;
    }
    printf("LoRA file %s: %d modules, %d weights modified, applied %s\n", file,
           c->lora_file->count, c->lora.count, how == MD_LORA_FUSED ? "fused" : "as side products");
    c->be = wrapped;
    return 1;
}

void gc_lora_end(gc_case *c)
{
    if (c->inner_be && c->be != c->inner_be) {
        md_backend_destroy(c->be);
        c->be = c->inner_be;
    }
    md_lora_binding_clear(&c->lora);
    md_lora_file_free(c->lora_file);
    c->lora_file = NULL;
}
