#include "ldm_yaml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Follows a dotted path of mapping keys from node; NULL when absent. */
static yaml_node_t *lookup(yaml_document_t *doc, yaml_node_t *node, const char *dotted)
{
    char key[64];
    while (node && *dotted) {
        size_t n = strcspn(dotted, ".");
        if (n >= sizeof key || node->type != YAML_MAPPING_NODE)
            return NULL;
        memcpy(key, dotted, n);
        key[n] = '\0';
        dotted += n + (dotted[n] == '.');
        yaml_node_t *next = NULL;
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
             p < node->data.mapping.pairs.top && !next; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == n &&
                !memcmp(k->data.scalar.value, key, n))
                next = yaml_document_get_node(doc, p->value);
        }
        node = next;
    }
    return node;
}

static const char *scalar(yaml_node_t *n)
{
    return (n && n->type == YAML_SCALAR_NODE) ? (const char *)n->data.scalar.value : NULL;
}

static int parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end)
        return 0;
    *out = v;
    return 1;
}

static int parse_bool(const char *s, int *out)
{
    if (!s)
        return 0;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
        *out = 1;
        return 1;
    }
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
        *out = 0;
        return 1;
    }
    return 0;
}

/* A numeric setting; absent is fine, anything else but a number is not. */
static md_status number_at(yaml_document_t *doc, yaml_node_t *base, const char *key,
                           const char *path, int *found, double *v, md_error *err)
{
    yaml_node_t *n = lookup(doc, base, key);
    *found = 0;
    if (!n)
        return MD_OK;
    if (!parse_double(scalar(n), v))
        return md_fail(err, MD_ERR_FORMAT, "%s: '%s' is not a number", path, key);
    *found = 1;
    return MD_OK;
}

/* An integer setting: number_at, and inside int's range (converting a
 * double beyond it is undefined). Fractions are truncated, as before. */
static md_status int_at(yaml_document_t *doc, yaml_node_t *base, const char *key,
                        const char *path, int *found, int *v, md_error *err)
{
    double d = 0;
    md_status s = number_at(doc, base, key, path, found, &d, err);
    if (s != MD_OK || !*found)
        return s;
    if (!(d > -2147483649.0 && d < 2147483648.0))
        return md_fail(err, MD_ERR_FORMAT, "%s: '%s' is out of range (%g)", path, key, d);
    *v = (int)d;
    return MD_OK;
}

static md_status read_doc(yaml_document_t *doc, const char *path, md_ldm_yaml *y, md_error *err)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);
    yaml_node_t *params = lookup(doc, root, "model.params");
    if (!params)
        return md_fail(err, MD_ERR_FORMAT, "%s: no model.params section (not an LDM/SGM config)",
                       path);
    const char *param = scalar(lookup(doc, params, "parameterization"));
    if (param) {
        y->has_prediction = 1;
        if (!strcmp(param, "v"))
            y->prediction = MD_PRED_V;
        else if (!strcmp(param, "eps"))
            y->prediction = MD_PRED_EPSILON;
        else if (!strcmp(param, "x0"))
            y->prediction = MD_PRED_SAMPLE;
        else
            return md_fail(err, MD_ERR_UNSUPPORTED, "%s: parameterization '%s' is not supported",
                           path, param);
    }
    const char *scaling = scalar(lookup(doc, params, "denoiser_config.params.scaling_config.target"));
    if (scaling) {
        y->has_prediction = 1;
        y->prediction = strstr(scaling, "VScaling") ? MD_PRED_V : MD_PRED_EPSILON;
    }
    int f1, f2;
    double a, b;
    md_status s;
    if ((s = number_at(doc, params, "linear_start", path, &f1, &a, err)) != MD_OK ||
        (s = number_at(doc, params, "linear_end", path, &f2, &b, err)) != MD_OK)
        return s;
    if (f1 != f2)
        return md_fail(err, MD_ERR_FORMAT, "%s: linear_start and linear_end must come together",
                       path);
    if (f1) {
        y->has_betas = 1;
        y->beta_start = (float)a;
        y->beta_end = (float)b;
    }
    if ((s = int_at(doc, params, "timesteps", path, &f1, &y->num_train_timesteps, err)) != MD_OK)
        return s;
    if ((s = number_at(doc, params, "scale_factor", path, &f1, &a, err)) != MD_OK)
        return s;
    if (f1)
        y->scale_factor = (float)a;

    yaml_node_t *unet = lookup(doc, params, "unet_config.params");
    if (!unet)
        unet = lookup(doc, params, "network_config.params");
    if ((s = int_at(doc, unet, "num_head_channels", path, &f1, &y->num_head_channels, err)) != MD_OK)
        return s;
    if ((s = int_at(doc, unet, "num_heads", path, &f1, &y->num_heads, err)) != MD_OK)
        return s;
    if ((s = int_at(doc, unet, "context_dim", path, &f1, &y->context_dim, err)) != MD_OK)
        return s;
    yaml_node_t *lin = lookup(doc, unet, "use_linear_in_transformer");
    if (lin && !parse_bool(scalar(lin), &y->use_linear_in_transformer))
        return md_fail(err, MD_ERR_FORMAT, "%s: use_linear_in_transformer is not a boolean", path);
    return MD_OK;
}

md_status md_ldm_yaml_read(const char *path, md_ldm_yaml *y, md_error *err)
{
    memset(y, 0, sizeof *y);
    y->use_linear_in_transformer = -1;
    FILE *f = fopen(path, "rb");
    if (!f)
        return md_fail(err, MD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    }
    yaml_parser_set_input_file(&parser, f);
    md_status s;
    if (!yaml_parser_load(&parser, &doc)) {
        s = md_fail(err, MD_ERR_FORMAT, "%s: invalid YAML at line %lu: %s", path,
                    (unsigned long)parser.problem_mark.line + 1,
                    parser.problem ? parser.problem : "parse error");
    } else {
        s = read_doc(&doc, path, y, err);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return s;
}

md_status md_ldm_yaml_apply(const md_ldm_yaml *y, const char *path, md_unet_config *u,
                            md_vae_config *v, md_sched_config *s, md_error *err)
{
    if (y->has_prediction)
        s->prediction_type = y->prediction;
    if (y->has_betas) {
        s->beta_start = y->beta_start;
        s->beta_end = y->beta_end;
    }
    if (y->num_train_timesteps > 0)
        s->num_train_timesteps = y->num_train_timesteps;
    if (y->scale_factor > 0.0f)
        v->scaling_factor = y->scale_factor;
    for (int l = 0; l < u->levels; l++) {
        if (y->num_head_channels > 0) {
            if (u->block_out_channels[l] % y->num_head_channels != 0)
                return md_fail(err, MD_ERR_INVALID,
                               "%s: num_head_channels %d does not divide %d channels", path,
                               y->num_head_channels, u->block_out_channels[l]);
            u->heads[l] = u->block_out_channels[l] / y->num_head_channels;
        } else if (y->num_heads > 0) {
            u->heads[l] = y->num_heads;
        }
    }
    if (y->use_linear_in_transformer >= 0)
        u->use_linear_projection = y->use_linear_in_transformer;
    if (y->context_dim > 0)
        u->cross_attention_dim = y->context_dim;
    return MD_OK;
}
