/* Vocabulary map and byte alphabet (see clip_vocab.h). */
#include "clip_vocab.h"

#include <stdlib.h>
#include <string.h>

static uint32_t hash_bytes(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

md_status md_vocab_init(md_clip_vocab *v, int32_t count, size_t blob_bytes, md_error *err)
{
    memset(v, 0, sizeof *v);
    if (count <= 0 || count > (1 << 24))
        return md_fail(err, MD_ERR_FORMAT, "vocabulary size %d out of range", (int)count);
    uint32_t cap = 1;
    while (cap < 2u * (uint32_t)count) /* load factor <= 1/2 */
        cap <<= 1;
    v->count = count;
    v->blob_cap = blob_bytes;
    v->blob = malloc(blob_bytes ? blob_bytes : 1);
    v->offset = malloc((size_t)count * sizeof *v->offset);
    v->len = malloc((size_t)count * sizeof *v->len);
    v->slots = malloc((size_t)cap * sizeof *v->slots);
    v->mask = cap - 1;
    if (!v->blob || !v->offset || !v->len || !v->slots) {
        md_vocab_free(v);
        return md_fail(err, MD_ERR_NOMEM, "out of memory for a %d-entry vocabulary", (int)count);
    }
    memset(v->offset, 0xFF, (size_t)count * sizeof *v->offset);
    memset(v->slots, 0xFF, (size_t)cap * sizeof *v->slots);
    return MD_OK;
}

void md_vocab_free(md_clip_vocab *v)
{
    free(v->blob);
    free(v->offset);
    free(v->len);
    free(v->slots);
    memset(v, 0, sizeof *v);
}

static int32_t *find_slot(const md_clip_vocab *v, const char *s, size_t len)
{
    uint32_t i = hash_bytes(s, len) & v->mask;
    for (;;) {
        int32_t id = v->slots[i];
        if (id < 0 || (v->len[id] == len && memcmp(v->blob + v->offset[id], s, len) == 0))
            return &v->slots[i];
        i = (i + 1) & v->mask;
    }
}

md_status md_vocab_set(md_clip_vocab *v, int32_t id, const char *s, size_t len, md_error *err)
{
    if (id < 0 || id >= v->count)
        return md_fail(err, MD_ERR_FORMAT, "token id %d out of range [0, %d)", (int)id,
                       (int)v->count);
    if (v->offset[id] != UINT32_MAX)
        return md_fail(err, MD_ERR_FORMAT, "token id %d is given twice", (int)id);
    if (len + 1 > v->blob_cap - v->blob_used || len > UINT32_MAX / 2)
        return md_fail(err, MD_ERR_FORMAT, "vocabulary strings exceed the expected size");
    int32_t *slot = find_slot(v, s, len);
    if (*slot >= 0)
        return md_fail(err, MD_ERR_FORMAT, "token \"%.*s\" is given twice (ids %d and %d)",
                       (int)(len < 64 ? len : 64), s, (int)*slot, (int)id);
    memcpy(v->blob + v->blob_used, s, len);
    v->blob[v->blob_used + len] = '\0';
    v->offset[id] = (uint32_t)v->blob_used;
    v->len[id] = (uint32_t)len;
    v->blob_used += len + 1;
    *slot = id;
    return MD_OK;
}

int32_t md_vocab_find(const md_clip_vocab *v, const char *s, size_t len)
{
    if (!v->slots)
        return -1;
    return *find_slot(v, s, len);
}

/* Printable Latin-1 bytes keep their value: '!'..'~', U+00A1..U+00AC,
 * U+00AE..U+00FF. */
static int byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t md_byte_char(unsigned char b)
{
    if (byte_is_printable(b))
        return b;
    uint32_t n = 0; /* how many non-printable bytes precede b */
    for (unsigned k = 0; k < b; k++)
        n += !byte_is_printable(k);
    return 256 + n;
}

int32_t md_byte_order(unsigned char b)
{
    int32_t printable = 0, other = 0;
    for (unsigned k = 0; k < b; k++) {
        if (byte_is_printable(k))
            printable++;
        else
            other++;
    }
    return byte_is_printable(b) ? printable : 188 + other; /* 188 printable bytes */
}
