/* Reading a SegMoE merge config (merge_config.h). The YAML is first turned
 * into JSON (the form it is saved in), then checked key by key. A config
 * that is not valid YAML is a bad value like any other (MD_ERR_INVALID):
 * its author fixes it, as with a bad command line. */
#include "merge_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

/* Limits against hostile files: aliases can make a small YAML expand into
 * a huge (or cyclic) tree. */
enum { MAX_DEPTH = 32, MAX_NODES = 20000, MAX_FILE = 1 << 20 };

typedef struct conv {
    yaml_document_t *doc;
    const char *path;
    int nodes;
    md_error *err;
} conv;

static int is_int(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

static int is_float(const char *s, double *v)
{
    char *end;
    if (!*s || strchr(s, ' '))
        return 0;
    errno = 0;
    *v = strtod(s, &end);
    /* Only decimal forms count: "0x10", "inf" and "nan" stay strings. */
    return !errno && !*end && strpbrk(s, "0123456789") && !strpbrk(s, "xXnN");
}

/* A plain scalar as YAML's core schema (PyYAML's SafeLoader) types it. */
static cJSON *plain_scalar(const char *s)
{
    static const char *const t[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
    static const char *const f[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
    if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
        return cJSON_CreateNull();
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        if (!strcmp(s, t[i]))
            return cJSON_CreateTrue();
        if (!strcmp(s, f[i]))
            return cJSON_CreateFalse();
    }
    double v;
    if (is_int(s))
        return cJSON_CreateNumber(strtod(s, NULL));
    if (is_float(s, &v))
        return cJSON_CreateNumber(v);
    return cJSON_CreateString(s);
}

static cJSON *to_json(conv *c, yaml_node_t *n, int depth)
{
    if (!n)
        return NULL;
    if (depth > MAX_DEPTH || ++c->nodes > MAX_NODES) {
        md_fail(c->err, MD_ERR_INVALID, "%s: the YAML nests or repeats too deeply (aliases?)",
                c->path);
        return NULL;
    }
    if (n->type == YAML_SCALAR_NODE) {
        const char *s = (const char *)n->data.scalar.value;
        if (strlen(s) != n->data.scalar.length) {
            md_fail(c->err, MD_ERR_INVALID, "%s: a value holds a NUL character", c->path);
            return NULL;
        }
        cJSON *j = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? plain_scalar(s)
                                                                   : cJSON_CreateString(s);
        if (!j)
            md_fail(c->err, MD_ERR_NOMEM, "%s: out of memory", c->path);
        return j;
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        cJSON *a = cJSON_CreateArray();
        for (yaml_node_item_t *i = n->data.sequence.items.start; a && i < n->data.sequence.items.top;
             i++) {
            cJSON *v = to_json(c, yaml_document_get_node(c->doc, *i), depth + 1);
            if (!v) {
                cJSON_Delete(a);
                return NULL;
            }
            cJSON_AddItemToArray(a, v);
        }
        if (!a)
            md_fail(c->err, MD_ERR_NOMEM, "%s: out of memory", c->path);
        return a;
    }
    if (n->type != YAML_MAPPING_NODE) {
        md_fail(c->err, MD_ERR_INVALID, "%s: empty YAML node", c->path);
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; o && p < n->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        if (!k || k->type != YAML_SCALAR_NODE) {
            md_fail(c->err, MD_ERR_INVALID, "%s: a mapping key is not a plain name", c->path);
            cJSON_Delete(o);
            return NULL;
        }
        const char *key = (const char *)k->data.scalar.value;
        if (cJSON_GetObjectItemCaseSensitive(o, key)) {
            md_fail(c->err, MD_ERR_INVALID, "%s: key '%s' appears twice", c->path, key);
            cJSON_Delete(o);
            return NULL;
        }
        cJSON *v = to_json(c, yaml_document_get_node(c->doc, p->value), depth + 1);
        if (!v) {
            cJSON_Delete(o);
            return NULL;
        }
        cJSON_AddItemToObject(o, key, v);
    }
    if (!o)
        md_fail(c->err, MD_ERR_NOMEM, "%s: out of memory", c->path);
    return o;
}

static cJSON *parse_yaml(const char *path, const char *text, size_t len, md_error *err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        md_fail(err, MD_ERR_INVALID, "%s:%zu:%zu: not valid YAML: %s", path,
                parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                parser.problem ? parser.problem : "syntax error");
        yaml_parser_delete(&parser);
        return NULL;
    }
    conv c = {.doc = &doc, .path = path, .err = err};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    cJSON *j = root ? to_json(&c, root, 0) : NULL;
    if (!root)
        md_fail(err, MD_ERR_INVALID, "%s: the file is empty", path);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return j;
}

/* ---- checking ---- */

static int path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static md_status resolve(const md_merge_config *c, const char *key, const char *value, char *out,
                         md_error *err)
{
    size_t lv = strlen(value);
    if (!lv)
        return md_fail(err, MD_ERR_INVALID, "%s: %s: empty path", c->path, key);
    int n;
    if (value[0] == '/') {
        n = snprintf(out, MD_MERGE_PATH_MAX, "%s", value);
    } else {
        const char *slash = strrchr(c->path, '/');
        int dl = slash ? (int)(slash - c->path) : 1;
        n = snprintf(out, MD_MERGE_PATH_MAX, "%.*s/%s", dl, slash ? c->path : ".", value);
    }
    if (n < 0 || n >= MD_MERGE_PATH_MAX)
        return md_fail(err, MD_ERR_INVALID, "%s: %s: path too long", c->path, key);
    /* Pickle checkpoints can run code when loaded: never opened. */
    static const char *const pickles[] = {".ckpt", ".pt", ".pth", ".bin", ".pkl"};
    for (size_t i = 0; i < sizeof pickles / sizeof *pickles; i++) {
        size_t ls = strlen(pickles[i]);
        if (lv > ls && strcmp(value + lv - ls, pickles[i]) == 0)
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "%s: %s: '%s' is a pickle checkpoint, which can run code when "
                           "loaded; convert it to .safetensors",
                           c->path, key, value);
    }
    if (strstr(value, "://"))
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: %s: '%s' is a URL; download it and name the local file or folder",
                       c->path, key, value);
    if (!path_exists(out))
        return md_fail(err, MD_ERR_IO, "%s: %s: '%s' does not exist (looked for %s)", c->path,
                       key, value, out);
    return MD_OK;
}

