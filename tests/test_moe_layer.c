/* md_moe_forward against a host reference, for both routing modes, k = 1
 * and 2, linear and GEGLU experts, with and without a shared expert; also
 * checks that only chosen experts run (rows through expert GEMMs = rows*k),
 * that the observer sees the plan, that the usage counts add up (routing
 * health), that the arena is given back, and the router override hook. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/weights.h"
#include "moe/moe.h"
#include "test_support.h"

/* Uniform in [-1, 1). */
static float frand(md_test_rng *rng)
{
    return (float)(md_test_uniform(rng) * 2.0 - 1.0);
}

/* A backend that forwards to the CPU backend and counts rows through linear
 * layers whose weight is not the gate. */
typedef struct counting {
    md_backend be; /* first member: the ops receive a pointer to it */
    md_backend *cpu;
    const md_tensor *gate;
    int64_t expert_rows, expert_calls;
} counting;

static void counting_linear(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                            const md_tensor *b)
{
    counting *c = (counting *)be;
    if (w != c->gate) {
        c->expert_rows += md_tensor_numel(x) / x->shape[x->ndim - 1];
        c->expert_calls++;
    }
    c->cpu->linear(be, y, x, w, b);
}

/* Host storage for the random weights, registered in an md_weights. */
typedef struct store {
    float *buf[256];
    md_tensor t[256];
    int n;
    md_test_rng *rng; /* one sequence through all runs */
} store;

static void add_weight(store *s, md_weights *w, const char *name, int64_t a, int64_t b)
{
    int64_t n = a * (b ? b : 1);
    float *d = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        d[i] = frand(s->rng) * 0.5f;
    md_tensor *t = &s->t[s->n];
    *t = (md_tensor){.dtype = MD_F32, .ndim = b ? 2 : 1, .shape = {a, b}, .data = d};
    s->buf[s->n++] = d;
    md_error err;
    CHECK(md_weights_add(w, name, t, "test", &err) == MD_OK, "adding %s: %s", name, err.msg);
}

/* Frees the weights' registry and their storage. */
static void store_free(store *s, md_weights *w)
{
    md_weights_free(w);
    for (int i = 0; i < s->n; i++)
        free(s->buf[i]);
}

static void add_expert(store *s, md_weights *w, const char *p, md_moe_kind kind, int D, int O,
                       int I)
{
    char n[128];
    if (kind == MD_MOE_LINEAR) {
        snprintf(n, sizeof(n), "%s.weight", p);
        add_weight(s, w, n, O, D);
        snprintf(n, sizeof(n), "%s.bias", p);
        add_weight(s, w, n, O, 0);
        return;
    }
    snprintf(n, sizeof(n), "%s.net.0.proj.weight", p);
    add_weight(s, w, n, 2 * I, D);
    snprintf(n, sizeof(n), "%s.net.0.proj.bias", p);
    add_weight(s, w, n, 2 * I, 0);
    snprintf(n, sizeof(n), "%s.net.2.weight", p);
    add_weight(s, w, n, D, I);
    snprintf(n, sizeof(n), "%s.net.2.bias", p);
    add_weight(s, w, n, D, 0);
}

static const float *wdata(md_tensor *t)
{
    return t ? (const float *)t->data : NULL;
}

/* out[O] = expert(x[D]) in double. */
static void ref_expert(const md_moe_layer *l, const md_moe_expert *e, const float *x, double *out)
{
    const int D = l->in_dim, O = l->out_dim, I = l->inner_dim;
    if (l->kind == MD_MOE_LINEAR) {
        for (int o = 0; o < O; o++) {
            double s = e->b1 ? wdata(e->b1)[o] : 0;
            for (int d = 0; d < D; d++)
                s += (double)wdata(e->w1)[o * D + d] * x[d];
            out[o] = s;
        }
        return;
    }
    double *h = malloc(sizeof(double) * 2 * (size_t)I), *g = malloc(sizeof(double) * (size_t)I);
    for (int o = 0; o < 2 * I; o++) {
        double s = wdata(e->b1)[o];
        for (int d = 0; d < D; d++)
            s += (double)wdata(e->w1)[o * D + d] * x[d];
        h[o] = s;
    }
    for (int i = 0; i < I; i++)
        g[i] = h[i] * 0.5 * h[I + i] * (1.0 + erf(h[I + i] / sqrt(2.0)));
    for (int o = 0; o < O; o++) {
        double s = wdata(e->b2)[o];
        for (int i = 0; i < I; i++)
            s += (double)wdata(e->w2)[o * I + i] * g[i];
        out[o] = s;
    }
    free(h);
    free(g);
}

