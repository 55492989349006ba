#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "cli.h"
#include "moe/moe_stats.h"
#include "gen_request.h"
#include "infotext.h"

/* The one piece of process state: set by SIGINT, polled between steps. */
static volatile sig_atomic_t cancel_requested;

static void on_sigint(int sig)
{
    (void)sig;
    cancel_requested = 1;
}

/* The first Ctrl-C stops at the next step; a second one (the handler is
 * reset) ends the process at once. */
static void catch_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

static uint64_t random_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    x ^= x >> 33; /* splitmix finaliser so nearby clocks give unrelated seeds */
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x & 0xffffffffULL; /* 32 bits: short to type, as other UIs print them */
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static md_progress_mode progress_mode(const md_cli_options *o)
{
    if (o->json)
        return MD_PROGRESS_JSON;
    if (o->quiet)
        return MD_PROGRESS_NONE;
    return isatty(STDERR_FILENO) ? MD_PROGRESS_BAR : MD_PROGRESS_LINES;
}

/* --moe-stats: the router statistics observer plus a step counter in the
 * progress hook (one U-Net call per step). */
typedef struct stats_progress {
    md_cli_progress *progress;
    md_moe_stats *stats;
} stats_progress;

static int stats_progress_cb(void *user, int step, int total)
{
    stats_progress *sp = user;
    md_moe_stats_next_call(sp->stats);
    return md_cli_progress_cb(sp->progress, step, total);
}

static md_status write_moe_stats(const md_moe_stats *stats, const char *pattern, int index,
                                 md_error *err)
{
    char json[4096], png[4100];
    if (!md_cli_output_name(pattern, index, json, sizeof json))
        return md_fail(err, MD_ERR_INVALID, "--moe-stats %s: name too long", pattern);
    size_t n = strlen(json);
    if (n > 5 && !strcmp(json + n - 5, ".json"))
        n -= 5;
    snprintf(png, sizeof png, "%.*s.png", (int)n, json);
    md_status st = md_moe_stats_write_json(stats, json, err);
    return st == MD_OK ? md_moe_stats_write_heatmap(stats, png, 8, err) : st;
}

