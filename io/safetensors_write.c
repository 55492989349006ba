/* md_safetensors_write: tensors from host memory to a .safetensors file. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct md_st_order {
    const md_safetensors_entry *e;
    size_t pos;
} md_st_order;

/* Larger elements first, then by name: every tensor starts aligned to its
 * element size without gaps (readers such as the Python package reject
 * gaps), and the layout does not depend on the caller's order. */
static int order_cmp(const void *a, const void *b)
{
    const md_st_order *x = a, *y = b;
    size_t sx = md_dtype_size(x->e->tensor.dtype), sy = md_dtype_size(y->e->tensor.dtype);
    if (sx != sy)
        return sx > sy ? -1 : 1;
    return strcmp(x->e->name, y->e->name);
}

static md_status write_all(int fd, const void *buf, size_t n, const char *path, md_error *err)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return md_fail(err, MD_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return MD_OK;
}

static md_status check_entry(const md_safetensors_entry *e, const char *path, md_error *err)
{
    const md_tensor *t = &e->tensor;
    if (!e->name || !e->name[0] || strcmp(e->name, "__metadata__") == 0)
        return md_fail(err, MD_ERR_INVALID, "%s: invalid tensor name", path);
    if (t->dtype < 0 || t->dtype >= MD_DTYPE_COUNT)
        return md_fail(err, MD_ERR_INVALID, "%s: tensor '%s' has an invalid dtype", path, e->name);
    if (t->ndim < 0 || t->ndim > MD_MAX_DIMS)
        return md_fail(err, MD_ERR_INVALID, "%s: tensor '%s' has %d dims", path, e->name, t->ndim);
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] < 0)
            return md_fail(err, MD_ERR_INVALID, "%s: tensor '%s' has a negative dim", path,
                           e->name);
    if (md_tensor_nbytes(t) > 0 && !t->data)
        return md_fail(err, MD_ERR_INVALID, "%s: tensor '%s' has no data", path, e->name);
    return MD_OK;
}

/* Builds the padded header text; *len excludes the terminating NUL. */
static md_status build_header(const md_st_order *order, size_t n, const char *const *meta_kv,
                              size_t nmeta, const char *path, char **out, size_t *len,
                              md_error *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = root ? cJSON_AddObjectToObject(root, "__metadata__") : NULL;
    int mok = meta && cJSON_AddStringToObject(meta, "format", "pt");
    for (size_t i = 0; mok && i < nmeta; i++)
        mok = cJSON_AddStringToObject(meta, meta_kv[2 * i], meta_kv[2 * i + 1]) != NULL;
    if (!mok) {
        cJSON_Delete(root);
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        const md_tensor *t = &order[i].e->tensor;
        size_t nb = md_tensor_nbytes(t);
        cJSON *ent = cJSON_AddObjectToObject(root, order[i].e->name);
        cJSON *shape = ent ? cJSON_AddArrayToObject(ent, "shape") : NULL;
        cJSON *offs = ent ? cJSON_AddArrayToObject(ent, "data_offsets") : NULL;
        int ok = ent && shape && offs && cJSON_AddStringToObject(ent, "dtype", md_dtype_name(t->dtype));
        for (int d = 0; ok && d < t->ndim; d++)
            ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        ok = ok && cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
        ok = ok && cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(offset + nb)));
        if (!ok) {
            cJSON_Delete(root);
            return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
        }
        offset += nb;
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    size_t tl = strlen(text);
    size_t padded = (tl + 7) / 8 * 8; /* so the data section starts 8-aligned */
    char *buf = malloc(padded + 1);
    if (!buf) {
        cJSON_free(text);
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(buf, text, tl);
    memset(buf + tl, ' ', padded - tl);
    buf[padded] = '\0';
    cJSON_free(text);
    *out = buf;
    *len = padded;
    return MD_OK;
}

md_status md_safetensors_write(const char *path, const md_safetensors_entry *entries, size_t n,
                               md_error *err)
{
    return md_safetensors_write_meta(path, entries, n, NULL, 0, err);
}

md_status md_safetensors_write_meta(const char *path, const md_safetensors_entry *entries,
                                    size_t n, const char *const *meta_kv, size_t nmeta,
                                    md_error *err)
{
    md_status s;
    for (size_t i = 0; i < nmeta; i++)
        if (!meta_kv[2 * i] || !meta_kv[2 * i + 1] || !strcmp(meta_kv[2 * i], "format"))
            return md_fail(err, MD_ERR_INVALID, "%s: invalid metadata entry %zu", path, i);
    for (size_t i = 0; i < n; i++)
        if ((s = check_entry(&entries[i], path, err)) != MD_OK)
            return s;
    md_st_order *order = calloc(n ? n : 1, sizeof *order);
    if (!order)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++)
        order[i] = (md_st_order){&entries[i], i};
    qsort(order, n, sizeof *order, order_cmp);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(order[i - 1].e->name, order[i].e->name) == 0) {
            s = md_fail(err, MD_ERR_INVALID, "%s: tensor '%s' given twice", path,
                        order[i].e->name);
            free(order);
            return s;
        }
    }
    char *header = NULL;
    size_t hlen = 0;
    if ((s = build_header(order, n, meta_kv, nmeta, path, &header, &hlen, err)) != MD_OK) {
        free(order);
        return s;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) {
        free(order);
        free(header);
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        s = md_fail(err, MD_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    s = write_all(fd, lenbuf, 8, tmp, err);
    if (s == MD_OK)
        s = write_all(fd, header, hlen, tmp, err);
    for (size_t i = 0; s == MD_OK && i < n; i++)
        s = write_all(fd, order[i].e->tensor.data, md_tensor_nbytes(&order[i].e->tensor), tmp, err);
    if (s == MD_OK && fsync(fd) != 0)
        s = md_fail(err, MD_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && s == MD_OK)
        s = md_fail(err, MD_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (s == MD_OK && rename(tmp, path) != 0)
        s = md_fail(err, MD_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp,
                    strerror(errno));
    if (s != MD_OK)
        unlink(tmp);
out:
    free(tmp);
    free(order);
    free(header);
    return s;
}