static md_status check_keys(const char *path, const char *where, const cJSON *obj,
                            const char *const *allowed, md_error *err)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, it->string) == 0;
        if (!ok)
            return md_fail(err, MD_ERR_INVALID, "%s: %s%sunknown key '%s'", path, where,
                           *where ? ": " : "", it->string);
    }
    return MD_OK;
}

static md_status get_string(const char *path, const char *key, const cJSON *obj, const char *name,
                            int required, const char **out, md_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return md_fail(err, MD_ERR_INVALID, "%s: %s: missing", path, key);
        return MD_OK;
    }
    if (!cJSON_IsString(v))
        return md_fail(err, MD_ERR_INVALID, "%s: %s: must be a string", path, key);
    *out = v->valuestring;
    return MD_OK;
}

/* A number that is a whole int; the range is checked before the cast,
 * which is undefined beyond int (1e108 was a fuzzing finding). */
static int whole_int(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble >= -2147483648.0 &&
           v->valuedouble <= 2147483647.0 && v->valuedouble == (double)(int)v->valuedouble;
}

static md_status get_int(const char *path, const char *key, const cJSON *obj, int lo, int hi,
                         int *out, md_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return MD_OK;
    if (!whole_int(v))
        return md_fail(err, MD_ERR_INVALID, "%s: %s: must be a whole number", path, key);
    if (v->valueint < lo || v->valueint > hi)
        return md_fail(err, MD_ERR_INVALID, "%s: %s: %d is out of range (%d..%d)", path, key,
                       v->valueint, lo, hi);
    *out = v->valueint;
    return MD_OK;
}

