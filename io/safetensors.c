#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header bigger than this is not a real model file (the largest known
 * headers are a few MB); refusing early avoids parsing garbage. */
#define MD_ST_MAX_HEADER (100u * 1024u * 1024u)
/* JSON numbers are doubles: integers above 2^53 are not exact. */
#define MD_ST_MAX_INT 9007199254740992.0

typedef struct md_st_meta {
    char *key, *value;
} md_st_meta;

struct md_safetensors {
    char *path;
    const char *fname; /* the path as given, used in messages */
    void *map;
    size_t map_size;
    size_t count;
    char **names;
    md_tensor *tensors;
    size_t *sorted; /* indices sorted by name, for lookup */
    md_st_meta *meta;
    size_t nmeta;
    /* Copies of tensors whose mapped data is not aligned to their element
     * size (reading them in place would be undefined behaviour). */
    void **copies;
    size_t ncopies;
};

static int dtype_from_name(const char *s, md_dtype *out)
{
    for (int d = 0; d < MD_DTYPE_COUNT; d++) {
        if (strcmp(s, md_dtype_name((md_dtype)d)) == 0) {
            *out = (md_dtype)d;
            return 1;
        }
    }
    return 0;
}

/* A JSON number that is a non-negative integer representable exactly. */
static int json_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j))
        return 0;
    double v = j->valuedouble;
    if (!(v >= 0.0) || v > MD_ST_MAX_INT || v != (double)(uint64_t)v)
        return 0;
    *out = (uint64_t)v;
    return 1;
}

static void shape_text(const int64_t *shape, int ndim, char *buf, size_t cap)
{
    md_tensor t = {.ndim = ndim};
    for (int i = 0; i < ndim; i++)
        t.shape[i] = shape[i];
    md_shape_str(&t, buf, cap);
}

typedef struct md_st_range {
    uint64_t begin, end;
    size_t index;
} md_st_range;

static int range_cmp(const void *a, const void *b)
{
    const md_st_range *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

/* qsort has no context argument, so name lookups sort pointers to names. */
typedef struct md_st_name_ref {
    const char *name;
    size_t index;
} md_st_name_ref;

static int name_ref_cmp(const void *a, const void *b)
{
    return strcmp(((const md_st_name_ref *)a)->name, ((const md_st_name_ref *)b)->name);
}

void md_safetensors_close(md_safetensors *st)
{
    if (!st)
        return;
    if (st->map && st->map != MAP_FAILED)
        munmap(st->map, st->map_size);
    for (size_t i = 0; i < st->count; i++)
        free(st->names ? st->names[i] : NULL);
    free(st->names);
    free(st->tensors);
    free(st->sorted);
    for (size_t i = 0; i < st->nmeta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->meta);
    for (size_t i = 0; i < st->ncopies; i++)
        free(st->copies[i]);
    free(st->copies);
    free(st->path);
    free(st);
}

static md_status parse_metadata(md_safetensors *st, const cJSON *m, md_error *err)
{
    if (!cJSON_IsObject(m))
        return md_fail(err, MD_ERR_FORMAT, "%s: \"__metadata__\" is not an object", st->fname);
    size_t n = (size_t)cJSON_GetArraySize(m);
    st->meta = calloc(n ? n : 1, sizeof *st->meta);
    if (!st->meta)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", st->fname);
    for (const cJSON *e = m->child; e; e = e->next) {
        if (!cJSON_IsString(e))
            return md_fail(err, MD_ERR_FORMAT, "%s: metadata value '%s' is not a string", st->fname,
                           e->string);
        md_st_meta *dst = &st->meta[st->nmeta++];
        dst->key = strdup(e->string);
        dst->value = strdup(e->valuestring);
        if (!dst->key || !dst->value)
            return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", st->fname);
    }
    return MD_OK;
}

/* Parses one tensor entry; its byte range is returned for the overlap check. */
static md_status parse_entry(md_safetensors *st, const cJSON *e, size_t i, uint64_t data_size,
                             md_st_range *range, md_error *err)
{
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return md_fail(err, MD_ERR_FORMAT, "%s: entry '%s' is not an object", st->fname, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd))
        return md_fail(err, MD_ERR_FORMAT, "%s: tensor '%s' has no dtype string", st->fname, name);
    md_tensor *t = &st->tensors[i];
    if (!dtype_from_name(jd->valuestring, &t->dtype))
        return md_fail(err, MD_ERR_FORMAT, "%s: tensor '%s' has unknown dtype '%s'", st->fname,
                       name, jd->valuestring);
    if (!cJSON_IsArray(js))
        return md_fail(err, MD_ERR_FORMAT, "%s: tensor '%s' has no shape array", st->fname, name);
    int ndim = cJSON_GetArraySize(js);
    if (ndim > MD_MAX_DIMS)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: tensor '%s' has %d dimensions; at most %d are supported", st->fname,
                       name, ndim, MD_MAX_DIMS);
    t->ndim = ndim;
    /* numel in 128 bits would be simpler; instead stop as soon as the byte
     * count passes the data section, which bounds every product. */
    uint64_t nbytes = md_dtype_size(t->dtype);
    int too_big = 0;
    int d = 0;
    for (const cJSON *dim = js->child; dim; dim = dim->next, d++) {
        uint64_t v;
        if (!json_uint(dim, &v))
            return md_fail(err, MD_ERR_FORMAT,
                           "%s: tensor '%s' has a shape entry that is not a non-negative integer",
                           st->fname, name);
        t->shape[d] = (int64_t)v;
        if (v != 0 && nbytes > UINT64_MAX / v)
            too_big = 1;
        else
            nbytes *= v;
    }
    for (d = 0; d < ndim; d++) {
        if (t->shape[d] == 0) { /* an empty tensor, whatever the other dims */
            too_big = 0;
            nbytes = 0;
        }
    }
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return md_fail(err, MD_ERR_FORMAT, "%s: tensor '%s' has no [begin, end] data_offsets",
                       st->fname, name);
    uint64_t begin, end;
    if (!json_uint(jo->child, &begin) || !json_uint(jo->child->next, &end) || end < begin)
        return md_fail(err, MD_ERR_FORMAT, "%s: tensor '%s' has invalid data_offsets", st->fname,
                       name);
    if (too_big || end - begin != nbytes) {
        char sh[128];
        shape_text(t->shape, ndim, sh, sizeof sh);
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: tensor '%s' has shape %s %s (%llu bytes) but data_offsets span %llu "
                       "bytes",
                       st->fname, name, sh, md_dtype_name(t->dtype),
                       too_big ? (unsigned long long)UINT64_MAX : (unsigned long long)nbytes,
                       (unsigned long long)(end - begin));
    }
    if (end > data_size)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: truncated: header says %llu bytes of tensor data (tensor '%s' ends "
                       "there) but the file has %llu",
                       st->fname, (unsigned long long)end, name, (unsigned long long)data_size);
    range->begin = begin;
    range->end = end;
    range->index = i;
    st->names[i] = strdup(name);
    if (!st->names[i])
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", st->fname);
    return MD_OK;
}

