#include "infotext.h"
#include "engine.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    md_sampler_kind kind;
    const char *display;  /* A1111 name, "X Karras" style */
    const char *base;     /* A1111 >= 1.9: sampler ... */
    const char *schedule; /* ... plus "Schedule type" (NULL = its default) */
} sampler_names[] = {
    {MD_SAMPLER_DDIM, "DDIM", "DDIM", NULL},
    {MD_SAMPLER_EULER, "Euler", "Euler", NULL},
    {MD_SAMPLER_EULER_A, "Euler a", "Euler a", NULL},
    {MD_SAMPLER_DPMPP_2M, "DPM++ 2M", "DPM++ 2M", NULL},
    {MD_SAMPLER_EULER_KARRAS, "Euler Karras", "Euler", "Karras"},
    {MD_SAMPLER_DPMPP_2M_KARRAS, "DPM++ 2M Karras", "DPM++ 2M", "Karras"},
};
#define N_SAMPLER_NAMES (int)(sizeof sampler_names / sizeof sampler_names[0])

const char *md_infotext_sampler_name(md_sampler_kind k)
{
    for (int i = 0; i < N_SAMPLER_NAMES; i++)
        if (sampler_names[i].kind == k)
            return sampler_names[i].display;
    return "unknown";
}

int md_infotext_sampler_from_name(const char *name, const char *schedule_type)
{
    /* "Automatic" and the uniform schedules mean the sampler's default. */
    int plain_schedule = !schedule_type || !strcasecmp(schedule_type, "Automatic") ||
                         !strcasecmp(schedule_type, "Uniform") ||
                         !strcasecmp(schedule_type, "Normal");
    for (int i = 0; i < N_SAMPLER_NAMES; i++) {
        if (plain_schedule && !strcasecmp(name, sampler_names[i].display))
            return (int)sampler_names[i].kind;
        if (!plain_schedule && sampler_names[i].schedule &&
            !strcasecmp(name, sampler_names[i].base) &&
            !strcasecmp(schedule_type, sampler_names[i].schedule))
            return (int)sampler_names[i].kind;
    }
    if (plain_schedule) {
        for (int k = 0; k < md_cli_sampler_count(); k++)
            if (!strcasecmp(name, md_cli_sampler_name(k)))
                return k;
    }
    return -1;
}

void md_infotext_free(md_infotext *t)
{
    free(t->prompt);
    free(t->negative_prompt);
    free(t->model);
    free(t->moe);
    memset(t, 0, sizeof *t);
}

/* ---- writing ---- */

typedef struct strbuf {
    char *s;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_putn(strbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_puts(strbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_putn(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A1111's quote(): plain unless it holds ',', ':' or a newline, then a
 * JSON string (non-ASCII kept as is). */
static void sb_value(strbuf *b, const char *v)
{
    if (!strpbrk(v, ",:\n\"")) {
        sb_puts(b, v);
        return;
    }
    sb_putn(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        switch (*p) {
        case '"': sb_puts(b, "\\\""); break;
        case '\\': sb_puts(b, "\\\\"); break;
        case '\n': sb_puts(b, "\\n"); break;
        case '\r': sb_puts(b, "\\r"); break;
        case '\t': sb_puts(b, "\\t"); break;
        default:
            if (*p < 0x20)
                sb_printf(b, "\\u%04x", *p);
            else
                sb_putn(b, (const char *)p, 1);
        }
    }
    sb_putn(b, "\"", 1);
}

/* The shortest decimal that reads back as the same float, so that a
 * re-created image uses bit-identical settings. */
static void sb_float(strbuf *b, float v)
{
    char tmp[64];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, (double)v);
        if (strtof(tmp, NULL) == v)
            break;
    }
    sb_puts(b, tmp);
}

char *md_infotext_format(const md_infotext *t, const char *version)
{
    strbuf b = {0};
    sb_puts(&b, t->prompt ? t->prompt : "");
    if (t->negative_prompt) {
        sb_puts(&b, "\nNegative prompt: ");
        sb_puts(&b, t->negative_prompt);
    }
    sb_puts(&b, "\n");
    const char *sep = "";
#define FIELD(name) (sb_puts(&b, sep), sb_puts(&b, name ": "), sep = ", ")
    if (t->has & MD_INFO_STEPS)
        FIELD("Steps"), sb_printf(&b, "%d", t->steps);
    if (t->has & MD_INFO_SAMPLER)
        FIELD("Sampler"), sb_value(&b, md_infotext_sampler_name(t->sampler));
    if (t->has & MD_INFO_CFG)
        FIELD("CFG scale"), sb_float(&b, t->cfg_scale);
    if (t->has & MD_INFO_SEED)
        FIELD("Seed"), sb_printf(&b, "%llu", (unsigned long long)t->seed);
    if (t->has & MD_INFO_SIZE)
        FIELD("Size"), sb_printf(&b, "%dx%d", t->width, t->height);
    if (t->model)
        FIELD("Model"), sb_value(&b, t->model);
    if (t->has & MD_INFO_STRENGTH)
        FIELD("Denoising strength"), sb_float(&b, t->strength);
    if (t->has & MD_INFO_MASK_BLUR)
        FIELD("Mask blur"), sb_printf(&b, "%d", t->mask_blur);
    if ((t->has & MD_INFO_CLIP_SKIP) && t->clip_skip > 0)
        FIELD("Clip skip"), sb_printf(&b, "%d", t->clip_skip + 1);
    if (t->moe)
        FIELD("MoE"), sb_value(&b, t->moe);
    if (t->has & MD_INFO_PLAIN_PROMPT)
        FIELD("Prompt syntax"), sb_value(&b, "plain");
    if (version)
        FIELD("Version"), sb_value(&b, version);
#undef FIELD
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* ---- reading ---- */

static int is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == ' ' || c == '-' || c == '/' || (unsigned char)c >= 0x80;
}

static void put_utf8(strbuf *b, unsigned cp)
{
    char u[4];
    if (cp < 0x80) {
        u[0] = (char)cp;
        sb_putn(b, u, 1);
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3f));
        sb_putn(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12);
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        sb_putn(b, u, 3);
    } else {
        u[0] = (char)(0xf0 | cp >> 18);
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        sb_putn(b, u, 4);
    }
}

