#include "request_fields.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>

#define P(field) offsetof(mdiff_gen_params, field)

static const char *const routing_names[] = {"model", "sequence", "token", "sequence-split",
                                            NULL};
static const char *const syntax_names[] = {"weighted", "plain", NULL};

/* Order: the order records and the `parameters` text list them. The SDXL
 * micro-conditioning is not in the `parameters` text (A1111 does not write
 * it either). preview_interval is no row: previews go to a progress
 * callback, a host's own business, and each costs a VAE decode. */
static const mdh_field fields[] = {
    {"prompt", MDH_FIELD_TEXT, P(prompt), NULL, NULL},
    {"negative_prompt", MDH_FIELD_TEXT, P(negative_prompt), NULL, NULL},
    {"sampler", MDH_FIELD_NAME, P(sampler), NULL, NULL},
    {"seed", MDH_FIELD_SEED, P(seed), NULL, NULL},
    {"init_image", MDH_FIELD_PATH, 0, NULL, NULL},
    {"mask", MDH_FIELD_PATH, 0, NULL, NULL},
    {"width", MDH_FIELD_INT, P(width), NULL, NULL},
    {"height", MDH_FIELD_INT, P(height), NULL, NULL},
    {"steps", MDH_FIELD_INT, P(steps), NULL, NULL},
    {"guidance", MDH_FIELD_FLOAT, P(guidance), NULL, NULL},
    {"strength", MDH_FIELD_FLOAT, P(strength), NULL, NULL},
    {"clip_skip", MDH_FIELD_INT, P(clip_skip), NULL, NULL},
    {"prompt_syntax", MDH_FIELD_CHOICE, P(prompt_syntax), NULL, syntax_names},
    {"original_width", MDH_FIELD_INT, P(original_width), NULL, NULL},
    {"original_height", MDH_FIELD_INT, P(original_height), NULL, NULL},
    {"crop_top", MDH_FIELD_INT, P(crop_top), NULL, NULL},
    {"crop_left", MDH_FIELD_INT, P(crop_left), NULL, NULL},
    {"target_width", MDH_FIELD_INT, P(target_width), NULL, NULL},
    {"target_height", MDH_FIELD_INT, P(target_height), NULL, NULL},
    {"moe_top_k", MDH_FIELD_INT, P(moe_top_k), "MoE top-k", NULL},
    {"moe_routing", MDH_FIELD_CHOICE, P(moe_routing), "MoE routing", routing_names},
    {"moe_capacity", MDH_FIELD_FLOAT, P(moe_capacity), "MoE capacity", NULL},
    {"moe_skip", MDH_FIELD_FLOAT, P(moe_skip), "MoE skip", NULL},
    {"moe_schedule", MDH_FIELD_TEXT, P(moe_schedule), "MoE schedule", NULL},
    /* The routes file's path; the host reads it into moe_routes when it generates. */
    {"moe_routes", MDH_FIELD_PATH, 0, "MoE routes", NULL},
    {"max_expert_memory", MDH_FIELD_BYTES, P(max_expert_memory), "Max expert memory", NULL},
    /* LoRAs go into the `parameters` text as <lora:...> tags of the prompt, as A1111
     * writes them (mdh_request_prompt_with_loras); the folder is the reader's. */
    {"loras", MDH_FIELD_LORAS, P(loras), NULL, NULL},
    {"lora_dir", MDH_FIELD_TEXT, P(lora_dir), NULL, NULL},
    {"lora_allow_unmatched", MDH_FIELD_FLAG, P(lora_flags), "Lora allow unmatched", NULL},
    {"vae_tile", MDH_FIELD_INT, P(vae_tile), "VAE tile", NULL},
};
#define NFIELDS (int)(sizeof fields / sizeof fields[0])

const mdh_field *mdh_request_fields(int *count)
{
    *count = NFIELDS;
    return fields;
}

const mdh_field *mdh_request_field(const char *name)
{
    for (int i = 0; i < NFIELDS; i++)
        if (!strcmp(fields[i].name, name))
            return &fields[i];
    return NULL;
}

/* The library's defaults (computed per use: no shared state between a
 * host's threads). */
static void defaults(mdiff_gen_params *d)
{
    memset(d, 0, sizeof *d);
    const mdiff_api *api = moediffuse_get_api(MOEDIFFUSE_ABI_MAJOR, MOEDIFFUSE_ABI_MINOR);
    if (api)
        api->gen_params_init(d, sizeof *d);
}

