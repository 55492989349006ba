/* md-moe-stats: generates one image and records the MoE routing of every
 * sampling step (moe/moe_stats.h).
 *
 *   md-moe-stats -m MODEL -p PROMPT [--steps N] [--seed S] [--cfg-scale C] -o PREFIX
 *
 * writes PREFIX.json (statistics), PREFIX.png (heatmap: a column per step,
 * a row per expert, grouped by layer) and PREFIX-image.png. With guidance
 * on, a step's U-Net call carries the unconditional and the conditional
 * batch rows together, so the figures cover both. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image_png.h"
#include "models/model.h"
#include "moe/moe_stats.h"
#include "pipeline/pipeline.h"
#include "unet/unet.h"
#include "vae/vae.h"

/* Each finished step closes a call, so a call is exactly one step. */
static int on_step(void *user, int step, int total)
{
    (void)step;
    (void)total;
    md_moe_stats_next_call(user);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: md-moe-stats -m MODEL -p PROMPT [--steps N] [--seed S] "
                    "[--cfg-scale C] -o PREFIX\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *prefix = NULL;
    int steps = 20;
    unsigned long long seed = 1;
    float cfg = 7.5f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            return usage();
        if (!strcmp(a, "-m"))
            model = argv[++i];
        else if (!strcmp(a, "-p"))
            prompt = argv[++i];
        else if (!strcmp(a, "-o"))
            prefix = argv[++i];
        else if (!strcmp(a, "--steps"))
            steps = atoi(argv[++i]);
        else if (!strcmp(a, "--seed"))
            seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--cfg-scale"))
            cfg = (float)atof(argv[++i]);
        else
            return usage();
    }
    if (!model || !prompt || !prefix || steps < 1)
        return usage();

    md_error err = {0};
    md_backend *be = NULL;
    md_model *m = NULL;
    md_moe_stats *stats = md_moe_stats_new();
    char note[MD_ERROR_MSG_MAX + 64];
    int rc = 1;
    float *planes = NULL;
    uint8_t *rgb = NULL;
    md_unet_state *state = NULL;
    if (!stats || md_backend_create("cpu", -1, 0, &be, note, sizeof note, &err) != MD_OK)
        goto done;
    md_model_options mo = {.backend = be};
    if (md_model_load(model, &mo, &m, &err) != MD_OK)
        goto done;
    if (md_unet_state_new(m->unet, &state, &err) != MD_OK)
        goto done;
    md_unet_state_set_observer(state, md_moe_stats_observe, stats);

    md_gen_params p;
    md_gen_params_init(&p);
    p.prompt = prompt;
    p.steps = steps;
    p.seed = seed;
    p.cfg_scale = cfg;
    md_gen_hooks hooks = {.user = stats, .progress = on_step};
    const int w = m->unet_cfg.sample_size * md_vae_factor(m->vae); /* the native size */
    const int h = w;
    p.width = w;
    p.height = h;
    planes = malloc(sizeof(float) * 3 * (size_t)w * (size_t)h);
    rgb = malloc(3 * (size_t)w * (size_t)h);
    if (!planes || !rgb) {
        md_fail(&err, MD_ERR_NOMEM, "out of memory");
        goto done;
    }
    md_gen_run run = {.backend = be, .unet = state};
    if (md_generate(m, &run, &p, &hooks, planes, &err) != MD_OK)
        goto done;
    md_planes_to_rgb8(planes, w, h, rgb);
    char path[4096];
    snprintf(path, sizeof path, "%s-image.png", prefix);
    if (md_png_write(path, rgb, w, h, NULL, 0, &err) != MD_OK)
        goto done;
    snprintf(path, sizeof path, "%s.json", prefix);
    if (md_moe_stats_write_json(stats, path, &err) != MD_OK)
        goto done;
    snprintf(path, sizeof path, "%s.png", prefix);
    if (md_moe_stats_write_heatmap(stats, path, 8, &err) != MD_OK)
        goto done;
    printf("%d steps, %d MoE layers: %s.json, %s.png, %s-image.png\n", md_moe_stats_calls(stats),
           md_moe_stats_layers(stats), prefix, prefix, prefix);
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "md-moe-stats: %s\n", err.msg[0] ? err.msg : "out of memory");
    free(planes);
    free(rgb);
    md_unet_state_free(state);
    md_model_free(m);
    if (be)
        md_backend_destroy(be);
    md_moe_stats_free(stats);
    return rc;
}