static int hex4(const char *s, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return 0;
        *v = *v * 16 + (unsigned)d;
    }
    return 1;
}

/* A JSON string at *s (after the opening quote); advances past the closing
 * quote. Returns 0 when it is not one. */
static int read_json_string(const char **s, strbuf *b)
{
    const char *p = *s;
    while (*p && *p != '"') {
        if (*p != '\\') {
            sb_putn(b, p++, 1);
            continue;
        }
        p++;
        unsigned cp;
        switch (*p) {
        case '"':
        case '\\':
        case '/': sb_putn(b, p, 1); break;
        case 'n': sb_puts(b, "\n"); break;
        case 'r': sb_puts(b, "\r"); break;
        case 't': sb_puts(b, "\t"); break;
        case 'b': sb_puts(b, "\b"); break;
        case 'f': sb_puts(b, "\f"); break;
        case 'u':
            if (!hex4(p + 1, &cp))
                return 0;
            p += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && p[1] == '\\' && p[2] == 'u') {
                unsigned lo;
                if (hex4(p + 3, &lo) && lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                }
            }
            put_utf8(b, cp);
            break;
        default: return 0;
        }
        p++;
    }
    if (*p != '"')
        return 0;
    *s = p + 1;
    return 1;
}

typedef struct kv {
    char key[64];
    strbuf value;
} kv;

/* One "Key: value" of the parameters line at *s; 0 at the end or when the
 * line does not continue as parameters. */
static int next_param(const char **s, kv *out)
{
    const char *p = *s;
    while (*p == ' ' || *p == '\t')
        p++;
    const char *k = p;
    while (is_key_char(*p))
        p++;
    if (*p != ':' || p == k)
        return 0;
    size_t klen = (size_t)(p - k);
    while (klen > 0 && k[klen - 1] == ' ')
        klen--;
    if (klen == 0 || klen >= sizeof out->key)
        return 0;
    memcpy(out->key, k, klen);
    out->key[klen] = '\0';
    p++;
    while (*p == ' ' || *p == '\t')
        p++;
    memset(&out->value, 0, sizeof out->value);
    sb_puts(&out->value, "");
    if (*p == '"') {
        const char *q = p + 1;
        if (read_json_string(&q, &out->value)) {
            p = q;
        } else { /* not JSON after all: up to the next comma, as A1111 */
            free(out->value.s);
            memset(&out->value, 0, sizeof out->value);
            sb_puts(&out->value, "");
        }
    }
    if (out->value.len == 0 && *p != ',' && *p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        sb_putn(&out->value, p, n);
        p += n;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == ',')
        p++;
    *s = p;
    return !out->value.failed;
}

/* The number of parameters a line holds, as A1111 decides whether the
 * last line is the parameters line (at least 3). */
static int count_params(const char *line)
{
    int n = 0;
    kv one;
    while (*line && next_param(&line, &one)) {
        free(one.value.s);
        n++;
    }
    return n;
}

static md_status bad_value(md_error *err, const char *source, const kv *p)
{
    return md_fail(err, MD_ERR_FORMAT, "%s: parameters: bad %s value '%s'", source, p->key,
                   p->value.s);
}

static int parse_long(const char *s, long long lo, long long hi, long long *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    while (*end == ' ')
        end++;
    if (errno || end == s || *end || x < lo || x > hi)
        return 0;
    *v = x;
    return 1;
}

static int parse_f(const char *s, float *v)
{
    char *end;
    errno = 0;
    float x = strtof(s, &end);
    while (*end == ' ')
        end++;
    if (errno || end == s || *end || !(x == x))
        return 0;
    *v = x;
    return 1;
}