void mdh_request_init(mdh_request *r)
{
    memset(r, 0, sizeof *r);
    defaults(&r->p);
}

static int text_slot(const mdh_field *f)
{
    return f->offset == P(prompt)            ? 0
           : f->offset == P(negative_prompt) ? 1
           : f->offset == P(moe_schedule)    ? 3
           : f->offset == P(lora_dir)        ? 4
                                             : 2;
}

static void clear_loras(mdh_request *r)
{
    for (int i = 0; i < r->p.lora_count; i++)
        free((char *)r->loras[i].path);
    free(r->loras);
    r->loras = NULL;
    r->p.loras = NULL;
    r->p.lora_count = 0;
}

int mdh_request_add_lora(mdh_request *r, const char *path, float weight)
{
    int n = r->p.lora_count;
    if (n >= MDIFF_MAX_LORAS)
        return MDIFF_ERR_INVALID;
    mdiff_lora *grown = realloc(r->loras, sizeof *grown * (size_t)(n + 1));
    char *copy = strdup(path);
    if (grown)
        r->loras = grown;
    if (!grown || !copy) {
        free(copy);
        r->p.loras = r->loras;
        return MDIFF_ERR_NOMEM;
    }
    r->loras[n] = (mdiff_lora){.struct_size = sizeof(mdiff_lora), .path = copy, .weight = weight};
    r->p.loras = r->loras;
    r->p.lora_count = n + 1;
    return MDIFF_OK;
}

static char **path_slot(mdh_request *r, const mdh_field *f)
{
    return !strcmp(f->name, "mask")         ? &r->mask
           : !strcmp(f->name, "moe_routes") ? &r->moe_routes
                                            : &r->init_image;
}

static const char *const *string_ptr(const mdh_request *r, const mdh_field *f)
{
    return (const char *const *)((const char *)&r->p + f->offset);
}

int mdh_request_set_string(mdh_request *r, const mdh_field *f, const char *value)
{
    char *copy = value ? strdup(value) : NULL;
    if (value && !copy)
        return MDIFF_ERR_NOMEM;
    if (f->type == MDH_FIELD_PATH) {
        char **slot = path_slot(r, f);
        free(*slot);
        *slot = copy;
        return MDIFF_OK;
    }
    int k = text_slot(f);
    free(r->text[k]);
    r->text[k] = copy;
    *(const char **)((char *)&r->p + f->offset) = copy;
    return MDIFF_OK;
}

void mdh_request_clear(mdh_request *r)
{
    clear_loras(r);
    for (int k = 0; k < 5; k++)
        free(r->text[k]);
    free(r->init_image);
    free(r->mask);
    free(r->moe_routes);
    memset(r, 0, sizeof *r);
}

int mdh_request_copy(mdh_request *dst, const mdh_request *src)
{
    memset(dst, 0, sizeof *dst);
    dst->p = src->p;
    dst->p.prompt = dst->p.negative_prompt = dst->p.sampler = dst->p.moe_schedule = NULL;
    dst->p.lora_dir = NULL;
    dst->p.loras = NULL;
    dst->p.lora_count = 0;
    dst->expert_memory_percent = src->expert_memory_percent;
    int rc = MDIFF_OK;
    for (int i = 0; i < src->p.lora_count && rc == MDIFF_OK; i++)
        rc = mdh_request_add_lora(dst, src->loras[i].path, src->loras[i].weight);
    for (int i = 0; i < NFIELDS && rc == MDIFF_OK; i++) {
        const mdh_field *f = &fields[i];
        if (f->type == MDH_FIELD_PATH)
            rc = mdh_request_set_string(dst, f, mdh_request_string(src, f));
        else if (f->type == MDH_FIELD_TEXT || f->type == MDH_FIELD_NAME)
            rc = mdh_request_set_string(dst, f, *string_ptr(src, f));
    }
    if (rc != MDIFF_OK)
        mdh_request_clear(dst);
    return rc;
}

static int32_t *int_ptr(mdh_request *r, const mdh_field *f)
{
    return (int32_t *)((char *)&r->p + f->offset);
}

static int choice_of(const mdh_field *f, const char *name)
{
    for (int i = 0; f->choices[i]; i++)
        if (!strcasecmp(f->choices[i], name))
            return i;
    return -1;
}

