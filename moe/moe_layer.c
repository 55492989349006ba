/* An MoE layer's forward pass. On backends with moe_routed (Vulkan) the
 * whole layer runs on the device: gate, top-k, grouping, grouped expert
 * GEMMs and the weighted sum, with no host readback. Otherwise the gate
 * logits are downloaded, the choice is made on the host (router.c) and
 * each chosen expert runs once over just its rows. */
#include <stdlib.h>
#include <string.h>

#include "../nn/nn.h"
#include "expert_cache.h"
#include "moe_internal.h"

md_moe_scratch *md_moe_scratch_new(void)
{
    return calloc(1, sizeof(md_moe_scratch));
}

void md_moe_scratch_free(md_moe_scratch *s)
{
    if (!s)
        return;
    md_route_plan_free(s->plan);
    free(s->logits);
    free(s->in_host);
    free(s->out_host);
    free(s->choice_host);
    free(s->bias);
    free(s->usage);
    free(s);
}

void md_moe_usage_of(const md_moe_scratch *s, md_moe_usage *out)
{
    *out = (md_moe_usage){.layer = s->usage_calls ? s->usage_layer : NULL,
                          .slots = s->usage,
                          .calls = s->usage_calls,
                          .rows = s->usage_rows,
                          .choices = s->usage_choices};
}

void md_moe_usage_reset(md_moe_scratch *s)
{
    if (s->usage)
        memset(s->usage, 0, sizeof *s->usage * (size_t)s->usage_n);
    s->usage_calls = s->usage_rows = s->usage_choices = 0;
}

/* Adds a plan's slots to the usage counts; a failed allocation leaves the
 * call uncounted rather than failing the generation. */
static void count_usage(md_moe_scratch *s, const md_moe_layer *l, md_routing mode,
                        const md_route_plan *plan)
{
    if (s->usage_n != l->num_experts) {
        int64_t *u = calloc((size_t)l->num_experts, sizeof *u);
        if (!u)
            return;
        free(s->usage);
        s->usage = u;
        s->usage_n = l->num_experts;
        s->usage_calls = s->usage_rows = s->usage_choices = 0;
    }
    s->usage_layer = l;
    for (int e = 0; e < l->num_experts && e < plan->num_experts; e++)
        s->usage[e] += plan->offset[e + 1] - plan->offset[e];
    s->usage_calls++;
    s->usage_rows += plan->rows;
    s->usage_choices += mode == MD_ROUTE_SEQUENCE_TOPK ? 1 : plan->rows;
}

/* The top-k and routing of one call: the layer's own with the options
 * applied. */
typedef struct moe_route {
    int k;
    md_routing mode;
    md_route_controls ctl; /* all zero: plain top-k, which a device may run */
    uint64_t budget;       /* expert memory budget, bytes; 0 = none */
} moe_route;

int md_moe_grow(float **buf, size_t *cap, size_t n)
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

/* out [n, out] = expert e over xin [n, in], its weights made resident (and
 * pinned while it runs) by the model's expert cache under the budget. */
static md_status run_expert(md_backend *be, const md_moe_layer *l, int e, uint64_t budget,
                            md_tensor *out, const md_tensor *xin, int64_t n, md_error *err)
{
    if (!l->cache)
        return expert_forward(be, l, &l->experts[e], out, xin, n, err);
    md_moe_expert use;
    MD_TRY(md_expert_cache_acquire(l->cache, l, e, budget, be, &use, err));
    md_status s = expert_forward(be, l, &use, out, xin, n, err);
    md_expert_cache_release(l->cache, l, e);
    return s;
}

/* y2 = the routed experts of `plan`, the shared one not included. */
static md_status experts_host(md_backend *be, const md_moe_layer *l, moe_route rt, md_tensor *y2,
                              const md_tensor *x2, int64_t rows, const md_route_plan *plan,
                              md_error *err)
{
    const int E = l->num_experts;
    /* One list of experts for every row (sequence mode): they run in that
     * order so the sum is formed in the same order as the reference;
     * otherwise in index order. */
    const int seq = plan->selected[0] >= 0;
    int order[16];
    int norder = 0;
    for (int i = 0; seq && i < rt.k && plan->selected[i] >= 0; i++)
        order[norder++] = plan->selected[i];

    be->fill(be, y2, 0.0f);
    for (int i = 0; seq ? i < norder : i < E; i++) {
        int e = seq ? order[i] : i;
        int64_t off = plan->offset[e], n = plan->offset[e + 1] - off;
        if (n == 0)
            continue; /* unchosen experts do no work */
        size_t mark = be->arena_mark(be);
        md_tensor out;
        MD_TRY(md_nn_tensor(be, &out, err, 2, (int64_t[]){n, l->out_dim}));
        if (n == rows) {
            /* Every row goes to this expert (always so in sequence mode), and
             * the plan lists rows in ascending order: no gather needed. */
            MD_TRY(run_expert(be, l, e, rt.budget, &out, x2, n, err));
            be->add_rows_weighted(be, y2, &out, plan->weight_of + off);
        } else {
            md_tensor xin;
            MD_TRY(md_nn_tensor(be, &xin, err, 2, (int64_t[]){n, l->in_dim}));
            be->gather_rows(be, &xin, x2, plan->rows_of + off, n);
            MD_TRY(run_expert(be, l, e, rt.budget, &out, &xin, n, err));
            be->scatter_add_rows(be, y2, &out, plan->rows_of + off, plan->weight_of + off, n);
        }
        be->arena_reset(be, mark);
    }
    return MD_OK;
}

