/* Feature "moe.router_trace": each MoE layer call handed to the host as it
 * happens (gate logits and the experts every row went to). */
#include "abi_internal.h"

void abi_trace_event(mdiff_context *ctx, const md_moe_trace *t)
{
    const md_moe_layer *l = t->layer;
    mdiff_router_event ev = {.struct_size = sizeof ev,
                             .layer_name = l->name,
                             .step = ctx->trace_step,
                             .num_experts = l->num_experts,
                             .top_k = t->plan->top_k,
                             .rows = t->rows,
                             .logits = t->router_logits,
                             .choice = t->plan->choice,
                             .row_groups = ctx->trace_row_groups};
    if (!abi_destroy_pending(ctx))
        ctx->trace(ctx->trace_user, &ev);
}

static int trace_set(mdiff_context *ctx, mdiff_router_trace_fn fn, void *user)
{
    if (!ctx)
        return MDIFF_ERR_INVALID;
    if (abi_enter(ctx) != MDIFF_OK)
        return MDIFF_ERR_BUSY;
    ctx->trace = fn;
    ctx->trace_user = fn ? user : NULL;
    abi_update_observer(ctx);
    abi_leave(ctx);
    return MDIFF_OK;
}

static const mdiff_router_trace_api trace_api = {.struct_size = sizeof trace_api,
                                                 .set = trace_set};

const void *abi_router_trace_api(void)
{
    return &trace_api;
}
