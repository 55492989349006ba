/* Routes files: parsing and binding (moe_routes.h). */
#include "moe_routes.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 4096
#define MAX_LIST 16

void md_moe_routes_free(md_moe_routes *r)
{
    if (!r)
        return;
    int n = r->nlayers * (r->steps - r->first_step);
    for (int i = 0; r->entries && i < n; i++)
        free(r->entries[i].experts);
    free(r->entries);
    free(r->names);
    free(r->num_experts);
    free(r->bound);
    free(r);
}

static int int_in(const cJSON *v, int lo, int hi, int *out)
{
    /* the range first: converting an out-of-range double to int is undefined */
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) ||
        v->valuedouble != (double)(int)v->valuedouble)
        return 0;
    *out = (int)v->valuedouble;
    return 1;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A sequence entry: {"experts": [[e, ...] per group]}. */
static md_status parse_sequence(const cJSON *lists, int groups, int E, md_moe_route_entry *en,
                                int step, int layer, md_error *err)
{
    if (!cJSON_IsArray(lists) || cJSON_GetArraySize(lists) != groups)
        return md_fail(err, MD_ERR_INVALID,
                       "moe_routes: routes[%d][%d].experts must hold %d list(s), one per row "
                       "group",
                       step, layer, groups);
    int k = 0;
    const cJSON *l;
    cJSON_ArrayForEach(l, lists) {
        int n = cJSON_GetArraySize(l);
        if (!cJSON_IsArray(l) || n < 1 || n > MAX_LIST)
            return md_fail(err, MD_ERR_INVALID,
                           "moe_routes: routes[%d][%d]: each list holds 1..%d experts", step,
                           layer, MAX_LIST);
        k = n > k ? n : k;
    }
    en->token = 0;
    en->k = k;
    en->n = groups;
    en->experts = malloc((size_t)groups * (size_t)k);
    if (!en->experts)
        return md_fail(err, MD_ERR_NOMEM, "moe_routes: out of memory");
    memset(en->experts, -1, (size_t)groups * (size_t)k);
    int g = 0;
    cJSON_ArrayForEach(l, lists) {
        int i = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, l) {
            int e;
            if (!int_in(v, 0, E - 1, &e))
                return md_fail(err, MD_ERR_INVALID,
                               "moe_routes: routes[%d][%d]: experts are integers 0..%d (the "
                               "layer has %d)",
                               step, layer, E - 1, E);
            for (int j = 0; j < i; j++)
                if (en->experts[g * k + j] == e)
                    return md_fail(err, MD_ERR_INVALID,
                                   "moe_routes: routes[%d][%d]: expert %d listed twice", step,
                                   layer, e);
            en->experts[g * k + i++] = (int8_t)e;
        }
        g++;
    }
    return MD_OK;
}

/* A token entry: {"k": K, "choices": "hex digit per slot, '-' = empty"}. */
static md_status parse_token(const cJSON *obj, int E, md_moe_route_entry *en, int step, int layer,
                             md_error *err)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(obj, "choices");
    int k;
    if (!int_in(cJSON_GetObjectItemCaseSensitive(obj, "k"), 1, MAX_LIST, &k) ||
        !cJSON_IsString(c))
        return md_fail(err, MD_ERR_INVALID,
                       "moe_routes: routes[%d][%d]: a token entry needs \"k\" (1..%d) and "
                       "\"choices\" (a string)",
                       step, layer, MAX_LIST);
    if (k > E)
        return md_fail(err, MD_ERR_INVALID,
                       "moe_routes: routes[%d][%d]: k = %d but the layer has %d experts", step,
                       layer, k, E);
    if (E > 16)
        return md_fail(err, MD_ERR_INVALID,
                       "moe_routes: routes[%d][%d]: token routes take layers of at most 16 "
                       "experts (one hex digit each)",
                       step, layer);
    size_t len = strlen(c->valuestring);
    if (len == 0 || len % (size_t)k)
        return md_fail(err, MD_ERR_INVALID,
                       "moe_routes: routes[%d][%d]: \"choices\" has %zu characters, not a "
                       "multiple of k = %d",
                       step, layer, len, k);
    en->token = 1;
    en->k = k;
    en->n = (int64_t)(len / (size_t)k);
    en->experts = malloc(len);
    if (!en->experts)
        return md_fail(err, MD_ERR_NOMEM, "moe_routes: out of memory");
    for (size_t i = 0; i < len; i++) {
        char ch = c->valuestring[i];
        int e = ch == '-' ? -1 : hex_digit(ch);
        if ((e < 0 && ch != '-') || e >= E)
            return md_fail(err, MD_ERR_INVALID,
                           "moe_routes: routes[%d][%d]: choices[%zu] '%c' is not an expert "
                           "(0..%x as a lower-case hex digit, or '-')",
                           step, layer, i, ch >= 0x20 && ch < 0x7f ? ch : '?', E - 1);
        for (size_t j = i - i % (size_t)k; e >= 0 && j < i; j++)
            if (en->experts[j] == e)
                return md_fail(err, MD_ERR_INVALID,
                               "moe_routes: routes[%d][%d]: row %zu lists expert %d twice", step,
                               layer, i / (size_t)k, e);
        en->experts[i] = (int8_t)e;
    }
    return MD_OK;
}

