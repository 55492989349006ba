#include "batch.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../host/output_file.h"
#include "batch_job.h"
#include "batch_options.h"
#include "batch_record.h"
#include "claim.h"
#include "batch_routing.h"
#include "cli.h"
#include "render.h"
#include "manifest.h"
#include "moe_report.h"
#include "shard.h"

#ifndef MD_DEFAULT_MODEL
#define MD_DEFAULT_MODEL "models/demo"
#endif

#define TAG "moe-diffuse batch"

/* The one piece of process state: set by SIGINT/SIGTERM (Ctrl-C, Slurm's
 * and Kubernetes' stop signal), polled between denoising steps. */
static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct step_progress {
    int tty;
    long pos, total;
} step_progress;

static int on_step(void *user, const mdiff_progress *progress)
{
    step_progress *p = user;
    if (p->tty && progress->stage == MDIFF_STAGE_DENOISE) {
        fprintf(stderr, "\r[%ld/%ld] step %d/%d ", p->pos, p->total, progress->step,
                progress->total);
        fflush(stderr);
    }
    return stop_requested != 0;
}

static uint64_t random_base_seed(void)
{
    return mdh_random_u64() & 0xffffffffULL; /* room for + index below 2^53, short to type */
}

/* mkdir -p */
static int make_dirs(const char *path, char *msg, size_t msg_size)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        snprintf(msg, msg_size, "%s: path too long", path);
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            snprintf(msg, msg_size, "%.400s: cannot create the folder: %s", buf, strerror(errno));
            return -1;
        }
        *p = c;
        if (!c)
            break;
    }
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(msg, msg_size, "%s: not a folder", path);
        return -1;
    }
    return 0;
}

/* The image's directory entry on disk before the manifest says ok (its
 * bytes were fsync'd before the rename, host/output_file.c). */
