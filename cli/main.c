#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "io/image_png.h"

#ifndef MD_DEFAULT_MODEL
#define MD_DEFAULT_MODEL "models/demo"
#endif

/* The one piece of process state: set by SIGINT, polled between steps. */
static volatile sig_atomic_t cancel_requested;

static void on_sigint(int sig)
{
    (void)sig;
    cancel_requested = 1;
}

static int exit_code_for(md_status st)
{
    switch (st) {
    case MD_OK: return MD_EXIT_OK;
    case MD_ERR_CANCELLED: return MD_EXIT_CANCELLED;
    case MD_ERR_IO: return MD_EXIT_IO;
    case MD_ERR_INVALID: return MD_EXIT_USAGE;
    default: return MD_EXIT_FAILURE;
    }
}

static uint64_t random_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    x ^= x >> 33; /* splitmix finaliser so nearby clocks give unrelated seeds */
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x & 0xffffffffffffULL; /* keep seeds short enough to type */
}

int main(int argc, char **argv)
{
    md_cli_options o;
    int rc = md_cli_parse(argc, argv, &o);
    if (rc != MD_EXIT_OK)
        return rc < 0 ? MD_EXIT_OK : rc;
    const char *model_path = o.model ? o.model : MD_DEFAULT_MODEL;

    md_error err = {0};
    md_backend *be = NULL;
    md_model *m = NULL;
    if (md_backend_cpu_create(&be, o.threads, &err) != MD_OK) {
        fprintf(stderr, "moe-diffuse: %s\n", err.msg);
        return MD_EXIT_FAILURE;
    }
    md_model_options mo = {.backend = be};
    if (md_model_load(model_path, &mo, &m, &err) != MD_OK) {
        fprintf(stderr, "moe-diffuse: %s\n", err.msg);
        md_backend_destroy(be);
        return MD_EXIT_MODEL;
    }

    md_gen_params p;
    md_gen_params_init(&p);
    p.prompt = o.prompt;
    p.negative_prompt = o.negative_prompt;
    p.steps = o.steps;
    p.cfg_scale = o.cfg_scale;
    p.sampler = (md_sampler_kind)o.sampler;
    p.seed = o.seed < 0 ? random_seed() : (uint64_t)o.seed;
    p.clip_skip = o.clip_skip;
    int native = m->unet_cfg.sample_size * md_vae_factor(m->vae);
    p.width = o.width ? o.width : native;
    p.height = o.height ? o.height : native;
    if (!o.quiet)
        fprintf(stderr, "seed %llu, %dx%d, %s, %d steps, cfg %.1f\n", (unsigned long long)p.seed,
                p.width, p.height, md_sampler_name(p.sampler), p.steps, p.cfg_scale);

    signal(SIGINT, on_sigint);
    md_cli_progress progress = {.tty = !o.quiet && isatty(STDERR_FILENO),
                                .cancel_flag = (volatile int *)&cancel_requested};
    md_gen_hooks hooks = {.user = &progress, .progress = md_cli_progress_cb};
    float *planes = malloc(sizeof(float) * 3 * (size_t)p.width * p.height);
    uint8_t *rgb = malloc(3 * (size_t)p.width * p.height);
    md_status st = (planes && rgb) ? md_generate(m, &p, &hooks, planes, &err)
                                   : md_fail(&err, MD_ERR_NOMEM, "out of memory");
    if (st == MD_OK) {
        md_planes_to_rgb8(planes, p.width, p.height, rgb);
        char params[8192];
        snprintf(params, sizeof params,
                 "%s\nNegative prompt: %s\nSteps: %d, Sampler: %s, CFG scale: %g, Seed: %llu, "
                 "Size: %dx%d, Model: %s",
                 p.prompt, p.negative_prompt ? p.negative_prompt : "", p.steps,
                 md_sampler_name(p.sampler), p.cfg_scale, (unsigned long long)p.seed, p.width,
                 p.height, model_path);
        md_text_chunk chunk = {"parameters", params};
        st = md_png_write(o.output, rgb, p.width, p.height, &chunk, 1, &err);
        if (st == MD_OK && !o.quiet)
            fprintf(stderr, "wrote %s\n", o.output);
    }
    if (st != MD_OK)
        fprintf(stderr, "%smoe-diffuse: %s\n", progress.tty ? "\n" : "", err.msg);
    free(planes);
    free(rgb);
    md_model_free(m);
    md_backend_destroy(be);
    return exit_code_for(st);
}
