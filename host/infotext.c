#include "infotext.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;     /* the library's */
    const char *display;  /* A1111 name, "X Karras" style */
    const char *base;     /* A1111 >= 1.9: sampler ... */
    const char *schedule; /* ... plus "Schedule type" (NULL = its default) */
} sampler_names[] = {
    {"ddim", "DDIM", "DDIM", NULL},
    {"euler", "Euler", "Euler", NULL},
    {"euler_a", "Euler a", "Euler a", NULL},
    {"dpmpp_2m", "DPM++ 2M", "DPM++ 2M", NULL},
    {"euler_karras", "Euler Karras", "Euler", "Karras"},
    {"dpmpp_2m_karras", "DPM++ 2M Karras", "DPM++ 2M", "Karras"},
};
#define N_SAMPLER_NAMES (int)(sizeof sampler_names / sizeof sampler_names[0])

const char *mdh_sampler_display_name(const char *name)
{
    for (int i = 0; name && i < N_SAMPLER_NAMES; i++)
        if (!strcmp(sampler_names[i].name, name))
            return sampler_names[i].display;
    return name ? name : "unknown";
}

const char *mdh_sampler_from_display(const char *name, const char *schedule_type)
{
    /* "Automatic" and the uniform schedules mean the sampler's default. */
    int plain_schedule = !schedule_type || !strcasecmp(schedule_type, "Automatic") ||
                         !strcasecmp(schedule_type, "Uniform") ||
                         !strcasecmp(schedule_type, "Normal");
    for (int i = 0; i < N_SAMPLER_NAMES; i++) {
        if (plain_schedule && (!strcasecmp(name, sampler_names[i].display) ||
                               !strcasecmp(name, sampler_names[i].name)))
            return sampler_names[i].name;
        if (!plain_schedule && sampler_names[i].schedule &&
            !strcasecmp(name, sampler_names[i].base) &&
            !strcasecmp(schedule_type, sampler_names[i].schedule))
            return sampler_names[i].name;
    }
    return NULL;
}

