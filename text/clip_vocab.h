/* The CLIP vocabulary as a two-way map between ids and token strings
 * (UTF-8, the byte-level alphabet of GPT-2/CLIP), plus that alphabet. */
#ifndef MD_CLIP_VOCAB_H
#define MD_CLIP_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"

typedef struct md_clip_vocab {
    int32_t count;    /* ids are 0..count-1; unused ids have no string */
    char *blob;       /* every string, NUL-terminated */
    size_t blob_used, blob_cap;
    uint32_t *offset; /* per id: offset into blob, UINT32_MAX when unused */
    uint32_t *len;    /* per id: byte length */
    int32_t *slots;   /* open-addressing hash table of ids, -1 = empty */
    uint32_t mask;
} md_clip_vocab;

/* Room for ids 0..count-1 holding at most blob_bytes bytes of strings
 * (terminators included). */
md_status md_vocab_init(md_clip_vocab *v, int32_t count, size_t blob_bytes, md_error *err);
void md_vocab_free(md_clip_vocab *v);
/* Fails on an id out of range, an id given twice, a string given twice or
 * a full blob. */
md_status md_vocab_set(md_clip_vocab *v, int32_t id, const char *s, size_t len, md_error *err);
int32_t md_vocab_find(const md_clip_vocab *v, const char *s, size_t len); /* -1 when absent */

/* The byte-level alphabet: byte b is written as one printable code point
 * (printable Latin-1 bytes as themselves, the other 68 bytes as U+0100 +
 * their order), and the first 256 vocabulary entries list those code points
 * with the printable bytes first. */
uint32_t md_byte_char(unsigned char b);
/* The vocabulary index of byte b's character in that order. */
int32_t md_byte_order(unsigned char b);

#endif