/* Points every tensor at its bytes; misaligned ones get an aligned copy. */
static md_status bind_data(md_safetensors *st, const uint8_t *data, const md_st_range *ranges,
                           md_error *err)
{
    for (size_t r = 0; r < st->count; r++) {
        md_tensor *t = &st->tensors[ranges[r].index];
        size_t n = (size_t)(ranges[r].end - ranges[r].begin);
        const uint8_t *p = data + ranges[r].begin;
        size_t align = md_dtype_size(t->dtype);
        if (n == 0 || ((uintptr_t)p % align) == 0) {
            t->data = (void *)(uintptr_t)p;
            continue;
        }
        void *copy = malloc(n);
        if (!copy)
            return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", st->fname);
        memcpy(copy, p, n);
        st->copies[st->ncopies++] = copy;
        t->data = copy;
    }
    return MD_OK;
}

static md_status parse_header(md_safetensors *st, const char *hdr, size_t hlen,
                              uint64_t data_size, md_error *err)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
    if (!root)
        return md_fail(err, MD_ERR_FORMAT, "%s: header is not valid JSON (near byte %lld)",
                       st->fname, end ? (long long)(end - hdr) + 8 : -1LL);
    /* Anything after the object must be padding. */
    for (const char *p = end; p && p < hdr + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0') {
            cJSON_Delete(root);
            return md_fail(err, MD_ERR_FORMAT, "%s: header has trailing bytes after the JSON object",
                           st->fname);
        }
    }
    md_status s = MD_OK;
    md_st_range *ranges = NULL;
    md_st_name_ref *refs = NULL;
    if (!cJSON_IsObject(root)) {
        s = md_fail(err, MD_ERR_FORMAT, "%s: header is not a JSON object", st->fname);
        goto done;
    }
    size_t n = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__") != 0)
            n++;
    st->names = calloc(n ? n : 1, sizeof *st->names);
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    st->sorted = calloc(n ? n : 1, sizeof *st->sorted);
    st->copies = calloc(n ? n : 1, sizeof *st->copies);
    ranges = calloc(n ? n : 1, sizeof *ranges);
    refs = calloc(n ? n : 1, sizeof *refs);
    if (!st->names || !st->tensors || !st->sorted || !st->copies || !ranges || !refs) {
        s = md_fail(err, MD_ERR_NOMEM, "%s: out of memory", st->fname);
        goto done;
    }
    int seen_meta = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (seen_meta++) {
                s = md_fail(err, MD_ERR_FORMAT, "%s: \"__metadata__\" appears twice", st->fname);
                goto done;
            }
            if ((s = parse_metadata(st, e, err)) != MD_OK)
                goto done;
            continue;
        }
        size_t i = st->count;
        if ((s = parse_entry(st, e, i, data_size, &ranges[i], err)) != MD_OK)
            goto done;
        st->count++;
    }
    for (size_t i = 0; i < n; i++)
        refs[i] = (md_st_name_ref){st->names[i], i};
    qsort(refs, n, sizeof *refs, name_ref_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(refs[i - 1].name, refs[i].name) == 0) {
            s = md_fail(err, MD_ERR_FORMAT, "%s: tensor '%s' appears twice in the header",
                        st->fname, refs[i].name);
            goto done;
        }
        st->sorted[i] = refs[i].index;
    }
    qsort(ranges, n, sizeof *ranges, range_cmp);
    /* Sorted by begin, so each non-empty range only needs checking against
     * the previous non-empty one (empty tensors occupy no bytes). */
    size_t last = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        if (ranges[i].begin == ranges[i].end)
            continue;
        if (last != SIZE_MAX && ranges[i].begin < ranges[last].end) {
            s = md_fail(err, MD_ERR_FORMAT,
                        "%s: tensors '%s' and '%s' overlap (bytes %llu..%llu and %llu..%llu)",
                        st->fname, st->names[ranges[last].index], st->names[ranges[i].index],
                        (unsigned long long)ranges[last].begin,
                        (unsigned long long)ranges[last].end, (unsigned long long)ranges[i].begin,
                        (unsigned long long)ranges[i].end);
            goto done;
        }
        last = i;
    }
    s = bind_data(st, (const uint8_t *)hdr + hlen, ranges, err);