/* Top-k by descending value, lower index first on ties. */
static void ref_topk(const double *v, int n, int k, int *sel)
{
    int used[64] = {0};
    for (int i = 0; i < k; i++) {
        int b = -1;
        for (int e = 0; e < n; e++)
            if (!used[e] && (b < 0 || v[e] > v[b]))
                b = e;
        used[b] = 1;
        sel[i] = b;
    }
}

static void reference(const md_moe_layer *l, const float *x, int64_t rows, double *y)
{
    const int E = l->num_experts, k = l->top_k, D = l->in_dim, O = l->out_dim;
    double *logit = malloc(sizeof(double) * (size_t)(rows * E));
    double sum[64] = {0};
    for (int64_t r = 0; r < rows; r++)
        for (int e = 0; e < E; e++) {
            double s = 0;
            for (int d = 0; d < D; d++)
                s += (double)wdata(l->gate)[e * D + d] * x[r * D + d];
            logit[r * E + e] = s;
            sum[e] += s;
        }
    int seq_sel[16];
    ref_topk(sum, E, k, seq_sel);
    double *eo = malloc(sizeof(double) * (size_t)O);
    for (int64_t r = 0; r < rows; r++) {
        int sel[16];
        if (l->routing == MD_ROUTE_SEQUENCE_TOPK)
            memcpy(sel, seq_sel, sizeof(sel));
        else
            ref_topk(logit + r * E, E, k, sel);
        double m = -INFINITY, z = 0, w[16];
        for (int i = 0; i < k; i++)
            m = fmax(m, logit[r * E + sel[i]]);
        for (int i = 0; i < k; i++)
            z += w[i] = exp(logit[r * E + sel[i]] - m);
        for (int o = 0; o < O; o++)
            y[r * O + o] = 0;
        for (int i = 0; i < k; i++) {
            ref_expert(l, &l->experts[sel[i]], x + r * D, eo);
            for (int o = 0; o < O; o++)
                y[r * O + o] += w[i] / z * eo[o];
        }
        if (l->shared.w1) {
            ref_expert(l, &l->shared, x + r * D, eo);
            for (int o = 0; o < O; o++)
                y[r * O + o] += eo[o];
        }
    }
    free(eo);
    free(logit);
}

typedef struct seen {
    int calls;
    int64_t rows;
    int64_t routed; /* sum of per-expert row counts */
} seen;

static void observe(void *user, const md_moe_trace *tr)
{
    seen *s = user;
    s->calls++;
    s->rows = tr->rows;
    s->routed = tr->plan->offset[tr->layer->num_experts];
}