static int bad(mdh_error *err, const mdh_field *f, const char *what)
{
    if (f->type == MDH_FIELD_CHOICE) {
        char names[128] = "";
        for (int i = 0; f->choices[i]; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     f->choices[i]);
        return mdh_fail(err, MDIFF_ERR_INVALID, "\"%s\" must be one of %s%s", f->name, names,
                        what);
    }
    return mdh_fail(err, MDIFF_ERR_INVALID, "\"%s\" must be %s", f->name, what);
}

/* A number into the field (range checks beyond the type are the library's). */
static int set_number(mdh_request *r, const mdh_field *f, double v, mdh_error *err)
{
    switch (f->type) {
    case MDH_FIELD_INT:
        if (v != floor(v) || v < -2147483648.0 || v > 2147483647.0)
            return bad(err, f, "an integer");
        *int_ptr(r, f) = (int32_t)v;
        return MDIFF_OK;
    case MDH_FIELD_SEED:
        if (v != floor(v) || v < 0 || v > MDH_SEED_MAX)
            return bad(err, f, "an integer in 0..2^53-1");
        r->p.seed = (uint64_t)v;
        return MDIFF_OK;
    case MDH_FIELD_FLOAT:
        if (!isfinite(v) || fabs(v) > 3.0e38)
            return bad(err, f, "a number");
        *(float *)((char *)&r->p + f->offset) = (float)v;
        return MDIFF_OK;
    case MDH_FIELD_CHOICE:
        if (v != floor(v) || v < 0 || v >= 64 || !f->choices[0])
            return bad(err, f, "");
        for (int i = 0; f->choices[i]; i++)
            if (i == (int)v) {
                *int_ptr(r, f) = i;
                return MDIFF_OK;
            }
        return bad(err, f, "");
    default: return bad(err, f, "a string");
    }
}

static uint64_t *bytes_ptr(mdh_request *r, const mdh_field *f)
{
    return (uint64_t *)((char *)&r->p + f->offset);
}

/* "123", "512M", "1.5 GiB", "50%". */
static int set_bytes_text(mdh_request *r, const mdh_field *f, const char *text, mdh_error *err)
{
    static const char what[] = "a size: bytes, or a number with K, M, G or T (powers of 1024), "
                               "or a percentage of the model's expert memory such as 50%";
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || !isfinite(v) || v < 0 || text[0] == '-')
        return bad(err, f, what);
    while (*end == ' ')
        end++;
    if (*end == '%') {
        if (end[1] || !(v > 0 && v <= 100))
            return bad(err, f, "a percentage above 0 up to 100%");
        *bytes_ptr(r, f) = 0;
        r->expert_memory_percent = (float)v;
        return MDIFF_OK;
    }
    static const char units[] = "KMGT";
    double scale = 1.0;
    if (*end) {
        const char *u = strchr(units, toupper((unsigned char)*end));
        if (!u)
            return bad(err, f, what);
        for (const char *q = units; q <= u; q++)
            scale *= 1024.0;
        end++;
        if (!strcasecmp(end, "ib") || !strcasecmp(end, "b"))
            end += strlen(end);
        if (*end)
            return bad(err, f, what);
    }
    double bytes = floor(v * scale);
    if (bytes >= 18446744073709551616.0 || (scale == 1.0 && v != floor(v)))
        return bad(err, f, what);
    *bytes_ptr(r, f) = (uint64_t)bytes;
    r->expert_memory_percent = 0.0f;
    return MDIFF_OK;
}

/* "P" or "P:W": a trailing ":number" is the weight. */
static int add_lora_text(mdh_request *r, const mdh_field *f, const char *text, mdh_error *err)
{
    const char *colon = strrchr(text, ':');
    float weight = 1.0f;
    size_t n = strlen(text);
    if (colon && colon[1]) {
        char *end;
        errno = 0;
        double w = strtod(colon + 1, &end);
        if (!errno && !*end && end != colon + 1) {
            if (!isfinite(w) || fabs(w) > 1e6)
                return bad(err, f, "FILE or FILE:WEIGHT with a usable weight");
            weight = (float)w;
            n = (size_t)(colon - text);
        }
    }
    if (n == 0)
        return bad(err, f, "FILE or FILE:WEIGHT");
    char *path = strndup(text, n);
    int rc = path ? mdh_request_add_lora(r, path, weight) : MDIFF_ERR_NOMEM;
    free(path);
    if (rc == MDIFF_ERR_INVALID)
        return mdh_fail(err, rc, "\"%s\": at most %d LoRAs", f->name, MDIFF_MAX_LORAS);
    return rc == MDIFF_OK ? rc : mdh_fail(err, rc, "out of memory");
}

