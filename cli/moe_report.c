/* Routing reports of the CLI (see moe_report.h). */
#include "moe_report.h"

#include <stdio.h>

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
    int has_groups = ev->struct_size >= offsetof(mdiff_router_event, row_groups) + sizeof(int32_t);
    md_moe_call c = {.layer = ev->layer_name, .num_experts = ev->num_experts,
                     .top_k = ev->top_k, .rows = ev->rows, .logits = ev->logits,
                     .choice = ev->choice, .row_groups = has_groups ? ev->row_groups : 1};
    md_moe_stats_record(r->stats, &c);
}

int md_moe_report_available(const md_cli_engine *e)
{
    return e->info.routing != MDIFF_ROUTING_NONE &&
           e->api->get_feature(MDIFF_FEATURE_ROUTER_TRACE) != NULL;
}

int md_moe_report_begin(md_moe_report *r, md_cli_engine *e)
{
    md_moe_report_free(r);
    r->trace = e->api->get_feature(MDIFF_FEATURE_ROUTER_TRACE);
    if (!r->trace)
        return MDIFF_ERR_UNSUPPORTED;
    r->stats = md_moe_stats_new();
    if (!r->stats)
        return MDIFF_ERR_NOMEM;
    r->step = 0;
    return r->trace->set(e->ctx, on_router_event, r);
}

void md_moe_report_end(md_moe_report *r, md_cli_engine *e)
{
    if (r->trace)
        r->trace->set(e->ctx, NULL, NULL);
}

int md_moe_report_write(const md_moe_report *r, const char *json, const char *png,
                        mdh_error *err)
{
    int st = md_moe_stats_write_json(r->stats, json, err);
    return st == MDIFF_OK ? md_moe_stats_write_heatmap(r->stats, png, 0, err) : st;
}

void md_moe_report_free(md_moe_report *r)
{
    md_moe_stats_free(r->stats);
    r->stats = NULL;
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
