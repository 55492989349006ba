/* CLIP text cleaning and splitting (see clip_text.h). */
#include "clip_text.h"

#include <stdint.h>
#include <stdlib.h>

#include "html_unescape.h"
#include "unicode_text.h"

md_status md_clip_clean(const char *text, size_t len, uint32_t **out, size_t *n, md_error *err)
{
    *out = NULL;
    *n = 0;
    if (len > SIZE_MAX / 16)
        return md_fail(err, MD_ERR_INVALID, "tokenizer: a %zu-byte prompt is too long", len);
    /* lowercasing can double the length (U+0130 -> "i" U+0307) */
    uint32_t *a = malloc((2 * len + 1) * sizeof *a);
    uint32_t *b = malloc((2 * len + 1) * sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return md_fail(err, MD_ERR_NOMEM, "tokenizer: out of memory for a %zu-byte prompt", len);
    }
    size_t m = md_utf8_decode(text, len, a);

    /* the reference unescapes twice, so "&amp;lt;" becomes "<" */
    for (int pass = 0; pass < 2; pass++) {
        size_t k = 0;
        while (k < m && a[k] != '&')
            k++;
        if (k == m)
            break;
        m = md_html_unescape(a, m, b);
        uint32_t *t = a;
        a = b;
        b = t;
    }

    /* every whitespace run becomes one space, then str.strip() */
    size_t w = 0;
    for (size_t i = 0; i < m;) {
        if (md_uc_is_regex_space(a[i])) {
            while (i < m && md_uc_is_regex_space(a[i]))
                i++;
            b[w++] = ' ';
        } else {
            b[w++] = a[i++];
        }
    }
    size_t s = 0, e = w;
    while (s < e && md_uc_is_py_space(b[s]))
        s++;
    while (e > s && md_uc_is_py_space(b[e - 1]))
        e--;

    *n = md_uc_lower_str(b + s, e - s, a);
    free(b);
    *out = a;
    return MD_OK;
}

/* Case-insensitive match of an ASCII lowercase literal; the pattern is
 * compiled with IGNORECASE, under which U+017F (long s) equals "s". */
static int match_ci(const uint32_t *cps, size_t n, size_t i, const char *lit)
{
    for (size_t k = 0; lit[k]; k++) {
        if (i + k >= n)
            return 0;
        uint32_t c = cps[i + k];
        if (c >= 'A' && c <= 'Z')
            c += 32;
        if (c == 0x17F)
            c = 's';
        if (c != (unsigned char)lit[k])
            return 0;
    }
    return 1;
}

static int match_exact(const uint32_t *cps, size_t n, size_t i, const char *lit, size_t len)
{
    if (i + len > n)
        return 0;
    for (size_t k = 0; k < len; k++)
        if (cps[i + k] != (unsigned char)lit[k])
            return 0;
    return 1;
}

/* A member of [^\s\p{L}\p{N}] under IGNORECASE: U+0345 (combining
 * ypogegrammeni) is excluded because its case variant U+03B9 is a letter,
 * although it is no letter itself, so it matches no alternative at all. */
static int is_other(uint32_t c)
{
    return c != 0x345 && !md_uc_is_regex_space(c) && !md_uc_is_letter(c) && !md_uc_is_number(c);
}

int md_clip_next_piece(const uint32_t *cps, size_t n, size_t *pos, size_t *start, size_t *end,
                       md_piece_kind *kind)
{
    static const char *const specials[2] = {"<|startoftext|>", "<|endoftext|>"};
    static const char *const contractions[7] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (size_t i = *pos; i < n; i++) {
        size_t j = i;
        *kind = MD_PIECE_WORD;
        for (int k = 0; k < 2 && j == i; k++) {
            if (match_ci(cps, n, i, specials[k])) {
                size_t len = k == 0 ? 15 : 13;
                j = i + len;
                /* Only the exact text is the special token: the reference
                 * looks the piece up verbatim and BPE-encodes any other
                 * spelling that the case-insensitive pattern let through. */
                if (match_exact(cps, n, i, specials[k], len))
                    *kind = k == 0 ? MD_PIECE_BOS : MD_PIECE_EOS;
            }
        }
        for (int k = 0; k < 7 && j == i; k++)
            if (match_ci(cps, n, i, contractions[k])) {
                size_t len = 0;
                while (contractions[k][len])
                    len++;
                j = i + len;
            }
        if (j == i && md_uc_is_letter(cps[i])) {
            while (j < n && md_uc_is_letter(cps[j]))
                j++;
        }
        if (j == i && md_uc_is_number(cps[i]))
            j = i + 1;
        if (j == i && is_other(cps[i])) {
            while (j < n && is_other(cps[j]))
                j++;
        }
        if (j > i) {
            *start = i;
            *end = j;
            *pos = j;
            return 1;
        }
    }
    *pos = n;
    return 0;
}