static int set_loras_json(mdh_request *r, const mdh_field *f, const cJSON *v, mdh_error *err)
{
    static const char what[] = "a list of LoRAs: [{\"path\": \"FILE\", \"weight\": 0.8}] or "
                               "[\"FILE\", \"FILE:0.8\"]";
    if (!cJSON_IsArray(v) && !cJSON_IsNull(v))
        return bad(err, f, what);
    clear_loras(r);
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        int rc;
        if (cJSON_IsString(it)) {
            rc = add_lora_text(r, f, it->valuestring, err);
        } else if (cJSON_IsObject(it)) {
            const cJSON *path = cJSON_GetObjectItemCaseSensitive(it, "path");
            const cJSON *weight = cJSON_GetObjectItemCaseSensitive(it, "weight");
            if (!cJSON_IsString(path) || !path->valuestring[0] ||
                (weight && (!cJSON_IsNumber(weight) || !isfinite(weight->valuedouble) ||
                            fabs(weight->valuedouble) > 1e6)) ||
                cJSON_GetArraySize(it) != 1 + (weight != NULL))
                return bad(err, f, what);
            rc = mdh_request_add_lora(r, path->valuestring,
                                      weight ? (float)weight->valuedouble : 1.0f);
            if (rc == MDIFF_ERR_INVALID)
                return mdh_fail(err, rc, "\"%s\": at most %d LoRAs", f->name, MDIFF_MAX_LORAS);
            if (rc != MDIFF_OK)
                return mdh_fail(err, rc, "out of memory");
        } else {
            return bad(err, f, what);
        }
        if (rc != MDIFF_OK)
            return rc;
    }
    return MDIFF_OK;
}

static int set_flag_text(mdh_request *r, const mdh_field *f, const char *text, mdh_error *err)
{
    int v = !strcasecmp(text, "true") || !strcmp(text, "1")    ? 1
            : !strcasecmp(text, "false") || !strcmp(text, "0") ? 0
                                                               : -1;
    if (v < 0)
        return bad(err, f, "true or false");
    *(uint32_t *)((char *)&r->p + f->offset) = (uint32_t)v;
    return MDIFF_OK;
}

int mdh_request_set_json(mdh_request *r, const mdh_field *f, const cJSON *v, mdh_error *err)
{
    if (f->type == MDH_FIELD_LORAS)
        return set_loras_json(r, f, v, err);
    if (f->type == MDH_FIELD_FLAG) {
        if (!cJSON_IsBool(v))
            return bad(err, f, "true or false");
        *(uint32_t *)((char *)&r->p + f->offset) = cJSON_IsTrue(v) ? 1u : 0u;
        return MDIFF_OK;
    }
    int is_string = f->type == MDH_FIELD_TEXT || f->type == MDH_FIELD_NAME ||
                    f->type == MDH_FIELD_PATH;
    if (cJSON_IsNull(v)) {
        if (is_string && f->offset != P(prompt))
            return mdh_request_set_string(r, f, NULL);
        return bad(err, f, f->offset == P(prompt) ? "a string" : "a value, not null");
    }
    if (is_string) {
        if (!cJSON_IsString(v))
            return bad(err, f, "a string");
        int rc = mdh_request_set_string(r, f, v->valuestring);
        return rc == MDIFF_OK ? rc : mdh_fail(err, rc, "out of memory");
    }
    if (f->type == MDH_FIELD_BYTES && cJSON_IsString(v))
        return set_bytes_text(r, f, v->valuestring, err);
    if (f->type == MDH_FIELD_BYTES && cJSON_IsNumber(v)) {
        char num[64];
        snprintf(num, sizeof num, "%.17g", v->valuedouble);
        return set_bytes_text(r, f, num, err);
    }
    if (f->type == MDH_FIELD_CHOICE && cJSON_IsString(v)) {
        int k = choice_of(f, v->valuestring);
        if (k < 0)
            return bad(err, f, "");
        *int_ptr(r, f) = k;
        return MDIFF_OK;
    }
    if (!cJSON_IsNumber(v))
        return bad(err, f, f->type == MDH_FIELD_CHOICE  ? ""
                           : f->type == MDH_FIELD_FLOAT ? "a number"
                                                        : "an integer");
    return set_number(r, f, v->valuedouble, err);
}

