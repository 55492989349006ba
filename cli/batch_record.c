#include "batch_record.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sampling/sampler.h"
#include "engine.h"

static void add_str(cJSON *o, const char *key, const char *s)
{
    if (s)
        cJSON_AddStringToObject(o, key, s);
    else
        cJSON_AddNullToObject(o, key);
}

cJSON *md_batch_record(const md_batch_job *j, const md_batch_run_info *ri, const char *output,
                       const char *status, const char *error, double seconds, double gen_seconds)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "index", (double)j->index);
    cJSON_AddNumberToObject(o, "line", (double)j->line);
    add_str(o, "output", output);
    add_str(o, "name", j->name);
    cJSON_AddStringToObject(o, "status", status);
    add_str(o, "error", error);
    /* Parameters only when the line parsed: a malformed line has none. */
    if (j->valid) {
        add_str(o, "prompt", j->prompt);
        add_str(o, "negative_prompt", j->negative_prompt);
        cJSON_AddNumberToObject(o, "seed", (double)j->seed);
        cJSON_AddNumberToObject(o, "steps", j->steps);
        if (j->cfg_scale >= 0) /* < 0: the model's, unknown until it is loaded */
            cJSON_AddNumberToObject(o, "cfg_scale", j->cfg_scale);
        cJSON_AddStringToObject(o, "sampler", md_cli_sampler_name(j->sampler));
        cJSON_AddNumberToObject(o, "width", j->width);
        cJSON_AddNumberToObject(o, "height", j->height);
        cJSON_AddNumberToObject(o, "clip_skip", j->clip_skip);
        /* guidance not given: the model's, so a resume knows to match it */
        cJSON_AddBoolToObject(o, "cfg_scale_default", j->cfg_from_model || j->cfg_scale < 0);
    }
    cJSON_AddNumberToObject(o, "base_seed", (double)ri->base_seed);
    cJSON_AddBoolToObject(o, "base_seed_random", ri->base_seed_random);
    add_str(o, "model", ri->model);
    add_str(o, "prompts", ri->prompts);
    cJSON_AddStringToObject(o, "shard", ri->shard);
    cJSON_AddStringToObject(o, "host", ri->host);
    if (seconds >= 0)
        cJSON_AddNumberToObject(o, "seconds", round(seconds * 1000) / 1000);
    if (gen_seconds >= 0)
        cJSON_AddNumberToObject(o, "generate_seconds", round(gen_seconds * 1000) / 1000);
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(o, "finished", when);
    return o;
}

static int same_str(const cJSON *rec, const char *key, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (!want)
        return cJSON_IsNull(v);
    return cJSON_IsString(v) && strcmp(v->valuestring, want) == 0;
}

static int same_num(const cJSON *rec, const char *key, double want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    return cJSON_IsNumber(v) && fabs(v->valuedouble - want) <= 1e-9 * (1 + fabs(want));
}

/* The model's default guidance matches a record made with the model's
 * default (whatever its value); a given one only the same given value. */
static int same_guidance(const cJSON *rec, const md_batch_job *j)
{
    int rec_default = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "cfg_scale_default"));
    if (j->cfg_scale < 0 || j->cfg_from_model)
        return rec_default;
    return !rec_default && same_num(rec, "cfg_scale", j->cfg_scale);
}

static int matches(const cJSON *rec, const md_batch_job *j)
{
    /* The model is not compared: paths differ between machines that share
     * one output folder (docs/batch.md: a new model needs a new folder).
     * Size 0 means "native", which only the model knows: any size matches. */
    return same_str(rec, "name", j->name) && same_str(rec, "prompt", j->prompt) &&
           same_str(rec, "negative_prompt", j->negative_prompt) &&
           same_num(rec, "seed", (double)j->seed) && same_num(rec, "steps", j->steps) &&
           same_guidance(rec, j) &&
           same_str(rec, "sampler", md_cli_sampler_name(j->sampler)) &&
           same_num(rec, "clip_skip", j->clip_skip) &&
           (j->width == 0 || same_num(rec, "width", j->width)) &&
           (j->height == 0 || same_num(rec, "height", j->height));
}

const cJSON *md_batch_find_done(const md_manifest_done *d, const md_batch_job *j)
{
    const cJSON *recs = md_manifest_done_get(d, j->index);
    const cJSON *rec;
    cJSON_ArrayForEach(rec, recs)
    {
        if (matches(rec, j))
            return rec;
    }
    return NULL;
}

static int ends_with(int fd, off_t size, const unsigned char *tail, size_t n)
{
    unsigned char buf[16];
    return size >= (off_t)n && pread(fd, buf, n, size - (off_t)n) == (ssize_t)n &&
           memcmp(buf, tail, n) == 0;
}

int md_batch_output_complete(const char *path)
{
    static const unsigned char png_iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
    static const unsigned char jpeg_eoi[2] = {0xFF, 0xD9};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat sb;
    int ok = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0;
    const char *dot = strrchr(path, '.');
    if (ok && dot && !strcasecmp(dot, ".png"))
        ok = ends_with(fd, sb.st_size, png_iend, sizeof png_iend);
    else if (ok && dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg")))
        ok = ends_with(fd, sb.st_size, jpeg_eoi, sizeof jpeg_eoi);
    close(fd);
    return ok;
}
