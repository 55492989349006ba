/* Routing reports of the CLI (see moe_report.h). */
#include "moe_report.h"

#include <stdio.h>
#include <string.h>

#include "../host/moe_heatmap.h"

/* A new denoising step starts a new heatmap column. */
static void on_router_event(void *user, const mdiff_router_event *ev)
{
    md_moe_report *r = user;
    if (ev->step != r->step) {
        md_moe_stats_next_call(r->stats);
        r->step = ev->step;
    }
    /* Libraries before 1.4 do not say how the rows are grouped. */
    int has_groups = ev->struct_size >= offsetof(mdiff_router_event, groups) + sizeof(int32_t);
    md_moe_call c = {.layer = ev->layer_name, .num_experts = ev->num_experts,
                     .top_k = ev->top_k, .rows = ev->rows, .logits = ev->logits,
                     .choice = ev->choice, .row_groups = has_groups ? ev->groups : 1,
                     .skipped = has_groups ? ev->skipped : 0};
    md_moe_stats_record(r->stats, &c);
    if (r->routes)
        mdh_routes_record_add(r->routes, ev);
}

int md_moe_report_available(const md_cli_engine *e)
{
    return e->info.routing != MDIFF_ROUTING_NONE &&
           e->api->get_feature(MDIFF_FEATURE_ROUTER_TRACE) != NULL;
}

int md_moe_report_begin(md_moe_report *r, md_cli_engine *e, int with_routes)
{
    md_moe_report_free(r);
    r->trace = e->api->get_feature(MDIFF_FEATURE_ROUTER_TRACE);
    if (!r->trace)
        return MDIFF_ERR_UNSUPPORTED;
    r->stats = md_moe_stats_new();
    r->routes = with_routes ? mdh_routes_record_new() : NULL;
    if (!r->stats || (with_routes && !r->routes))
        return MDIFF_ERR_NOMEM;
    r->step = 0;
    return r->trace->set(e->ctx, on_router_event, r);
}

void md_moe_report_end(md_moe_report *r, md_cli_engine *e)
{
    if (r->trace)
        r->trace->set(e->ctx, NULL, NULL);
}

/* FILE.json -> FILE.routes.json */
static int routes_name(const char *json, char *out, size_t cap)
{
    size_t n = strlen(json);
    if (n >= 5 && !strcmp(json + n - 5, ".json"))
        n -= 5;
    return snprintf(out, cap, "%.*s.routes.json", (int)n, json) < (int)cap;
}

int md_moe_report_write(const md_moe_report *r, const char *json, const char *png, int steps,
                        mdh_error *err)
{
    int st = md_moe_stats_write_json(r->stats, json, err);
    if (st == MDIFF_OK)
        st = md_moe_stats_write_heatmap(r->stats, png, 0, err);
    if (st != MDIFF_OK || !r->routes)
        return st;
    char routes[4096 + 16];
    if (!routes_name(json, routes, sizeof routes))
        return mdh_fail(err, MDIFF_ERR_INVALID, "%s: name too long for its routes file", json);
    st = mdh_routes_record_write(r->routes, routes, steps, err);
    if (st == MDIFF_ERR_UNSUPPORTED) { /* the statistics stand without the routes */
        fprintf(stderr, "moe-diffuse: warning: %s\n", err->msg);
        st = MDIFF_OK;
    }
    return st;
}

void md_moe_report_skipped_line(const md_moe_report *r, char *buf, size_t cap)
{
    int64_t skipped = 0, slots = 0;
    if (r->stats)
        md_moe_stats_skipped(r->stats, &skipped, &slots);
    snprintf(buf, cap, "MoE expert work skipped: %.1f%% (%lld of %lld expert-rows)",
             slots ? 100.0 * (double)skipped / (double)slots : 0.0, (long long)skipped,
             (long long)slots);
}

void md_moe_report_free(md_moe_report *r)
{
    md_moe_stats_free(r->stats);
    mdh_routes_record_free(r->routes);
    r->stats = NULL;
    r->routes = NULL;
}

int md_moe_health(md_cli_engine *e, mdiff_routing_health *out)
{
    const mdiff_routing_health_api *rh = e->api->get_feature(MDIFF_FEATURE_ROUTING_HEALTH);
    out->struct_size = sizeof *out;
    return rh && rh->get(e->ctx, out) == MDIFF_OK && out->layers > 0;
}

int md_moe_health_line(md_cli_engine *e, char *buf, size_t cap)
{
    mdiff_routing_health h;
    if (!md_moe_health(e, &h))
        return 0;
    const mdiff_routing_health_api *rh = e->api->get_feature(MDIFF_FEATURE_ROUTING_HEALTH);
    size_t n = (size_t)snprintf(buf, cap, "routing: experts used per layer");
    for (int i = 0; i < h.layers && n < cap; i++) {
        mdiff_layer_health l = {.struct_size = sizeof l};
        if (rh->layer(e->ctx, i, &l) == MDIFF_OK)
            n += (size_t)snprintf(buf + n, cap - n, " %d/%d", l.experts_used, l.num_experts);
    }
    if (n < cap)
        snprintf(buf + n, cap - n, " (>= 0.5%% of the slots); least share %.1f%%, most %.1f%%%s",
                 100.0 * h.min_share, 100.0 * h.max_share,
                 h.collapse ? "; collapsed" : h.judged_layers < h.layers ? "; too few steps to judge some layers" : "");
    return 1;
}

void md_expert_memory_begin(md_cli_engine *e)
{
    const mdiff_expert_memory_api *em = e->api->get_feature(MDIFF_FEATURE_EXPERT_MEMORY);
    if (em)
        em->reset(e->ctx);
}

int md_expert_memory_line(md_cli_engine *e, uint64_t bound, char *buf, size_t cap)
{
    const mdiff_expert_memory_api *em = e->api->get_feature(MDIFF_FEATURE_EXPERT_MEMORY);
    mdiff_expert_memory m = {.struct_size = sizeof m};
    if (!em || em->get(e->ctx, &m) != MDIFF_OK)
        return 0;
    const double mib = 1048576.0;
    char b[48] = "none", dev[96] = "";
    if (m.device)
        snprintf(dev, sizeof dev, "; on the device, %llu prefetched (%llu of them used)",
                 (unsigned long long)m.prefetches, (unsigned long long)m.prefetch_used);
    if (bound && bound != MDIFF_EXPERT_MEMORY_ON_DEMAND)
        snprintf(b, sizeof b, "%.2f MiB", (double)bound / mib);
    snprintf(buf, cap,
             "expert memory: peak %.2f of %.2f MiB resident (bound %s); %llu loads, %llu hits, "
             "%llu evictions%s",
             (double)m.peak / mib, (double)m.total / mib, b, (unsigned long long)m.loads,
             (unsigned long long)m.hits, (unsigned long long)m.evictions, dev);
    return 1;
}
