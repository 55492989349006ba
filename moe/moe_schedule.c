/* Expert schedule parser (moe_schedule.h): a hand-written scanner, so an
 * error can say at which byte the text stops making sense. */
#include "moe_schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct scan {
    const char *s;
    size_t at, len;
    md_error *err;
} scan;

static md_status fail_at(scan *sc, const char *what)
{
    char got[16] = "end of text";
    if (sc->at < sc->len) {
        unsigned char c = (unsigned char)sc->s[sc->at];
        snprintf(got, sizeof got, c >= 0x20 && c < 0x7f ? "'%c'" : "byte 0x%02x", c);
    }
    return md_fail(sc->err, MD_ERR_INVALID, "moe_schedule: at byte %zu (%s): expected %s",
                   sc->at, got, what);
}

static void spaces(scan *sc)
{
    while (sc->at < sc->len && (sc->s[sc->at] == ' ' || sc->s[sc->at] == '\t'))
        sc->at++;
}

static int peek(scan *sc, char c)
{
    spaces(sc);
    return sc->at < sc->len && sc->s[sc->at] == c;
}

static md_status expect(scan *sc, char c, const char *what)
{
    if (!peek(sc, c))
        return fail_at(sc, what);
    sc->at++;
    return MD_OK;
}

/* A plain decimal: digits with at most one '.', no sign or exponent, at
 * most 15 digits. Read as mantissa / 10^decimals, both exact doubles, so
 * the value is the double nearest to the text (as "0.3" is in C) without
 * strtod, whose decimal point follows the host's locale. */
static md_status number(scan *sc, double *out, const char *what)
{
    spaces(sc);
    size_t b = sc->at;
    int digits = 0, dots = 0, decimals = 0;
    double mantissa = 0.0, scale = 1.0;
    while (sc->at < sc->len) {
        char c = sc->s[sc->at];
        if (c >= '0' && c <= '9' && digits < 15) {
            digits++;
            mantissa = mantissa * 10.0 + (c - '0');
            decimals += dots;
        } else if (c == '.' && !dots) {
            dots = 1;
        } else {
            break;
        }
        sc->at++;
    }
    if (!digits) {
        sc->at = b;
        return fail_at(sc, what);
    }
    for (int i = 0; i < decimals; i++)
        scale *= 10.0;
    *out = mantissa / scale;
    return MD_OK;
}

static md_status integer(scan *sc, int lo, int hi, int *out, const char *what)
{
    size_t b = (spaces(sc), sc->at);
    double v;
    MD_TRY(number(sc, &v, what));
    if (v < lo || v > hi || v != (double)(int)v) { /* range first: (int) of a huge v is UB */
        sc->at = b;
        return fail_at(sc, what);
    }
    *out = (int)v;
    return MD_OK;
}

static int word(scan *sc, const char *w)
{
    spaces(sc);
    size_t n = strlen(w);
    if (sc->len - sc->at < n || strncmp(sc->s + sc->at, w, n) != 0)
        return 0;
    sc->at += n;
    return 1;
}

static md_status setting(scan *sc, md_moe_schedule_range *r)
{
    size_t b = (spaces(sc), sc->at);
    if (word(sc, "skip")) {
        double v;
        MD_TRY(expect(sc, '=', "'=' after skip"));
        size_t vb = (spaces(sc), sc->at);
        MD_TRY(number(sc, &v, "a skip threshold in [0, 1)"));
        if (v >= 1.0) {
            sc->at = vb;
            return fail_at(sc, "a skip threshold in [0, 1)");
        }
        if (r->skip >= 0.0f) {
            sc->at = b;
            return fail_at(sc, "each setting once per range (skip is repeated)");
        }
        r->skip = (float)v;
    } else if (word(sc, "experts")) {
        MD_TRY(expect(sc, '=', "'=' after experts"));
        if (r->pinned) {
            sc->at = b;
            return fail_at(sc, "each setting once per range (experts is repeated)");
        }
        do {
            int e = 0;
            size_t eb = (spaces(sc), sc->at);
            MD_TRY(integer(sc, 0, 63, &e, "an expert number 0..63"));
            if (r->pinned >> e & 1u || r->npinned == 16) {
                sc->at = eb;
                return fail_at(sc, "at most 16 different experts");
            }
            r->pinned |= (uint64_t)1 << e;
            r->npinned++;
        } while (peek(sc, ',') && (sc->at++, 1));
    } else if (word(sc, "k")) {
        MD_TRY(expect(sc, '=', "'=' after k"));
        if (r->k) {
            sc->at = b;
            return fail_at(sc, "each setting once per range (k is repeated)");
        }
        MD_TRY(integer(sc, 1, 16, &r->k, "k as an integer 1..16"));
    } else {
        return fail_at(sc, "a setting: k=N, skip=T or experts=A,B,...");
    }
    return MD_OK;
}

static md_status range(scan *sc, md_moe_schedule *s)
{
    if (s->count == MD_MOE_SCHEDULE_MAX_RANGES)
        return fail_at(sc, "at most 64 ranges");
    md_moe_schedule_range *r = &s->range[s->count];
    memset(r, 0, sizeof *r);
    r->skip = -1.0f;
    size_t b = (spaces(sc), sc->at);
    MD_TRY(number(sc, &r->lo, "a range start (progress 0..1)"));
    MD_TRY(expect(sc, '-', "'-' between the range's start and end"));
    MD_TRY(number(sc, &r->hi, "a range end (progress 0..1)"));
    if (!(r->lo < r->hi) || r->hi > 1.0) {
        sc->at = b;
        return fail_at(sc, "a range a-b with 0 <= a < b <= 1");
    }
    for (int i = 0; i < s->count; i++)
        if (r->lo < s->range[i].hi && s->range[i].lo < r->hi) {
            sc->at = b;
            return fail_at(sc, "a range that does not overlap an earlier one");
        }
    MD_TRY(expect(sc, ':', "':' after the range"));
    do
        MD_TRY(setting(sc, r));
    while (peek(sc, '/') && (sc->at++, 1));
    if (peek(sc, ','))
        return fail_at(sc, "'/' between settings (',' only separates the experts of experts=)");
    s->count++;
    return MD_OK;
}

md_status md_moe_schedule_parse(const char *text, size_t max_len, md_moe_schedule *out,
                                md_error *err)
{
    memset(out, 0, sizeof *out);
    if (!text)
        return md_fail(err, MD_ERR_INVALID, "moe_schedule: no text");
    size_t len = strnlen(text, max_len + 1);
    if (len > max_len)
        return md_fail(err, MD_ERR_INVALID, "moe_schedule: longer than %zu bytes", max_len);
    scan sc = {.s = text, .len = len, .err = err};
    do {
        spaces(&sc);
        if (sc.at == len && out->count > 0)
            break; /* a trailing ';' */
        MD_TRY(range(&sc, out));
    } while (peek(&sc, ';') && (sc.at++, 1));
    spaces(&sc);
    if (sc.at != len)
        return fail_at(&sc, "';' before the next range, or the end");
    return MD_OK;
}

const md_moe_schedule_range *md_moe_schedule_at(const md_moe_schedule *s, double progress)
{
    for (int i = 0; s && i < s->count; i++)
        if (progress >= s->range[i].lo && progress < s->range[i].hi)
            return &s->range[i];
    return NULL;
}
