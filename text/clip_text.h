/* The text side of the CLIP tokenizer before BPE: OpenAI CLIP's cleaning
 * (html unescape twice, whitespace collapse, strip, lowercase) and its
 * split pattern
 *   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|
 *   [\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+          (case-insensitive)
 * ftfy's repairs of broken text are not applied. */
#ifndef MD_CLIP_TEXT_H
#define MD_CLIP_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"

/* Decodes UTF-8 `text` (invalid bytes become U+FFFD) and cleans it.
 * *out is malloc'ed (free() it); *n may be 0. */
md_status md_clip_clean(const char *text, size_t len, uint32_t **out, size_t *n, md_error *err);

typedef enum md_piece_kind {
    MD_PIECE_WORD = 0, /* to be BPE-encoded */
    MD_PIECE_BOS,      /* the literal <|startoftext|> */
    MD_PIECE_EOS       /* the literal <|endoftext|> */
} md_piece_kind;

/* Finds the next match of the split pattern at or after *pos in cleaned
 * text; sets [*start, *end) and *kind, advances *pos. Returns 0 when there
 * is none. */
int md_clip_next_piece(const uint32_t *cps, size_t n, size_t *pos, size_t *start, size_t *end,
                       md_piece_kind *kind);

#endif
