/* MoE controls of one request: checks and per-step options (moe_controls.h). */
#include "moe_controls.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../unet/unet.h"
#include "pipeline.h"

#define MAX_CAPACITY 64.0f

int md_request_first_step(const mdiff_gen_params *p)
{
    if (!p->init_image || !(p->strength < 1.0f))
        return 0;
    return p->steps - (int)(p->steps * p->strength);
}

md_status md_moe_controls_check_alone(const mdiff_gen_params *p, int parse_texts, md_error *err)
{
    if (!(p->moe_capacity >= 0.0f && p->moe_capacity <= MAX_CAPACITY))
        return md_fail(err, MD_ERR_INVALID,
                       "moe_capacity must be 0 (off) or above 0 up to %g (got %g)",
                       (double)MAX_CAPACITY, (double)p->moe_capacity);
    if (!(p->moe_skip >= 0.0f && p->moe_skip < 1.0f))
        return md_fail(err, MD_ERR_INVALID, "moe_skip must be in [0, 1) (got %g)",
                       (double)p->moe_skip);
    /* With a model, md_moe_controls_check_model parses them (once, not twice) */
    if (parse_texts && p->moe_schedule) {
        md_moe_schedule s;
        MD_TRY(md_moe_schedule_parse(p->moe_schedule, MDIFF_MOE_SCHEDULE_MAX, &s, err));
    }
    if (parse_texts && p->moe_routes) {
        md_moe_routes *r;
        MD_TRY(md_moe_routes_parse(p->moe_routes, MDIFF_MOE_ROUTES_MAX, &r, err));
        md_moe_routes_free(r);
    }
    return MD_OK;
}

/* The model's MoE layer names and expert counts in index order. */
md_status md_moe_routes_bind_model(md_moe_routes *r, const md_model *m, md_error *err)
{
    int n = md_unet_moe_layers(m->unet);
    const char **names = calloc(n > 0 ? (size_t)n : 1, sizeof *names);
    int *experts = calloc(n > 0 ? (size_t)n : 1, sizeof *experts);
    md_status st = names && experts ? MD_OK : md_fail(err, MD_ERR_NOMEM, "out of memory");
    for (int i = 0; st == MD_OK && i < n; i++) {
        const md_moe_layer *l = md_unet_moe_layer(m->unet, i);
        if (!l) {
            st = md_fail(err, MD_ERR_NOMEM, "out of memory listing the MoE layers");
            break;
        }
        names[i] = l->name;
        experts[i] = l->num_experts;
    }
    if (st == MD_OK)
        st = md_moe_routes_bind(r, n, names, experts, err);
    free(names);
    free(experts);
    return st;
}

/* Routes that fit the request: its steps, its start and its guidance. */
static md_status routes_fit(const md_moe_routes *r, const mdiff_gen_params *p, int groups,
                            md_error *err)
{
    int first = md_request_first_step(p);
    if (r->steps != p->steps || r->first_step != first)
        return md_fail(err, MD_ERR_INVALID,
                       "moe_routes: recorded for steps %d..%d of %d, but this request runs "
                       "steps %d..%d of %d",
                       r->first_step + 1, r->steps, r->steps, first + 1, p->steps, p->steps);
    if (r->groups != groups)
        return md_fail(err, MD_ERR_INVALID,
                       "moe_routes: recorded %s classifier-free guidance, this request runs "
                       "%s it (guidance %g)",
                       r->groups == 2 ? "with" : "without", groups == 2 ? "with" : "without",
                       (double)p->guidance);
    return MD_OK;
}