done:
    free(ranges);
    free(refs);
    cJSON_Delete(root);
    return s;
}

md_status md_safetensors_open(const char *path, md_safetensors **out, md_error *err)
{
    *out = NULL;
    md_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    }
    st->fname = st->path;
    md_status s = MD_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        s = md_fail(err, MD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        s = md_fail(err, MD_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        s = md_fail(err, MD_ERR_IO, "%s: not a regular file", path);
        close(fd);
        goto fail;
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    if (fsize < 8) {
        s = md_fail(err, MD_ERR_FORMAT,
                    "%s: truncated: the file has %llu bytes, less than the 8-byte header length",
                    st->fname, (unsigned long long)fsize);
        close(fd);
        goto fail;
    }
    st->map_size = (size_t)fsize;
    st->map = mmap(NULL, st->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (st->map == MAP_FAILED) {
        st->map = NULL;
        s = md_fail(err, MD_ERR_IO, "%s: cannot map: %s", path, strerror(map_errno));
        goto fail;
    }
    const uint8_t *bytes = st->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | bytes[i];
    if (hlen > fsize - 8) {
        s = md_fail(err, MD_ERR_FORMAT,
                    "%s: truncated: header length is %llu bytes but only %llu bytes follow",
                    st->fname, (unsigned long long)hlen, (unsigned long long)(fsize - 8));
        goto fail;
    }
    if (hlen > MD_ST_MAX_HEADER || hlen < 2) {
        s = md_fail(err, MD_ERR_FORMAT, "%s: implausible header length %llu (not a safetensors file?)",
                    st->fname, (unsigned long long)hlen);
        goto fail;
    }
    s = parse_header(st, (const char *)bytes + 8, (size_t)hlen, fsize - 8 - hlen, err);
    if (s != MD_OK)
        goto fail;
    *out = st;
    return MD_OK;
fail:
    md_safetensors_close(st);
    return s;
}

const char *md_safetensors_path(const md_safetensors *st) { return st->path; }
size_t md_safetensors_count(const md_safetensors *st) { return st->count; }

const char *md_safetensors_name(const md_safetensors *st, size_t i)
{
    return i < st->count ? st->names[i] : NULL;
}

const md_tensor *md_safetensors_tensor(const md_safetensors *st, size_t i)
{
    return i < st->count ? &st->tensors[i] : NULL;
}

const md_tensor *md_safetensors_find(const md_safetensors *st, const char *name)
{
    size_t lo = 0, hi = st->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->names[st->sorted[mid]], name);
        if (c == 0)
            return &st->tensors[st->sorted[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *md_safetensors_metadata(const md_safetensors *st, const char *key)
{
    for (size_t i = 0; i < st->nmeta; i++)
        if (strcmp(st->meta[i].key, key) == 0)
            return st->meta[i].value;
    return NULL;
}
