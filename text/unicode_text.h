/* Code point helpers for the CLIP tokenizer: UTF-8 conversion, the
 * character classes of its split pattern, and Python's str.lower(). */
#ifndef MD_UNICODE_TEXT_H
#define MD_UNICODE_TEXT_H

#include <stddef.h>
#include <stdint.h>

#define MD_UC_REPLACEMENT 0xFFFDu

/* Decodes n bytes into cps (room for n code points). Invalid or truncated
 * sequences, overlongs and surrogates each become U+FFFD, like Python's
 * bytes.decode(errors="replace"). Returns the number of code points. */
size_t md_utf8_decode(const char *s, size_t n, uint32_t *cps);
/* Writes the UTF-8 form of cp (at most 4 bytes); returns its length. */
size_t md_utf8_encode(uint32_t cp, unsigned char out[4]);

int md_uc_is_letter(uint32_t c);       /* \p{L} */
int md_uc_is_number(uint32_t c);       /* \p{N} */
int md_uc_is_regex_space(uint32_t c);  /* \s of the split pattern */
int md_uc_is_py_space(uint32_t c);     /* str.isspace(): \s plus U+001C..U+001F */

/* Python's str.lower() of cps[0..n) into out (room for 2n code points:
 * U+0130 becomes "i" + U+0307), including the final-sigma rule. Returns
 * the output length. */
size_t md_uc_lower_str(const uint32_t *cps, size_t n, uint32_t *out);

#endif
