/* CLIP byte-level BPE tokenizer (OpenAI CLIP rules): html unescape (twice;
 * numeric references and a documented subset of named ones, see
 * html_unescape.h), whitespace runs to one space, strip, Python's
 * str.lower(), CLIP's split pattern, byte-level BPE with "</w>" word ends.
 * ftfy's repair of mis-decoded text is not applied; invalid UTF-8 decodes
 * to U+FFFD. A tokenizer is immutable after loading: encoding from several
 * threads at once is safe. */
#ifndef MD_TOKENIZER_H
#define MD_TOKENIZER_H

#include <stdint.h>

#include "../runtime/status.h"

#define MD_CLIP_CONTEXT 77

typedef struct md_tokenizer md_tokenizer;

/* From a diffusers tokenizer/ folder (vocab.json + merges.txt). */
md_status md_tokenizer_load_dir(const char *dir, md_tokenizer **out, md_error *err);
/* The standard CLIP vocabulary embedded in the library. */
md_status md_tokenizer_load_builtin(md_tokenizer **out, md_error *err);
void md_tokenizer_free(md_tokenizer *tok);

int32_t md_tokenizer_bos(const md_tokenizer *tok);
int32_t md_tokenizer_eos(const md_tokenizer *tok);
/* Token id of a vocabulary entry such as "!" or "<|endoftext|>", or -1. */
int32_t md_tokenizer_token_id(const md_tokenizer *tok, const char *token);

/* BPE tokens of `text` without BOS/EOS, no truncation. Returns the count
 * (which may exceed cap: only the first cap ids are written) or a negative
 * md_status on error. */
int64_t md_tokenizer_encode_raw(const md_tokenizer *tok, const char *text, int32_t *ids, int64_t cap,
                                md_error *err);
/* ids[77] = BOS + first 75 tokens + EOS, padded with pad_id; as the
 * reference does (truncation, no error). Returns the number of content tokens
 * before truncation, or a negative md_status. */
int64_t md_tokenizer_encode_77(const md_tokenizer *tok, const char *text, int32_t pad_id,
                               int32_t ids[MD_CLIP_CONTEXT], md_error *err);

#endif
