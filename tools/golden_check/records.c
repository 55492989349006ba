/* Access to golden tensors and the store of produced records. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_json.h"
#include "gc.h"

float *gc_gold_f32(gc_case *c, const char *name, size_t *n)
{
    const md_tensor *t = md_safetensors_find(c->gold, name);
    if (!t)
        return NULL;
    size_t count = (size_t)md_tensor_numel(t);
    float *out = malloc(sizeof(float) * (count ? count : 1));
    if (!out)
        return NULL;
    if (t->dtype == MD_I32) {
        const int32_t *src = t->data;
        for (size_t i = 0; i < count; i++)
            out[i] = (float)src[i];
    } else if (t->dtype == MD_I64) {
        const int64_t *src = t->data;
        for (size_t i = 0; i < count; i++)
            out[i] = (float)src[i];
    } else {
        md_widen_to_f32(t->dtype, t->data, out, count);
    }
    *n = count;
    return out;
}

int gc_has(gc_case *c, const char *name)
{
    return md_safetensors_find(c->gold, name) != NULL;
}

void gc_put(gc_case *c, const char *name, const float *values, size_t n, int integer)
{
    if (c->nresults == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        gc_result *grown = realloc(c->results, cap * sizeof *grown);
        if (!grown)
            return;
        c->results = grown;
        c->cap = cap;
    }
    gc_result *r = &c->results[c->nresults];
    r->name = strdup(name);
    r->values = malloc(sizeof(float) * (n ? n : 1));
    if (!r->name || !r->values) {
        free(r->name);
        free(r->values);
        return;
    }
    memcpy(r->values, values, sizeof(float) * n);
    r->n = n;
    r->integer = integer;
    c->nresults++;
}

md_model *gc_model(gc_case *c)
{
    if (c->model_tried)
        return c->model;
    c->model_tried = 1;
    md_model_options opt = {
        .backend = c->be,
        .architecture = cJSON_GetObjectItem(c->case_json, "architecture"),
    };
    if (md_model_load(c->model_path, &opt, &c->model, &c->model_err) != MD_OK) {
        fprintf(stderr, "golden-check: loading %s: %s\n", c->model_path, c->model_err.msg);
        c->model = NULL;
    }
    return c->model;
}

int gc_sched_config(const cJSON *json, md_sched_config *out)
{
    md_error err = {0};
    if (md_sched_config_from_json(json, "golden.json", out, &err) != MD_OK) {
        fprintf(stderr, "golden-check: scheduler config: %s\n", err.msg);
        return 0;
    }
    return 1;
}
