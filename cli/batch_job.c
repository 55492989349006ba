#include "batch_job.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sampling/sampler.h"
#include "engine.h"

/* ---- reading the file ---- */

static char *slurp(const char *path, size_t *len, md_error *err)
{
    int use_stdin = strcmp(path, "-") == 0;
    FILE *f = use_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        md_fail(err, MD_ERR_IO, "%s: cannot open the prompts file: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *grown = realloc(buf, 2 * cap + 1);
        if (!grown) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        cap *= 2;
    }
    int bad = ferror(f), e = errno;
    if (!use_stdin)
        fclose(f);
    if (!buf) {
        md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    if (bad) {
        free(buf);
        md_fail(err, MD_ERR_IO, "%s: cannot read the prompts file: %s", path, strerror(e));
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

md_status md_batch_file_read(const char *path, md_batch_file *f, md_error *err)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    size_t len;
    char *data = slurp(path, &len, err);
    if (!data)
        return err ? err->code : MD_ERR_IO;
    f->data = data;
    size_t pos = 0;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        pos = 3; /* a UTF-8 byte order mark some editors write */
    long cap = 0, line = 0;
    while (pos < len) {
        line++;
        char *start = data + pos;
        char *nl = memchr(start, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - start) : len - pos;
        pos += ll + 1;
        int has_nul = memchr(start, '\0', ll) != NULL;
        while (ll && is_space(start[ll - 1]))
            ll--;
        start[ll] = '\0';
        while (*start && is_space(*start))
            start++;
        if (!has_nul && (*start == '\0' || *start == '#'))
            continue;
        if (f->count == cap) {
            long ncap = cap ? 2 * cap : 256;
            md_batch_entry *grown = realloc(f->entries, (size_t)ncap * sizeof *grown);
            if (!grown) {
                md_batch_file_free(f);
                return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
            }
            f->entries = grown;
            cap = ncap;
        }
        f->entries[f->count] = (md_batch_entry){f->count, line, has_nul ? NULL : start};
        f->count++;
    }
    return MD_OK;
}

void md_batch_file_free(md_batch_file *f)
{
    free(f->entries);
    free(f->data);
    memset(f, 0, sizeof *f);
}

/* ---- resolving one entry ---- */

typedef struct ctx {
    const char *file;
    md_batch_job *job;
} ctx;

static void fail(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(ctx *c, const char *fmt, ...)
{
    if (!c->job->valid)
        return; /* keep the first problem */
    c->job->valid = 0;
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "%s:%ld: ", c->file, c->job->line);
    if (n > 0 && (size_t)n < sizeof msg) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
        va_end(ap);
    }
    free(c->job->error);
    c->job->error = strdup(msg); /* NULL only when out of memory; callers print a fallback */
}

static int check_prompt(ctx *c, const char *key, const char *s)
{
    if (strlen(s) > MD_BATCH_PROMPT_MAX) {
        fail(c, "%s is longer than %d bytes", key, MD_BATCH_PROMPT_MAX);
        return 0;
    }
    return 1;
}

static int json_int(ctx *c, const cJSON *it, double lo, double hi, double *out)
{
    double v = it->valuedouble;
    if (!cJSON_IsNumber(it) || v != floor(v) || v < lo || v > hi) {
        fail(c, "\"%s\" must be an integer in %.0f..%.0f", it->string, lo, hi);
        return 0;
    }
    *out = v;
    return 1;
}

static int set_name(ctx *c, const char *name)
{
    size_t n = strlen(name);
    const char *dot = strrchr(name, '.');
    int has_ext = dot && dot != name;
    if (n == 0 || n > MD_BATCH_NAME_MAX - 4 || name[0] == '.' || strpbrk(name, "/\\")) {
        fail(c, "\"output\" must be a plain file name (no folders, not starting with '.', at "
                "most %d bytes), got '%s'",
             MD_BATCH_NAME_MAX - 4, name);
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            fail(c, "\"output\" contains a control character");
            return 0;
        }
    if (strchr(name, '%')) {
        fail(c, "\"output\" '%s' must not contain '%%'", name);
        return 0;
    }
    if (has_ext && strcasecmp(dot, ".png") && strcasecmp(dot, ".jpg") &&
        strcasecmp(dot, ".jpeg") && strcasecmp(dot, ".bmp")) {
        fail(c, "\"output\" '%s': the name must end in .png, .jpg, .jpeg or .bmp, or have no "
                "extension (then .png)",
             name);
        return 0;
    }
    char *copy = malloc(n + 5);
    if (!copy) {
        fail(c, "out of memory");
        return 0;
    }
    snprintf(copy, n + 5, "%s%s", name, has_ext ? "" : ".png");
    free(c->job->name);
    c->job->name = copy;
    return 1;
}

static const char *const known_keys[] = {"prompt", "negative_prompt", "seed",  "steps",
                                         "cfg_scale", "sampler",       "width", "height",
                                         "output", "clip_skip"};
#define NKEYS (sizeof known_keys / sizeof known_keys[0])

static void apply_key(ctx *c, const cJSON *it, int *have_seed)
{
    md_batch_job *j = c->job;
    const char *k = it->string;
    double v;
    if (!strcmp(k, "prompt") || !strcmp(k, "negative_prompt")) {
        int neg = k[0] == 'n';
        if (neg && cJSON_IsNull(it)) {
            free(j->negative_prompt);
            j->negative_prompt = NULL;
            return;
        }
        if (!cJSON_IsString(it)) {
            fail(c, "\"%s\" must be a string", k);
            return;
        }
        if (!check_prompt(c, k, it->valuestring))
            return;
        char *copy = strdup(it->valuestring);
        if (!copy) {
            fail(c, "out of memory");
            return;
        }
        char **dst = neg ? &j->negative_prompt : &j->prompt;
        free(*dst);
        *dst = copy;
    } else if (!strcmp(k, "seed")) {
        if (json_int(c, it, 0, MD_BATCH_SEED_MAX, &v)) {
            j->seed = (uint64_t)v;
            *have_seed = 1;
        }
    } else if (!strcmp(k, "steps")) {
        if (json_int(c, it, 1, 1000, &v))
            j->steps = (int)v;
    } else if (!strcmp(k, "clip_skip")) {
        if (json_int(c, it, 0, 64, &v))
            j->clip_skip = (int)v;
    } else if (!strcmp(k, "width") || !strcmp(k, "height")) {
        if (!json_int(c, it, 8, 8192, &v))
            return;
        if ((long)v % 8) {
            fail(c, "\"%s\" must be a multiple of 8, got %.0f", k, v);
            return;
        }
        *(k[0] == 'w' ? &j->width : &j->height) = (int)v;
    } else if (!strcmp(k, "cfg_scale")) {
        if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0 && it->valuedouble <= 100))
            fail(c, "\"cfg_scale\" must be a number in 0..100");
        else
            j->cfg_scale = it->valuedouble;
    } else if (!strcmp(k, "sampler")) {
        int s = cJSON_IsString(it) ? md_cli_sampler_from_name(it->valuestring) : -1;
        if (s < 0) {
            char names[256] = "";
            for (int i = 0; i < md_cli_sampler_count(); i++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? " " : "",
                         md_cli_sampler_name(i));
            fail(c, "unknown sampler '%s' (known: %s)",
                 cJSON_IsString(it) ? it->valuestring : "(not a string)", names);
        } else {
            j->sampler = s;
        }
    } else if (!strcmp(k, "output")) {
        if (!cJSON_IsString(it))
            fail(c, "\"output\" must be a string");
        else
            set_name(c, it->valuestring);
    }
}

