/* Merge cases (CHECKING.md item 8): the case's SegMoE YAML is merged into
 * a temporary folder with the recorded gate-init noise fed, the
 * merge.gate_init.* records come from the merge's own observation hooks,
 * the merge.unet.* records from the merged U-Net file, and every other
 * record from the merged model, loaded like any model folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gc.h"
#include "merge/merge.h"
#include "merge/merge_files.h"

static int feed_noise(void *user, int expert, int step, float *out, size_t n)
{
    gc_case *c = user;
    char name[128];
    snprintf(name, sizeof name, "merge.gate_init.e%d.%s", expert,
             step < 0 ? "initial_noise" : "step_noise");
    size_t got = 0;
    float *v = gc_gold_f32(c, name, &got);
    size_t off = step < 0 ? 0 : (size_t)step * n;
    int ok = v && off + n <= got;
    if (ok)
        memcpy(out, v + off, sizeof(float) * n);
    else
        fprintf(stderr, "golden-check: %s: missing or too short for step %d\n", name, step);
    free(v);
    return ok;
}

static void observe(void *user, int expert, const char *what, const float *data, size_t n)
{
    char name[128];
    snprintf(name, sizeof name, "merge.gate_init.e%d.%s", expert, what);
    gc_put(user, name, data, n, 0);
}

int gc_merge_begin(gc_case *c, const char *yaml)
{
    char tmpl[] = "/tmp/golden-merge-XXXXXX", config[2048];
    if (!mkdtemp(tmpl)) {
        fprintf(stderr, "golden-check: cannot make a temporary folder\n");
        return 0;
    }
    snprintf(c->merged_dir, sizeof c->merged_dir, "%s", tmpl);
    snprintf(c->model_path, sizeof c->model_path, "%s/merged", tmpl);
    snprintf(config, sizeof config, "%s/%s", c->dir, yaml);
    /* float32 like the recorded merge (SegMoE called with torch_dtype float32). */
    md_merge_options opt = {.dtype = MD_F32, .gate_init = -1};
    md_merge_hooks hooks = {.user = c, .noise = feed_noise, .tensor = observe};
    md_error err = {0};
    if (md_merge(config, c->model_path, &opt, &hooks, &err) != MD_OK) {
        fprintf(stderr, "golden-check: merging %s: %s\n", config, err.msg);
        return 0;
    }
    printf("merged %s into %s\n", config, c->model_path);
    return 1;
}

void gc_merge_end(gc_case *c)
{
    if (c->merged_dir[0])
        md_merge_remove_tree(c->merged_dir);
    c->merged_dir[0] = '\0';
}

/* The merged unet/config.json against golden.json expected_unet_config
 * (the whole file as SegMoE writes it; key order aside). */
static void check_unet_config(gc_case *c)
{
    const cJSON *want = cJSON_GetObjectItem(c->golden_json, "expected_unet_config");
    if (!want)
        return;
    char path[2100];
    snprintf(path, sizeof path, "%s/unet/config.json", c->model_path);
    cJSON *got = md_merge_read_json(path, NULL);
    float differs = got && cJSON_Compare(got, want, 1) ? 0.0f : 1.0f;
    gc_put(c, "check:merge.unet/config.json == expected_unet_config", &differs, 1, 0);
    cJSON_Delete(got);
}

void gc_run_merge(gc_case *c)
{
    if (!c->merged_dir[0])
        return;
    check_unet_config(c);
    char path[2100];
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", c->model_path);
    md_safetensors *st = NULL;
    md_error err = {0};
    if (md_safetensors_open(path, &st, &err) != MD_OK) {
        fprintf(stderr, "golden-check: %s\n", err.msg);
        return;
    }
    const cJSON *rec;
    cJSON_ArrayForEach(rec, cJSON_GetObjectItem(c->golden_json, "tensors"))
    {
        if (strncmp(rec->string, "merge.unet.", 11) != 0)
            continue;
        const md_tensor *t = md_safetensors_find(st, rec->string + 11);
        if (!t)
            continue; /* reported as unsupported: the merged file lacks it */
        size_t n = (size_t)md_tensor_numel(t);
        float *v = malloc(sizeof(float) * (n ? n : 1));
        if (!v)
            continue;
        md_widen_to_f32(t->dtype, t->data, v, n);
        gc_put(c, rec->string, v, n, 0);
        free(v);
    }
    md_safetensors_close(st);
}
