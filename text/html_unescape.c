/* html.unescape() semantics: a reference is "&" followed by "#digits",
 * "#x" + hex digits or a name of 1..32 characters (none of tab, newline,
 * form feed, space, "<", "&", "#", ";"), each with an optional ";". */
#include "html_unescape.h"

#include <string.h>

#include "unicode_text.h"

typedef struct entity {
    const char *name; /* without ';' */
    uint32_t cp;
    int legacy;       /* also valid without ';' */
} entity;

/* Sorted by strcmp for binary search. */
static const entity k_entities[] = {
    {"AElig", 0xC6, 1}, {"AMP", 0x26, 1}, {"Aacute", 0xC1, 1}, {"Acirc", 0xC2, 1},
    {"Agrave", 0xC0, 1}, {"Alpha", 0x391, 0}, {"Aring", 0xC5, 1}, {"Atilde", 0xC3, 1},
    {"Auml", 0xC4, 1}, {"Beta", 0x392, 0}, {"COPY", 0xA9, 1}, {"Ccedil", 0xC7, 1},
    {"Chi", 0x3A7, 0}, {"Dagger", 0x2021, 0}, {"Delta", 0x394, 0}, {"ETH", 0xD0, 1},
    {"Eacute", 0xC9, 1}, {"Ecirc", 0xCA, 1}, {"Egrave", 0xC8, 1}, {"Epsilon", 0x395, 0},
    {"Eta", 0x397, 0}, {"Euml", 0xCB, 1}, {"GT", 0x3E, 1}, {"Gamma", 0x393, 0}, {"Iacute", 0xCD, 1},
    {"Icirc", 0xCE, 1}, {"Igrave", 0xCC, 1}, {"Iota", 0x399, 0}, {"Iuml", 0xCF, 1},
    {"Kappa", 0x39A, 0}, {"LT", 0x3C, 1}, {"Lambda", 0x39B, 0}, {"Mu", 0x39C, 0},
    {"NewLine", 0xA, 0}, {"Ntilde", 0xD1, 1}, {"Nu", 0x39D, 0}, {"OElig", 0x152, 0},
    {"Oacute", 0xD3, 1}, {"Ocirc", 0xD4, 1}, {"Ograve", 0xD2, 1}, {"Omega", 0x3A9, 0},
    {"Omicron", 0x39F, 0}, {"Oslash", 0xD8, 1}, {"Otilde", 0xD5, 1}, {"Ouml", 0xD6, 1},
    {"Phi", 0x3A6, 0}, {"Pi", 0x3A0, 0}, {"Prime", 0x2033, 0}, {"Psi", 0x3A8, 0}, {"QUOT", 0x22, 1},
    {"REG", 0xAE, 1}, {"Rho", 0x3A1, 0}, {"Scaron", 0x160, 0}, {"Sigma", 0x3A3, 0},
    {"THORN", 0xDE, 1}, {"Tab", 0x9, 0}, {"Tau", 0x3A4, 0}, {"Theta", 0x398, 0},
    {"Uacute", 0xDA, 1}, {"Ucirc", 0xDB, 1}, {"Ugrave", 0xD9, 1}, {"Upsilon", 0x3A5, 0},
    {"Uuml", 0xDC, 1}, {"Xi", 0x39E, 0}, {"Yacute", 0xDD, 1}, {"Yuml", 0x178, 0},
    {"Zeta", 0x396, 0}, {"aacute", 0xE1, 1}, {"acirc", 0xE2, 1}, {"acute", 0xB4, 1},
    {"aelig", 0xE6, 1}, {"agrave", 0xE0, 1}, {"alpha", 0x3B1, 0}, {"amp", 0x26, 1},
    {"apos", 0x27, 0}, {"aring", 0xE5, 1}, {"asymp", 0x2248, 0}, {"atilde", 0xE3, 1},
    {"auml", 0xE4, 1}, {"bdquo", 0x201E, 0}, {"beta", 0x3B2, 0}, {"brvbar", 0xA6, 1},
    {"bull", 0x2022, 0}, {"ccedil", 0xE7, 1}, {"cedil", 0xB8, 1}, {"cent", 0xA2, 1},
    {"chi", 0x3C7, 0}, {"circ", 0x2C6, 0}, {"clubs", 0x2663, 0}, {"copy", 0xA9, 1},
    {"curren", 0xA4, 1}, {"dagger", 0x2020, 0}, {"darr", 0x2193, 0}, {"deg", 0xB0, 1},
    {"delta", 0x3B4, 0}, {"diams", 0x2666, 0}, {"divide", 0xF7, 1}, {"eacute", 0xE9, 1},
    {"ecirc", 0xEA, 1}, {"egrave", 0xE8, 1}, {"emsp", 0x2003, 0}, {"ensp", 0x2002, 0},
    {"epsilon", 0x3B5, 0}, {"equiv", 0x2261, 0}, {"eta", 0x3B7, 0}, {"eth", 0xF0, 1},
    {"euml", 0xEB, 1}, {"euro", 0x20AC, 0}, {"fnof", 0x192, 0}, {"frac12", 0xBD, 1},
    {"frac14", 0xBC, 1}, {"frac34", 0xBE, 1}, {"frasl", 0x2044, 0}, {"gamma", 0x3B3, 0},
    {"ge", 0x2265, 0}, {"gt", 0x3E, 1}, {"harr", 0x2194, 0}, {"hearts", 0x2665, 0},
    {"hellip", 0x2026, 0}, {"iacute", 0xED, 1}, {"icirc", 0xEE, 1}, {"iexcl", 0xA1, 1},
    {"igrave", 0xEC, 1}, {"infin", 0x221E, 0}, {"iota", 0x3B9, 0}, {"iquest", 0xBF, 1},
    {"iuml", 0xEF, 1}, {"kappa", 0x3BA, 0}, {"lambda", 0x3BB, 0}, {"laquo", 0xAB, 1},
    {"larr", 0x2190, 0}, {"ldquo", 0x201C, 0}, {"le", 0x2264, 0}, {"lrm", 0x200E, 0},
    {"lsaquo", 0x2039, 0}, {"lsquo", 0x2018, 0}, {"lt", 0x3C, 1}, {"macr", 0xAF, 1},
    {"mdash", 0x2014, 0}, {"micro", 0xB5, 1}, {"middot", 0xB7, 1}, {"minus", 0x2212, 0},
    {"mu", 0x3BC, 0}, {"nbsp", 0xA0, 1}, {"ndash", 0x2013, 0}, {"ne", 0x2260, 0}, {"not", 0xAC, 1},
    {"ntilde", 0xF1, 1}, {"nu", 0x3BD, 0}, {"oacute", 0xF3, 1}, {"ocirc", 0xF4, 1},
    {"oelig", 0x153, 0}, {"ograve", 0xF2, 1}, {"oline", 0x203E, 0}, {"omega", 0x3C9, 0},
    {"omicron", 0x3BF, 0}, {"ordf", 0xAA, 1}, {"ordm", 0xBA, 1}, {"oslash", 0xF8, 1},
    {"otilde", 0xF5, 1}, {"ouml", 0xF6, 1}, {"para", 0xB6, 1}, {"permil", 0x2030, 0},
    {"phi", 0x3C6, 0}, {"pi", 0x3C0, 0}, {"plusmn", 0xB1, 1}, {"pound", 0xA3, 1},
    {"prime", 0x2032, 0}, {"prod", 0x220F, 0}, {"psi", 0x3C8, 0}, {"quot", 0x22, 1},
    {"radic", 0x221A, 0}, {"raquo", 0xBB, 1}, {"rarr", 0x2192, 0}, {"rdquo", 0x201D, 0},
    {"reg", 0xAE, 1}, {"rho", 0x3C1, 0}, {"rlm", 0x200F, 0}, {"rsaquo", 0x203A, 0},
    {"rsquo", 0x2019, 0}, {"sbquo", 0x201A, 0}, {"scaron", 0x161, 0}, {"sect", 0xA7, 1},
    {"shy", 0xAD, 1}, {"sigma", 0x3C3, 0}, {"sigmaf", 0x3C2, 0}, {"spades", 0x2660, 0},
    {"sum", 0x2211, 0}, {"sup1", 0xB9, 1}, {"sup2", 0xB2, 1}, {"sup3", 0xB3, 1}, {"szlig", 0xDF, 1},
    {"tau", 0x3C4, 0}, {"theta", 0x3B8, 0}, {"thinsp", 0x2009, 0}, {"thorn", 0xFE, 1},
    {"tilde", 0x2DC, 0}, {"times", 0xD7, 1}, {"trade", 0x2122, 0}, {"uacute", 0xFA, 1},
    {"uarr", 0x2191, 0}, {"ucirc", 0xFB, 1}, {"ugrave", 0xF9, 1}, {"uml", 0xA8, 1},
    {"upsilon", 0x3C5, 0}, {"uuml", 0xFC, 1}, {"xi", 0x3BE, 0}, {"yacute", 0xFD, 1},
    {"yen", 0xA5, 1}, {"yuml", 0xFF, 1}, {"zeta", 0x3B6, 0}, {"zwj", 0x200D, 0},
    {"zwnj", 0x200C, 0},
};