static void sync_folder(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

typedef struct batch {
    md_batch_options o;
    char out_dir[2048]; /* o.out_dir without trailing slashes */
    md_shard shard;
    md_batch_file file;
    md_batch_job *jobs;
    md_manifest_done done;
    md_manifest_writer mw;
    md_batch_run_info info;
    md_cli_engine engine;
    int loaded;
    long mine, n_ok, n_skipped, n_failed, n_claimed;
    double load_s;
    int moe_named; /* some entry's output ends in .moe.png, like a --moe-stats heatmap */
} batch;

/* What an ok record adds about routing: the library's summary and the
 * --moe-stats file (each NULL when absent). */
typedef struct routing_note {
    cJSON *summary; /* taken over by record() */
    const char *stats;
} routing_note;

/* Appends a record; 0 on success, else prints why (the run must stop). */
static int record(batch *b, const md_batch_job *j, const char *out, const char *status,
                  const char *error, double secs, double gen_secs,
                  const mdiff_gen_params *resolved, const md_file_digest *digest,
                  routing_note *routing)
{
    mdh_error err = {0};
    cJSON *rec = md_batch_record(j, &b->info, out, status, error, secs, gen_secs, resolved,
                                 digest);
    if (rec && routing && routing->summary) {
        cJSON_AddItemToObject(rec, "routing", routing->summary);
        routing->summary = NULL;
    }
    if (rec && routing && routing->stats)
        cJSON_AddStringToObject(rec, "moe_stats", routing->stats);
    if (routing)
        cJSON_Delete(routing->summary);
    int st = rec ? md_manifest_append(&b->mw, rec, &err)
                 : mdh_fail(&err, MDIFF_ERR_NOMEM, "%s: out of memory", b->mw.path);
    cJSON_Delete(rec);
    if (st != MDIFF_OK) {
        fprintf(stderr, "%s: %s\n", TAG, err.msg);
        return -1;
    }
    return 0;
}

static int load_model(batch *b)
{
    const char *path = b->o.model ? b->o.model : MD_DEFAULT_MODEL;
    double t0 = now_s();
    md_cli_engine_options eo = {.model = path, .backend = b->o.backend, .device = b->o.device,
                                .threads = b->o.threads,
                                .max_expert_memory = md_cli_context_expert_memory(&b->o.defaults),
                                .log_level = b->o.quiet ? -1 : MDIFF_LOG_WARN};
    char msg[1024];
    int rc = md_cli_engine_open(&b->engine, &eo, msg, sizeof msg);
    if (rc != MD_EXIT_OK) {
        fprintf(stderr, "%s: %s\n", TAG, msg);
        return rc;
    }
    b->loaded = 1;
    b->load_s = now_s() - t0;
    if (!b->o.quiet)
        fprintf(stderr, "%s: loaded %s in %.2f s\n", TAG, path, b->load_s);
    if (b->o.moe_stats && !md_moe_report_available(&b->engine)) {
        fprintf(stderr, "%s: --moe-stats: this model has no MoE layers\n", TAG);
        return MD_EXIT_USAGE;
    }
    return 0;
}

/* --moe-stats: the entry's statistics beside its image; 0 or prints why. */
static int write_stats(const batch *b, const md_moe_report *report, const char *out, int steps,
                       char *json, size_t cap)
{
    char png[4096], other[4096];
    mdh_error err = {0};
    if (!md_batch_stats_names(out, json, png, cap < sizeof png ? cap : sizeof png))
        mdh_fail(&err, MDIFF_ERR_INVALID, "%s: name too long for its statistics", out);
    /* Never over another entry's image (a line may name its output
     * x.moe.png); only such names can clash, so most runs skip the scan. */
    for (long i = 0; !err.code && b->moe_named && i < b->file.count; i++) {
        const md_batch_job *o = &b->jobs[i];
        snprintf(other, sizeof other, "%s/%s", b->out_dir, o->name ? o->name : "");
        if (o->valid && o->name && (!strcmp(other, png) || !strcmp(other, json)))
            mdh_fail(&err, MDIFF_ERR_INVALID, "%s would overwrite the output of line %ld",
                     !strcmp(other, png) ? png : json, o->line);
    }
    if (!err.code && md_moe_report_write(report, json, png, steps, &err) == MDIFF_OK)
        return 0;
    fprintf(stderr, "%s: --moe-stats: %s\n", TAG, err.msg);
    return -1;
}

/* Renders one valid job; returns 0 (ok or line failed), MD_EXIT_CANCELLED,
 * or an exit code that ends the run. */
static int render(batch *b, md_batch_job *j, const char *out, long pos)
{
    /* the metadata's Model: is left to render, as for one image */
    md_render_target target = {.output = out, .quiet = b->o.quiet};
    step_progress sp = {.tty = !b->o.quiet && isatty(STDERR_FILENO), .pos = pos, .total = b->mine};
    const mdiff_api *api = b->engine.api;
    api->set_progress(b->engine.ctx, on_step, &sp);
    md_render_result res = {0};
    char err[1024] = "";
    double t0 = now_s();
    md_moe_report report = {0};
    if (b->o.moe_stats && md_moe_report_begin(&report, &b->engine, 1) != MDIFF_OK) {
        fprintf(stderr, "%s: --moe-stats: out of memory\n", TAG);
        md_moe_report_free(&report);
        return MD_EXIT_FAILURE;
    }
    int st = md_render(&b->engine, &j->req, &target, &res, err, sizeof err);
    api->set_progress(b->engine.ctx, NULL, NULL);
    md_moe_report_end(&report, &b->engine);
    char stats[4096] = "";
    if (st == MDIFF_OK && b->o.moe_stats && write_stats(b, &report, out, res.resolved.steps, stats, sizeof stats)) {
        md_moe_report_free(&report);
        return MD_EXIT_IO;
    }
    md_moe_report_free(&report);
    if (sp.tty)
        fputs("\r\033[K", stderr); /* clear the step counter line */
    if (st == MDIFF_ERR_CANCELLED) {
        fprintf(stderr, "%s: stopped at line %ld (no file written for it); run the same "
                        "command again to resume\n",
                TAG, j->line);
        return MD_EXIT_CANCELLED;
    }
    if (st != MDIFF_OK) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s:%ld: %s", b->file.path, j->line, err);
        fprintf(stderr, "%s: [%ld/%ld] %s\n", TAG, pos, b->mine, msg);
        b->n_failed++;
        return record(b, j, out, "error", msg, now_s() - t0, -1, NULL, NULL, NULL) ? MD_EXIT_IO : 0;
    }
    sync_folder(b->out_dir);
    md_file_digest digest;
    if (md_file_digest_of(out, &digest) != 0) {
        fprintf(stderr, "%s: %s: the image just written cannot be read back\n", TAG, out);
        return MD_EXIT_IO;
    }
    double secs = now_s() - t0;
    b->n_ok++;
    if (!b->o.quiet)
        fprintf(stderr, "%s: [%ld/%ld] line %ld -> %s ok (%dx%d, seed %llu, %.2f s)\n", TAG, pos,
                b->mine, j->line, out, res.resolved.width, res.resolved.height,
                (unsigned long long)j->req.p.seed, secs);
    routing_note routing = {.summary = md_batch_routing_json(&b->engine),
                            .stats = stats[0] ? stats : NULL};
    return record(b, j, out, "ok", NULL, secs, res.seconds, &res.resolved, &digest, &routing)
               ? MD_EXIT_IO
               : 0;
}