static md_status add_shared(md_backend *be, const md_moe_layer *l, md_tensor *y2,
                            const md_tensor *x2, int64_t rows, md_error *err)
{
    if (!l->shared.w1)
        return MD_OK;
    md_tensor out;
    MD_TRY(md_nn_tensor(be, &out, err, 2, (int64_t[]){rows, l->out_dim}));
    MD_TRY(expert_forward(be, l, &l->shared, &out, x2, rows, err));
    be->add(be, y2, y2, &out);
    return MD_OK;
}

/* The whole layer on the device. With an observer the logits and the
 * device's choice are read back afterwards and the plan is made on the
 * host from the same logits; should the two choices differ (a sequence-
 * mode near-tie that the device's and the host's sums round apart), the
 * experts run again with the host's plan so that the trace matches y2. */
static md_status device_run(md_backend *be, const md_moe_layer *l, md_moe_scratch *sc,
                            moe_route rt, md_tensor *y2, const md_tensor *x2, md_tensor *logits,
                            int64_t rows, int observed, md_error *err)
{
    const int k = rt.k;
    md_tensor choice;
    MD_TRY(md_nn_tensor(be, &choice, err, 2, (int64_t[]){rows, k}));
    md_moe_routed m = {.token_topk = rt.mode == MD_ROUTE_TOKEN_TOPK,
                       .top_k = k,
                       .gate = l->gate,
                       .w1 = &l->stack_w1,
                       .b1 = l->stack_b1.data ? &l->stack_b1 : NULL,
                       .w2 = l->stack_w2.data ? &l->stack_w2 : NULL,
                       .b2 = l->stack_b2.data ? &l->stack_b2 : NULL};
    be->moe_routed(be, y2, logits, &choice, x2, &m);
    if (observed) {
        size_t n = (size_t)rows * (size_t)k;
        if (md_moe_grow(&sc->choice_host, &sc->choice_cap, n) != 0)
            return md_fail(err, MD_ERR_NOMEM, "MoE %s: out of memory for the trace", l->name);
        be->download(be, logits, sc->logits);
        be->download(be, &choice, sc->choice_host);
        md_router_plan(sc->plan, rt.mode, sc->logits, rows);
        int same = 1;
        for (size_t i = 0; i < n && same; i++)
            same = sc->plan->choice[i] == (int32_t)sc->choice_host[i];
        if (!same)
            MD_TRY(experts_host(be, l, rt, y2, x2, rows, sc->plan, err));
    }
    return add_shared(be, l, y2, x2, rows, err);
}

static int popcount64(uint64_t v)
{
    int n = 0;
    for (; v; v &= v - 1)
        n++;
    return n;
}

/* Offers the call to the router override (its logits then biased in
 * sc->logits) and takes the routing it wants. */
static md_status offer_override(md_moe_scratch *sc, const md_moe_layer *l,
                                const md_moe_options *opt, moe_route *rt, int64_t rows,
                                md_error *err)
{
    const int seq = rt->mode == MD_ROUTE_SEQUENCE_TOPK;
    md_moe_routing_choice r = !seq           ? MD_MOE_ROUTING_TOKEN
                              : rt->ctl.split ? MD_MOE_ROUTING_SEQUENCE_SPLIT
                                              : MD_MOE_ROUTING_SEQUENCE;
    MD_TRY(md_moe_override_apply(sc, l, opt, rt->k, rows, md_route_groups(&rt->ctl, rows),
                                 sc->logits, &r, err));
    rt->mode = r == MD_MOE_ROUTING_TOKEN ? MD_ROUTE_TOKEN_TOPK : MD_ROUTE_SEQUENCE_TOPK;
    rt->ctl.split = r == MD_MOE_ROUTING_SEQUENCE_SPLIT && md_route_groups(&rt->ctl, rows) > 1;
    if (r != MD_MOE_ROUTING_TOKEN) {
        rt->ctl.capacity = 0.0f; /* a token-routing control */
        if (rt->ctl.pinned)      /* sequence routing takes exactly the pinned set */
            rt->k = popcount64(rt->ctl.pinned);
    }
    if (md_route_plan_set_k(sc->plan, rt->k) != 0)
        return md_fail(err, MD_ERR_NOMEM, "MoE %s: out of memory for top-%d", l->name, rt->k);
    return MD_OK;
}

