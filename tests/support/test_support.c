#include "test_support.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config_json.h"

/* ---- checks ---------------------------------------------------------- */

/* The tally is the test program's result, so it lives as long as the
 * process; atomics keep it exact should a check run on a worker thread. */
static _Atomic int g_passed, g_failed;

int md_test_pass(void)
{
    g_passed++;
    return 1;
}

int md_test_fail(const char *file, int line, const char *text)
{
    g_failed++;
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, text);
    return 0;
}

int md_test_failf(const char *file, int line, const char *fmt, ...)
{
    g_failed++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 0;
}

int md_test_failures(void)
{
    return g_failed;
}

int md_test_finish(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, g_passed, g_failed);
    return g_failed ? 1 : 0;
}

/* ---- the golden reference set ---------------------------------------- */

const char *md_test_golden_dir(void)
{
    const char *dir = getenv("MD_GOLDEN_DIR");
    return dir && *dir ? dir : NULL;
}

const char *md_test_golden_dir_required(void)
{
    const char *dir = md_test_golden_dir();
    if (!dir)
        fprintf(stderr, "MD_GOLDEN_DIR is not set\n");
    return dir;
}

const char *md_test_golden_path(char *buf, size_t cap, const char *rel)
{
    const char *root = md_test_golden_dir();
    if (!root)
        return NULL;
    int n = snprintf(buf, cap, "%s/%s", root, rel);
    return n >= 0 && (size_t)n < cap ? buf : NULL;
}

int md_test_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

char *md_test_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    char *buf = size >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc((size_t)size + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)size, f) == (size_t)size) {
        buf[size] = '\0';
        *n = (size_t)size;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* CHECKING.md item 8: a LoRA case (golden.json lora_files) or a merge case
 * (golden.json inputs with a segmoe_config.yaml) starts from inputs that
 * are not a model folder; the model-level tests have nothing to load in it. */
static int is_model_case(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/segmoe_config.yaml", dir);
    if (md_test_exists(path))
        return 0;
    snprintf(path, sizeof path, "%s/golden.json", dir);
    cJSON *j = md_test_exists(path) ? md_test_read_json(path) : NULL;
    int model = !cJSON_GetObjectItem(j, "lora_files") &&
                !cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "inputs"), "segmoe_yaml"));
    cJSON_Delete(j);
    return model;
}

char **md_test_list_cases(const char *root, int *n)
{
    *n = 0;
    DIR *d = opendir(root);
    if (!d)
        return NULL;
    char **names = NULL;
    int cap = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (ent->d_name[0] == '.')
            continue;
        char path[4096];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", root, ent->d_name);
        if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode) || !is_model_case(path))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, (size_t)cap * sizeof *names);
            if (!grown)
                break;
            names = grown;
        }
        names[(*n)++] = strdup(ent->d_name);
    }
    closedir(d);
    if (names)
        qsort(names, (size_t)*n, sizeof *names, cmp_names);
    return names;
}

