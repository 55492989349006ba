#include "prompt_weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Growable fragment list; opening brackets remember the list length. */
typedef struct parser {
    md_prompt_fragment *frags;
    int count, cap;
    int round[256], nround; /* deeper nesting than 256 keeps the outer 256 */
    int square[256], nsquare;
    int overflow_round, overflow_square;
} parser;

static int push(parser *ps, const char *text, size_t len, double weight)
{
    if (ps->count == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 16;
        md_prompt_fragment *f = realloc(ps->frags, sizeof *f * (size_t)cap);
        if (!f)
            return 0;
        ps->frags = f;
        ps->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return 0;
    memcpy(copy, text, len);
    copy[len] = '\0';
    ps->frags[ps->count++] = (md_prompt_fragment){copy, weight};
    return 1;
}

static void multiply_from(parser *ps, int start, double m)
{
    for (int i = start; i < ps->count; i++)
        ps->frags[i].weight *= m;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Python's \w on str, approximated: ASCII letters, digits, '_' and any
 * non-ASCII byte (letters of other scripts). */
static int is_word(char c)
{
    unsigned char u = (unsigned char)c;
    return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '_' ||
           u >= 0x80;
}

/* A text run, split at \s*\bBREAK\b\s* like re.split: every part (even an
 * empty one) becomes a fragment, with a BREAK marker between parts. */
static int push_text(parser *ps, const char *s, size_t n)
{
    size_t part = 0;
    for (size_t i = 0; i + 5 <= n; i++) {
        if (memcmp(s + i, "BREAK", 5) != 0 || (i > 0 && is_word(s[i - 1])) ||
            (i + 5 < n && is_word(s[i + 5])))
            continue;
        size_t b = i, e = i + 5;
        while (b > part && is_space(s[b - 1]))
            b--;
        while (e < n && is_space(s[e]))
            e++;
        if (!push(ps, s + part, b - part, 1.0) || !push(ps, "BREAK", 5, -1.0))
            return 0;
        part = e;
        i = e - 1;
    }
    return push(ps, s + part, n - part, 1.0);
}

/* ":" \s* [+-]?[.0-9]+ \s* ")" at s; returns the length matched (0 = none)
 * and the number's span. */
static size_t match_weight(const char *s, const char **num, size_t *num_len)
{
    size_t i = 1;
    while (is_space(s[i]))
        i++;
    size_t start = i;
    if (s[i] == '+' || s[i] == '-')
        i++;
    size_t digits = i;
    while (s[i] == '.' || (s[i] >= '0' && s[i] <= '9'))
        i++;
    if (i == digits)
        return 0;
    *num = s + start;
    *num_len = i - start;
    while (is_space(s[i]))
        i++;
    return s[i] == ')' ? i + 1 : 0;
}

/* Each run of equal weights is joined with one allocation: growing the
 * first fragment by realloc per join copies it again and again (quadratic
 * for thousands of one-byte fragments wherever realloc cannot grow in place). */
static void merge_equal_runs(parser *ps)
{
    int out = 0;
    for (int i = 0; i < ps->count;) {
        int j = i + 1;
        size_t total = strlen(ps->frags[i].text);
        while (j < ps->count && ps->frags[j].weight == ps->frags[i].weight)
            total += strlen(ps->frags[j++].text);
        char *joined = j - i > 1 ? malloc(total + 1) : NULL;
        if (joined) { /* out of memory keeps the runs apart: same tokens */
            size_t at = 0;
            for (int k = i; k < j; k++) {
                size_t n = strlen(ps->frags[k].text);
                memcpy(joined + at, ps->frags[k].text, n);
                at += n;
                free(ps->frags[k].text);
            }
            joined[at] = '\0';
            ps->frags[out++] = (md_prompt_fragment){joined, ps->frags[i].weight};
        } else {
            for (int k = i; k < j; k++)
                ps->frags[out++] = ps->frags[k];
        }
        i = j;
    }
    ps->count = out;
}

static md_status parse_fail(parser *ps, md_error *err, md_status code, const char *msg,
                            const char *detail, size_t detail_len)
{
    md_prompt_parse tmp = {ps->frags, ps->count};
    md_prompt_parse_free(&tmp);
    return md_fail(err, code, "%s%.*s%s", msg, (int)detail_len, detail, detail_len ? "'" : "");
}

md_status md_prompt_parse_weights(const char *text, md_prompt_parse *out, md_error *err)
{
    const double round_mult = 1.1, square_mult = 1.0 / 1.1;
    parser ps = {0};
    out->frags = NULL;
    out->count = 0;
    const char *s = text ? text : "";
    int ok = 1;
    while (*s && ok) {
        char c = *s;
        if (c == '\\') {
            /* "\(" etc. are literal; a lone backslash is dropped (as there). */
            if (s[1] && strchr("()[]\\", s[1])) {
                ok = push(&ps, s + 1, 1, 1.0);
                s += 2;
            } else {
                s += 1;
            }
        } else if (c == '(' || c == '[') {
            int *stack = c == '(' ? ps.round : ps.square;
            int *n = c == '(' ? &ps.nround : &ps.nsquare;
            if (*n < 256)
                stack[(*n)++] = ps.count;
            else
                (*(c == '(' ? &ps.overflow_round : &ps.overflow_square))++;
            s++;
        } else if (c == ':') {
            const char *num = NULL;
            size_t num_len = 0, len = match_weight(s, &num, &num_len);
            if (len && ps.nround > 0) {
                char buf[64], *end;
                size_t k = num_len < sizeof buf - 1 ? num_len : sizeof buf - 1;
                memcpy(buf, num, k);
                buf[k] = '\0';
                double w = strtod(buf, &end);
                if (*end || k != num_len)
                    return parse_fail(&ps, err, MD_ERR_INVALID, "bad emphasis weight '", num,
                                      num_len);
                if (ps.overflow_round)
                    ps.overflow_round--;
                else
                    multiply_from(&ps, ps.round[--ps.nround], w);
                s += len;
            } else if (len) {
                ok = push_text(&ps, s, len);
                s += len;
            } else {
                ok = push_text(&ps, s, 1);
                s += 1;
            }
        } else if (c == ')' && ps.nround > 0) {
            if (ps.overflow_round)
                ps.overflow_round--;
            else
                multiply_from(&ps, ps.round[--ps.nround], round_mult);
            s++;
        } else if (c == ']' && ps.nsquare > 0) {
            if (ps.overflow_square)
                ps.overflow_square--;
            else
                multiply_from(&ps, ps.square[--ps.nsquare], square_mult);
            s++;
        } else if (c == ')' || c == ']') {
            ok = push_text(&ps, s, 1);
            s++;
        } else {
            size_t n = strcspn(s, "\\()[]:");
            ok = push_text(&ps, s, n);
            s += n;
        }
    }
    /* Unclosed brackets weigh everything after them. */
    for (int i = 0; ok && i < ps.nround; i++)
        multiply_from(&ps, ps.round[i], round_mult);
    for (int i = 0; ok && i < ps.nsquare; i++)
        multiply_from(&ps, ps.square[i], square_mult);
    if (ok && ps.count == 0)
        ok = push(&ps, "", 0, 1.0);
    if (!ok)
        return parse_fail(&ps, err, MD_ERR_NOMEM, "out of memory", "", 0);
    /* A weight (or a product of nested ones) beyond float's range becomes
     * Inf in the conditioning: refused here, naming the text it weighs. */
    for (int i = 0; i < ps.count; i++) {
        float w = (float)ps.frags[i].weight;
        if (!isfinite(w)) {
            char msg[160]; /* the fragment's text is freed with the parse */
            snprintf(msg, sizeof msg, "emphasis weight %g is out of range (beyond +-%g) for '%.40s'",
                     ps.frags[i].weight, (double)3.4e38f, ps.frags[i].text);
            return parse_fail(&ps, err, MD_ERR_INVALID, msg, "", 0);
        }
    }
    merge_equal_runs(&ps);
    out->frags = ps.frags;
    out->count = ps.count;
    return MD_OK;
}

void md_prompt_parse_free(md_prompt_parse *p)
{
    for (int i = 0; i < p->count; i++)
        free(p->frags[i].text);
    free(p->frags);
    p->frags = NULL;
    p->count = 0;
}

/* ---- chunk layout ---- */

typedef struct chunker {
    md_prompt_chunks *out;
    const md_tokenizer *tok;
    int32_t pad;
    int len;    /* content tokens in the open chunk */
    int chunks; /* chunks closed so far (may exceed the maximum: counted only) */
} chunker;

static void close_chunk(chunker *c)
{
    if (c->chunks < MD_PROMPT_MAX_CHUNKS) {
        int32_t *ids = c->out->ids[c->chunks];
        float *w = c->out->weights[c->chunks];
        ids[0] = md_tokenizer_bos(c->tok);
        w[0] = 1.0f;
        ids[c->len + 1] = md_tokenizer_eos(c->tok);
        w[c->len + 1] = 1.0f;
        for (int i = c->len + 2; i < MD_CLIP_CONTEXT; i++) {
            ids[i] = c->pad;
            w[i] = 1.0f;
        }
    }
    c->chunks++;
    c->len = 0;
}

static void add_token(chunker *c, int32_t id, float weight)
{
    if (c->len == MD_PROMPT_CHUNK_TOKENS)
        close_chunk(c);
    if (c->chunks < MD_PROMPT_MAX_CHUNKS) {
        c->out->ids[c->chunks][1 + c->len] = id;
        c->out->weights[c->chunks][1 + c->len] = weight;
        if (weight != 1.0f)
            c->out->weighted = 1;
    }
    c->len++;
    c->out->tokens++;
}

md_status md_prompt_tokenize(const md_tokenizer *tok, const char *text, int32_t pad_id,
                             md_prompt_chunks *out, md_error *err)
{
    memset(out, 0, sizeof *out);
    md_prompt_parse parse;
    md_status st = md_prompt_parse_weights(text, &parse, err);
    if (st != MD_OK)
        return st;
    chunker c = {.out = out, .tok = tok, .pad = pad_id};
    int32_t *ids = NULL;
    int64_t cap = 0;
    for (int f = 0; f < parse.count && st == MD_OK; f++) {
        const md_prompt_fragment *fr = &parse.frags[f];
        if (fr->weight == -1.0 && strcmp(fr->text, "BREAK") == 0) {
            close_chunk(&c);
            continue;
        }
        int64_t need = (int64_t)strlen(fr->text) + 1;
        for (;;) {
            if (need > cap) {
                int32_t *grown = realloc(ids, sizeof *ids * (size_t)need);
                if (!grown) {
                    st = md_fail(err, MD_ERR_NOMEM, "out of memory tokenizing a prompt");
                    break;
                }
                ids = grown;
                cap = need;
            }
            int64_t n = md_tokenizer_encode_raw(tok, fr->text, ids, cap, err);
            if (n < 0) {
                st = (md_status)n;
                break;
            }
            if (n > cap) {
                need = n;
                continue;
            }
            for (int64_t i = 0; i < n; i++)
                add_token(&c, ids[i], (float)fr->weight);
            break;
        }
    }
    free(ids);
    md_prompt_parse_free(&parse);
    if (st != MD_OK)
        return st;
    if (c.len > 0 || c.chunks == 0)
        close_chunk(&c);
    if (c.chunks > MD_PROMPT_MAX_CHUNKS)
        return md_fail(err, MD_ERR_INVALID,
                       "%d tokens in %d chunks: longer than the limit of %d chunks of %d tokens "
                       "(%d)",
                       out->tokens, c.chunks, MD_PROMPT_MAX_CHUNKS, MD_PROMPT_CHUNK_TOKENS,
                       MD_PROMPT_MAX_CHUNKS * MD_PROMPT_CHUNK_TOKENS);
    out->count = c.chunks;
    return MD_OK;
}