void mdh_infotext_free(mdh_infotext *t)
{
    mdh_request_clear(&t->req);
    free(t->found);
    free(t->model);
    free(t->moe);
    free(t->model_hash);
    free(t->lora_hashes);
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

static void sb_field(strbuf *b, const mdh_request *r, const char *name)
{
    char tmp[64];
    mdh_request_format(r, mdh_request_field(name), tmp, sizeof tmp);
    sb_puts(b, tmp);
}

char *mdh_infotext_format(const mdh_request *r, const mdh_infotext_meta *meta)
{
    const mdiff_gen_params *p = &r->p;
    strbuf b = {0};
    char *prompt = mdh_request_prompt_with_loras(r);
    if (!prompt)
        return NULL;
    sb_puts(&b, prompt);
    free(prompt);
    if (p->negative_prompt) {
        sb_puts(&b, "\nNegative prompt: ");
        sb_puts(&b, p->negative_prompt);
    }
    sb_puts(&b, "\n");
    const char *sep = "";
#define FIELD(name) (sb_puts(&b, sep), sb_puts(&b, name ": "), sep = ", ")
    FIELD("Steps"), sb_printf(&b, "%d", p->steps);
    FIELD("Sampler"), sb_value(&b, mdh_sampler_display_name(p->sampler));
    FIELD("CFG scale"), sb_field(&b, r, "guidance");
    FIELD("Seed"), sb_printf(&b, "%llu", (unsigned long long)p->seed);
    FIELD("Size"), sb_printf(&b, "%dx%d", p->width, p->height);
    if (meta->model_hash)
        FIELD("Model hash"), sb_value(&b, meta->model_hash);
    if (meta->model)
        FIELD("Model"), sb_value(&b, meta->model);
    if (r->init_image || p->init_image)
        FIELD("Denoising strength"), sb_field(&b, r, "strength");
    if (meta->mask_blur > 0)
        FIELD("Mask blur"), sb_printf(&b, "%d", meta->mask_blur);
    if (p->clip_skip > 0) /* A1111's "Clip skip" counts the last layer as 1 */
        FIELD("Clip skip"), sb_printf(&b, "%d", p->clip_skip + 1);
    if (meta->moe)
        FIELD("MoE"), sb_value(&b, meta->moe);
    if (p->prompt_syntax == MDIFF_PROMPT_PLAIN)
        FIELD("Prompt syntax"), sb_value(&b, "plain");
    if (p->prompt_syntax == MDIFF_PROMPT_PLAIN && p->lora_count > 0) {
        /* no tags in a plain prompt: the files themselves, "PATH:WEIGHT; ..." */
        char *list = malloc(4200 * (size_t)p->lora_count);
        if (list) {
            mdh_request_format(r, mdh_request_field("loras"), list, 4200 * (size_t)p->lora_count);
            FIELD("LoRAs"), sb_value(&b, list);
        }
        b.failed |= list == NULL;
        free(list);
    }
    int n;
    const mdh_field *fields = mdh_request_fields(&n);
    for (int i = 0; i < n; i++) {
        if (!fields[i].infotext || mdh_request_is_default(r, &fields[i]))
            continue;
        char tmp[MDIFF_MOE_SCHEDULE_MAX + 64]; /* the longest value: a schedule */
        mdh_request_format(r, &fields[i], tmp, sizeof tmp);
        sb_puts(&b, sep);
        sb_puts(&b, fields[i].infotext);
        sb_puts(&b, ": ");
        sb_value(&b, tmp);
        sep = ", ";
    }
    if (meta->lora_hashes)
        FIELD("Lora hashes"), sb_value(&b, meta->lora_hashes);
    if (meta->version)
        FIELD("Version"), sb_value(&b, meta->version);
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

static int bad_value(mdh_error *err, const char *source, const kv *p)
{
    return mdh_fail(err, MDIFF_ERR_FORMAT, "%s: parameters: bad %s value '%s'", source, p->key,
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

/* Marks a request field found and sets it from text. */
static int set_found(mdh_infotext *out, const char *name, const char *text)
{
    int n;
    const mdh_field *fields = mdh_request_fields(&n);
    const mdh_field *f = mdh_request_field(name);
    if (mdh_request_set_text(&out->req, f, text, NULL) != MDIFF_OK)
        return 0;
    out->found[f - fields] = 1;
    return 1;
}

/* "PATH:WEIGHT; PATH:WEIGHT" (the "LoRAs" key of a plain-syntax text). */
static int set_loras_text(mdh_infotext *out, const char *text)
{
    int n;
    const mdh_field *fields = mdh_request_fields(&n);
    const mdh_field *f = mdh_request_field("loras");
    char *copy = strdup(text);
    int ok = copy != NULL;
    for (char *item = copy, *next; ok && item && *item; item = next) {
        next = strstr(item, "; ");
        if (next) {
            *next = '\0';
            next += 2;
        }
        ok = mdh_request_set_text(&out->req, f, item, NULL) == MDIFF_OK;
    }
    free(copy);
    if (ok)
        out->found[f - fields] = 1;
    return ok;
}

static int parse_params_line(const char *line, const char *source, mdh_infotext *out,
                             mdh_error *err)
{
    char sampler[64] = "", schedule[64] = "", num[32];
    int nfields;
    const mdh_field *fields = mdh_request_fields(&nfields);
    kv p;
    int st = MDIFF_OK;
    long long v = 0;
    while (st == MDIFF_OK && *line && next_param(&line, &p)) {
        const char *val = p.value.s;
        const mdh_field *ours = NULL;
        for (int i = 0; i < nfields && !ours; i++)
            if (fields[i].infotext && !strcmp(p.key, fields[i].infotext))
                ours = &fields[i];
        if (!strcmp(p.key, "Steps")) {
            if (!parse_long(val, 1, 1000, &v) || !set_found(out, "steps", val))
                st = bad_value(err, source, &p);
        } else if (!strcmp(p.key, "Sampler")) {
            snprintf(sampler, sizeof sampler, "%s", val);
        } else if (!strcmp(p.key, "Schedule type")) {
            snprintf(schedule, sizeof schedule, "%s", val);
        } else if (!strcmp(p.key, "CFG scale")) {
            if (!set_found(out, "guidance", val))
                st = bad_value(err, source, &p);
        } else if (!strcmp(p.key, "Seed")) {
            if (val[0] == '-' || !set_found(out, "seed", val))
                st = bad_value(err, source, &p);
        } else if (!strcmp(p.key, "Size")) {
            int w, h, n = 0;
            if (sscanf(val, "%dx%d%n", &w, &h, &n) != 2 || val[n] || w < 1 || h < 1)
                st = bad_value(err, source, &p);
            snprintf(num, sizeof num, "%d", w);
            set_found(out, "width", num);
            snprintf(num, sizeof num, "%d", h);
            set_found(out, "height", num);
        } else if (!strcmp(p.key, "Model")) {
            free(out->model);
            out->model = strdup(val);
        } else if (!strcmp(p.key, "Denoising strength")) {
            if (!set_found(out, "strength", val))
                st = bad_value(err, source, &p);
        } else if (!strcmp(p.key, "Mask blur")) {
            if (!parse_long(val, 0, 1000, &v))
                st = bad_value(err, source, &p);
            out->mask_blur = (int)v;
        } else if (!strcmp(p.key, "Clip skip")) {
            if (!parse_long(val, 1, 64, &v))
                st = bad_value(err, source, &p);
            snprintf(num, sizeof num, "%d", (int)v - 1);
            set_found(out, "clip_skip", num);
        } else if (!strcmp(p.key, "MoE")) {
            free(out->moe);
            out->moe = strdup(val);
        } else if (!strcmp(p.key, "LoRAs")) {
            if (!set_loras_text(out, val))
                st = bad_value(err, source, &p);
        } else if (!strcmp(p.key, "Model hash")) {
            free(out->model_hash);
            out->model_hash = strdup(val);
        } else if (!strcmp(p.key, "Lora hashes")) {
            free(out->lora_hashes);
            out->lora_hashes = strdup(val);
        } else if (!strcmp(p.key, "Prompt syntax")) {
            if (strcmp(val, "plain") != 0)
                st = bad_value(err, source, &p);
            set_found(out, "prompt_syntax", "plain");
        } else if (ours) {
            if (!set_found(out, ours->name, val))
                st = bad_value(err, source, &p);
        }
        free(p.value.s);
    }
    if (st == MDIFF_OK && sampler[0]) {
        const char *name = mdh_sampler_from_display(sampler, schedule[0] ? schedule : NULL);
        if (!name)
            return mdh_fail(err, MDIFF_ERR_UNSUPPORTED,
                            "%s: parameters: sampler '%s%s%s' is not one "
                            "this program has (see --help)",
                            source, sampler, schedule[0] ? "' with schedule '" : "", schedule);
        set_found(out, "sampler", name);
    }
    return st;
}

int mdh_infotext_parse(const char *text, const char *source, mdh_infotext *out, mdh_error *err)
{
    memset(out, 0, sizeof *out);
    mdh_request_init(&out->req);
    out->mask_blur = -1;
    int nfields;
    mdh_request_fields(&nfields);
    out->found = calloc((size_t)nfields, 1);
    char *copy = strdup(text);
    if (!copy || !out->found) {
        free(copy);
        mdh_infotext_free(out);
        return mdh_fail(err, MDIFF_ERR_NOMEM, "%s: out of memory", source);
    }
    /* Trailing whitespace is stripped, as A1111 writes; lines are kept as
     * they are so a re-created prompt is byte for byte the same. */
    size_t n = strlen(copy);
    while (n > 0 && (copy[n - 1] == '\n' || copy[n - 1] == '\r' || copy[n - 1] == ' '))
        copy[--n] = '\0';
    char *last = strrchr(copy, '\n');
    const char *params = last ? last + 1 : copy;
    int st = MDIFF_OK;
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
    char *neg = NULL, *prompt = copy;
    if (!strncmp(copy, neg_tag, sizeof neg_tag - 1)) {
        neg = copy + sizeof neg_tag - 1;
        prompt = "";
    } else {
        char *q = strstr(copy, "\nNegative prompt:");
        if (q) {
            *q = '\0';
            neg = q + sizeof neg_tag;
        }
    }
    if (st == MDIFF_OK && !set_found(out, "prompt", prompt))
        st = mdh_fail(err, MDIFF_ERR_NOMEM, "%s: out of memory", source);
    if (st == MDIFF_OK && neg && !set_found(out, "negative_prompt", neg[0] == ' ' ? neg + 1 : neg))
        st = mdh_fail(err, MDIFF_ERR_NOMEM, "%s: out of memory", source);
    if (st == MDIFF_OK && !neg) /* no line: the text says there was none */
        out->found[mdh_request_field("negative_prompt") - mdh_request_fields(&nfields)] = 1;
    free(copy);
    if (st != MDIFF_OK)
        mdh_infotext_free(out);
    return st;
}