#define MAX_NAME 32

/* windows-1252 meaning of &#128; .. &#159;, as browsers (and Python) read them */
static const uint16_t k_c1_remap[32] = {
    0x20AC, 0x81,   0x201A, 0x192,  0x201E, 0x2026, 0x2020, 0x2021,
    0x2C6,  0x2030, 0x160,  0x2039, 0x152,  0x8D,   0x17D,  0x8F,
    0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x2DC,  0x2122, 0x161,  0x203A, 0x153,  0x9D,   0x17E,  0x178,
};

/* Looks `name` (ASCII, len code points) up; returns the entity or NULL. */
static const entity *find_entity(const uint32_t *name, size_t len, int need_legacy)
{
    char key[MAX_NAME + 1];
    if (len == 0 || len > MAX_NAME)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (name[i] >= 0x80)
            return NULL; /* every entity name is ASCII */
        key[i] = (char)name[i];
    }
    key[len] = '\0';
    size_t lo = 0, hi = sizeof k_entities / sizeof k_entities[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, k_entities[mid].name);
        if (c == 0)
            return (!need_legacy || k_entities[mid].legacy) ? &k_entities[mid] : NULL;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int is_digit(uint32_t c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(uint32_t c)
{
    if (is_digit(c))
        return (int)(c - '0');
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (int)((c | 0x20) - 'a' + 10);
    return -1;
}

static int is_name_char(uint32_t c)
{
    return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' &&
           c != ';';
}

/* The code point of a numeric reference with value num (saturated), or
 * 0xFFFFFFFF when Python drops it. */
static uint32_t numeric_char(uint64_t num)
{
    if (num == 0)
        return MD_UC_REPLACEMENT;
    if (num == 0x0D)
        return 0x0D;
    if (num >= 0x80 && num <= 0x9F)
        return k_c1_remap[num - 0x80];
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF)
        return MD_UC_REPLACEMENT;
    if ((num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) ||
        (num >= 0x7F && num <= 0x9F) || (num >= 0xFDD0 && num <= 0xFDEF) ||
        (num & 0xFFFE) == 0xFFFE)
        return 0xFFFFFFFFu;
    return (uint32_t)num;
}

