#include "batch_job.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/select.h>
#include <unistd.h>

#include "engine.h"

/* ---- reading the file ---- */

/* Reading stops for SIGINT/SIGTERM even on a pipe, FIFO or terminal that
 * never sends anything: the two signals are blocked while reading and let
 * in only inside pselect, which they interrupt (an interrupted pselect is
 * never restarted, whatever SA_RESTART says), so a signal is never lost
 * between a check and a blocking read. A FIFO is opened non-blocking: a
 * blocking open would wait, uninterruptibly restarted, for a writer. */
static char *slurp(const char *path, size_t *len, mdh_error *err)
{
    int use_stdin = strcmp(path, "-") == 0;
    int fd = use_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        mdh_fail(err, MDIFF_ERR_IO, "%s: cannot open the prompts file: %s", path, strerror(errno));
        return NULL;
    }
    sigset_t stops, old;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    sigprocmask(SIG_BLOCK, &stops, &old);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    int status = buf ? MDIFF_OK : MDIFF_ERR_NOMEM, e = 0;
    while (status == MDIFF_OK) {
        if (n == cap) {
            if (cap > MD_BATCH_PROMPTS_MAX) {
                status = MDIFF_ERR_INVALID; /* too long: reported below */
                break;
            }
            char *grown = realloc(buf, 2 * cap + 1);
            if (!grown) {
                status = MDIFF_ERR_NOMEM;
                break;
            }
            buf = grown;
            cap *= 2;
        }
        fd_set ready;
        FD_ZERO(&ready);
        FD_SET(fd, &ready);
        if (pselect(fd + 1, &ready, NULL, NULL, NULL, &old) < 0) {
            if (errno == EINTR) {
                status = MDIFF_ERR_CANCELLED;
                break;
            }
            status = MDIFF_ERR_IO, e = errno;
            break;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got == 0)
            break;
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                continue;
            status = MDIFF_ERR_IO, e = errno;
            break;
        }
        n += (size_t)got;
        if (n > MD_BATCH_PROMPTS_MAX) {
            status = MDIFF_ERR_INVALID;
            break;
        }
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (!use_stdin)
        close(fd);
    if (status == MDIFF_OK) {
        buf[n] = '\0';
        *len = n;
        return buf;
    }
    free(buf);
    if (status == MDIFF_ERR_NOMEM)
        mdh_fail(err, status, "%s: out of memory", path);
    else if (status == MDIFF_ERR_CANCELLED)
        mdh_fail(err, status, "%s: stopped by a signal while reading the prompts", path);
    else if (status == MDIFF_ERR_INVALID)
        mdh_fail(err, MDIFF_ERR_IO,
                 "%s: the prompts are longer than %d MiB, the limit: split the file (an endless "
                 "stream on stdin is not read to its end)",
                 path, MD_BATCH_PROMPTS_MAX >> 20);
    else
        mdh_fail(err, status, "%s: cannot read the prompts file: %s", path, strerror(e));
    return NULL;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

int md_batch_file_read(const char *path, md_batch_file *f, mdh_error *err)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    size_t len;
    char *data = slurp(path, &len, err);
    if (!data)
        return err ? err->code : MDIFF_ERR_IO;
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
                return mdh_fail(err, MDIFF_ERR_NOMEM, "%s: out of memory", path);
            }
            f->entries = grown;
            cap = ncap;
        }
        f->entries[f->count] = (md_batch_entry){f->count, line, has_nul ? NULL : start};
        f->count++;
    }
    return MDIFF_OK;
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

static void unknown_key(ctx *c, const char *key)
{
    char known[512] = "output";
    int n;
    const mdh_field *fields = mdh_request_fields(&n);
    for (int i = 0; i < n; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), ", %s", fields[i].name);
    fail(c, "unknown key \"%s\" (known: %s)", key, known);
}

/* One key of a JSON line: "output", a request field by its library name,
 * or "cfg_scale", the name guidance had in manifests before. */
static void apply_key(ctx *c, const cJSON *it, int *have_seed)
{
    const char *k = it->string;
    if (!strcmp(k, "output")) {
        if (!cJSON_IsString(it))
            fail(c, "\"output\" must be a string");
        else
            set_name(c, it->valuestring);
        return;
    }
    const mdh_field *f = mdh_request_field(!strcmp(k, "cfg_scale") ? "guidance" : k);
    if (!f) {
        unknown_key(c, k);
        return;
    }
    mdh_error err = {0};
    if (mdh_request_set_json(&c->job->req, f, it, &err) != MDIFF_OK) {
        fail(c, "%s", err.msg);
        return;
    }
    if (f->type == MDH_FIELD_SEED)
        *have_seed = 1;
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
        for (const cJSON *prev = obj->child; prev != it; prev = prev->next)
            if (!strcmp(prev->string, it->string)) {
                fail(c, "key \"%s\" appears twice", it->string);
                break;
            }
        if (c->job->valid)
            apply_key(c, it, &have_seed);
    }
    cJSON_Delete(obj);
    const char *prompt = c->job->req.p.prompt;
    if (c->job->valid && (!prompt || !prompt[0]))
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
    ctx c = {file, job};
    if (mdh_request_copy(&job->req, d->request) != MDIFF_OK)
        fail(&c, "out of memory");
    char name[32];
    snprintf(name, sizeof name, "%05ld.png", e->index);
    if (!(job->name = strdup(name)))
        fail(&c, "out of memory");
    job->req.p.seed = d->base_seed + (uint64_t)e->index;
    int own_seed = 0;
    const mdh_field *prompt = mdh_request_field("prompt");
    if (!e->text)
        fail(&c, "the line contains a NUL byte");
    else if (e->text[0] == '{')
        own_seed = resolve_json(&c, e->text);
    else if (mdh_request_set_string(&job->req, prompt, e->text) != MDIFF_OK)
        fail(&c, "out of memory");
    if (!own_seed && job->req.p.seed > (uint64_t)MD_BATCH_SEED_MAX)
        fail(&c, "seed %llu + entry %ld exceeds 2^53-1; choose a smaller --seed",
             (unsigned long long)d->base_seed, e->index);
    /* The library's own check of what needs no model, so a bad line is
     * reported before any model is loaded. */
    const mdiff_api *api = md_cli_api();
    char msg[512];
    mdiff_gen_params checked = {.struct_size = sizeof checked};
    if (job->valid && api && api->resolve_params(NULL, &job->req.p, &checked, msg, sizeof msg))
        fail(&c, "%s", msg);
    for (int k = 0; k < 2 && job->valid; k++) {
        int v = k ? job->req.p.height : job->req.p.width;
        if (v % 8) /* the command line's rule for -W/-H */
            fail(&c, "\"%s\" must be a multiple of 8, got %d", k ? "height" : "width", v);
    }
    if (job->valid && job->req.mask && !job->req.init_image)
        fail(&c, "\"mask\" needs \"init_image\" as well");
}

void md_batch_job_drop_prompts(md_batch_job *job)
{
    mdh_request_clear(&job->req);
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
