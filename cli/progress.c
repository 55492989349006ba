#include <cjson/cJSON.h>
#include <stdio.h>
#include <time.h>

#include "cli.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One compact JSON object per line on stdout, flushed so a reading
 * script sees each event as it happens. */
static void emit_json(cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    cJSON_free(s);
    cJSON_Delete(o);
}

static cJSON *event(const char *name, const md_cli_progress *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", name);
    cJSON_AddNumberToObject(o, "image", p->image);
    cJSON_AddNumberToObject(o, "images", p->images);
    return o;
}

void md_cli_progress_start(md_cli_progress *p, const char *output, uint64_t seed, int width,
                           int height, int steps)
{
    p->start = now_seconds();
    p->last_line = 0;
    if (p->mode == MD_PROGRESS_JSON) {
        cJSON *o = event("start", p);
        cJSON_AddStringToObject(o, "output", output);
        cJSON_AddNumberToObject(o, "seed", (double)seed);
        cJSON_AddNumberToObject(o, "width", width);
        cJSON_AddNumberToObject(o, "height", height);
        cJSON_AddNumberToObject(o, "steps", steps);
        emit_json(o);
    }
}

static void format_eta(char *buf, size_t cap, double s)
{
    if (s >= 3600)
        snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60)
        snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, cap, "%.0fs", s);
}

int md_cli_progress_cb(void *user, int step, int total)
{
    md_cli_progress *p = user;
    double elapsed = now_seconds() - p->start;
    double rate = elapsed > 0 ? step / elapsed : 0;
    double eta = rate > 0 ? (total - step) / rate : 0;
    char eta_s[32];
    format_eta(eta_s, sizeof eta_s, eta);
    switch (p->mode) {
    case MD_PROGRESS_BAR: {
        int width = 30, filled = total ? step * width / total : width;
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        char image[32] = "";
        if (p->images > 1)
            snprintf(image, sizeof image, "image %d/%d ", p->image, p->images);
        fprintf(stderr, "\r%s[%s] %d/%d  %.2f it/s  ETA %s\033[K", image, bar, step, total, rate,
                eta_s);
        p->bar_open = step < total;
        if (!p->bar_open)
            fputc('\n', stderr);
        fflush(stderr);
        break;
    }
    case MD_PROGRESS_LINES:
        /* About ten lines per image, and always the last step. */
        if (step == total || step == 1 || step - p->last_line >= (total + 9) / 10) {
            char image[32] = "";
            if (p->images > 1)
                snprintf(image, sizeof image, "image %d/%d: ", p->image, p->images);
            fprintf(stderr, "%sstep %d/%d, %.2f it/s, ETA %s\n", image, step, total, rate, eta_s);
            p->last_line = step;
        }
        break;
    case MD_PROGRESS_JSON: {
        cJSON *o = event("step", p);
        cJSON_AddNumberToObject(o, "step", step);
        cJSON_AddNumberToObject(o, "steps", total);
        cJSON_AddNumberToObject(o, "it_per_s", rate);
        cJSON_AddNumberToObject(o, "eta_s", eta);
        emit_json(o);
        break;
    }
    case MD_PROGRESS_NONE: break;
    }
    return p->cancel_flag && *p->cancel_flag;
}

void md_cli_progress_done(md_cli_progress *p, const char *output, int width, int height,
                          double seconds)
{
    if (p->mode == MD_PROGRESS_JSON) {
        cJSON *o = event("done", p);
        cJSON_AddStringToObject(o, "output", output);
        cJSON_AddNumberToObject(o, "width", width);
        cJSON_AddNumberToObject(o, "height", height);
        cJSON_AddNumberToObject(o, "seconds", seconds);
        emit_json(o);
    } else if (p->mode != MD_PROGRESS_NONE) {
        fprintf(stderr, "wrote %s (%.1fs)\n", output, seconds);
    }
}

void md_cli_progress_error(md_cli_progress *p, int exit_code, const char *message)
{
    /* A bar left mid-line would swallow the message. */
    if (p->bar_open)
        fputc('\n', stderr);
    p->bar_open = 0;
    fprintf(stderr, "moe-diffuse: %s\n", message);
    if (p->mode == MD_PROGRESS_JSON) {
        cJSON *o = event("error", p);
        cJSON_AddNumberToObject(o, "exit_code", exit_code);
        cJSON_AddStringToObject(o, "message", message);
        emit_json(o);
    }
}

int md_cli_progress_fn(void *user, const mdiff_progress *progress)
{
    md_cli_progress *p = user;
    if (progress->stage == MDIFF_STAGE_DENOISE)
        return md_cli_progress_cb(p, progress->step, progress->total);
    return p->cancel_flag && *p->cancel_flag;
}
