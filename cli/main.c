#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../host/infotext.h"
#include "../host/parameters.h"
#include "batch.h"
#include "cli.h"
#include "engine.h"
#include "lora_options.h"
#include "moe_report.h"
#include "render.h"

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

static int write_moe_stats(const md_moe_report *report, const char *pattern, int index,
                           int steps, mdh_error *err)
{
    char json[4096], png[4096];
    if (!md_cli_stats_names(pattern, index, json, png, sizeof json))
        return mdh_fail(err, MDIFF_ERR_INVALID, "--moe-stats %s: name too long", pattern);
    return md_moe_report_write(report, json, png, steps, err);
}

static int render(md_cli_engine *e, md_cli_options *o, uint64_t seed, md_cli_progress *progress)
{
    const mdiff_api *api = e->api;
    mdh_request *r = &o->req;
    md_render_target target = {.quiet = o->quiet || o->json};
    md_moe_report report = {0};
    if (o->moe_stats) {
        if (!md_moe_report_available(e)) {
            md_cli_progress_error(progress, MD_EXIT_USAGE,
                                  "--moe-stats: this model has no MoE layers");
            return MD_EXIT_USAGE;
        }
    }
    /* -v reports the expert work skipped, which the trace counts */
    int reporting = o->moe_stats || (o->verbose && md_moe_report_available(e));
    api->set_progress(e->ctx, md_cli_progress_fn, progress);
    md_cli_lora_report(e, &r->p, o->verbose, o->quiet || o->json);
    int rc = MD_EXIT_OK;
    for (int i = 1; i <= o->batch_count; i++) {
        char name[4096];
        md_cli_output_name(o->output, i, name, sizeof name); /* checked while parsing */
        target.output = name;
        r->p.seed = seed + (uint64_t)(i - 1);
        progress->image = i;
        /* With an init image the size is known once the image is read. */
        int native = e->info.native_width;
        int w = r->p.width ? r->p.width : r->init_image ? 0 : native;
        int h = r->p.height ? r->p.height : r->init_image ? 0 : native;
        if (progress->mode == MD_PROGRESS_BAR || progress->mode == MD_PROGRESS_LINES) {
            char size[32] = "size of the init image";
            if (w && h)
                snprintf(size, sizeof size, "%dx%d", w, h);
            float cfg = r->p.guidance == MDIFF_GUIDANCE_MODEL ? e->info.default_guidance
                                                              : r->p.guidance;
            fprintf(stderr, "%s: seed %llu, %s, %s, %d steps, CFG %g\n", name,
                    (unsigned long long)r->p.seed, size,
                    mdh_sampler_display_name(r->p.sampler ? r->p.sampler : "dpmpp_2m_karras"),
                    r->p.steps, (double)cfg);
        }
        if (o->verbose) {
            char *text = md_render_parameters(e, r, NULL);
            if (text)
                fprintf(stderr, "moe-diffuse: parameters of %s:\n%s\n", name, text);
            free(text);
        }
        md_cli_progress_start(progress, name, r->p.seed, w, h, r->p.steps);
        char msg[1024] = "";
        md_render_result res = {0};
        if (reporting && md_moe_report_begin(&report, e, o->moe_stats != NULL) != MDIFF_OK) {
            md_cli_progress_error(progress, MD_EXIT_FAILURE, "--moe-stats: out of memory");
            rc = MD_EXIT_FAILURE;
            break;
        }
        if (o->verbose)
            md_expert_memory_begin(e);
        int status = md_render(e, r, &target, &res, msg, sizeof msg);
        if (reporting) {
            md_moe_report_end(&report, e);
            mdh_error err = {0};
            if (status == MDIFF_OK && o->moe_stats &&
                write_moe_stats(&report, o->moe_stats, i, res.resolved.steps, &err) != MDIFF_OK) {
                snprintf(msg, sizeof msg, "%s", err.msg);
                status = MDIFF_ERR_IO;
            }
            if (status == MDIFF_OK && o->verbose) {
                char skipped[160];
                md_moe_report_skipped_line(&report, skipped, sizeof skipped);
                fprintf(stderr, "moe-diffuse: %s\n", skipped);
            }
        }
        if (status != MDIFF_OK) {
            rc = md_cli_exit_code(status);
            md_cli_progress_error(progress, rc, msg);
            break;
        }
        md_cli_progress_done(progress, name, res.resolved.width, res.resolved.height, res.seconds);
        char line[1024];
        if (o->verbose && md_moe_health_line(e, line, sizeof line))
            fprintf(stderr, "moe-diffuse: %s: %s\n", name, line);
        if (o->verbose && md_expert_memory_line(e, res.resolved.max_expert_memory, line, sizeof line))
            fprintf(stderr, "moe-diffuse: %s: %s\n", name, line);
        if (cancel_requested && i < o->batch_count) { /* came during the decode: image i is whole */
            md_cli_progress_error(progress, MD_EXIT_CANCELLED, "cancelled before the next image");
            rc = MD_EXIT_CANCELLED;
            break;
        }
    }
    md_moe_report_free(&report);
    api->set_progress(e->ctx, NULL, NULL);
    return rc;
}