static md_status moe_run(md_backend *be, const md_moe_layer *l, md_moe_scratch *sc, moe_route rt,
                         const md_moe_options *opt, md_tensor *y2, const md_tensor *x2,
                         int64_t rows, md_moe_observer observer, void *observer_user,
                         md_error *err)
{
    const int E = l->num_experts;

    md_tensor logits;
    MD_TRY(md_nn_tensor(be, &logits, err, 2, (int64_t[]){rows, E}));
    /* A replayed route is not offered: its experts are given, not chosen. */
    const int offered = opt && opt->override && !rt.ctl.forced;
    /* The device runs plain top-k only; the controls and an override route
     * on the host. */
    const int on_device = be->moe_routed && l->device_routed &&
                          !md_route_controls_active(&rt.ctl) && !offered;
    /* The host's copy of the logits and its plan: needed to route on the
     * host, or to trace; a device-routed layer without an observer has none.
     * The plan is made by the first such call and regrown only when rows or
     * k exceed what it holds. */
    if (!on_device || observer) {
        if (!sc->plan)
            sc->plan = md_route_plan_new(E, rt.k, rows);
        if (!sc->plan || md_route_plan_set_k(sc->plan, rt.k) != 0 ||
            md_moe_grow(&sc->logits, &sc->logits_cap, (size_t)rows * (size_t)E) != 0 ||
            md_route_plan_reserve(sc->plan, rows) != 0)
            return md_fail(err, MD_ERR_NOMEM, "MoE %s: out of memory for %lld rows", l->name,
                           (long long)rows);
    }
    md_route_plan *plan = sc->plan;
    if (on_device) {
        MD_TRY(device_run(be, l, sc, rt, y2, x2, &logits, rows, observer != NULL, err));
    } else {
        /* Routing changes little from one step to the next: the experts
         * the previous call used load (on a device cache) while the gate
         * runs. */
        if (l->cache && sc->last_experts)
            md_expert_cache_prefetch(l->cache, l, sc->last_experts, rt.budget, be);
        /* Gate logits stay f32 and go to the host: the choice is made there
         * so every backend picks the same experts. */
        be->linear(be, &logits, x2, l->gate, NULL);
        be->download(be, &logits, sc->logits);
        if (offered)
            MD_TRY(offer_override(sc, l, opt, &rt, rows, err));
        if (md_router_plan_controlled(plan, rt.mode, &rt.ctl, sc->logits, rows) != 0)
            return md_fail(err, MD_ERR_NOMEM, "MoE %s: out of memory routing %lld rows", l->name,
                           (long long)rows);
        MD_TRY(experts_host(be, l, rt, y2, x2, rows, plan, err));
        MD_TRY(add_shared(be, l, y2, x2, rows, err));
        sc->last_experts = 0;
        for (int e = 0; e < E && e < 64; e++)
            if (plan->offset[e + 1] > plan->offset[e])
                sc->last_experts |= (uint64_t)1 << e;
    }

    if (!on_device || observer)
        count_usage(sc, l, rt.mode, plan);
    if (observer) {
        if (md_moe_grow(&sc->in_host, &sc->in_cap, (size_t)rows * (size_t)l->in_dim) != 0 ||
            md_moe_grow(&sc->out_host, &sc->out_cap, (size_t)rows * (size_t)l->out_dim) != 0)
            return md_fail(err, MD_ERR_NOMEM, "MoE %s: out of memory for the trace", l->name);
        be->download(be, x2, sc->in_host);
        be->download(be, y2, sc->out_host);
        /* The trace names the call's row groups even when the choice ignored them. */
        plan->groups = md_route_groups(&rt.ctl, rows);
        md_moe_trace tr = {.layer = l,
                           .routing = rt.mode,
                           .split = rt.ctl.split,
                           .rows = rows,
                           .input = sc->in_host,
                           .router_logits = sc->logits,
                           .plan = plan,
                           .output = sc->out_host};
        observer(observer_user, &tr);
    }
    return MD_OK;
}

/* A replayed route for this call: its mode, k and choices, checked against
 * the call's rows. */
