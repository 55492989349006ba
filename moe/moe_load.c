/* Loading an MoE layer: the gate and the experts' weights, prepared for
 * the backend one by one, or, on backends that route on the device, as
 * stacks [E, ...] that one grouped GEMM can read (moe_layer.c runs it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/nn.h"
#include "moe_internal.h"

/* `prefix`.`suffix` with its shape checked; prepared at once unless `defer`
 * (expert weights that go into stacks are prepared together later). */
static md_status expert_weight(md_tensor **out, md_weights *w, md_backend *be, md_error *err,
                               int defer, int optional, int ndim, const int64_t *shape,
                               const char *prefix, const char *suffix)
{
    char name[256];
    MD_TRY(md_nn_name(name, sizeof(name), err, "%s.%s", prefix, suffix));
    *out = NULL;
    if (optional && !md_weights_find(w, name))
        return MD_OK;
    MD_TRY(md_weights_get(w, name, ndim, shape, out, err));
    if (defer)
        return MD_OK;
    if (be->prepare_weight(be, *out, err) != MD_OK)
        return md_fail_context(err, "%s: preparing %s: ", md_weights_label(w), name);
    return MD_OK;
}

static md_status load_expert(md_moe_expert *x, const md_moe_layer *l, md_weights *w, md_backend *be,
                             md_error *err, const char *prefix, int defer)
{
    memset(x, 0, sizeof(*x));
    if (l->kind == MD_MOE_LINEAR) {
        MD_TRY(expert_weight(&x->w1, w, be, err, defer, 0, 2, (int64_t[]){l->out_dim, l->in_dim},
                             prefix, "weight"));
        return expert_weight(&x->b1, w, be, err, defer, 1, 1, (int64_t[]){l->out_dim}, prefix,
                             "bias");
    }
    int64_t n1 = 2 * (int64_t)l->inner_dim;
    MD_TRY(expert_weight(&x->w1, w, be, err, defer, 0, 2, (int64_t[]){n1, l->in_dim}, prefix,
                         "net.0.proj.weight"));
    MD_TRY(expert_weight(&x->b1, w, be, err, defer, 0, 1, (int64_t[]){n1}, prefix,
                         "net.0.proj.bias"));
    MD_TRY(expert_weight(&x->w2, w, be, err, defer, 0, 2, (int64_t[]){l->out_dim, l->inner_dim},
                         prefix, "net.2.weight"));
    return expert_weight(&x->b2, w, be, err, defer, 0, 1, (int64_t[]){l->out_dim}, prefix,
                         "net.2.bias");
}

static md_tensor **expert_slot(md_moe_expert *x, int j)
{
    return j == 0 ? &x->w1 : j == 1 ? &x->b1 : j == 2 ? &x->w2 : &x->b2;
}

/* Prepares the experts' weights (loaded with defer): as stacks when the
 * backend routes on the device and every stack can be made, else one by
 * one (the layer then routes on the host; stacks made already stay valid
 * as ordinary weights). */
static md_status prepare_experts(md_moe_layer *l, md_backend *be, int stacked, md_error *err)
{
    const int E = l->num_experts;
    const int64_t n1 = l->kind == MD_MOE_LINEAR ? l->out_dim : 2 * (int64_t)l->inner_dim;
    const int64_t shapes[4][3] = {{E, n1, l->in_dim}, {E, n1, 0}, {E, l->out_dim, l->inner_dim},
                                  {E, l->out_dim, 0}};
    md_tensor *stacks[4] = {&l->stack_w1, &l->stack_b1, &l->stack_w2, &l->stack_b2};
    md_tensor **ts = calloc((size_t)E, sizeof(*ts));
    if (!ts)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", l->name);
    md_status s = MD_OK;
    for (int j = 0; j < 4 && s == MD_OK; j++) {
        int present = 0;
        for (int e = 0; e < E; e++)
            present += (ts[e] = *expert_slot(&l->experts[e], j)) != NULL;
        if (present == 0)
            continue;
        if (stacked && present == E) {
            md_tensor st = {.dtype = ts[0]->dtype, .ndim = shapes[j][2] ? 3 : 2};
            md_error serr = {0};
            s = be->prepare_weight_stack(be, ts, E, &serr);
            if (s == MD_OK) {
                memcpy(st.shape, shapes[j], sizeof(shapes[j]));
                st.data = ts[0]->data;
                *stacks[j] = st;
                continue;
            }
            if (s != MD_ERR_UNSUPPORTED) {
                *err = serr;
                break;
            }
            s = MD_OK;
        }
        stacked = 0; /* too large for one binding, mixed dtypes, a bias on some experts */
        for (int e = 0; e < E && s == MD_OK; e++)
            if (ts[e] && (s = be->prepare_weight(be, ts[e], err)) != MD_OK)
                md_fail_context(err, "%s: preparing expert %d: ", l->name, e);
    }
    free(ts);
    l->device_routed = s == MD_OK && stacked;
    if (!l->device_routed)
        for (int j = 0; j < 4; j++)
            memset(stacks[j], 0, sizeof(*stacks[j]));
    return s;
}