int mdh_request_set_text(mdh_request *r, const mdh_field *f, const char *text, mdh_error *err)
{
    if (f->type == MDH_FIELD_TEXT || f->type == MDH_FIELD_NAME || f->type == MDH_FIELD_PATH) {
        int rc = mdh_request_set_string(r, f, text);
        return rc == MDIFF_OK ? rc : mdh_fail(err, rc, "out of memory");
    }
    if (f->type == MDH_FIELD_CHOICE && choice_of(f, text) >= 0) {
        *int_ptr(r, f) = choice_of(f, text);
        return MDIFF_OK;
    }
    if (f->type == MDH_FIELD_BYTES)
        return set_bytes_text(r, f, text, err);
    if (f->type == MDH_FIELD_LORAS)
        return add_lora_text(r, f, text, err);
    if (f->type == MDH_FIELD_FLAG)
        return set_flag_text(r, f, text, err);
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    while (*end == ' ')
        end++;
    if (errno || end == text || *end || (f->type == MDH_FIELD_SEED && text[0] == '-'))
        return bad(err, f, f->type == MDH_FIELD_CHOICE ? "" : "a number");
    return set_number(r, f, v, err);
}

const char *mdh_request_string(const mdh_request *r, const mdh_field *f)
{
    if (f->type == MDH_FIELD_PATH)
        return *path_slot((mdh_request *)r, f);
    return *string_ptr(r, f);
}

cJSON *mdh_request_get_json(const mdh_request *r, const mdh_field *f)
{
    const void *at = (const char *)&r->p + f->offset;
    switch (f->type) {
    case MDH_FIELD_TEXT:
    case MDH_FIELD_NAME:
    case MDH_FIELD_PATH: {
        const char *s = mdh_request_string(r, f);
        return s ? cJSON_CreateString(s) : cJSON_CreateNull();
    }
    case MDH_FIELD_INT: return cJSON_CreateNumber(*(const int32_t *)at);
    case MDH_FIELD_SEED: return cJSON_CreateNumber((double)r->p.seed);
    case MDH_FIELD_BYTES: {
        char buf[48];
        mdh_request_format(r, f, buf, sizeof buf);
        return cJSON_CreateString(buf);
    }
    case MDH_FIELD_FLOAT: return cJSON_CreateNumber(*(const float *)at);
    case MDH_FIELD_FLAG: return cJSON_CreateBool(*(const uint32_t *)at != 0);
    case MDH_FIELD_LORAS: {
        cJSON *list = cJSON_CreateArray();
        for (int i = 0; list && i < r->p.lora_count; i++) {
            cJSON *o = cJSON_CreateObject();
            if (!o || !cJSON_AddItemToArray(list, o) ||
                !cJSON_AddStringToObject(o, "path", r->loras[i].path) ||
                !cJSON_AddNumberToObject(o, "weight", r->loras[i].weight)) {
                cJSON_Delete(list);
                return NULL;
            }
        }
        return list;
    }
    case MDH_FIELD_CHOICE: {
        int32_t v = *(const int32_t *)at;
        for (int i = 0; f->choices[i]; i++)
            if (i == v)
                return cJSON_CreateString(f->choices[i]);
        return cJSON_CreateNumber(v);
    }
    }
    return NULL;
}