void md_test_free_names(char **names, int n)
{
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

/* Copies the text with the bare non-finite words outside strings written
 * as null ("NaN" grows by one byte, hence the larger buffer). */
static char *nonfinite_to_null(const char *s, size_t n)
{
    static const char *const words[] = {"-Infinity", "Infinity", "NaN"};
    char *out = malloc(2 * n + 1), *o = out;
    if (!out)
        return NULL;
    int in_str = 0;
    for (size_t i = 0; i < n;) {
        if (in_str) {
            if (s[i] == '\\' && i + 1 < n)
                *o++ = s[i++];
            else if (s[i] == '"')
                in_str = 0;
            *o++ = s[i++];
            continue;
        }
        if (s[i] == '"')
            in_str = 1;
        size_t w = 0;
        while (w < 3 && strncmp(s + i, words[w], strlen(words[w])) != 0)
            w++;
        if (w < 3) {
            memcpy(o, "null", 4);
            o += 4;
            i += strlen(words[w]);
        } else {
            *o++ = s[i++];
        }
    }
    *o = '\0';
    return out;
}

cJSON *md_test_read_json(const char *path)
{
    size_t n = 0;
    char *buf = md_test_read_file(path, &n);
    char *text = buf ? nonfinite_to_null(buf, n) : NULL;
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    free(buf);
    return j;
}

cJSON *md_test_load_config(const char *path)
{
    cJSON *j = NULL;
    md_error err = {0};
    md_status s = md_json_read_file(path, &j, &err);
    CHECK(s == MD_OK, "%s", err.msg);
    return j;
}

md_safetensors *md_test_open_safetensors(const char *path)
{
    md_safetensors *st = NULL;
    md_error err = {0};
    md_status s = md_safetensors_open(path, &st, &err);
    CHECK(s == MD_OK, "%s", err.msg);
    return st;
}

/* "<MD_GOLDEN_DIR>/<rel>", or NULL with a counted failure. */
static const char *golden_path_or_fail(char *buf, size_t cap, const char *rel)
{
    const char *p = md_test_golden_path(buf, cap, rel);
    CHECK(p != NULL, "MD_GOLDEN_DIR is not set or too long for %s", rel);
    return p;
}

cJSON *md_test_load_golden_config(const char *rel)
{
    char path[4096];
    return golden_path_or_fail(path, sizeof path, rel) ? md_test_load_config(path) : NULL;
}

md_safetensors *md_test_open_golden_safetensors(const char *rel)
{
    char path[4096];
    return golden_path_or_fail(path, sizeof path, rel) ? md_test_open_safetensors(path) : NULL;
}

const md_tensor *md_test_golden_tensor(const md_safetensors *st, const char *name, md_dtype dt)
{
    const md_tensor *t = st ? md_safetensors_find(st, name) : NULL;
    if (!CHECK(t && t->dtype == dt, "golden record %s missing or not %s", name, md_dtype_name(dt)))
        return NULL;
    return t;
}

static void *golden_copy(const md_safetensors *st, const char *name, md_dtype dt, md_tensor *desc)
{
    const md_tensor *t = md_test_golden_tensor(st, name, dt);
    if (!t)
        return NULL;
    size_t nb = md_tensor_nbytes(t);
    void *v = malloc(nb ? nb : 1);
    if (!CHECK(v != NULL, "golden record %s: out of memory", name))
        return NULL;
    memcpy(v, t->data, nb);
    if (desc) {
        *desc = *t;
        desc->data = NULL;
    }
    return v;
}

float *md_test_golden_f32(const md_safetensors *st, const char *name, md_tensor *desc)
{
    return golden_copy(st, name, MD_F32, desc);
}

int32_t *md_test_golden_i32(const md_safetensors *st, const char *name, md_tensor *desc)
{
    return golden_copy(st, name, MD_I32, desc);
}

double md_test_rel_err(const float *a, const float *b, size_t n)
{
    double maxd = 0.0, maxb = 0.0;
    int nan = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d))
            nan = 1;
        else if (d > maxd)
            maxd = d;
        if (fabs((double)b[i]) > maxb)
            maxb = fabs((double)b[i]);
    }
    if (nan || isinf(maxd))
        return INFINITY;
    if (maxb == 0.0)
        return maxd == 0.0 ? 0.0 : INFINITY;
    return maxd / maxb;
}

/* ---- backends and PRNG ---------------------------------------------- */

md_backend *md_test_cpu_backend(int threads)
{
    md_backend *be = NULL;
    md_error err = {0};
    if (md_backend_cpu_create(&be, threads, &err) != MD_OK) {
        fprintf(stderr, "cpu backend: %s\n", err.msg);
        return NULL;
    }
    return be;
}

double md_test_uniform(md_test_rng *r)
{
    r->state ^= r->state << 13;
    r->state ^= r->state >> 7;
    r->state ^= r->state << 17;
    return (double)(r->state >> 11) / 9007199254740992.0;
}

/* ---- temporary folders ---------------------------------------------- */

int md_test_make_temp_dir(char *buf, size_t cap, const char *prefix)
{
    const char *base = getenv("TMPDIR");
    int n = snprintf(buf, cap, "%s/%sXXXXXX", base && *base ? base : "/tmp", prefix);
    if (n < 0 || (size_t)n >= cap || !mkdtemp(buf)) {
        fprintf(stderr, "cannot create a temporary folder %s: %s\n", buf, strerror(errno));
        return 0;
    }
    return 1;
}

int md_test_remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return errno == ENOENT ? 0 : -1;
    int bad = 0;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *ent;
        while (d && (ent = readdir(d))) {
            if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, ".."))
                continue;
            char child[4096];
            if (snprintf(child, sizeof child, "%s/%s", path, ent->d_name) >= (int)sizeof child)
                bad = 1;
            else if (md_test_remove_tree(child) != 0)
                bad = 1;
        }
        if (d)
            closedir(d);
        if (rmdir(path) != 0)
            bad = 1;
    } else if (unlink(path) != 0) {
        bad = 1;
    }
    if (bad)
        fprintf(stderr, "could not remove %s\n", path);
    return bad ? -1 : 0;
}

void *md_test_bag_alloc(md_test_bag *b, size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p || b->n == MD_TEST_BAG_MAX) {
        fprintf(stderr, "test: out of memory\n");
        exit(2);
    }
    b->p[b->n++] = p;
    return p;
}

void md_test_bag_clear(md_test_bag *b)
{
    for (int i = 0; i < b->n; i++)
        free(b->p[i]);
    b->n = 0;
}

int64_t md_test_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}