static md_status layer_load(md_moe_layer *l, md_moe_kind kind, const md_moe_config *cfg,
                            md_weights *w, const char *prefix, int in_dim, int out_dim,
                            md_backend *be, md_error *err)
{
    const char *label = md_weights_label(w);
    if (strlen(prefix) >= sizeof(l->name))
        return md_fail(err, MD_ERR_INVALID, "%s: MoE module path too long: %s", label, prefix);
    snprintf(l->name, sizeof(l->name), "%s", prefix);
    l->kind = kind;
    l->routing = cfg->routing;
    l->num_experts = cfg->num_experts;
    l->top_k = cfg->top_k;
    l->in_dim = in_dim;
    l->out_dim = out_dim;
    if (cfg->num_experts < 1 || cfg->top_k < 1 || cfg->top_k > cfg->num_experts || cfg->top_k > 16)
        return md_fail(err, MD_ERR_INVALID,
                       "%s: %s: MoE needs 1 <= num_experts_per_tok <= num_experts and <= 16 "
                       "(got %d of %d)",
                       label, prefix, cfg->top_k, cfg->num_experts);
    if (cfg->routing != MD_ROUTE_SEQUENCE_TOPK && cfg->routing != MD_ROUTE_TOKEN_TOPK)
        return md_fail(err, MD_ERR_INVALID, "%s: %s: unknown routing mode %d", label, prefix,
                       (int)cfg->routing);

    if (kind == MD_MOE_GEGLU_FF) {
        /* The GEGLU width is taken from expert 0 and then checked on all. */
        char name[256];
        MD_TRY(md_nn_name(name, sizeof(name), err, "%s.experts.0.net.0.proj.weight", prefix));
        const md_tensor *t = md_weights_find(w, name);
        if (!t)
            return md_fail(err, MD_ERR_FORMAT, "%s: missing weight %s", label, name);
        if (t->ndim < 2 || t->shape[0] % 2 != 0 || t->shape[0] < 2)
            return md_fail(err, MD_ERR_FORMAT, "%s: %s has an unexpected shape", label, name);
        l->inner_dim = (int)(t->shape[0] / 2);
    }

    MD_TRY(md_nn_weight(&l->gate, w, be, err, 2, (int64_t[]){l->num_experts, in_dim},
                        "%s.gate.weight", prefix));
    l->experts = calloc((size_t)l->num_experts, sizeof(*l->experts));
    if (!l->experts)
        return md_fail(err, MD_ERR_NOMEM, "%s: %s: out of memory", label, prefix);
    /* Backends that route on the device get the experts' weights as
     * stacks; the others prepare them one by one as they load. */
    int stacked = be->prepare_weight_stack != NULL && be->moe_routed != NULL;
    /* Deferred: the expert cache loads them onto the device when used. */
    int defer = stacked || cfg->defer_experts;
    for (int e = 0; e < l->num_experts; e++) {
        char p[224];
        MD_TRY(md_nn_name(p, sizeof(p), err, "%s.experts.%d", prefix, e));
        MD_TRY(load_expert(&l->experts[e], l, w, be, err, p, defer));
    }
    if (stacked && !cfg->defer_experts)
        MD_TRY(prepare_experts(l, be, stacked, err));
    if (cfg->shared_expert) {
        char p[224];
        MD_TRY(md_nn_name(p, sizeof(p), err, "%s.shared_expert", prefix));
        MD_TRY(load_expert(&l->shared, l, w, be, err, p, 0));
    }
    return MD_OK;
}

md_status md_moe_layer_load(md_moe_layer *layer, md_moe_kind kind, const md_moe_config *cfg,
                            md_weights *w, const char *prefix, int in_dim, int out_dim,
                            md_backend *be, md_error *err)
{
    memset(layer, 0, sizeof(*layer));
    md_status s = layer_load(layer, kind, cfg, w, prefix, in_dim, out_dim, be, err);
    if (s != MD_OK)
        md_moe_layer_free(layer);
    return s;
}

void md_moe_layer_free(md_moe_layer *layer)
{
    if (!layer)
        return;
    free(layer->experts);
    memset(layer, 0, sizeof(*layer));
}
