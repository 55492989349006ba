/* Whole-file reading and gzip decompression for the tokenizer loader. */
#include "text_io.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

md_status md_gunzip(const unsigned char *src, size_t n, char **out, size_t *out_len,
                        md_error *err)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return md_fail(err, MD_ERR_NOMEM, "gzip: zlib init failed");
    size_t cap = 4 * n + 1024, len = 0;
    char *buf = malloc(cap);
    md_status st = MD_OK;
    zs.next_in = (unsigned char *)(uintptr_t)src; /* zlib's API is not const */
    zs.avail_in = (uInt)n;
    for (;;) {
        if (!buf) {
            st = md_fail(err, MD_ERR_NOMEM, "gzip: out of memory");
            break;
        }
        zs.next_out = (unsigned char *)buf + len;
        zs.avail_out = (uInt)(cap - len);
        int zr = inflate(&zs, Z_NO_FLUSH);
        len = cap - zs.avail_out;
        if (zr == Z_STREAM_END)
            break;
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            st = md_fail(err, MD_ERR_FORMAT, "gzip: corrupt data (%d)", zr);
            break;
        }
        if (zs.avail_out > 0 && zs.avail_in == 0) {
            st = md_fail(err, MD_ERR_FORMAT, "gzip: truncated data");
            break;
        }
        if (zs.avail_out == 0) {
            char *grown = realloc(buf, cap * 2);
            if (!grown)
                free(buf);
            buf = grown;
            cap *= 2;
        }
    }
    inflateEnd(&zs);
    if (st != MD_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    *out_len = len;
    return MD_OK;
}

md_status md_read_whole_file(const char *path, char **out, size_t *len, md_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return md_fail(err, MD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 20;
            char *grown = realloc(buf, ncap + 1);
            if (!grown) {
                free(buf);
                fclose(f);
                return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = grown;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return md_fail(err, MD_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return MD_OK;
}
