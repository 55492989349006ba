#include "batch_record.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

static void add_str(cJSON *o, const char *key, const char *s)
{
    if (s)
        cJSON_AddStringToObject(o, key, s);
    else
        cJSON_AddNullToObject(o, key);
}

/* Every request field under its library name. */
static void add_request(cJSON *o, const mdh_request *r)
{
    int n;
    const mdh_field *fields = mdh_request_fields(&n);
    for (int i = 0; i < n; i++)
        cJSON_AddItemToObject(o, fields[i].name, mdh_request_get_json(r, &fields[i]));
}

cJSON *md_batch_record(const md_batch_job *j, const md_batch_run_info *ri, const char *output,
                       const char *status, const char *error, double seconds, double gen_seconds,
                       const mdiff_gen_params *resolved)
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
    /* The request as given (the resume rule compares it) only when the line
     * parsed: a malformed line has none. */
    if (j->valid)
        add_request(o, &j->req);
    if (resolved) {
        mdh_request shown = j->req; /* a view: strings stay the job's */
        shown.p = *resolved;
        cJSON *r = cJSON_AddObjectToObject(o, "resolved");
        if (r)
            add_request(r, &shown);
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

/* Same output name and the same request, field by field as given (the
 * model is not compared: paths differ between machines that share one
 * output folder, docs/batch.md: a new model needs a new folder). Defaults
 * left to the model (native size, its guidance) match themselves. */
static int matches(const cJSON *rec, const md_batch_job *j)
{
    if (!same_str(rec, "name", j->name))
        return 0;
    int n;
    const mdh_field *fields = mdh_request_fields(&n);
    for (int i = 0; i < n; i++) {
        cJSON *want = mdh_request_get_json(&j->req, &fields[i]);
        int same = want && cJSON_Compare(cJSON_GetObjectItemCaseSensitive(rec, fields[i].name),
                                         want, 1);
        cJSON_Delete(want);
        if (!same)
            return 0;
    }
    return 1;
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