static md_status parse_header(const cJSON *root, md_moe_routes *r, md_error *err)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format");
    int version;
    if (!cJSON_IsString(f) || strcmp(f->valuestring, MD_MOE_ROUTES_FORMAT) != 0)
        return md_fail(err, MD_ERR_INVALID, "moe_routes: \"format\" must be \"%s\"",
                       MD_MOE_ROUTES_FORMAT);
    if (!int_in(cJSON_GetObjectItemCaseSensitive(root, "version"), 1, 1000, &version) ||
        version != MD_MOE_ROUTES_VERSION)
        return md_fail(err, MD_ERR_INVALID,
                       "moe_routes: \"version\" must be %d (this program reads no other)",
                       MD_MOE_ROUTES_VERSION);
    if (!int_in(cJSON_GetObjectItemCaseSensitive(root, "steps"), 1, 1000, &r->steps))
        return md_fail(err, MD_ERR_INVALID, "moe_routes: \"steps\" must be an integer 1..1000");
    if (!int_in(cJSON_GetObjectItemCaseSensitive(root, "first_step"), 0, r->steps - 1,
                &r->first_step))
        return md_fail(err, MD_ERR_INVALID, "moe_routes: \"first_step\" must be 0..%d",
                       r->steps - 1);
    if (!int_in(cJSON_GetObjectItemCaseSensitive(root, "groups"), 1, 2, &r->groups))
        return md_fail(err, MD_ERR_INVALID,
                       "moe_routes: \"groups\" must be 1 (no guidance) or 2 (guidance)");
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    int n = cJSON_GetArraySize(layers);
    if (!cJSON_IsArray(layers) || n < 1 || n > MAX_LAYERS)
        return md_fail(err, MD_ERR_INVALID, "moe_routes: \"layers\" must list 1..%d layers",
                       MAX_LAYERS);
    r->nlayers = n;
    r->names = calloc((size_t)n, sizeof *r->names);
    r->num_experts = calloc((size_t)n, sizeof *r->num_experts);
    if (!r->names || !r->num_experts)
        return md_fail(err, MD_ERR_NOMEM, "moe_routes: out of memory");
    int i = 0;
    const cJSON *l;
    cJSON_ArrayForEach(l, layers) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(l, "name");
        if (!cJSON_IsString(name) || strlen(name->valuestring) >= sizeof r->names[0] ||
            !int_in(cJSON_GetObjectItemCaseSensitive(l, "experts"), 1, 64, &r->num_experts[i]))
            return md_fail(err, MD_ERR_INVALID,
                           "moe_routes: layers[%d] needs \"name\" (< 160 bytes) and "
                           "\"experts\" (1..64)",
                           i);
        memcpy(r->names[i], name->valuestring, strlen(name->valuestring) + 1);
        for (int j = 0; j < i; j++)
            if (!strcmp(r->names[j], r->names[i]))
                return md_fail(err, MD_ERR_INVALID,
                               "moe_routes: layers[%d] has the same name as layers[%d]", i, j);
        i++;
    }
    return MD_OK;
}

