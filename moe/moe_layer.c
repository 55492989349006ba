/* An MoE layer: gate logits on the backend, expert choice on the host
 * (router.c), then each chosen expert runs once over just its rows. */
#include "moe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unet/nn_util.h"

struct md_moe_scratch {
    md_route_plan *plan;
    float *logits;
    size_t logits_cap; /* floats */
    float *in_host, *out_host;
    size_t in_cap, out_cap;
};

static md_status load_expert(md_moe_expert *x, const md_moe_layer *l, md_weights *w, md_backend *be,
                             md_error *err, const char *prefix)
{
    memset(x, 0, sizeof(*x));
    if (l->kind == MD_MOE_LINEAR) {
        MD_TRY(md_nn_weight(&x->w1, w, be, err, 2, (int64_t[]){l->out_dim, l->in_dim}, "%s.weight",
                            prefix));
        MD_TRY(md_nn_weight_opt(&x->b1, w, be, err, 1, (int64_t[]){l->out_dim}, "%s.bias", prefix));
        return MD_OK;
    }
    MD_TRY(md_nn_weight(&x->w1, w, be, err, 2, (int64_t[]){2 * (int64_t)l->inner_dim, l->in_dim},
                        "%s.net.0.proj.weight", prefix));
    MD_TRY(md_nn_weight(&x->b1, w, be, err, 1, (int64_t[]){2 * (int64_t)l->inner_dim},
                        "%s.net.0.proj.bias", prefix));
    MD_TRY(md_nn_weight(&x->w2, w, be, err, 2, (int64_t[]){l->out_dim, l->inner_dim},
                        "%s.net.2.weight", prefix));
    MD_TRY(md_nn_weight(&x->b2, w, be, err, 1, (int64_t[]){l->out_dim}, "%s.net.2.bias", prefix));
    return MD_OK;
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
    l->scratch = calloc(1, sizeof(*l->scratch));
    if (!l->experts || !l->scratch)
        return md_fail(err, MD_ERR_NOMEM, "%s: %s: out of memory", label, prefix);
    l->scratch->plan = md_route_plan_new(l->num_experts, l->top_k, 1);
    if (!l->scratch->plan)
        return md_fail(err, MD_ERR_NOMEM, "%s: %s: out of memory", label, prefix);
    for (int e = 0; e < l->num_experts; e++) {
        char p[224];
        MD_TRY(md_nn_name(p, sizeof(p), err, "%s.experts.%d", prefix, e));
        MD_TRY(load_expert(&l->experts[e], l, w, be, err, p));
    }
    if (cfg->shared_expert) {
        char p[224];
        MD_TRY(md_nn_name(p, sizeof(p), err, "%s.shared_expert", prefix));
        MD_TRY(load_expert(&l->shared, l, w, be, err, p));
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
    if (layer->scratch) {
        md_route_plan_free(layer->scratch->plan);
        free(layer->scratch->logits);
        free(layer->scratch->in_host);
        free(layer->scratch->out_host);
        free(layer->scratch);
    }
    memset(layer, 0, sizeof(*layer));
}

/* Grows a host buffer to hold n floats; keeps it when large enough. */
static int grow(float **buf, size_t *cap, size_t n)
{
    if (n <= *cap)
        return 0;
    float *p = realloc(*buf, n * sizeof(float));
    if (!p)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

/* y [n, out] = expert(x [n, in]). */
static md_status expert_forward(md_backend *be, const md_moe_layer *l, const md_moe_expert *ex,
                                md_tensor *y, const md_tensor *x, int64_t n, md_error *err)
{
    if (l->kind == MD_MOE_LINEAR) {
        be->linear(be, y, x, ex->w1, ex->b1);
        return MD_OK;
    }
    md_tensor h, g;
    MD_TRY(md_nn_tensor(be, &h, err, 2, (int64_t[]){n, 2 * (int64_t)l->inner_dim}));
    MD_TRY(md_nn_tensor(be, &g, err, 2, (int64_t[]){n, l->inner_dim}));
    be->linear(be, &h, x, ex->w1, ex->b1);
    be->geglu(be, &g, &h);
    be->linear(be, y, &g, ex->w2, ex->b2);
    return MD_OK;
}

static md_status moe_run(md_backend *be, const md_moe_layer *l, md_tensor *y2, const md_tensor *x2,
                         int64_t rows, md_moe_observer observer, void *observer_user, md_error *err)
{
    md_moe_scratch *sc = l->scratch;
    const int E = l->num_experts;

    /* Gate logits stay f32 and go to the host: the choice is made there so
     * every backend picks the same experts. */
    md_tensor logits;
    MD_TRY(md_nn_tensor(be, &logits, err, 2, (int64_t[]){rows, E}));
    be->linear(be, &logits, x2, l->gate, NULL);
    if (grow(&sc->logits, &sc->logits_cap, (size_t)rows * (size_t)E) != 0 ||
        md_route_plan_reserve(sc->plan, rows) != 0)
        return md_fail(err, MD_ERR_NOMEM, "MoE %s: out of memory for %lld rows", l->name,
                       (long long)rows);
    be->download(be, &logits, sc->logits);
    md_route_plan *plan = sc->plan;
    md_router_plan(plan, l->routing, sc->logits, rows);

    /* Sequence mode runs the experts in top-k order so the sum is formed in
     * the same order as the reference; token mode in index order. */
    int order[16];
    int norder = 0;
    if (l->routing == MD_ROUTE_SEQUENCE_TOPK) {
        for (int i = 0; i < l->top_k; i++)
            order[norder++] = plan->selected[i];
    }

    be->fill(be, y2, 0.0f);
    for (int i = 0; l->routing == MD_ROUTE_SEQUENCE_TOPK ? i < norder : i < E; i++) {
        int e = l->routing == MD_ROUTE_SEQUENCE_TOPK ? order[i] : i;
        int64_t off = plan->offset[e], n = plan->offset[e + 1] - off;
        if (n == 0)
            continue; /* unchosen experts do no work */
        size_t mark = be->arena_mark(be);
        md_tensor out;
        MD_TRY(md_nn_tensor(be, &out, err, 2, (int64_t[]){n, l->out_dim}));
        if (n == rows) {
            /* Every row goes to this expert (always so in sequence mode), and
             * the plan lists rows in ascending order: no gather needed. */
            MD_TRY(expert_forward(be, l, &l->experts[e], &out, x2, n, err));
            be->add_rows_weighted(be, y2, &out, plan->weight_of + off);
        } else {
            md_tensor xin;
            MD_TRY(md_nn_tensor(be, &xin, err, 2, (int64_t[]){n, l->in_dim}));
            be->gather_rows(be, &xin, x2, plan->rows_of + off, n);
            MD_TRY(expert_forward(be, l, &l->experts[e], &out, &xin, n, err));
            be->scatter_add_rows(be, y2, &out, plan->rows_of + off, plan->weight_of + off, n);
        }
        be->arena_reset(be, mark);
    }
    if (l->shared.w1) {
        md_tensor out;
        MD_TRY(md_nn_tensor(be, &out, err, 2, (int64_t[]){rows, l->out_dim}));
        MD_TRY(expert_forward(be, l, &l->shared, &out, x2, rows, err));
        be->add(be, y2, y2, &out);
    }

    if (observer) {
        if (grow(&sc->in_host, &sc->in_cap, (size_t)rows * (size_t)l->in_dim) != 0 ||
            grow(&sc->out_host, &sc->out_cap, (size_t)rows * (size_t)l->out_dim) != 0)
            return md_fail(err, MD_ERR_NOMEM, "MoE %s: out of memory for the trace", l->name);
        be->download(be, x2, sc->in_host);
        be->download(be, y2, sc->out_host);
        md_moe_trace tr = {.layer = l,
                           .rows = rows,
                           .input = sc->in_host,
                           .router_logits = sc->logits,
                           .plan = plan,
                           .output = sc->out_host};
        observer(observer_user, &tr);
    }
    return MD_OK;
}

md_status md_moe_forward(md_backend *be, const md_moe_layer *layer, md_tensor *y,
                         const md_tensor *x, md_moe_observer observer, void *observer_user,
                         md_error *err)
{
    int64_t xn = md_tensor_numel(x), yn = md_tensor_numel(y);
    if (x->shape[x->ndim - 1] != layer->in_dim || y->shape[y->ndim - 1] != layer->out_dim ||
        xn / layer->in_dim != yn / layer->out_dim)
        return md_fail(err, MD_ERR_INVALID, "MoE %s: input/output shapes do not match %d -> %d",
                       layer->name, layer->in_dim, layer->out_dim);
    int64_t rows = xn / layer->in_dim;
    if (rows > INT32_MAX)
        return md_fail(err, MD_ERR_UNSUPPORTED, "MoE %s: too many rows (%lld)", layer->name,
                       (long long)rows);
    if (rows == 0)
        return MD_OK;
    md_tensor x2 = md_nn_view(x, 2, (int64_t[]){rows, layer->in_dim});
    md_tensor y2 = md_nn_view(y, 2, (int64_t[]){rows, layer->out_dim});
    size_t mark = be->arena_mark(be);
    md_status s = moe_run(be, layer, &y2, &x2, rows, observer, observer_user, err);
    be->arena_reset(be, mark);
    return s;
}
