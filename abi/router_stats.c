/* Feature "moe.router_stats": an MoE observer on the U-Net counts, per
 * layer, the rows each expert received. It runs on the generating thread
 * inside the context's lock, so the counts need no synchronisation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi_internal.h"

static abi_layer_stats *find_or_add(mdiff_context *ctx, const md_moe_layer *layer)
{
    for (int i = 0; i < ctx->nstats; i++)
        if (ctx->stats[i].layer == layer)
            return &ctx->stats[i];
    if (ctx->nstats == ctx->stats_cap) {
        int cap = ctx->stats_cap ? 2 * ctx->stats_cap : 32;
        abi_layer_stats *grown = realloc(ctx->stats, sizeof *grown * (size_t)cap);
        if (!grown)
            return NULL;
        ctx->stats = grown;
        ctx->stats_cap = cap;
    }
    abi_layer_stats *s = &ctx->stats[ctx->nstats];
    memset(s, 0, sizeof *s);
    s->counts = calloc((size_t)layer->num_experts, sizeof *s->counts);
    if (!s->counts)
        return NULL;
    s->layer = layer;
    snprintf(s->name, sizeof s->name, "%s", layer->name);
    s->num_experts = layer->num_experts;
    s->top_k = layer->top_k; /* until a call reports the k it ran with */
    ctx->nstats++;
    return s;
}

void abi_moe_observer(void *user, const md_moe_trace *t)
{
    mdiff_context *ctx = user;
    if (ctx->trace)
        abi_trace_event(ctx, t);
    if (!ctx->stats_on)
        return;
    abi_layer_stats *s = find_or_add(ctx, t->layer);
    if (!s) /* out of memory: this call goes uncounted rather than failing the run */
        return;
    s->calls++;
    s->tokens += (uint64_t)t->rows;
    s->top_k = t->plan->top_k; /* per generation (a request's moe_top_k): the latest */
    const md_route_plan *plan = t->plan;
    for (int e = 0; e < s->num_experts && e < plan->num_experts; e++)
        s->counts[e] += (uint64_t)(plan->offset[e + 1] - plan->offset[e]);
}

void abi_update_observer(mdiff_context *ctx)
{
    int on = ctx->stats_on || ctx->trace;
    md_unet_state_set_observer(ctx->run_state, on ? abi_moe_observer : NULL, on ? ctx : NULL);
}

static int rs_enable(mdiff_context *ctx, int on)
{
    if (!ctx)
        return MDIFF_ERR_INVALID;
    if (abi_enter(ctx) != MDIFF_OK)
        return MDIFF_ERR_BUSY;
    ctx->stats_on = on != 0;
    abi_update_observer(ctx);
    abi_leave(ctx);
    return MDIFF_OK;
}

static int rs_reset(mdiff_context *ctx)
{
    if (!ctx)
        return MDIFF_ERR_INVALID;
    if (abi_enter(ctx) != MDIFF_OK)
        return MDIFF_ERR_BUSY;
    abi_stats_clear(ctx);
    abi_leave(ctx);
    return MDIFF_OK;
}

static int rs_layer_count(mdiff_context *ctx)
{
    if (!ctx)
        return MDIFF_ERR_INVALID;
    if (abi_enter(ctx) != MDIFF_OK)
        return MDIFF_ERR_BUSY;
    int n = ctx->nstats;
    abi_leave(ctx);
    return n;
}

static int rs_layer(mdiff_context *ctx, int index, mdiff_layer_stats *out, uint64_t *counts,
                    int counts_cap)
{
    if (!ctx || !out || out->struct_size < sizeof(size_t) || counts_cap < 0 ||
        (counts_cap > 0 && !counts))
        return MDIFF_ERR_INVALID;
    if (abi_enter(ctx) != MDIFF_OK)
        return MDIFF_ERR_BUSY;
    int rc = MDIFF_ERR_INVALID;
    if (index >= 0 && index < ctx->nstats) {
        const abi_layer_stats *s = &ctx->stats[index];
        mdiff_layer_stats r = {.struct_size = sizeof r, .num_experts = s->num_experts,
                               .top_k = s->top_k, .calls = s->calls, .tokens = s->tokens};
        memcpy(r.name, s->name, sizeof r.name);
        abi_write_struct(out, &r, sizeof r);
        for (int e = 0; e < counts_cap; e++)
            counts[e] = e < s->num_experts ? s->counts[e] : 0;
        rc = MDIFF_OK;
    }
    abi_leave(ctx);
    return rc;
}

static const mdiff_router_stats_api router_stats_v1 = {
    .struct_size = sizeof(mdiff_router_stats_api),
    .enable = rs_enable,
    .reset = rs_reset,
    .layer_count = rs_layer_count,
    .layer = rs_layer,
};

const void *abi_router_stats_api(void)
{
    return &router_stats_v1;
}