md_status md_moe_controls_check_model(const md_model *m, const mdiff_gen_params *p,
                                      md_error *err)
{
    const md_moe_config *moe = &m->unet_cfg.moe;
    if (!moe->enabled)
        return MD_OK; /* dense models ignore the MoE fields */
    if (p->moe_capacity > 0.0f && p->moe_routing != MDIFF_ROUTING_TOKEN && !p->moe_routes)
        return md_fail(err, MD_ERR_INVALID,
                       "moe_capacity applies to token routing only (this request routes per "
                       "sequence, where every row goes to the chosen experts): set moe_routing "
                       "to token or leave moe_capacity 0");
    int E = moe->num_experts, kmax = E < MDIFF_MAX_TOP_K ? E : MDIFF_MAX_TOP_K;
    if (p->moe_schedule) {
        md_moe_schedule s;
        MD_TRY(md_moe_schedule_parse(p->moe_schedule, MDIFF_MOE_SCHEDULE_MAX, &s, err));
        for (int i = 0; i < s.count; i++) {
            const md_moe_schedule_range *r = &s.range[i];
            if (r->k > kmax)
                return md_fail(err, MD_ERR_INVALID,
                               "moe_schedule: range %g-%g: k=%d is out of range (1..%d for this "
                               "model's %d experts)",
                               r->lo, r->hi, r->k, kmax, E);
            if (r->pinned && (E > 64 || (E < 64 && r->pinned >> E)))
                return md_fail(err, MD_ERR_INVALID,
                               "moe_schedule: range %g-%g: experts must be 0..%d (the model has "
                               "%d per layer)",
                               r->lo, r->hi, E - 1, E);
            if (r->pinned && r->k > r->npinned)
                return md_fail(err, MD_ERR_INVALID,
                               "moe_schedule: range %g-%g: k=%d but only %d experts are pinned",
                               r->lo, r->hi, r->k, r->npinned);
        }
    }
    if (p->moe_routes) {
        md_moe_routes *r;
        MD_TRY(md_moe_routes_parse(p->moe_routes, MDIFF_MOE_ROUTES_MAX, &r, err));
        md_status st = md_moe_routes_bind_model(r, m, err);
        if (st == MD_OK)
            st = routes_fit(r, p, md_generate_batch(p), err);
        md_moe_routes_free(r);
        MD_TRY(st);
    }
    return MD_OK;
}

md_status md_moe_controls_open(md_moe_controls *c, const md_model *m, const mdiff_gen_params *p,
                               int groups, md_error *err)
{
    memset(c, 0, sizeof *c);
    md_moe_options *o = &c->base;
    o->top_k = p->moe_top_k;
    o->routing = p->moe_routing == MDIFF_ROUTING_TOKEN            ? MD_MOE_ROUTING_TOKEN
                 : p->moe_routing == MDIFF_ROUTING_SEQUENCE       ? MD_MOE_ROUTING_SEQUENCE
                 : p->moe_routing == MDIFF_ROUTING_SEQUENCE_SPLIT ? MD_MOE_ROUTING_SEQUENCE_SPLIT
                                                                  : MD_MOE_ROUTING_LAYER;
    o->groups = groups;
    if (!m->unet_cfg.moe.enabled)
        return MD_OK;
    o->capacity = p->moe_capacity;
    o->expert_budget = p->max_expert_memory;
    o->skip = p->moe_skip;
    if (p->moe_schedule)
        MD_TRY(md_moe_schedule_parse(p->moe_schedule, MDIFF_MOE_SCHEDULE_MAX, &c->schedule, err));
    if (p->moe_routes) {
        MD_TRY(md_moe_routes_parse(p->moe_routes, MDIFF_MOE_ROUTES_MAX, &c->routes, err));
        md_status st = md_moe_routes_bind_model(c->routes, m, err);
        if (st == MD_OK)
            st = routes_fit(c->routes, p, groups, err);
        if (st != MD_OK) {
            md_moe_controls_close(c);
            return st;
        }
    }
    return MD_OK;
}

void md_moe_controls_step(const md_moe_controls *c, int step, int steps, md_moe_options *out)
{
    *out = c->base;
    const md_moe_schedule_range *r =
        md_moe_schedule_at(&c->schedule, steps > 0 ? (double)step / (double)steps : 0.0);
    if (r && r->k)
        out->top_k = r->k;
    if (r && r->skip >= 0.0f)
        out->skip = r->skip;
    if (r && r->pinned)
        out->pinned = r->pinned;
    out->routes = c->routes;
    out->step = step;
}

void md_moe_controls_close(md_moe_controls *c)
{
    md_moe_routes_free(c->routes);
    c->routes = NULL;
}