static md_status parse_routes(const cJSON *root, md_moe_routes *r, md_error *err)
{
    MD_TRY(parse_header(root, r, err));
    const int nsteps = r->steps - r->first_step;
    const cJSON *routes = cJSON_GetObjectItemCaseSensitive(root, "routes");
    if (!cJSON_IsArray(routes) || cJSON_GetArraySize(routes) != nsteps)
        return md_fail(err, MD_ERR_INVALID,
                       "moe_routes: \"routes\" must hold %d steps (steps - first_step)", nsteps);
    r->entries = calloc((size_t)nsteps * (size_t)r->nlayers, sizeof *r->entries);
    if (!r->entries)
        return md_fail(err, MD_ERR_NOMEM, "moe_routes: out of memory");
    int s = 0;
    const cJSON *step;
    cJSON_ArrayForEach(step, routes) {
        if (!cJSON_IsArray(step) || cJSON_GetArraySize(step) != r->nlayers)
            return md_fail(err, MD_ERR_INVALID,
                           "moe_routes: routes[%d] must hold one entry per layer (%d)", s,
                           r->nlayers);
        int l = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, step) {
            md_moe_route_entry *en = &r->entries[(size_t)s * (size_t)r->nlayers + (size_t)l];
            const cJSON *lists = cJSON_GetObjectItemCaseSensitive(e, "experts");
            if (!cJSON_IsObject(e))
                return md_fail(err, MD_ERR_INVALID, "moe_routes: routes[%d][%d] must be an object",
                               s, l);
            if (lists)
                MD_TRY(parse_sequence(lists, r->groups, r->num_experts[l], en, s, l, err));
            else
                MD_TRY(parse_token(e, r->num_experts[l], en, s, l, err));
            l++;
        }
        s++;
    }
    return MD_OK;
}

md_status md_moe_routes_parse(const char *text, size_t max_len, md_moe_routes **out,
                              md_error *err)
{
    *out = NULL;
    if (!text)
        return md_fail(err, MD_ERR_INVALID, "moe_routes: no text");
    size_t len = strnlen(text, max_len + 1);
    if (len > max_len)
        return md_fail(err, MD_ERR_INVALID, "moe_routes: the text is longer than %zu bytes",
                       max_len);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        if (!root) {
            const char *e = cJSON_GetErrorPtr();
            at = e && e >= text && e <= text + len ? (size_t)(e - text) : at;
        }
        cJSON_Delete(root);
        return md_fail(err, MD_ERR_INVALID,
                       "moe_routes: not a JSON object (syntax error near byte %zu)", at);
    }
    md_moe_routes *r = calloc(1, sizeof *r);
    md_status st = r ? parse_routes(root, r, err)
                     : md_fail(err, MD_ERR_NOMEM, "moe_routes: out of memory");
    cJSON_Delete(root);
    if (st != MD_OK) {
        md_moe_routes_free(r);
        return st;
    }
    *out = r;
    return MD_OK;
}

md_status md_moe_routes_bind(md_moe_routes *r, int count, const char *const *names,
                             const int *num_experts, md_error *err)
{
    if (count != r->nlayers)
        return md_fail(err, MD_ERR_INVALID,
                       "moe_routes: the routes list %d MoE layers, the model has %d",
                       r->nlayers, count);
    free(r->bound);
    r->bound = malloc((size_t)count * sizeof *r->bound);
    if (!r->bound)
        return md_fail(err, MD_ERR_NOMEM, "moe_routes: out of memory");
    r->nbound = count;
    /* The recorder writes the model's order, so position i usually matches. */
    for (int i = 0; i < count; i++) {
        int at = !strcmp(r->names[i], names[i]) ? i : -1;
        for (int j = 0; j < count && at < 0; j++)
            at = !strcmp(r->names[j], names[i]) ? j : -1;
        if (at < 0)
            return md_fail(err, MD_ERR_INVALID,
                           "moe_routes: the model's layer '%.160s' is not in the routes (they "
                           "were recorded with another model?)",
                           names[i]);
        if (r->num_experts[at] != num_experts[i])
            return md_fail(err, MD_ERR_INVALID,
                           "moe_routes: layer '%.160s' has %d experts in the routes, %d in the "
                           "model",
                           names[i], r->num_experts[at], num_experts[i]);
        r->bound[i] = at;
    }
    return MD_OK;
}

const md_moe_route_entry *md_moe_routes_at(const md_moe_routes *r, int step, int layer)
{
    if (!r || !r->bound || layer < 0 || layer >= r->nbound || step < r->first_step ||
        step >= r->steps)
        return NULL;
    return &r->entries[(size_t)(step - r->first_step) * (size_t)r->nlayers +
                       (size_t)r->bound[layer]];
}