/* --profile: the library's per-op GPU time, after the run. */
static void print_profile(const md_cli_engine *e)
{
    const mdiff_profile_api *pa = e->api->get_feature(MDIFF_FEATURE_PROFILE);
    char text[16384];
    int n = pa ? pa->report(e->ctx, text, sizeof text) : MDIFF_ERR_UNSUPPORTED;
    if (n < 0)
        fprintf(stderr, "moe-diffuse: --profile: no GPU profile (%s: it needs the Vulkan "
                        "backend)\n", e->api->status_name(n));
    else
        fprintf(stderr, "moe-diffuse: GPU time per op:\n%s", text);
}

int main(int argc, char **argv)
{
    /* Past a file-size limit (ulimit -f) a write fails with EFBIG and the
     * output code removes its temporary, instead of the process dying
     * with the temporary left behind. */
    signal(SIGXFSZ, SIG_IGN);
    if (argc > 1 && !strcmp(argv[1], "batch"))
        return md_cli_batch_main(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "info"))
        return md_cli_info_main(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "devices"))
        return md_cli_devices_main(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "serve")) {
#ifdef MD_WITH_SERVER
        return md_serve_main(argc - 1, argv + 1);
#else
        fprintf(stderr, "moe-diffuse: this build has no `serve` (libmicrohttpd was not found)\n");
        return MD_EXIT_USAGE;
#endif
    }
    if (argc > 1 && !strcmp(argv[1], "merge"))
        return md_cli_merge_main(argc - 1, argv + 1);

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

    double t0 = now_seconds();
    md_cli_engine engine;
    md_cli_engine_options eo = {.model = model_path, .backend = o.backend, .device = o.device,
                                .threads = o.threads, .profile = o.profile,
                                .max_expert_memory = md_cli_context_expert_memory(&o.req),
                                .log_level = o.quiet || o.json ? -1
                                             : o.verbose       ? MDIFF_LOG_INFO
                                                               : MDIFF_LOG_WARN};
    char msg[1024];
    rc = md_cli_engine_open(&engine, &eo, msg, sizeof msg);
    if (rc != MD_EXIT_OK) {
        md_cli_progress_error(&progress, rc, msg);
        md_cli_engine_close(&engine);
        md_cli_options_free(&o);
        return rc;
    }
    if (o.png_model_hash[0] && engine.model_hash[0] && !o.quiet &&
        strcmp(o.png_model_hash, engine.model_hash) != 0)
        fprintf(stderr, "moe-diffuse: warning: --from-png %s: the image was made with a model of "
                        "hash %s; %s has hash %s, so the image will differ\n",
                o.from_png, o.png_model_hash, model_path, engine.model_hash);
    if (o.verbose) {
        char threads[32] = "all cores";
        if (o.threads)
            snprintf(threads, sizeof threads, "%d thread%s", o.threads, o.threads > 1 ? "s" : "");
        fprintf(stderr, "moe-diffuse: loaded %s in %.2fs (%s)\n", model_path, now_seconds() - t0,
                threads);
    }

    uint64_t seed = o.random_seed ? mdh_random_seed() : o.req.p.seed;
    if (cancel_requested) {
        md_cli_progress_error(&progress, MD_EXIT_CANCELLED, "cancelled while loading the model");
        rc = MD_EXIT_CANCELLED;
    } else {
        rc = render(&engine, &o, seed, &progress);
    }
    if (o.profile && rc != MD_EXIT_USAGE)
        print_profile(&engine);
    if (rc == MD_EXIT_CANCELLED && progress.mode != MD_PROGRESS_JSON && !o.quiet)
        fprintf(stderr, "moe-diffuse: interrupted: no image written for the unfinished run\n");
    md_cli_engine_close(&engine);
    md_cli_options_free(&o);
    return rc;
}
