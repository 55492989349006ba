/* The hash cache file (host/file_hash_cache.c): any process, or a person,
 * may have written it. Every line is parsed, looked up by path, and what
 * parses is formatted and must parse again to the same record. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/file_hash_cache.h"

static void round_trip(const mdh_hash_record *r)
{
    char line[MDH_HASH_CACHE_LINE_MAX + 2];
    size_t n = mdh_hash_cache_format_line(line, sizeof line, r);
    if (n == 0)
        abort(); /* a parsed record can always be written back */
    mdh_hash_record t;
    if (!mdh_hash_cache_parse_line(line, n - 1, &t) || t.kind != r->kind || t.size != r->size ||
        t.mtime_ns != r->mtime_ns || strcmp(t.hex, r->hex) != 0 || t.path_len != r->path_len ||
        memcmp(t.path, r->path, r->path_len) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t pos = 0;
    while (pos < size) {
        const char *nl = memchr(text + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (text + pos)) : size - pos;
        mdh_hash_record r;
        if (mdh_hash_cache_parse_line(text + pos, len, &r)) {
            round_trip(&r);
            /* Looked up by its own path, the entry (or a later one) is found. */
            char *path = malloc(r.path_len + 1);
            if (path) {
                memcpy(path, r.path, r.path_len);
                path[r.path_len] = '\0';
                mdh_hash_record f;
                if (nl && !mdh_hash_cache_find(text, size, r.kind, path, &f) &&
                    pos < (size_t)MDH_HASH_CACHE_LINES_MAX)
                    abort();
                free(path);
            }
        }
        pos += len + 1;
    }
    mdh_hash_record f;
    mdh_hash_cache_find(text, size, MDH_HASH_FILE, "/m.safetensors", &f);
    return 0;
}
