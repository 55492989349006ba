/* UTF-8 conversion, class lookups in the generated range tables and
 * Python-compatible lowercasing. */
#include "unicode_text.h"

#include "unicode_tables.h"

/* Binary search in sorted, disjoint ranges. */
static int in_ranges(const md_uc_range *r, size_t n, uint32_t c)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < r[mid].first)
            hi = mid;
        else if (c > r[mid].last)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

int md_uc_is_letter(uint32_t c)
{
    if (c < 0x80)
        return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    return in_ranges(md_uc_letter, md_uc_letter_count, c);
}

int md_uc_is_number(uint32_t c)
{
    if (c < 0x80)
        return c >= '0' && c <= '9';
    return in_ranges(md_uc_number, md_uc_number_count, c);
}

int md_uc_is_regex_space(uint32_t c)
{
    return in_ranges(md_uc_regex_space, md_uc_regex_space_count, c);
}

int md_uc_is_py_space(uint32_t c)
{
    return (c >= 0x1C && c <= 0x1F) || md_uc_is_regex_space(c);
}

static uint32_t lower_simple(uint32_t c)
{
    if (c < 0x80)
        return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    size_t lo = 0, hi = md_uc_lower_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const md_uc_lower_run *r = &md_uc_lower[mid];
        if (c < r->first) {
            hi = mid;
        } else if (c > r->last) {
            lo = mid + 1;
        } else {
            if ((c - r->first) % (uint32_t)r->stride == 0)
                return (uint32_t)((int64_t)c + r->delta);
            return c;
        }
    }
    return c;
}

static int is_cased(uint32_t c)
{
    return in_ranges(md_uc_cased, md_uc_cased_count, c);
}

static int is_case_ignorable(uint32_t c)
{
    return in_ranges(md_uc_case_ignorable, md_uc_case_ignorable_count, c);
}

/* Unicode's Final_Sigma context, as str.lower() applies it: a capital sigma
 * after a cased letter (case-ignorables skipped) and not before one. */
static int final_sigma(const uint32_t *cps, size_t n, size_t i)
{
    size_t j = i;
    while (j > 0 && is_case_ignorable(cps[j - 1]))
        j--;
    if (j == 0 || !is_cased(cps[j - 1]))
        return 0;
    j = i + 1;
    while (j < n && is_case_ignorable(cps[j]))
        j++;
    return j == n || !is_cased(cps[j]);
}

size_t md_uc_lower_str(const uint32_t *cps, size_t n, uint32_t *out)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cps[i];
        if (c == 0x130) { /* the one multi-character lowercase mapping */
            out[m++] = 'i';
            out[m++] = 0x307;
        } else if (c == 0x3A3) {
            out[m++] = final_sigma(cps, n, i) ? 0x3C2 : 0x3C3;
        } else {
            out[m++] = lower_simple(c);
        }
    }
    return m;
}

/* Length of a valid sequence starting with lead byte b, 0 when b cannot
 * start one. */
static size_t utf8_seq_len(unsigned char b)
{
    if (b < 0x80)
        return 1;
    if (b >= 0xC2 && b <= 0xDF)
        return 2;
    if (b >= 0xE0 && b <= 0xEF)
        return 3;
    if (b >= 0xF0 && b <= 0xF4)
        return 4;
    return 0;
}

size_t md_utf8_decode(const char *s, size_t n, uint32_t *cps)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, m = 0;
    while (i < n) {
        size_t len = utf8_seq_len(p[i]);
        if (len == 1) {
            cps[m++] = p[i++];
            continue;
        }
        /* Like Python, a bad sequence yields one U+FFFD for its longest
         * valid prefix (at least one byte) and decoding resumes after it. */
        size_t k = 1;
        uint32_t c = len ? p[i] & (0x7F >> len) : 0;
        int ok = len != 0;
        while (ok && k < len) {
            if (i + k >= n) {
                ok = 0;
                break;
            }
            unsigned char b = p[i + k];
            unsigned char lo = 0x80, hi = 0xBF;
            if (k == 1) { /* second-byte limits exclude overlongs, surrogates, > U+10FFFF */
                if (p[i] == 0xE0)
                    lo = 0xA0;
                else if (p[i] == 0xED)
                    hi = 0x9F;
                else if (p[i] == 0xF0)
                    lo = 0x90;
                else if (p[i] == 0xF4)
                    hi = 0x8F;
            }
            if (b < lo || b > hi) {
                ok = 0;
                break;
            }
            c = (c << 6) | (b & 0x3F);
            k++;
        }
        cps[m++] = ok ? c : MD_UC_REPLACEMENT;
        i += k;
    }
    return m;
}

size_t md_utf8_encode(uint32_t cp, unsigned char out[4])
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}