int mdh_request_format(const mdh_request *r, const mdh_field *f, char *buf, size_t cap)
{
    const void *at = (const char *)&r->p + f->offset;
    switch (f->type) {
    case MDH_FIELD_TEXT:
    case MDH_FIELD_NAME:
    case MDH_FIELD_PATH: {
        const char *s = mdh_request_string(r, f);
        return snprintf(buf, cap, "%s", s ? s : "");
    }
    case MDH_FIELD_INT: return snprintf(buf, cap, "%d", (int)*(const int32_t *)at);
    case MDH_FIELD_SEED: return snprintf(buf, cap, "%llu", (unsigned long long)r->p.seed);
    case MDH_FIELD_BYTES: {
        if (r->expert_memory_percent > 0.0f)
            return snprintf(buf, cap, "%g%%", (double)r->expert_memory_percent);
        /* the largest unit that is exact, so the text reads back the same */
        uint64_t v = *(const uint64_t *)at;
        int u = 0;
        while (u < 4 && v >= 1024 && v % 1024 == 0)
            v /= 1024, u++;
        return snprintf(buf, cap, "%llu%s", (unsigned long long)v, u ? (const char *[]){"", "K", "M", "G", "T"}[u] : "");
    }
    case MDH_FIELD_FLOAT: return mdh_format_float(buf, cap, *(const float *)at);
    case MDH_FIELD_FLAG: return snprintf(buf, cap, "%s", *(const uint32_t *)at ? "true" : "false");
    case MDH_FIELD_LORAS: {
        int n = 0;
        for (int i = 0; i < r->p.lora_count; i++) {
            char w[32];
            mdh_format_float(w, sizeof w, r->loras[i].weight);
            n += snprintf(buf + ((size_t)n < cap ? (size_t)n : cap), (size_t)n < cap ? cap - (size_t)n : 0,
                          "%s%s:%s", i ? "; " : "", r->loras[i].path, w);
        }
        if (cap && r->p.lora_count == 0)
            buf[0] = '\0';
        return n;
    }
    case MDH_FIELD_CHOICE: {
        int32_t v = *(const int32_t *)at;
        for (int i = 0; f->choices[i]; i++)
            if (i == v)
                return snprintf(buf, cap, "%s", f->choices[i]);
        return snprintf(buf, cap, "%d", (int)v);
    }
    }
    return 0;
}

int mdh_format_float(char *buf, size_t cap, float v)
{
    int n = 0;
    for (int prec = 1; prec <= 9; prec++) {
        n = snprintf(buf, cap, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v)
            break;
    }
    return n;
}

char *mdh_request_prompt_with_loras(const mdh_request *r)
{
    const char *prompt = r->p.prompt ? r->p.prompt : "";
    if (r->p.prompt_syntax == MDIFF_PROMPT_PLAIN) /* tags would be text: "LoRAs" has them */
        return strdup(prompt);
    size_t cap = strlen(prompt) + 1;
    for (int i = 0; i < r->p.lora_count; i++)
        cap += strlen(r->loras[i].path) + 48;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t n = (size_t)snprintf(out, cap, "%s", prompt);
    for (int i = 0; i < r->p.lora_count; i++) {
        const char *path = r->loras[i].path;
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        const char *dot = strrchr(base, '.');
        int len = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
        char w[32];
        mdh_format_float(w, sizeof w, r->loras[i].weight);
        n += (size_t)snprintf(out + n, cap - n, "%s<lora:%.*s:%s>", n ? " " : "", len, base, w);
    }
    return out;
}

static size_t value_size(const mdh_field *f)
{
    return f->type == MDH_FIELD_SEED || f->type == MDH_FIELD_BYTES ? sizeof(uint64_t)
                                                                   : sizeof(int32_t);
}

void mdh_request_copy_value(mdh_request *dst, const mdh_request *src, const mdh_field *f)
{
    if (f->type == MDH_FIELD_LORAS || f->type == MDH_FIELD_TEXT || f->type == MDH_FIELD_NAME ||
        f->type == MDH_FIELD_PATH)
        return; /* not a number: owned storage */
    memcpy((char *)&dst->p + f->offset, (const char *)&src->p + f->offset, value_size(f));
    if (f->type == MDH_FIELD_BYTES)
        dst->expert_memory_percent = src->expert_memory_percent;
}

uint64_t mdh_request_expert_memory(const mdh_request *r, uint64_t expert_memory)
{
    if (r->expert_memory_percent <= 0.0f)
        return r->p.max_expert_memory;
    double b = ceil((double)expert_memory * (double)r->expert_memory_percent / 100.0);
    return b < 1.0 ? 1 : (uint64_t)b;
}

int mdh_request_is_default(const mdh_request *r, const mdh_field *f)
{
    if (f->type == MDH_FIELD_LORAS)
        return r->p.lora_count == 0;
    if (f->type == MDH_FIELD_TEXT || f->type == MDH_FIELD_NAME || f->type == MDH_FIELD_PATH)
        return mdh_request_string(r, f) == NULL;
    if (f->type == MDH_FIELD_BYTES && r->expert_memory_percent > 0.0f)
        return 0;
    mdiff_gen_params d;
    defaults(&d);
    size_t n = value_size(f);
    return memcmp((const char *)&r->p + f->offset, (const char *)&d + f->offset, n) == 0;
}
