#include "file_hash_cache.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define MDH_FIELDS 6

static const char *const kind_names[] = {"file", "safetensors-data"};

static int parse_kind(const char *s, size_t n, mdh_hash_kind *k)
{
    for (int i = 0; i < 2; i++)
        if (strlen(kind_names[i]) == n && memcmp(s, kind_names[i], n) == 0) {
            *k = (mdh_hash_kind)i;
            return 1;
        }
    return 0;
}

/* Decimal digits with an optional leading '-' (allow_neg), within int64;
 * no '+', no spaces, no empty field: what format_line writes, nothing else. */
static int parse_i64(const char *s, size_t n, int allow_neg, int64_t *out)
{
    int neg = 0;
    if (n && s[0] == '-' && allow_neg) {
        neg = 1;
        s++;
        n--;
    }
    if (n == 0 || n > 19)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(s[i] - '0'); /* 19 digits cannot wrap a uint64 */
    }
    if (v > (uint64_t)INT64_MAX)
        return 0;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 1;
}

static int is_hex64(const char *s, size_t n)
{
    if (n != 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int mdh_hash_cache_parse_line(const char *line, size_t len, mdh_hash_record *r)
{
    if (len > MDH_HASH_CACHE_LINE_MAX)
        return 0;
    const char *f[MDH_FIELDS];
    size_t fl[MDH_FIELDS];
    size_t nf = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && (line[i] == '\0' || line[i] == '\r' || line[i] == '\n'))
            return 0;
        if (i == len || line[i] == '\t') {
            if (nf == MDH_FIELDS)
                return 0; /* a tab in the path, or a field too many */
            f[nf] = line + start;
            fl[nf] = i - start;
            nf++;
            start = i + 1;
        }
    }
    mdh_hash_record t;
    if (nf != MDH_FIELDS || fl[0] != strlen(MDH_HASH_CACHE_TAG) ||
        memcmp(f[0], MDH_HASH_CACHE_TAG, fl[0]) != 0 || !parse_kind(f[1], fl[1], &t.kind) ||
        !parse_i64(f[2], fl[2], 0, &t.size) || !parse_i64(f[3], fl[3], 1, &t.mtime_ns) ||
        !is_hex64(f[4], fl[4]) || fl[5] == 0 || f[5][0] != '/')
        return 0;
    memcpy(t.hex, f[4], 64);
    t.hex[64] = '\0';
    t.path = f[5];
    t.path_len = fl[5];
    *r = t;
    return 1;
}

int mdh_hash_cache_find(const char *text, size_t n, mdh_hash_kind kind, const char *path,
                        mdh_hash_record *r)
{
    size_t plen = strlen(path);
    int found = 0;
    size_t pos = 0;
    for (long lines = 0; pos < n && lines < MDH_HASH_CACHE_LINES_MAX; lines++) {
        const char *nl = memchr(text + pos, '\n', n - pos);
        if (!nl)
            break; /* an unterminated last line may be a write still in progress */
        size_t len = (size_t)(nl - (text + pos));
        mdh_hash_record t;
        if (mdh_hash_cache_parse_line(text + pos, len, &t) && t.kind == kind &&
            t.path_len == plen && memcmp(t.path, path, plen) == 0) {
            *r = t;
            found = 1;
        }
        pos += len + 1;
    }
    return found;
}

size_t mdh_hash_cache_format_line(char *buf, size_t cap, const mdh_hash_record *r)
{
    if ((unsigned)r->kind > 1u || r->size < 0 || !is_hex64(r->hex, strnlen(r->hex, 65)) ||
        r->path_len == 0 || r->path[0] != '/')
        return 0;
    for (size_t i = 0; i < r->path_len; i++)
        if (r->path[i] == '\t' || r->path[i] == '\r' || r->path[i] == '\n' || r->path[i] == '\0')
            return 0;
    if (r->path_len > MDH_HASH_CACHE_LINE_MAX)
        return 0;
    int w = snprintf(buf, cap, "%s\t%s\t%" PRId64 "\t%" PRId64 "\t%s\t%.*s\n", MDH_HASH_CACHE_TAG,
                     kind_names[r->kind], r->size, r->mtime_ns, r->hex, (int)r->path_len, r->path);
    /* The newline does not count toward the parser's line length. */
    if (w < 0 || (size_t)w >= cap || (size_t)w - 1 > MDH_HASH_CACHE_LINE_MAX)
        return 0;
    return (size_t)w;
}