static void run(md_backend *cpu, md_test_rng *rng, md_moe_kind kind, md_routing mode, int k,
                int shared)
{
    const int E = 4, D = 16, O = kind == MD_MOE_LINEAR ? 24 : 16, I = 32;
    const int64_t B = 2, N = 37, rows = B * N;
    const char *label = kind == MD_MOE_LINEAR ? "linear" : "geglu";
    const char *mname = mode == MD_ROUTE_TOKEN_TOPK ? "token" : "sequence";
    store st = {.n = 0, .rng = rng};
    md_weights *w = md_weights_new("moe-test");
    add_weight(&st, w, "blk.ff.gate.weight", E, D);
    for (int e = 0; e < E; e++) {
        char p[64];
        snprintf(p, sizeof(p), "blk.ff.experts.%d", e);
        add_expert(&st, w, p, kind, D, O, I);
    }
    if (shared)
        add_expert(&st, w, "blk.ff.shared_expert", kind, D, O, I);

    counting cb = {.be = *cpu, .cpu = cpu};
    cb.be.linear = counting_linear;
    md_backend *be = &cb.be;

    md_moe_config cfg = {.enabled = 1,
                         .num_experts = E,
                         .top_k = k,
                         .moe_ff = 1,
                         .routing = mode,
                         .shared_expert = shared};
    md_moe_layer layer;
    md_error err = {0};
    if (md_moe_layer_load(&layer, kind, &cfg, w, "blk.ff", D, O, be, &err) != MD_OK) {
        FAIL("load: %s", err.msg);
        goto out;
    }
    cb.gate = layer.gate;

    float *x = malloc(sizeof(float) * (size_t)(rows * D)),
          *y = malloc(sizeof(float) * (size_t)(rows * O));
    double *ref = malloc(sizeof(double) * (size_t)(rows * O));
    for (int64_t i = 0; i < rows * D; i++)
        x[i] = frand(rng);
    reference(&layer, x, rows, ref);
    md_moe_scratch *scratch = md_moe_scratch_new();

    for (int rep = 0; rep < 2; rep++) {
        size_t mark = be->arena_mark(be);
        md_tensor xt = be->new_tensor(be, 3, (int64_t[]){B, N, D});
        md_tensor yt = be->new_tensor(be, 3, (int64_t[]){B, N, O});
        be->upload(be, &xt, x);
        size_t mark2 = be->arena_mark(be);
        seen s = {0};
        cb.expert_rows = cb.expert_calls = 0;
        md_status st2 =
            md_moe_forward(be, &layer, scratch, NULL, &yt, &xt, rep ? observe : NULL, &s, &err);
        if (!CHECK(st2 == MD_OK, "%s %s k=%d: forward: %s", label, mname, k, err.msg))
            break;
        CHECK(be->arena_mark(be) == mark2, "%s %s k=%d: the layer did not give its arena back",
              label, mname, k);
        be->download(be, &yt, y);
        be->arena_reset(be, mark);

        double md = 0, mb = 0;
        for (int64_t i = 0; i < rows * O; i++) {
            md = fmax(md, fabs(y[i] - ref[i]));
            mb = fmax(mb, fabs(ref[i]));
        }
        /* Linear experts: one GEMM per chosen expert over its rows, plus the
         * shared expert. GEGLU experts run two GEMMs over the same rows. */
        int per = kind == MD_MOE_LINEAR ? 1 : 2;
        int64_t want_rows = per * (rows * k + (shared ? rows : 0));
        if (rep == 0)
            printf("  %-6s %-8s k=%d shared=%d  max_rel_err %.2e  expert GEMM rows %lld (%lld "
                   "calls)\n",
                   label, mname, k, shared, md / mb, (long long)cb.expert_rows,
                   (long long)cb.expert_calls);
        CHECK(md / mb <= 1e-5, "%s %s k=%d shared=%d: error %g", label, mname, k, shared, md / mb);
        CHECK(cb.expert_rows == want_rows, "%s %s k=%d: %lld rows through experts, expected %lld",
              label, mname, k, (long long)cb.expert_rows, (long long)want_rows);
        if (mode == MD_ROUTE_SEQUENCE_TOPK)
            CHECK(cb.expert_calls == per * (k + shared),
                  "%s sequence k=%d: %lld expert GEMMs, expected %d", label, k,
                  (long long)cb.expert_calls, per * (k + shared));
        if (rep == 1)
            CHECK(s.calls == 1 && s.rows == rows && s.routed == rows * k,
                  "%s %s k=%d: observer saw %d calls, %lld rows, %lld routed", label, mname, k,
                  s.calls, (long long)s.rows, (long long)s.routed);
    }
    /* Usage counts of the two calls (one plain, one observed): every row's
     * k slots, one choice per row (token) or per call (sequence). */
    md_moe_usage u;
    md_moe_usage_of(scratch, &u);
    int64_t slots = 0;
    for (int e = 0; u.layer && e < E; e++)
        slots += u.slots[e];
    CHECK(u.layer == &layer && u.calls == 2 && u.rows == 2 * rows && slots == 2 * rows * k &&
              u.choices == (mode == MD_ROUTE_TOKEN_TOPK ? 2 * rows : 2),
          "%s %s k=%d: usage %lld calls, %lld rows, %lld slots, %lld choices", label, mname, k,
          (long long)u.calls, (long long)u.rows, (long long)slots, (long long)u.choices);
    md_moe_usage_reset(scratch);
    md_moe_usage_of(scratch, &u);
    CHECK(u.layer == NULL && u.calls == 0 && u.rows == 0, "usage reset");
    free(x);
    free(y);
    free(ref);
    md_moe_scratch_free(scratch);
    md_moe_layer_free(&layer);
out:
    store_free(&st, w);
}

