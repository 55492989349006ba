/* sched.<S>.n<N>.* tables and sched.<S>.traj.* single steps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gc.h"
#include "sampling/sampler.h"

static void tables(gc_case *c, const char *sname, md_sampler_kind kind, const md_sched_config *cfg,
                   int steps)
{
    char name[160];
    snprintf(name, sizeof name, "sched.%s.n%d.timesteps", sname, steps);
    if (!gc_has(c, name))
        return;
    md_sampler *s = NULL;
    md_error err = {0};
    if (md_sampler_create(&s, kind, cfg, steps, &err) != MD_OK) {
        fprintf(stderr, "golden-check: %s: %s\n", sname, err.msg);
        return;
    }
    gc_put(c, name, md_sampler_timesteps(s), (size_t)steps, 0);
    if (md_sampler_sigmas(s)) {
        snprintf(name, sizeof name, "sched.%s.n%d.sigmas", sname, steps);
        gc_put(c, name, md_sampler_sigmas(s), (size_t)steps + 1, 0);
    }
    float sigma0 = md_sampler_init_noise_sigma(s);
    snprintf(name, sizeof name, "sched.%s.n%d.init_noise_sigma", sname, steps);
    gc_put(c, name, &sigma0, 1, 0);
    md_sampler_free(s);
}

static void trajectory(gc_case *c, const char *sname, md_sampler_kind kind,
                       const md_sched_config *cfg)
{
    char name[160];
    size_t ns = 0, nm = 0, nn = 0;
    snprintf(name, sizeof name, "sched.%s.traj.sample", sname);
    const md_tensor *shape = md_safetensors_find(c->gold, name);
    float *sample = gc_gold_f32(c, name, &ns);
    snprintf(name, sizeof name, "sched.%s.traj.model_output", sname);
    float *model_out = gc_gold_f32(c, name, &nm);
    snprintf(name, sizeof name, "sched.%s.traj.noise", sname);
    float *noise = gc_gold_f32(c, name, &nn);
    md_sampler *s = NULL;
    md_error err = {0};
    if (!sample || !model_out || nm != ns)
        goto done;
    int steps = (int)shape->shape[0];
    size_t n = ns / (size_t)steps;
    float *scaled = malloc(sizeof(float) * ns), *prev = malloc(sizeof(float) * ns);
    if (scaled && prev && md_sampler_create(&s, kind, cfg, steps, &err) == MD_OK) {
        int ok = 1;
        for (int i = 0; i < steps && ok; i++) {
            md_sampler_scale_input(s, i, sample + i * n, scaled + i * n, n);
            ok = md_sampler_step(s, i, model_out + i * n, sample + i * n, noise ? noise + i * n : NULL,
                                 prev + i * n, n, &err) == MD_OK;
        }
        if (ok) {
            snprintf(name, sizeof name, "sched.%s.traj.timesteps", sname);
            gc_put(c, name, md_sampler_timesteps(s), (size_t)steps, 0);
            snprintf(name, sizeof name, "sched.%s.traj.scaled_model_input", sname);
            gc_put(c, name, scaled, ns, 0);
            snprintf(name, sizeof name, "sched.%s.traj.prev_sample", sname);
            gc_put(c, name, prev, ns, 0);
        } else {
            fprintf(stderr, "golden-check: %s step: %s\n", sname, err.msg);
        }
    } else if (err.msg[0]) {
        fprintf(stderr, "golden-check: %s: %s\n", sname, err.msg);
    }
    md_sampler_free(s);
    free(scaled);
    free(prev);
done:
    free(sample);
    free(model_out);
    free(noise);
}

void gc_run_schedulers(gc_case *c)
{
    const cJSON *configs = cJSON_GetObjectItem(c->golden_json, "scheduler_configs");
    const cJSON *it;
    cJSON_ArrayForEach(it, configs)
    {
        int kind = md_sampler_from_name(it->string);
        md_sched_config cfg;
        if (kind < 0 || !gc_sched_config(it, &cfg))
            continue;
        const int table_steps[] = {4, 10, 20};
        for (size_t k = 0; k < 3; k++)
            tables(c, it->string, (md_sampler_kind)kind, &cfg, table_steps[k]);
        trajectory(c, it->string, (md_sampler_kind)kind, &cfg);
    }
}