static void skipped_done(batch *b, const md_batch_job *j, const char *out, long pos)
{
    b->n_skipped++;
    if (!b->o.quiet)
        fprintf(stderr, "%s: [%ld/%ld] line %ld -> %s done earlier, skipped\n", TAG, pos, b->mine,
                j->line, out);
}

/* Renders j unless another run holds its claim or finished it meanwhile
 * (its manifest, read again once the claim is held, says so). */
static int claim_and_render(batch *b, md_batch_job *j, const char *out, long pos)
{
    md_claim claim;
    char owner[300] = "";
    mdh_error err = {0};
    md_claim_result cr = md_claim_take(b->out_dir, j->name, &claim, owner, sizeof owner, &err);
    if (cr == MD_CLAIM_ERROR) {
        fprintf(stderr, "%s: %s\n", TAG, err.msg);
        return MD_EXIT_IO;
    }
    if (cr == MD_CLAIM_BUSY) {
        b->n_claimed++;
        if (!b->o.quiet)
            fprintf(stderr, "%s: [%ld/%ld] line %ld -> %s claimed by %s (another run), left to it\n",
                    TAG, pos, b->mine, j->line, out, owner[0] ? owner : "another process");
        return 0;
    }
    int rc = 0;
    if (md_manifest_read_dir(b->out_dir, b->mw.path, &b->done, &err) != MDIFF_OK) {
        fprintf(stderr, "%s: %s\n", TAG, err.msg);
        rc = MD_EXIT_IO;
    } else if (md_batch_find_done(&b->done, j, out)) {
        skipped_done(b, j, out, pos);
    } else if (!b->loaded && (rc = load_model(b)) != 0) {
        /* rc says why */
    } else {
        rc = render(b, j, out, pos);
    }
    md_claim_release(&claim); /* after the record: a reader never sees neither */
    return rc;
}

static int run_jobs(batch *b)
{
    long pos = 0;
    for (long i = 0; i < b->file.count; i++) {
        md_batch_job *j = &b->jobs[i];
        if (!md_shard_owns(&b->shard, j->index))
            continue;
        pos++;
        if (stop_requested) {
            fprintf(stderr, "%s: stopped before line %ld; run the same command again to resume\n",
                    TAG, j->line);
            return MD_EXIT_CANCELLED;
        }
        char out[4096];
        snprintf(out, sizeof out, "%s/%s", b->out_dir, j->name ? j->name : "");
        if (!j->valid) {
            const char *msg = j->error ? j->error : "out of memory";
            fprintf(stderr, "%s: [%ld/%ld] %s\n", TAG, pos, b->mine, msg);
            b->n_failed++;
            if (record(b, j, j->name ? out : NULL, "error", msg, -1, -1, NULL, NULL, NULL))
                return MD_EXIT_IO;
            continue;
        }
        if (md_batch_find_done(&b->done, j, out)) {
            skipped_done(b, j, out, pos);
            continue;
        }
        int rc = claim_and_render(b, j, out, pos);
        if (rc)
            return rc;
    }
    return 0;
}

