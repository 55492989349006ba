/* The streamed safetensors writer (st_stream.h). */
#include "st_stream.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct md_st_stream {
    char path[1024];
    int fd;
    size_t n;
    md_tensor *specs;
    size_t *offset; /* absolute file offsets */
    unsigned char *written;
};

static const char *st_dtype(md_dtype d)
{
    static const char *const names[] = {"F32", "F16", "BF16", "F64", "I64",
                                        "I32", "I16", "I8",   "U8",  "BOOL"};
    return (int)d >= 0 && d < MD_DTYPE_COUNT ? names[d] : "F32";
}

static md_status write_all(md_st_stream *s, const void *buf, size_t len, size_t off, md_error *err)
{
    const char *p = buf;
    while (len) {
        ssize_t w = pwrite(s->fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return md_fail(err, MD_ERR_IO, "%s: write failed: %s", s->path,
                           w < 0 ? strerror(errno) : "no space");
        p += w, off += (size_t)w, len -= (size_t)w;
    }
    return MD_OK;
}

static md_status header(md_st_stream *s, const char *const *names, md_error *err)
{
    cJSON *h = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(h, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    size_t pos = 0;
    for (size_t i = 0; i < s->n; i++) {
        cJSON *t = cJSON_AddObjectToObject(h, names[i]);
        cJSON_AddStringToObject(t, "dtype", st_dtype(s->specs[i].dtype));
        cJSON *shape = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < s->specs[i].ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)s->specs[i].shape[d]));
        cJSON *off = cJSON_AddArrayToObject(t, "data_offsets");
        size_t nb = md_tensor_nbytes(&s->specs[i]);
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)pos));
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(pos + nb)));
        s->offset[i] = pos;
        pos += nb;
    }
    char *text = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!text)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory for the header", s->path);
    size_t len = strlen(text), padded = (len + 7) & ~(size_t)7;
    char *buf = malloc(8 + padded);
    if (!buf) {
        free(text);
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory for the header", s->path);
    }
    uint64_t hl = padded;
    for (int b = 0; b < 8; b++)
        buf[b] = (char)(hl >> (8 * b)); /* little endian */
    memcpy(buf + 8, text, len);
    memset(buf + 8 + len, ' ', padded - len);
    free(text);
    for (size_t i = 0; i < s->n; i++)
        s->offset[i] += 8 + padded;
    md_status st = write_all(s, buf, 8 + padded, 0, err);
    free(buf);
    /* Sized up front: a full disk fails here rather than half way. */
    if (st == MD_OK && ftruncate(s->fd, (off_t)(8 + padded + pos)) != 0)
        st = md_fail(err, MD_ERR_IO, "%s: cannot size the file: %s", s->path, strerror(errno));
    return st;
}

md_status md_st_stream_open(const char *path, const char *const *names, const md_tensor *specs,
                            size_t n, md_st_stream **out, md_error *err)
{
    *out = NULL;
    md_st_stream *s = calloc(1, sizeof *s);
    if (s) {
        s->specs = malloc(sizeof *s->specs * (n + 1));
        s->offset = calloc(n + 1, sizeof *s->offset);
        s->written = calloc(n + 1, 1);
    }
    if (!s || !s->specs || !s->offset || !s->written) {
        if (s)
            free(s->specs), free(s->offset), free(s->written);
        free(s);
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(s->path, sizeof s->path, "%s", path);
    memcpy(s->specs, specs, sizeof *specs * n);
    s->n = n;
    s->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        md_status st = md_fail(err, MD_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        free(s->specs), free(s->offset), free(s->written), free(s);
        return st;
    }
    md_status st = header(s, names, err);
    if (st != MD_OK) {
        md_st_stream_abort(s);
        return st;
    }
    *out = s;
    return MD_OK;
}

static int is_float(md_dtype d)
{
    return d == MD_F32 || d == MD_F16 || d == MD_BF16;
}

md_status md_st_stream_put(md_st_stream *s, size_t i, md_dtype src_dtype, const void *src,
                           md_error *err)
{
    const md_tensor *t = &s->specs[i];
    const size_t count = (size_t)md_tensor_numel(t), nb = md_tensor_nbytes(t);
    if (src_dtype == t->dtype)
        return s->written[i] = 1, write_all(s, src, nb, s->offset[i], err);
    if (!is_float(src_dtype) || (t->dtype != MD_F32 && t->dtype != MD_F16))
        return md_fail(err, MD_ERR_INVALID, "%s: tensor %zu: cannot write %s data as %s", s->path,
                       i, md_dtype_name(src_dtype), md_dtype_name(t->dtype));
    /* Converted in chunks so a large weight needs little extra memory. */
    enum { CHUNK = 1 << 16 };
    float *f = malloc(sizeof(float) * CHUNK);
    uint16_t *h = malloc(sizeof(uint16_t) * CHUNK);
    if (!f || !h) {
        free(f), free(h);
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", s->path);
    }
    md_status st = MD_OK;
    const size_t es = md_dtype_size(src_dtype);
    for (size_t k = 0; st == MD_OK && k < count; k += CHUNK) {
        size_t m = count - k < CHUNK ? count - k : CHUNK;
        md_widen_to_f32(src_dtype, (const char *)src + k * es, f, m);
        if (t->dtype == MD_F32) {
            st = write_all(s, f, m * 4, s->offset[i] + k * 4, err);
        } else {
            for (size_t q = 0; q < m; q++)
                h[q] = md_f32_to_f16(f[q]);
            st = write_all(s, h, m * 2, s->offset[i] + k * 2, err);
        }
    }
    free(f), free(h);
    s->written[i] = st == MD_OK;
    return st;
}

md_status md_st_stream_close(md_st_stream *s, md_error *err)
{
    md_status st = MD_OK;
    for (size_t i = 0; i < s->n && st == MD_OK; i++)
        if (!s->written[i])
            st = md_fail(err, MD_ERR_INVALID, "%s: tensor %zu was never written", s->path, i);
    if (st == MD_OK && fsync(s->fd) != 0)
        st = md_fail(err, MD_ERR_IO, "%s: %s", s->path, strerror(errno));
    if (close(s->fd) != 0 && st == MD_OK)
        st = md_fail(err, MD_ERR_IO, "%s: %s", s->path, strerror(errno));
    s->fd = -1;
    md_st_stream_abort(s);
    return st;
}

void md_st_stream_abort(md_st_stream *s)
{
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    free(s->specs), free(s->offset), free(s->written);
    free(s);
}