static int render(md_model *m, const md_cli_options *o, uint64_t seed, md_cli_progress *progress)
{
    md_gen_request r;
    md_gen_request_init(&r);
    r.prompt = o->prompt;
    r.negative_prompt = o->negative_prompt;
    r.steps = o->steps;
    r.cfg_scale = (o->given & MD_OPT_CFG) ? o->cfg_scale : m->default_cfg;
    r.original_width = o->original_size[0];
    r.original_height = o->original_size[1];
    r.target_width = o->target_size[0];
    r.target_height = o->target_size[1];
    r.crop_top = o->crop[0];
    r.crop_left = o->crop[1];
    r.sampler = (md_sampler_kind)o->sampler;
    r.width = o->width;
    r.height = o->height;
    r.clip_skip = o->clip_skip;
    r.init_image = o->init_image;
    r.strength = o->strength;
    r.mask = o->mask;
    r.quiet = o->quiet || o->json;
    md_gen_hooks hooks = {.user = progress, .progress = md_cli_progress_cb};
    stats_progress sp = {.progress = progress};
    if (o->moe_stats) {
        if (!m->unet_cfg.moe.enabled) {
            md_cli_progress_error(progress, MD_EXIT_USAGE, "--moe-stats: this model has no MoE layers");
            return MD_EXIT_USAGE;
        }
        hooks = (md_gen_hooks){.user = &sp, .progress = stats_progress_cb};
    }
    for (int i = 1; i <= o->batch_count; i++) {
        char name[4096];
        md_cli_output_name(o->output, i, name, sizeof name); /* checked while parsing */
        r.output = name;
        r.seed = seed + (uint64_t)(i - 1);
        progress->image = i;
        /* With an init image the size is known once the image is read. */
        int native = m->default_size;
        int w = r.width ? r.width : r.init_image ? 0 : native;
        int h = r.height ? r.height : r.init_image ? 0 : native;
        if (progress->mode == MD_PROGRESS_BAR || progress->mode == MD_PROGRESS_LINES) {
            char size[32] = "size of the init image";
            if (w && h)
                snprintf(size, sizeof size, "%dx%d", w, h);
            fprintf(stderr, "%s: seed %llu, %s, %s, %d steps, CFG %g\n", name,
                    (unsigned long long)r.seed, size, md_infotext_sampler_name(r.sampler), r.steps,
                    (double)r.cfg_scale);
        }
        if (o->verbose) {
            char *text = md_gen_request_parameters(m, &r);
            if (text)
                fprintf(stderr, "moe-diffuse: parameters of %s:\n%s\n", name, text);
            free(text);
        }
        md_cli_progress_start(progress, name, r.seed, w, h, r.steps);
        md_error err = {0};
        md_gen_result res = {0};
        if (o->moe_stats) {
            md_moe_stats_free(sp.stats);
            sp.stats = md_moe_stats_new();
            if (!sp.stats) {
                md_cli_progress_error(progress, MD_EXIT_FAILURE, "out of memory");
                return MD_EXIT_FAILURE;
            }
            md_unet_set_moe_observer(m->unet, md_moe_stats_observe, sp.stats);
        }
        md_status st = md_gen_request_run(m, &r, &hooks, &res, &err);
        if (o->moe_stats) {
            md_unet_set_moe_observer(m->unet, NULL, NULL);
            if (st == MD_OK)
                st = write_moe_stats(sp.stats, o->moe_stats, i, &err);
            if (st != MD_OK || i == o->batch_count) {
                md_moe_stats_free(sp.stats);
                sp.stats = NULL;
            }
        }
        if (st != MD_OK) {
            int code = md_gen_exit_code(st);
            md_cli_progress_error(progress, code, err.msg);
            return code;
        }
        md_cli_progress_done(progress, name, res.width, res.height, res.seconds);
        if (cancel_requested && i < o->batch_count) { /* came during the decode: image i is whole */
            md_cli_progress_error(progress, MD_EXIT_CANCELLED, "cancelled before the next image");
            md_moe_stats_free(sp.stats);
            return MD_EXIT_CANCELLED;
        }
    }
    return MD_EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "batch"))
        return md_cli_batch_main(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "info"))
        return md_cli_info_main(argc - 1, argv + 1);

    md_cli_options o;
    int rc = md_cli_parse(argc, argv, &o);
    if (rc != MD_EXIT_OK) {
        md_cli_options_free(&o);
        return rc < 0 ? MD_EXIT_OK : rc;
    }
    const char *model_path = o.model ? o.model : MD_DEFAULT_MODEL;
    catch_sigint();
    md_cli_progress progress = {
        .mode = progress_mode(&o), .images = o.batch_count, .cancel_flag = &cancel_requested};

    md_error err = {0};
    md_backend *be = NULL;
    md_model *m = NULL;
    double t0 = now_seconds();
    char note[MD_ERROR_MSG_MAX + 64];
    md_status st = md_backend_create(o.backend, -1, o.threads, &be, note, sizeof note, &err);
    if (st != MD_OK) {
        int code = st == MD_ERR_INVALID ? MD_EXIT_USAGE : MD_EXIT_FAILURE;
        md_cli_progress_error(&progress, code, err.msg);
        md_cli_options_free(&o);
        return code;
    }
    /* Say which backend runs when asked, or when an explicit Vulkan request
     * fell back to the CPU. */
    if (!o.quiet && !o.json &&
        (o.verbose || (!strcmp(o.backend, "vulkan") && strcmp(be->name, "vulkan"))))
        fprintf(stderr, "moe-diffuse: %s\n", note);
    md_model_options mo = {.backend = be};
    if (md_model_load(model_path, &mo, &m, &err) != MD_OK) {
        md_cli_progress_error(&progress, MD_EXIT_MODEL, err.msg);
        md_backend_destroy(be);
        md_cli_options_free(&o);
        return MD_EXIT_MODEL;
    }
    if (o.verbose) {
        char threads[32] = "all cores";
        if (o.threads)
            snprintf(threads, sizeof threads, "%d thread%s", o.threads, o.threads > 1 ? "s" : "");
        fprintf(stderr, "moe-diffuse: loaded %s in %.2fs (%s)\n", model_path, now_seconds() - t0,
                threads);
    }

    uint64_t seed = o.seed < 0 ? random_seed() : (uint64_t)o.seed;
    if (cancel_requested) {
        md_cli_progress_error(&progress, MD_EXIT_CANCELLED, "cancelled while loading the model");
        rc = MD_EXIT_CANCELLED;
    } else {
        rc = render(m, &o, seed, &progress);
    }
    if (rc == MD_EXIT_CANCELLED && progress.mode != MD_PROGRESS_JSON && !o.quiet)
        fprintf(stderr, "moe-diffuse: interrupted: no image written for the unfinished run\n");
    md_model_free(m);
    md_backend_destroy(be);
    md_cli_options_free(&o);
    return rc;
}