static void test_bad_config(md_backend *be, md_test_rng *rng)
{
    store st = {.n = 0, .rng = rng};
    md_weights *w = md_weights_new("moe-test");
    add_weight(&st, w, "m.gate.weight", 2, 4);
    add_expert(&st, w, "m.experts.0", MD_MOE_LINEAR, 4, 4, 0);
    md_moe_config cfg = {.enabled = 1, .num_experts = 2, .top_k = 1, .moe_attn = 1};
    md_moe_layer layer;
    md_error err = {0};
    /* expert 1 is missing: the error must name it */
    md_status st1 = md_moe_layer_load(&layer, MD_MOE_LINEAR, &cfg, w, "m", 4, 4, be, &err);
    CHECK(st1 != MD_OK && strstr(err.msg, "m.experts.1.weight"),
          "a missing expert must fail naming it (got: %s)", err.msg);
    cfg.top_k = 3;
    CHECK(md_moe_layer_load(&layer, MD_MOE_LINEAR, &cfg, w, "m", 4, 4, be, &err) != MD_OK,
          "top_k > num_experts must fail");
    store_free(&st, w);
}

/* The router override at the layer: what it is told, and a token layer
 * with pinned experts {0, 2} switched to sequence routing, which then takes
 * exactly the pinned set, the biased expert first. */
typedef struct override_seen {
    int calls, grid_h, grid_w, groups, routing_in, top_k;
    float answer; /* added to expert 2 of every row */
    md_moe_routing_choice routing_out;
    md_routing traced;
    int selected[2];
    int trace_k;
} override_seen;

static md_status on_override(void *user, md_moe_override_call *c, md_error *err)
{
    override_seen *s = user;
    (void)err;
    s->calls++;
    s->grid_h = c->grid_h;
    s->grid_w = c->grid_w;
    s->groups = c->groups;
    s->routing_in = c->routing;
    s->top_k = c->top_k;
    for (int64_t r = 0; r < c->rows; r++)
        c->bias[r * c->layer->num_experts + 2] = s->answer;
    c->routing = s->routing_out;
    return MD_OK;
}

static void observe_override(void *user, const md_moe_trace *tr)
{
    override_seen *s = user;
    s->traced = tr->routing;
    s->trace_k = tr->plan->top_k;
    s->selected[0] = tr->plan->selected[0];
    s->selected[1] = tr->plan->selected[1];
}