static md_status replay_route(const md_moe_layer *layer, const md_moe_options *opt, int64_t rows,
                              moe_route *rt, md_error *err)
{
    const md_moe_route_entry *en = md_moe_routes_at(opt->routes, opt->step, layer->index);
    if (!en)
        return md_fail(err, MD_ERR_INVALID, "MoE %s: the routes have no entry for step %d",
                       layer->name, opt->step);
    int groups = opt->groups > 1 ? opt->groups : 1;
    if (en->token ? en->n != rows : (en->n != groups || rows % groups != 0))
        return md_fail(err, MD_ERR_INVALID,
                       "MoE %s: the routes hold %lld %s at step %d, the call has %lld %s",
                       layer->name, (long long)en->n, en->token ? "rows" : "row groups",
                       opt->step, en->token ? (long long)rows : (long long)groups,
                       en->token ? "rows" : "row groups (is guidance on as when recorded?)");
    rt->mode = en->token ? MD_ROUTE_TOKEN_TOPK : MD_ROUTE_SEQUENCE_TOPK;
    rt->k = en->k;
    rt->ctl = (md_route_controls){.groups = groups, .forced = en->experts};
    return MD_OK;
}

/* The call's routing: the layer's own with the options applied. */
static md_status route_of(const md_moe_layer *layer, const md_moe_options *opt, int64_t rows,
                          moe_route *rt, md_error *err)
{
    *rt = (moe_route){.k = layer->top_k, .mode = layer->routing};
    if (!opt)
        return MD_OK;
    rt->budget = opt->expert_budget;
    if (opt->top_k != 0)
        rt->k = opt->top_k;
    if (opt->routing == MD_MOE_ROUTING_SEQUENCE || opt->routing == MD_MOE_ROUTING_SEQUENCE_SPLIT)
        rt->mode = MD_ROUTE_SEQUENCE_TOPK;
    else if (opt->routing == MD_MOE_ROUTING_TOKEN)
        rt->mode = MD_ROUTE_TOKEN_TOPK;
    else if (opt->routing != MD_MOE_ROUTING_LAYER)
        return md_fail(err, MD_ERR_INVALID, "MoE %s: unknown routing choice %d", layer->name,
                       (int)opt->routing);
    if (opt->routes)
        return replay_route(layer, opt, rows, rt, err);
    int seq = rt->mode == MD_ROUTE_SEQUENCE_TOPK;
    rt->ctl.groups = opt->groups;
    rt->ctl.split = seq && opt->routing == MD_MOE_ROUTING_SEQUENCE_SPLIT && opt->groups > 1;
    rt->ctl.capacity = seq ? 0.0f : opt->capacity; /* capacity is a token-routing control */
    rt->ctl.skip = opt->skip;
    if (opt->pinned) {
        uint64_t all = layer->num_experts >= 64 ? ~(uint64_t)0
                                                : ((uint64_t)1 << layer->num_experts) - 1;
        int n = popcount64(opt->pinned & all);
        if (n == 0 || (opt->pinned & ~all))
            return md_fail(err, MD_ERR_INVALID,
                           "MoE %s: pinned experts must be 0..%d (the layer has %d)", layer->name,
                           layer->num_experts - 1, layer->num_experts);
        rt->ctl.pinned = opt->pinned;
        /* Sequence: exactly the pinned set; token: top-k among it. */
        rt->k = seq || rt->k > n ? n : rt->k;
    }
    return MD_OK;
}

md_status md_moe_forward(md_backend *be, const md_moe_layer *layer, md_moe_scratch *scratch,
                         const md_moe_options *opt, md_tensor *y, const md_tensor *x,
                         md_moe_observer observer, void *observer_user, md_error *err)
{
    int64_t xn = md_tensor_numel(x), yn = md_tensor_numel(y);
    moe_route rt;
    MD_TRY(route_of(layer, opt, xn / (layer->in_dim > 0 ? layer->in_dim : 1), &rt, err));
    if (rt.k < 1 || rt.k > layer->num_experts || rt.k > 16)
        return md_fail(err, MD_ERR_INVALID,
                       "MoE %s: top-k %d is out of range (1..%d: the layer's %d experts, at most "
                       "16)",
                       layer->name, rt.k, layer->num_experts < 16 ? layer->num_experts : 16,
                       layer->num_experts);
    if (!scratch)
        return md_fail(err, MD_ERR_INVALID, "MoE %s: no scratch given", layer->name);
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
    md_status s =
        moe_run(be, layer, scratch, rt, opt, &y2, &x2, rows, observer, observer_user, err);
    be->arena_reset(be, mark);
    return s;
}