static md_status parse_params_line(const char *line, const char *source, md_infotext *out,
                                   md_error *err)
{
    char sampler[64] = "", schedule[64] = "";
    kv p;
    md_status st = MD_OK;
    long long v = 0;
    while (st == MD_OK && *line && next_param(&line, &p)) {
        const char *val = p.value.s;
        if (!strcmp(p.key, "Steps")) {
            if (!parse_long(val, 1, 1000, &v))
                st = bad_value(err, source, &p);
            out->steps = (int)v;
            out->has |= MD_INFO_STEPS;
        } else if (!strcmp(p.key, "Sampler")) {
            snprintf(sampler, sizeof sampler, "%s", val);
        } else if (!strcmp(p.key, "Schedule type")) {
            snprintf(schedule, sizeof schedule, "%s", val);
        } else if (!strcmp(p.key, "CFG scale")) {
            if (!parse_f(val, &out->cfg_scale))
                st = bad_value(err, source, &p);
            out->has |= MD_INFO_CFG;
        } else if (!strcmp(p.key, "Seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(val, &end, 10);
            if (errno || end == val || *end || val[0] == '-')
                st = bad_value(err, source, &p);
            out->seed = s;
            out->has |= MD_INFO_SEED;
        } else if (!strcmp(p.key, "Size")) {
            int w, h, n = 0;
            if (sscanf(val, "%dx%d%n", &w, &h, &n) != 2 || val[n] || w < 1 || h < 1)
                st = bad_value(err, source, &p);
            out->width = w;
            out->height = h;
            out->has |= MD_INFO_SIZE;
        } else if (!strcmp(p.key, "Model")) {
            free(out->model);
            out->model = strdup(val);
        } else if (!strcmp(p.key, "Denoising strength")) {
            if (!parse_f(val, &out->strength))
                st = bad_value(err, source, &p);
            out->has |= MD_INFO_STRENGTH;
        } else if (!strcmp(p.key, "Mask blur")) {
            if (!parse_long(val, 0, 1000, &v))
                st = bad_value(err, source, &p);
            out->mask_blur = (int)v;
            out->has |= MD_INFO_MASK_BLUR;
        } else if (!strcmp(p.key, "Clip skip")) {
            if (!parse_long(val, 1, 64, &v))
                st = bad_value(err, source, &p);
            out->clip_skip = (int)v - 1;
            out->has |= MD_INFO_CLIP_SKIP;
        } else if (!strcmp(p.key, "MoE")) {
            free(out->moe);
            out->moe = strdup(val);
        } else if (!strcmp(p.key, "Prompt syntax")) {
            if (strcmp(val, "plain") != 0)
                st = bad_value(err, source, &p);
            out->has |= MD_INFO_PLAIN_PROMPT;
        }
        free(p.value.s);
    }
    if (st == MD_OK && sampler[0]) {
        int k = md_infotext_sampler_from_name(sampler, schedule[0] ? schedule : NULL);
        if (k < 0)
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "%s: parameters: sampler '%s%s%s' is not one "
                           "this program has (see --help)",
                           source, sampler, schedule[0] ? "' with schedule '" : "", schedule);
        out->sampler = (md_sampler_kind)k;
        out->has |= MD_INFO_SAMPLER;
    }
    return st;
}

md_status md_infotext_parse(const char *text, const char *source, md_infotext *out, md_error *err)
{
    memset(out, 0, sizeof *out);
    char *copy = strdup(text);
    if (!copy)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", source);
    /* Trailing whitespace is stripped, as A1111 writes; lines are kept as
     * they are so a re-created prompt is byte for byte the same. */
    size_t n = strlen(copy);
    while (n > 0 && (copy[n - 1] == '\n' || copy[n - 1] == '\r' || copy[n - 1] == ' '))
        copy[--n] = '\0';
    char *last = strrchr(copy, '\n');
    const char *params = last ? last + 1 : copy;
    md_status st = MD_OK;
    if (count_params(params) >= 3) {
        st = parse_params_line(params, source, out, err);
        if (last)
            *last = '\0';
        else
            copy[0] = '\0';
    }
    /* The negative prompt runs from the first line that starts with the tag
     * to the parameters line. */
    static const char neg_tag[] = "Negative prompt:";
    char *neg = NULL;
    if (!strncmp(copy, neg_tag, sizeof neg_tag - 1)) {
        neg = copy + sizeof neg_tag - 1;
        out->prompt = strdup("");
    } else {
        char *q = strstr(copy, "\nNegative prompt:");
        if (q) {
            *q = '\0';
            neg = q + sizeof neg_tag;
        }
        out->prompt = strdup(copy);
    }
    if (neg)
        out->negative_prompt = strdup(neg[0] == ' ' ? neg + 1 : neg);
    free(copy);
    if (st == MD_OK && (!out->prompt || (neg && !out->negative_prompt)))
        st = md_fail(err, MD_ERR_NOMEM, "%s: out of memory", source);
    if (st != MD_OK)
        md_infotext_free(out);
    return st;
}