/* Returns 1 when the line sets its own seed. */
static int resolve_json(ctx *c, const char *text)
{
    const char *end = NULL;
    cJSON *obj = cJSON_ParseWithOpts(text, &end, 1);
    if (!obj) {
        long col = end ? (long)(end - text) + 1 : 1;
        fail(c, "malformed JSON at column %ld (a line starting with '{' must be one JSON object)",
             col);
        return 0;
    }
    if (!cJSON_IsObject(obj)) {
        fail(c, "a JSON line must be an object");
        cJSON_Delete(obj);
        return 0;
    }
    int have_seed = 0;
    for (const cJSON *it = obj->child; it && c->job->valid; it = it->next) {
        size_t k = 0;
        while (k < NKEYS && strcmp(it->string, known_keys[k]) != 0)
            k++;
        if (k == NKEYS) {
            fail(c, "unknown key \"%s\" (known: prompt, negative_prompt, seed, steps, cfg_scale, "
                    "sampler, width, height, output, clip_skip)",
                 it->string);
            break;
        }
        for (const cJSON *prev = obj->child; prev != it; prev = prev->next)
            if (!strcmp(prev->string, it->string)) {
                fail(c, "key \"%s\" appears twice", it->string);
                break;
            }
        if (c->job->valid)
            apply_key(c, it, &have_seed);
    }
    cJSON_Delete(obj);
    if (c->job->valid && (!c->job->prompt || !c->job->prompt[0]))
        fail(c, "\"prompt\" is missing or empty");
    return have_seed;
}