/* Everything before the first image: shard, prompts, folder, manifest,
 * resume state, base seed, jobs. Returns 0 or an exit code. */
static int prepare(batch *b)
{
    char msg[512];
    mdh_error err = {0};
    b->shard.n = 1;
    snprintf(b->shard.source, sizeof b->shard.source, "no --shard");
    if (b->o.shard && md_shard_parse(b->o.shard, &b->shard, msg, sizeof msg)) {
        fprintf(stderr, "%s: %s\n", TAG, msg);
        return MD_EXIT_USAGE;
    }
    if (md_batch_file_read(b->o.prompts, &b->file, &err) != MDIFF_OK) {
        fprintf(stderr, "%s: %s\n", TAG, err.msg);
        return err.code == MDIFF_ERR_CANCELLED ? MD_EXIT_CANCELLED : MD_EXIT_IO;
    }
    if (!strcmp(b->o.prompts, "-"))
        b->file.path = "<stdin>"; /* for messages: "<stdin>:3: ..." */
    size_t n = strlen(b->o.out_dir);
    if (n >= sizeof b->out_dir) {
        fprintf(stderr, "%s: --out-dir is longer than %zu bytes\n", TAG, sizeof b->out_dir - 1);
        return MD_EXIT_USAGE;
    }
    memcpy(b->out_dir, b->o.out_dir, n + 1);
    while (n > 1 && b->out_dir[n - 1] == '/')
        b->out_dir[--n] = '\0';
    if (make_dirs(b->out_dir, msg, sizeof msg)) {
        fprintf(stderr, "%s: %s\n", TAG, msg);
        return MD_EXIT_IO;
    }
    /* Temporaries of a killed run (no live writer holds them) go first. */
    int orphans = mdh_output_remove_orphans(b->out_dir, &err);
    if (orphans < 0) {
        fprintf(stderr, "%s: %s\n", TAG, err.msg);
        return MD_EXIT_IO;
    }
    if (orphans && !b->o.quiet)
        fprintf(stderr, "%s: %s: removed %d temporary file(s) left by an interrupted run\n", TAG,
                b->out_dir, orphans);
    char mpath[4096];
    if (b->o.manifest)
        snprintf(mpath, sizeof mpath, "%s", b->o.manifest);
    else if (b->o.shard)
        snprintf(mpath, sizeof mpath, "%s/manifest.shard-%ld-of-%ld.jsonl", b->out_dir,
                 b->shard.k, b->shard.n);
    else
        snprintf(mpath, sizeof mpath, "%s/manifest.jsonl", b->out_dir);
    md_manifest_done_init(&b->done, b->file.count);
    if (b->file.count && !b->done.by_index) {
        fprintf(stderr, "%s: out of memory\n", TAG);
        return MD_EXIT_FAILURE;
    }
    if (md_manifest_open(mpath, &b->mw, &err) != MDIFF_OK ||
        md_manifest_read(mpath, &b->done, &err) != MDIFF_OK ||
        md_manifest_read_dir(b->out_dir, mpath, &b->done, &err) != MDIFF_OK) {
        fprintf(stderr, "%s: %s\n", TAG, err.msg);
        return MD_EXIT_IO;
    }

    md_batch_run_info *ri = &b->info;
    ri->prompts = b->o.prompts;
    ri->model = b->o.model ? b->o.model : MD_DEFAULT_MODEL;
    snprintf(ri->shard, sizeof ri->shard, "%ld/%ld", b->shard.k, b->shard.n);
    if (gethostname(ri->host, sizeof ri->host - 1) != 0)
        snprintf(ri->host, sizeof ri->host, "unknown");
    if (b->o.seed >= 0) {
        ri->base_seed = (uint64_t)b->o.seed;
    } else {
        ri->base_seed_random = 1;
        ri->base_seed = b->done.have_base_seed ? b->done.base_seed : random_base_seed();
    }

    md_batch_defaults d = {.request = &b->o.defaults, .base_seed = ri->base_seed};
    b->jobs = calloc((size_t)(b->file.count ? b->file.count : 1), sizeof *b->jobs);
    if (!b->jobs) {
        fprintf(stderr, "%s: out of memory\n", TAG);
        return MD_EXIT_FAILURE;
    }
    /* Every entry is resolved, not only this shard's, so that output name
     * clashes are settled the same way in every shard. */
    for (long i = 0; i < b->file.count; i++) {
        md_batch_job_resolve(&b->file.entries[i], b->file.path, &d, &b->jobs[i]);
        if (md_shard_owns(&b->shard, i))
            b->mine++;
        else
            md_batch_job_drop_prompts(&b->jobs[i]);
    }
    md_batch_jobs_check_names(b->jobs, b->file.count, b->file.path);
    for (long i = 0; i < b->file.count; i++) {
        const char *name = b->jobs[i].name;
        size_t len = name ? strlen(name) : 0;
        b->moe_named |= len >= 8 && !strcmp(name + len - 8, ".moe.png");
    }
    if (!b->o.quiet) {
        fprintf(stderr, "%s: %s: %ld entries; shard %ld/%ld (%s) has %ld; base seed %llu%s; "
                        "manifest %s",
                TAG, b->file.path, b->file.count, b->shard.k, b->shard.n, b->shard.source, b->mine,
                (unsigned long long)ri->base_seed,
                !ri->base_seed_random ? ""
                : b->done.have_base_seed ? " (random, from the manifest)"
                                         : " (random)",
                mpath);
        if (b->done.skipped)
            fprintf(stderr, " (%ld unreadable manifest line(s) ignored)", b->done.skipped);
        fputc('\n', stderr);
    }
    return 0;
}