/* Tries a numeric reference at in[i] == '&', in[i+1] == '#'. Returns the
 * number of input code points consumed (0: not a reference). */
static size_t numeric_ref(const uint32_t *in, size_t n, size_t i, uint32_t *out, size_t *m)
{
    size_t j = i + 2;
    int hex = j < n && (in[j] == 'x' || in[j] == 'X');
    if (hex)
        j++;
    size_t start = j;
    uint64_t num = 0;
    while (j < n && (hex ? hex_value(in[j]) >= 0 : is_digit(in[j]))) {
        uint64_t d = hex ? (uint64_t)hex_value(in[j]) : in[j] - '0';
        num = num > 0x10FFFFu ? num : num * (hex ? 16 : 10) + d; /* saturate past the range */
        j++;
    }
    if (j == start)
        return 0;
    if (j < n && in[j] == ';')
        j++;
    uint32_t c = numeric_char(num);
    if (c != 0xFFFFFFFFu)
        out[(*m)++] = c;
    return j - i;
}

/* A named reference at in[i] == '&' (the name alternative of the pattern). */
static size_t named_ref(const uint32_t *in, size_t n, size_t i, uint32_t *out, size_t *m)
{
    size_t s = i + 1, len = 0;
    while (s + len < n && len < MAX_NAME && is_name_char(in[s + len]))
        len++;
    if (len == 0)
        return 0;
    int semi = s + len < n && in[s + len] == ';';
    size_t total = len + (size_t)semi; /* length of the matched "s" */
    const entity *e = find_entity(in + s, len, !semi);
    size_t used = total;
    if (!e) {
        /* longest proper prefix of at least 2 characters that is a
         * name valid without ';' */
        for (size_t x = total - 1; x >= 2 && !e; x--) {
            if (x <= len) {
                e = find_entity(in + s, x, 1);
                if (e)
                    used = x;
            }
        }
    }
    if (!e) {
        out[(*m)++] = '&';
        for (size_t k = 0; k < total; k++)
            out[(*m)++] = in[s + k];
        return 1 + total;
    }
    out[(*m)++] = e->cp;
    for (size_t k = used; k < total; k++)
        out[(*m)++] = in[s + k];
    return 1 + total;
}

size_t md_html_unescape(const uint32_t *in, size_t n, uint32_t *out)
{
    size_t m = 0, i = 0;
    while (i < n) {
        if (in[i] == '&' && i + 1 < n) {
            size_t used = in[i + 1] == '#' ? numeric_ref(in, n, i, out, &m)
                                            : named_ref(in, n, i, out, &m);
            if (used) {
                i += used;
                continue;
            }
        }
        out[m++] = in[i++];
    }
    return m;
}