void md_batch_job_resolve(const md_batch_entry *e, const char *file, const md_batch_defaults *d,
                          md_batch_job *job)
{
    memset(job, 0, sizeof *job);
    job->index = e->index;
    job->line = e->line;
    job->valid = 1;
    job->steps = d->steps;
    job->cfg_scale = d->cfg_scale;
    job->sampler = d->sampler;
    job->width = d->width;
    job->height = d->height;
    job->clip_skip = d->clip_skip;
    ctx c = {file, job};
    char name[32];
    snprintf(name, sizeof name, "%05ld.png", e->index);
    if (!(job->name = strdup(name)))
        fail(&c, "out of memory");
    job->seed = d->base_seed + (uint64_t)e->index;
    if (d->negative_prompt && !(job->negative_prompt = strdup(d->negative_prompt)))
        fail(&c, "out of memory");
    int own_seed = 0;
    if (!e->text)
        fail(&c, "the line contains a NUL byte");
    else if (e->text[0] == '{')
        own_seed = resolve_json(&c, e->text);
    else if (check_prompt(&c, "the prompt", e->text) && !(job->prompt = strdup(e->text)))
        fail(&c, "out of memory");
    if (!own_seed && job->seed > (uint64_t)MD_BATCH_SEED_MAX)
        fail(&c, "seed %llu + entry %ld exceeds 2^53-1; choose a smaller --seed",
             (unsigned long long)d->base_seed, e->index);
}

void md_batch_job_drop_prompts(md_batch_job *job)
{
    free(job->prompt);
    free(job->negative_prompt);
    job->prompt = job->negative_prompt = NULL;
}

void md_batch_job_clear(md_batch_job *job)
{
    md_batch_job_drop_prompts(job);
    free(job->name);
    free(job->error);
    job->name = job->error = NULL;
}

static int by_name(const void *a, const void *b)
{
    const md_batch_job *x = *(md_batch_job *const *)a, *y = *(md_batch_job *const *)b;
    int r = strcmp(x->name, y->name);
    return r ? r : (x->index > y->index) - (x->index < y->index);
}

void md_batch_jobs_check_names(md_batch_job *jobs, long count, const char *file)
{
    md_batch_job **v = malloc((size_t)(count > 0 ? count : 1) * sizeof *v);
    if (!v)
        return;
    long n = 0;
    for (long i = 0; i < count; i++)
        if (jobs[i].valid && jobs[i].name)
            v[n++] = &jobs[i];
    qsort(v, (size_t)n, sizeof *v, by_name);
    for (long i = 0; i < n;) {
        long j = i + 1; /* the lowest index keeps the name: sorted first */
        for (; j < n && !strcmp(v[j]->name, v[i]->name); j++) {
            ctx c = {file, v[j]};
            fail(&c, "output '%s' is already used by line %ld", v[j]->name, v[i]->line);
        }
        i = j;
    }
    free(v);
}