static void test_override(md_backend *be, md_test_rng *rng)
{
    const int E = 4, D = 8, B = 2, H = 3, W = 4;
    store st = {.n = 0, .rng = rng};
    md_weights *w = md_weights_new("moe-test");
    add_weight(&st, w, "o.gate.weight", E, D);
    for (int e = 0; e < E; e++) {
        char p[32];
        snprintf(p, sizeof p, "o.experts.%d", e);
        add_expert(&st, w, p, MD_MOE_LINEAR, D, D, 0);
    }
    md_moe_config cfg = {.enabled = 1, .num_experts = E, .top_k = 1, .moe_ff = 1,
                         .routing = MD_ROUTE_TOKEN_TOPK};
    md_moe_layer layer;
    md_error err = {0};
    if (!CHECK(md_moe_layer_load(&layer, MD_MOE_LINEAR, &cfg, w, "o", D, D, be, &err) == MD_OK,
               "load: %s", err.msg))
        goto out;
    md_moe_scratch *scratch = md_moe_scratch_new();
    size_t mark = be->arena_mark(be);
    md_tensor xt = be->new_tensor(be, 3, (int64_t[]){B, H * W, D});
    md_tensor yt = be->new_tensor(be, 3, (int64_t[]){B, H * W, D});
    float x[2 * 3 * 4 * 8];
    for (int i = 0; i < B * H * W * D; i++)
        x[i] = frand(rng);
    be->upload(be, &xt, x);

    override_seen s = {.answer = 1e4f, .routing_out = MD_MOE_ROUTING_SEQUENCE};
    md_moe_options opt = {.groups = 2, .pinned = 0x5, .override = on_override,
                          .override_user = &s, .grid_h = H, .grid_w = W};
    md_status rc = md_moe_forward(be, &layer, scratch, &opt, &yt, &xt, observe_override, &s, &err);
    CHECK(rc == MD_OK, "override forward: %s", err.msg);
    CHECK(s.calls == 1 && s.grid_h == H && s.grid_w == W && s.groups == 2 &&
              s.routing_in == MD_MOE_ROUTING_TOKEN && s.top_k == 1,
          "the override was told: %d calls, grid %dx%d, %d groups, routing %d, k %d", s.calls,
          s.grid_h, s.grid_w, s.groups, s.routing_in, s.top_k);
    CHECK(s.traced == MD_ROUTE_SEQUENCE_TOPK && s.trace_k == 2 && s.selected[0] == 2 &&
              s.selected[1] == 0,
          "switched to sequence over the pinned set: routing %d, k %d, experts %d %d", s.traced,
          s.trace_k, s.selected[0], s.selected[1]);

    /* A grid that does not account for the rows (text tokens) is not reported. */
    opt.grid_h = 5;
    s.routing_out = MD_MOE_ROUTING_TOKEN;
    CHECK(md_moe_forward(be, &layer, scratch, &opt, &yt, &xt, NULL, NULL, &err) == MD_OK &&
              s.grid_h == 0 && s.grid_w == 0,
          "grid 5x4 of 24 rows reported as %dx%d", s.grid_h, s.grid_w);
    s.answer = INFINITY;
    rc = md_moe_forward(be, &layer, scratch, &opt, &yt, &xt, NULL, NULL, &err);
    CHECK(rc == MD_ERR_INVALID && strstr(err.msg, "MoE o:") && strstr(err.msg, "not finite"),
          "infinite bias: %s", err.msg);
    s.answer = 0.0f;
    s.routing_out = MD_MOE_ROUTING_LAYER;
    rc = md_moe_forward(be, &layer, scratch, &opt, &yt, &xt, NULL, NULL, &err);
    CHECK(rc == MD_ERR_INVALID && strstr(err.msg, "routing 0"), "routing LAYER: %s", err.msg);
    be->arena_reset(be, mark);
    md_moe_scratch_free(scratch);
    md_moe_layer_free(&layer);
out:
    store_free(&st, w);
}

int main(void)
{
    md_backend *be = md_test_cpu_backend(0);
    if (!be)
        return 1;
    md_test_rng rng = {88172645463325252ull};
    for (int kind = 0; kind < 2; kind++)
        for (int mode = 0; mode < 2; mode++)
            for (int k = 1; k <= 2; k++)
                run(be, &rng, (md_moe_kind)kind, (md_routing)mode, k, 0);
    run(be, &rng, MD_MOE_GEGLU_FF, MD_ROUTE_TOKEN_TOPK, 2, 1);
    run(be, &rng, MD_MOE_LINEAR, MD_ROUTE_SEQUENCE_TOPK, 1, 1);
    test_bad_config(be, &rng);
    test_override(be, &rng);
    md_backend_destroy(be);
    return md_test_finish("test_moe_layer");
}
