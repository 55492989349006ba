/* txt2img / img2img / inpaint records, fed with the recorded noise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gc.h"
#include "pipeline/pipeline.h"

typedef struct pipe_run {
    gc_case *c;
    const char *key;          /* "txt2img.ddim" */
    float *stack_noise_pred, *stack_latents;
    size_t step_n;            /* latent elements per step */
    int steps_seen;
    int max_steps;
} pipe_run;

static int feed_noise(void *user, md_noise_kind kind, int step, float *out, size_t n)
{
    pipe_run *r = user;
    char name[160];
    size_t got = 0;
    float *v = NULL;
    if (kind == MD_NOISE_INITIAL) {
        snprintf(name, sizeof name, "%s.initial_noise", r->key);
        if (!gc_has(r->c, name))
            snprintf(name, sizeof name, "%s.noise", r->key);
    } else if (kind == MD_NOISE_ENCODER) {
        snprintf(name, sizeof name, "%s.encoder_noise", r->key);
    } else {
        snprintf(name, sizeof name, "%s.ancestral_noise", r->key);
    }
    v = gc_gold_f32(r->c, name, &got);
    if (!v)
        return 0;
    size_t off = kind == MD_NOISE_STEP ? (size_t)step * n : 0;
    int ok = off + n <= got;
    if (ok)
        memcpy(out, v + off, sizeof(float) * n);
    else
        fprintf(stderr, "golden-check: %s has %zu values, needed %zu\n", name, got, off + n);
    free(v);
    return ok;
}

static void observe(void *user, const char *what, int step, const float *data, size_t n)
{
    pipe_run *r = user;
    char name[160];
    if (step >= 0) {
        if (step >= r->max_steps || n != r->step_n)
            return;
        float *stack = strcmp(what, "noise_pred") == 0 ? r->stack_noise_pred
                       : strcmp(what, "latents") == 0  ? r->stack_latents
                                                       : NULL;
        if (stack)
            memcpy(stack + (size_t)step * n, data, sizeof(float) * n);
        if (stack == r->stack_latents && step + 1 > r->steps_seen)
            r->steps_seen = step + 1;
        return;
    }
    snprintf(name, sizeof name, "%s.%s", r->key, what);
    gc_put(r->c, name, data, n, 0);
}

static void run_one(gc_case *c, md_model *m, const char *key, const cJSON *spec)
{
    const cJSON *sched_name = cJSON_GetObjectItem(spec, "scheduler");
    int kind = cJSON_IsString(sched_name) ? md_sampler_from_name(sched_name->valuestring) : -1;
    if (kind < 0)
        return;
    md_sched_config saved = m->sched_cfg;
    const cJSON *sched_cfg = cJSON_GetObjectItem(spec, "scheduler_config");
    if (!sched_cfg)
        sched_cfg = cJSON_GetObjectItem(cJSON_GetObjectItem(c->golden_json, "scheduler_configs"),
                                        sched_name->valuestring);
    if (sched_cfg && !gc_sched_config(sched_cfg, &m->sched_cfg))
        return;

    mdiff_gen_params p;
    md_request_defaults(&p, sizeof p);
    const cJSON *v;
    p.prompt = cJSON_GetObjectItem(spec, "prompt")->valuestring;
    v = cJSON_GetObjectItem(spec, "negative_prompt");
    p.negative_prompt = cJSON_IsString(v) ? v->valuestring : NULL;
    p.steps = cJSON_GetObjectItem(spec, "steps")->valueint;
    p.guidance = (float)cJSON_GetObjectItem(spec, "guidance_scale")->valuedouble;
    p.sampler = md_sampler_name((md_sampler_kind)kind);
    p.prompt_syntax = MDIFF_PROMPT_PLAIN; /* the reference encodes plain text, as diffusers */
    v = cJSON_GetObjectItem(spec, "strength");
    if (cJSON_IsNumber(v))
        p.strength = (float)v->valuedouble;

    char name[160];
    size_t n_init = 0, n_mask = 0;
    snprintf(name, sizeof name, "%s.init_image", key);
    const md_tensor *init_shape = md_safetensors_find(c->gold, name);
    float *init = gc_gold_f32(c, name, &n_init);
    snprintf(name, sizeof name, "%s.mask_image", key);
    float *mask = gc_gold_f32(c, name, &n_mask);
    int f = md_vae_factor(m->vae);
    const cJSON *shape = cJSON_GetObjectItem(spec, "latent_shape");
    if (init_shape) {
        p.height = (int)init_shape->shape[2];
        p.width = (int)init_shape->shape[3];
    } else if (cJSON_IsArray(shape)) {
        p.height = cJSON_GetArrayItem(shape, 2)->valueint * f;
        p.width = cJSON_GetArrayItem(shape, 3)->valueint * f;
    }
    md_gen_images images = {.init_image = init, .mask = mask};
    if (init && !cJSON_IsNumber(cJSON_GetObjectItem(spec, "strength")))
        p.strength = 1.0f;

    pipe_run r = {.c = c, .key = key, .max_steps = p.steps};
    r.step_n = (size_t)m->unet_cfg.in_channels * (p.height / f) * (p.width / f);
    r.stack_noise_pred = calloc(r.step_n * (size_t)p.steps, sizeof(float));
    r.stack_latents = calloc(r.step_n * (size_t)p.steps, sizeof(float));
    float *image = malloc(sizeof(float) * 3 * (size_t)p.width * p.height);
    md_gen_hooks hooks = {.user = &r, .noise = feed_noise, .tensor = observe};
    md_error err = {0};
    if (r.stack_noise_pred && r.stack_latents && image) {
        md_gen_run run = {.backend = c->be}; /* a LoRA case's wrapper, else the loader */
        if (md_generate(m, &run, &p, &images, &hooks, image, &err) == MD_OK) {
            snprintf(name, sizeof name, "%s.noise_pred", key);
            gc_put(c, name, r.stack_noise_pred, r.step_n * (size_t)r.steps_seen, 0);
            snprintf(name, sizeof name, "%s.latents_per_step", key);
            gc_put(c, name, r.stack_latents, r.step_n * (size_t)r.steps_seen, 0);
        } else {
            fprintf(stderr, "golden-check: %s: %s\n", key, err.msg);
        }
    }
    free(image);
    free(r.stack_noise_pred);
    free(r.stack_latents);
    free(init);
    free(mask);
    m->sched_cfg = saved;
}

void gc_run_pipelines(gc_case *c)
{
    const cJSON *pipes = cJSON_GetObjectItem(c->golden_json, "pipelines");
    if (!pipes)
        return;
    md_model *m = gc_model(c);
    if (!m)
        return;
    const cJSON *spec;
    cJSON_ArrayForEach(spec, pipes) run_one(c, m, spec->string, spec);
}
