/* The JSON header of a safetensors file, for the helpers that edit tensors
 * in place (md-test-poison, md-test-collapse). */
#ifndef MD_TEST_ST_HEADER_H
#define MD_TEST_ST_HEADER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Opens `path` for update and reads its header (NUL-terminated, to free)
 * and length; NULL with the reason printed, under the name `tool`. */
static inline char *st_header_read(const char *tool, const char *path, FILE **f, uint64_t *hlen)
{
    unsigned char len8[8];
    *f = fopen(path, "r+b");
    if (!*f || fread(len8, 1, 8, *f) != 8) {
        fprintf(stderr, "%s: cannot read %s\n", tool, path);
        return NULL;
    }
    *hlen = 0;
    for (int i = 7; i >= 0; i--)
        *hlen = *hlen << 8 | len8[i];
    char *h = *hlen < (1u << 26) ? calloc(1, *hlen + 1) : NULL;
    if (!h || fread(h, 1, *hlen, *f) != *hlen) {
        fprintf(stderr, "%s: bad header in %s\n", tool, path);
        free(h);
        return NULL;
    }
    return h;
}

#endif