/* "a" + " " + "b" (SegMoE appends a LoRA's prompt to its expert's). */
static char *append(char *a, const char *b, md_error *err, const char *path)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = realloc(a, la + lb + 2);
    if (!s) {
        md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    s[la] = ' ';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

/* loras: a list of {source_model, positive_prompt, negative_prompt} (or
 * of plain paths). Each LoRA's prompts are appended to the expert's. */
static md_status read_loras(md_merge_config *c, const char *where, const cJSON *list,
                            md_merge_lora **out, int *count, md_merge_expert *e, md_error *err)
{
    static const char *const keys[] = {"source_model", "positive_prompt", "negative_prompt", NULL};
    char key[96];
    if (!list)
        return MD_OK;
    if (!cJSON_IsArray(list))
        return md_fail(err, MD_ERR_INVALID, "%s: %sloras: must be a list", c->path, where);
    int n = cJSON_GetArraySize(list);
    *out = calloc((size_t)n + 1, sizeof **out);
    if (!*out)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", c->path);
    for (int i = 0; i < n; i++) {
        const cJSON *l = cJSON_GetArrayItem(list, i);
        const char *src = NULL, *pos = NULL, *neg = NULL;
        snprintf(key, sizeof key, "%sloras[%d]", where, i);
        if (cJSON_IsString(l)) {
            src = l->valuestring;
        } else if (cJSON_IsObject(l)) {
            MD_TRY(check_keys(c->path, key, l, keys, err));
            snprintf(key, sizeof key, "%sloras[%d].source_model", where, i);
            MD_TRY(get_string(c->path, key, l, "source_model", 1, &src, err));
            snprintf(key, sizeof key, "%sloras[%d].positive_prompt", where, i);
            MD_TRY(get_string(c->path, key, l, "positive_prompt", 0, &pos, err));
            snprintf(key, sizeof key, "%sloras[%d].negative_prompt", where, i);
            MD_TRY(get_string(c->path, key, l, "negative_prompt", 0, &neg, err));
        } else {
            return md_fail(err, MD_ERR_INVALID, "%s: %s: must be a mapping or a path", c->path,
                           key);
        }
        snprintf(key, sizeof key, "%sloras[%d].source_model", where, i);
        MD_TRY(resolve(c, key, src, (*out)[i].path, err));
        (*out)[i].scale = 1.0f;
        (*count)++;
        if (e && pos && *pos && !(e->positive = append(e->positive, pos, err, c->path)))
            return MD_ERR_NOMEM;
        if (e && neg && *neg && !(e->negative = append(e->negative, neg, err, c->path)))
            return MD_ERR_NOMEM;
    }
    return MD_OK;
}

static md_status read_expert(md_merge_config *c, int i, const cJSON *x, md_error *err)
{
    static const char *const keys[] = {"source_model", "positive_prompt", "negative_prompt",
                                       "loras", NULL};
    char where[48], key[96];
    md_merge_expert *e = &c->experts[i];
    snprintf(where, sizeof where, "experts[%d]", i);
    if (!cJSON_IsObject(x))
        return md_fail(err, MD_ERR_INVALID, "%s: %s: must be a mapping", c->path, where);
    MD_TRY(check_keys(c->path, where, x, keys, err));
    const char *src, *pos, *neg;
    snprintf(key, sizeof key, "%s.source_model", where);
    MD_TRY(get_string(c->path, key, x, "source_model", 1, &src, err));
    MD_TRY(resolve(c, key, src, e->source, err));
    snprintf(key, sizeof key, "%s.positive_prompt", where);
    MD_TRY(get_string(c->path, key, x, "positive_prompt", 0, &pos, err));
    snprintf(key, sizeof key, "%s.negative_prompt", where);
    MD_TRY(get_string(c->path, key, x, "negative_prompt", 0, &neg, err));
    e->positive = strdup(pos ? pos : "");
    e->negative = strdup(neg ? neg : "");
    if (!e->positive || !e->negative)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", c->path);
    snprintf(where, sizeof where, "experts[%d].", i);
    return read_loras(c, where, cJSON_GetObjectItemCaseSensitive(x, "loras"), &e->loras,
                      &e->nloras, e, err);
}

static md_status check(md_merge_config *c, md_error *err)
{
    static const char *const keys[] = {"base_model", "num_experts", "moe_layers",
                                       "num_experts_per_tok", "type", "experts", "loras", "init",
                                       NULL};
    const cJSON *y = c->yaml;
    if (!cJSON_IsObject(y))
        return md_fail(err, MD_ERR_INVALID, "%s: must be a mapping of keys (base_model, experts, ...)",
                       c->path);
    MD_TRY(check_keys(c->path, "", y, keys, err));
    const char *base, *layers = "attn", *type = "sdxl", *init = "hidden";
    MD_TRY(get_string(c->path, "base_model", y, "base_model", 1, &base, err));
    MD_TRY(resolve(c, "base_model", base, c->base, err));
    const char *s;
    MD_TRY(get_string(c->path, "moe_layers", y, "moe_layers", 0, &s, err));
    layers = s ? s : layers;
    if (!strcmp(layers, "attn"))
        c->layers = MD_MERGE_LAYERS_ATTN;
    else if (!strcmp(layers, "ff"))
        c->layers = MD_MERGE_LAYERS_FF;
    else if (!strcmp(layers, "all"))
        c->layers = MD_MERGE_LAYERS_ALL;
    else
        return md_fail(err, MD_ERR_INVALID, "%s: moe_layers: '%s' is not one of ff, attn, all",
                       c->path, layers);
    /* SegMoE's default type is sdxl. */
    MD_TRY(get_string(c->path, "type", y, "type", 0, &s, err));
    type = s ? s : type;
    if (strcmp(type, "sd") && strcmp(type, "sdxl"))
        return md_fail(err, MD_ERR_INVALID, "%s: type: '%s' is not one of sd, sdxl", c->path,
                       type);
    c->sdxl = !strcmp(type, "sdxl");
    MD_TRY(get_string(c->path, "init", y, "init", 0, &s, err));
    init = s ? s : init;
    if (strcmp(init, "hidden") && strcmp(init, "random"))
        return md_fail(err, MD_ERR_INVALID, "%s: init: '%s' is not one of hidden, random",
                       c->path, init);
    c->init = !strcmp(init, "random") ? MD_MERGE_INIT_RANDOM : MD_MERGE_INIT_HIDDEN;

    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(y, "experts");
    if (!ex)
        return md_fail(err, MD_ERR_INVALID,
                       "%s: experts: missing (a merge needs a list of source models)", c->path);
    if (!cJSON_IsArray(ex) || cJSON_GetArraySize(ex) < 1)
        return md_fail(err, MD_ERR_INVALID, "%s: experts: must be a non-empty list", c->path);
    if (cJSON_GetArraySize(ex) > MD_MERGE_MAX_EXPERTS)
        return md_fail(err, MD_ERR_INVALID, "%s: experts: %d experts, at most %d", c->path,
                       cJSON_GetArraySize(ex), MD_MERGE_MAX_EXPERTS);
    for (int i = 0; i < cJSON_GetArraySize(ex); i++) {
        c->nexperts = i + 1; /* so a failure frees what this expert got */
        MD_TRY(read_expert(c, i, cJSON_GetArrayItem(ex, i), err));
    }
    /* num_experts is informational: the list decides (what SegMoE saves). */
    int declared = c->nexperts;
    MD_TRY(get_int(c->path, "num_experts", y, 1, 1 << 20, &declared, err));
    c->top_k = 1;
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(y, "num_experts_per_tok");
    if (whole_int(tk) && tk->valueint > c->nexperts)
        return md_fail(err, MD_ERR_INVALID,
                       "%s: num_experts_per_tok: %d is more than the %d experts listed", c->path,
                       tk->valueint, c->nexperts);
    MD_TRY(get_int(c->path, "num_experts_per_tok", y, 1, c->nexperts, &c->top_k, err));
    return read_loras(c, "", cJSON_GetObjectItemCaseSensitive(y, "loras"), &c->base_loras,
                      &c->nbase_loras, NULL, err);
}

/* The keys SegMoE fills in before saving its config. */
static md_status complete_yaml(md_merge_config *c, md_error *err)
{
    cJSON *y = c->yaml;
    cJSON_DeleteItemFromObjectCaseSensitive(y, "num_experts");
    cJSON_DeleteItemFromObjectCaseSensitive(y, "num_experts_per_tok");
    cJSON_DeleteItemFromObjectCaseSensitive(y, "moe_layers");
    if (!cJSON_AddNumberToObject(y, "num_experts", c->nexperts) ||
        !cJSON_AddNumberToObject(y, "num_experts_per_tok", c->top_k) ||
        !cJSON_AddStringToObject(y, "moe_layers", md_merge_layers_name(c->layers)))
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", c->path);
    return MD_OK;
}

md_status md_merge_config_parse(const char *path, const char *text, size_t len,
                                md_merge_config *out, md_error *err)
{
    memset(out, 0, sizeof *out);
    if (snprintf(out->path, sizeof out->path, "%s", path) >= (int)sizeof out->path)
        return md_fail(err, MD_ERR_INVALID, "%s: path too long", path);
    out->yaml = parse_yaml(path, text, len, err);
    if (!out->yaml)
        return err ? err->code : MD_ERR_INVALID;
    md_status s = check(out, err);
    if (s == MD_OK)
        s = complete_yaml(out, err);
    if (s != MD_OK)
        md_merge_config_free(out);
    return s;
}

md_status md_merge_config_read(const char *path, md_merge_config *out, md_error *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return md_fail(err, MD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = malloc(MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, MAX_FILE + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    if (bad || n > MAX_FILE) {
        free(buf);
        return md_fail(err, bad ? MD_ERR_IO : MD_ERR_INVALID,
                       bad ? "%s: read error" : "%s: larger than 1 MiB: not a merge config", path);
    }
    md_status s = md_merge_config_parse(path, buf, n, out, err);
    free(buf);
    return s;
}

void md_merge_config_free(md_merge_config *c)
{
    for (int i = 0; i < c->nexperts; i++) {
        free(c->experts[i].positive);
        free(c->experts[i].negative);
        free(c->experts[i].loras);
    }
    free(c->base_loras);
    cJSON_Delete(c->yaml);
    memset(c, 0, sizeof *c);
}

const char *md_merge_layers_name(md_merge_layers l)
{
    return l == MD_MERGE_LAYERS_FF ? "ff" : l == MD_MERGE_LAYERS_ALL ? "all" : "attn";
}
