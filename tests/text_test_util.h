/* Helpers shared by the tokenizer and text encoder tests: failure
 * counting, relative error, and a minimal reader of golden.safetensors
 * (md_safetensors refuses its 5-dim records, so the few F32/I32 records
 * used here are read directly: 8-byte little-endian header length, JSON
 * header, data). */
#ifndef MD_TEXT_TEST_UTIL_H
#define MD_TEXT_TEST_UTIL_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

static int failures;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    failures++;
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail(__VA_ARGS__);                                                                     \
    } while (0)

static inline double rel_err(const float *a, const float *b, size_t n)
{
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - (double)b[i]));
        mb = fmax(mb, fabs((double)b[i]));
    }
    if (!isfinite(md))
        return INFINITY;
    return mb > 0 ? md / mb : md;
}

typedef struct golden_file {
    unsigned char *bytes;
    size_t size, data_at;
    cJSON *header;
} golden_file;

static inline int golden_open(golden_file *g, const char *path)
{
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    g->bytes = n > 8 ? malloc((size_t)n) : NULL;
    int ok = g->bytes && fread(g->bytes, 1, (size_t)n, f) == (size_t)n;
    fclose(f);
    if (ok) {
        g->size = (size_t)n;
        uint64_t hlen = 0;
        for (int i = 7; i >= 0; i--)
            hlen = hlen << 8 | g->bytes[i];
        ok = hlen <= g->size - 8;
        if (ok) {
            g->header = cJSON_ParseWithLength((const char *)g->bytes + 8, (size_t)hlen);
            g->data_at = 8 + (size_t)hlen;
            ok = g->header != NULL;
        }
    }
    if (!ok) {
        free(g->bytes);
        memset(g, 0, sizeof *g);
    }
    return ok;
}

static inline void golden_close(golden_file *g)
{
    cJSON_Delete(g->header);
    free(g->bytes);
    memset(g, 0, sizeof *g);
}

static inline int golden_has(const golden_file *g, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(g->header, name) != NULL;
}

/* A copy of record `name` with dtype "F32" or "I32" (4-byte elements;
 * caller frees); its element count in *numel and dims in dims[0..*ndim).
 * NULL (and a failure) when absent or malformed. */
static inline void *golden_read(const golden_file *g, const char *name, const char *dtype, size_t *numel,
                         int64_t dims[8], int *ndim)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(g->header, name);
    const char *dt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "dtype"));
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    int nd = cJSON_GetArraySize(shape);
    int ok = e && dt && !strcmp(dt, dtype) && nd <= 8 && cJSON_GetArraySize(offs) == 2;
    CHECK(ok, "golden record %s missing or not %s", name, dtype);
    if (!ok)
        return NULL;
    size_t n = 1;
    for (int i = 0; i < nd; i++) {
        dims[i] = (int64_t)cJSON_GetArrayItem(shape, i)->valuedouble;
        n *= (size_t)dims[i];
    }
    size_t a = (size_t)cJSON_GetArrayItem(offs, 0)->valuedouble;
    size_t b = (size_t)cJSON_GetArrayItem(offs, 1)->valuedouble;
    ok = b >= a && b - a == n * 4 && g->data_at + b <= g->size;
    CHECK(ok, "golden record %s: bad byte range", name);
    void *v = ok ? malloc(n * 4 + 4) : NULL;
    if (v)
        memcpy(v, g->bytes + g->data_at + a, n * 4); /* little-endian host */
    *numel = n;
    if (ndim)
        *ndim = nd;
    return v;
}

/* Python's json writes -Infinity, Infinity and NaN (golden.json has them
 * in scheduler settings no test here reads); strict parsers reject them, so
 * outside strings they become null, padded with spaces. */
static inline void blank_non_json_numbers(char *s)
{
    static const char *const words[] = {"-Infinity", "Infinity", "NaN"};
    int in_str = 0;
    for (char *p = s; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_str = 0;
            continue;
        }
        if (*p == '"') {
            in_str = 1;
            continue;
        }
        for (int w = 0; w < 3; w++) {
            size_t len = strlen(words[w]);
            if (strncmp(p, words[w], len) == 0) {
                memset(p, ' ', len);
                memcpy(p, len >= 4 ? "null" : "0", len >= 4 ? 4 : 1);
                p += len - 1;
                break;
            }
        }
    }
}

static inline cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    cJSON *j = NULL;
    if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
        blank_non_json_numbers(buf);
        j = cJSON_Parse(buf);
    }
    free(buf);
    fclose(f);
    return j;
}

/* The case folders of the golden set, sorted; count in *n (caller frees
 * each name and the array). */
static inline int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static inline char **list_cases(const char *root, int *n)
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
        if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
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

static inline int path_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

#endif