int md_cli_batch_main(int argc, char **argv)
{
    batch b;
    memset(&b, 0, sizeof b);
    b.mw.fd = -1;
    int rc = md_batch_parse(argc, argv, &b.o);
    if (rc) {
        md_batch_options_free(&b.o);
        return rc < 0 ? MD_EXIT_OK : rc;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sa.sa_flags = SA_RESTART | SA_RESETHAND; /* a second signal ends a long step at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    double t0 = now_s();
    rc = prepare(&b);
    int prepared = rc == 0;
    if (prepared)
        rc = run_jobs(&b);
    if (!rc && b.n_failed)
        rc = MD_EXIT_FAILURE;
    char claimed[64] = "";
    if (b.n_claimed)
        snprintf(claimed, sizeof claimed, ", %ld left to another run", b.n_claimed);
    if (prepared && (!b.o.quiet || rc))
        fprintf(stderr, "%s: shard %ld/%ld: %ld ok, %ld skipped, %ld failed%s of %ld; %.2f s%s\n",
                TAG, b.shard.k, b.shard.n, b.n_ok, b.n_skipped, b.n_failed, claimed, b.mine,
                now_s() - t0,
                rc == MD_EXIT_FAILURE ? " (exit 1: see the errors above and the manifest)" : "");
    md_manifest_close(&b.mw);
    md_manifest_done_free(&b.done);
    for (long i = 0; b.jobs && i < b.file.count; i++)
        md_batch_job_clear(&b.jobs[i]);
    free(b.jobs);
    md_batch_file_free(&b.file);
    md_cli_engine_close(&b.engine);
    md_batch_options_free(&b.o);
    return rc;
}
