/* Feature "moe.routing_health" and the collapse warning: after every
 * generation the slots each MoE layer's experts received (counted by the
 * layers themselves, moe.h md_moe_usage) go through the detector
 * (moe/routing_health.h); a collapse is logged as a WARN, so every host
 * with a log callback hears of it without asking. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi_internal.h"

void abi_health_begin(mdiff_context *ctx)
{
    ctx->health = (md_routing_health){0};
    if (ctx->run_state)
        md_unet_state_reset_usage(ctx->run_state);
}

/* Room for n layers' figures; 0 when out of memory (the check is skipped:
 * it must never fail a finished generation). */
static int reserve(mdiff_context *ctx, int n)
{
    if (n <= ctx->health_cap)
        return 1;
    mdiff_layer_health *p = realloc(ctx->health_layers, sizeof *p * (size_t)n);
    if (!p)
        return 0;
    ctx->health_layers = p;
    ctx->health_cap = n;
    return 1;
}

static void warn_collapse(mdiff_context *ctx)
{
    const md_routing_health *h = &ctx->health;
    int most = 0, experts = 0; /* the most experts a collapsed layer used, of how many */
    for (int i = 0; i < h->layers; i++) {
        const mdiff_layer_health *l = &ctx->health_layers[i];
        if (l->collapsed && l->experts_used >= most) {
            most = l->experts_used;
            experts = l->num_experts;
        }
    }
    abi_log(ctx, MDIFF_LOG_WARN,
            "routing collapse: in %d of %d MoE layers at most %d of the %d experts got %.1f%% "
            "or more of the slots over this generation (experts used: %d of %d); the router "
            "sends nearly every input to the same experts (see docs/moe-health.md)",
            h->collapsed_layers, h->judged_layers, most, experts, 100.0 * MD_HEALTH_MIN_SHARE,
            h->experts_used, h->experts_total);
}

void abi_health_end(mdiff_context *ctx)
{
    md_routing_health h = {0};
    int n = ctx->model->unet ? md_unet_moe_layers(ctx->model->unet) : 0;
    if (!ctx->run_state || n <= 0 || !reserve(ctx, n))
        return;
    int kept = 0;
    for (int i = 0; i < n; i++) {
        md_moe_usage u;
        md_unet_state_usage(ctx->run_state, i, &u);
        if (!u.layer)
            continue;
        md_layer_health lh;
        md_layer_health_of(u.slots, u.layer->num_experts, u.rows, u.choices, &lh);
        if (lh.used == 0)
            continue;
        md_routing_health_add(&h, &lh);
        mdiff_layer_health *o = &ctx->health_layers[kept++];
        *o = (mdiff_layer_health){.struct_size = sizeof *o,
                                  .num_experts = lh.num_experts,
                                  .top_k = lh.top_k,
                                  .experts_used = lh.used,
                                  .collapsed = lh.collapsed,
                                  .judged = lh.judged,
                                  .min_share = (float)lh.min_share,
                                  .max_share = (float)lh.max_share};
        snprintf(o->name, sizeof o->name, "%s", u.layer->name);
    }
    ctx->health = h;
    if (h.collapse)
        warn_collapse(ctx);
}

/* Copies the library's struct into a host's of maybe another minor. */
static void copy_out(void *out, const void *full, size_t full_size)
{
    size_t size = *(const size_t *)out;
    memcpy(out, full, size < full_size ? size : full_size);
    *(size_t *)out = size;
}

static int rh_get(mdiff_context *ctx, mdiff_routing_health *out)
{
    if (!ctx || !out || out->struct_size < sizeof(size_t))
        return MDIFF_ERR_INVALID;
    if (abi_enter(ctx) != MDIFF_OK)
        return MDIFF_ERR_BUSY;
    const md_routing_health *h = &ctx->health;
    mdiff_routing_health r = {.struct_size = sizeof r,
                              .layers = h->layers,
                              .collapsed_layers = h->collapsed_layers,
                              .collapse = h->collapse,
                              .experts_used = h->experts_used,
                              .experts_total = h->experts_total,
                              .min_share = (float)h->min_share,
                              .max_share = (float)h->max_share,
                              .judged_layers = h->judged_layers};
    copy_out(out, &r, sizeof r);
    abi_leave(ctx);
    return MDIFF_OK;
}

static int rh_layer(mdiff_context *ctx, int index, mdiff_layer_health *out)
{
    if (!ctx || !out || out->struct_size < sizeof(size_t))
        return MDIFF_ERR_INVALID;
    if (abi_enter(ctx) != MDIFF_OK)
        return MDIFF_ERR_BUSY;
    int rc = MDIFF_ERR_INVALID;
    if (index >= 0 && index < ctx->health.layers) {
        copy_out(out, &ctx->health_layers[index], sizeof *out);
        rc = MDIFF_OK;
    }
    abi_leave(ctx);
    return rc;
}

static const mdiff_routing_health_api health_api = {.struct_size = sizeof health_api,
                                                    .get = rh_get,
                                                    .layer = rh_layer};

const void *abi_routing_health_api(void)
{
    return &health_api;
}
