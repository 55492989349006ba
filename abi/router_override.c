/* Feature "moe.router_override" (1.5): the host's callback, offered each
 * MoE layer call before its experts run, as the U-Net's override hook
 * (moe/moe_override.c does the checking and the biasing). */
#include "abi_internal.h"

/* See the header's STRUCTS rule: no tail padding. */
_Static_assert(offsetof(mdiff_router_override_call, rows) == 40,
               "mdiff_router_override_call layout");
_Static_assert(offsetof(mdiff_router_override_call, logits) == 56,
               "mdiff_router_override_call layout");
_Static_assert(sizeof(mdiff_router_override_call) == 80, "mdiff_router_override_call layout");
_Static_assert(sizeof(mdiff_router_override_api) == 16, "mdiff_router_override_api layout");

static int32_t routing_to_abi(md_moe_routing_choice r)
{
    return r == MD_MOE_ROUTING_TOKEN             ? MDIFF_ROUTING_TOKEN
           : r == MD_MOE_ROUTING_SEQUENCE_SPLIT ? MDIFF_ROUTING_SEQUENCE_SPLIT
                                                : MDIFF_ROUTING_SEQUENCE;
}

static md_status on_call(void *user, md_moe_override_call *c, md_error *err)
{
    mdiff_context *ctx = user;
    if (abi_destroy_pending(ctx)) /* the host's data may be gone; the run is cancelled */
        return MD_OK;
    const md_moe_layer *l = c->layer;
    mdiff_router_override_call call = {.struct_size = sizeof call,
                                       .layer_name = l->name,
                                       .layer_index = l->index,
                                       .step = ctx->trace_step,
                                       .total_steps = ctx->trace_total,
                                       .num_experts = l->num_experts,
                                       .top_k = c->top_k,
                                       .groups = c->groups,
                                       .rows = c->rows,
                                       .grid_height = c->grid_h,
                                       .grid_width = c->grid_w,
                                       .logits = c->logits,
                                       .bias = c->bias,
                                       .routing = routing_to_abi(c->routing)};
    if (ctx->override(ctx->override_user, &call) != 0) {
        atomic_store(&ctx->cancel, 1);
        return md_fail(err, MD_ERR_CANCELLED, "cancelled by the router override at %s", l->name);
    }
    switch (call.routing) {
    case MDIFF_ROUTING_SEQUENCE: c->routing = MD_MOE_ROUTING_SEQUENCE; break;
    case MDIFF_ROUTING_TOKEN: c->routing = MD_MOE_ROUTING_TOKEN; break;
    case MDIFF_ROUTING_SEQUENCE_SPLIT: c->routing = MD_MOE_ROUTING_SEQUENCE_SPLIT; break;
    default:
        return md_fail(err, MD_ERR_INVALID,
                       "MoE %s: the router override set routing %d (not SEQUENCE, TOKEN or "
                       "SEQUENCE_SPLIT)",
                       l->name, (int)call.routing);
    }
    return MD_OK;
}

static int override_set(mdiff_context *ctx, mdiff_router_override_fn fn, void *user)
{
    if (!ctx)
        return MDIFF_ERR_INVALID;
    if (abi_enter(ctx) != MDIFF_OK)
        return MDIFF_ERR_BUSY;
    ctx->override = fn;
    ctx->override_user = fn ? user : NULL;
    md_unet_state_set_override(ctx->run_state, fn ? on_call : NULL, fn ? ctx : NULL);
    abi_leave(ctx);
    return MDIFF_OK;
}

static const mdiff_router_override_api override_api = {.struct_size = sizeof override_api,
                                                       .set = override_set};

const void *abi_router_override_api(void)
{
    return &override_api;
}
