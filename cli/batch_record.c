#include "batch_record.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "fnv1a.h"

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
                       const mdiff_gen_params *resolved, const md_file_digest *digest)
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
    if (digest) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)digest->fnv1a64);
        cJSON_AddNumberToObject(o, "size", (double)digest->size);
        cJSON_AddStringToObject(o, "fnv1a64", hex);
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
        const cJSON *had = cJSON_GetObjectItemCaseSensitive(rec, fields[i].name);
        /* a record from before the field existed asked for its default */
        if (!had && mdh_request_is_default(&j->req, &fields[i]))
            continue;
        cJSON *want = mdh_request_get_json(&j->req, &fields[i]);
        int same = want && cJSON_Compare(had, want, 1);
        cJSON_Delete(want);
        if (!same)
            return 0;
    }
    return 1;
}

const cJSON *md_batch_find_done(const md_manifest_done *d, const md_batch_job *j,
                                const char *path)
{
    const cJSON *recs = md_manifest_done_get(d, j->index);
    const cJSON *rec;
    cJSON_ArrayForEach(rec, recs)
    {
        if (matches(rec, j) && md_batch_output_is_recorded(path, rec))
            return rec;
    }
    return NULL;
}

int md_file_digest_of(const char *path, md_file_digest *d)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return -1;
    }
    uint64_t h = MD_FNV1A64_INIT, size = 0;
    unsigned char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        h = md_fnv1a64(h, buf, (size_t)n);
        size += (uint64_t)n;
    }
    close(fd);
    if (n < 0)
        return -1;
    d->size = size;
    d->fnv1a64 = h;
    return 0;
}

int md_batch_output_is_recorded(const char *path, const cJSON *rec)
{
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(rec, "size");
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(rec, "fnv1a64");
    /* range-checked before converting: a whole number below 2^53 */
    if (!cJSON_IsNumber(size) || !(size->valuedouble >= 0 && size->valuedouble < 9007199254740992.0) ||
        size->valuedouble != floor(size->valuedouble) || !cJSON_IsString(hash) ||
        strlen(hash->valuestring) != 16 || strspn(hash->valuestring, "0123456789abcdef") != 16)
        return 0;
    md_file_digest d;
    if (md_file_digest_of(path, &d) != 0)
        return 0;
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)d.fnv1a64);
    return d.size == (uint64_t)size->valuedouble && strcmp(hex, hash->valuestring) == 0;
}
