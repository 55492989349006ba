/* Feature "moe.expert_memory": the loaded model's expert cache, read
 * without taking the context (the cache locks itself), so a host may watch
 * it while a generation runs, from its progress callback too. */
#include <string.h>

#include "../pipeline/moe_controls.h"
#include "abi_internal.h"

static md_expert_cache *cache_of(mdiff_context *ctx)
{
    return ctx && ctx->model ? md_unet_expert_cache(ctx->model->unet) : NULL;
}

static int em_get(mdiff_context *ctx, mdiff_expert_memory *out)
{
    if (!ctx || !out || out->struct_size < sizeof(size_t))
        return MDIFF_ERR_INVALID;
    md_expert_cache *c = cache_of(ctx);
    if (!c)
        return MDIFF_ERR_UNSUPPORTED;
    md_expert_memory m;
    md_expert_cache_memory(c, &m);
    mdiff_expert_memory r = {.struct_size = sizeof r,
                             .total = m.total,
                             .minimum = m.minimum,
                             .fixed = m.fixed,
                             .resident = m.resident,
                             .peak = m.peak,
                             .loads = m.loads,
                             .hits = m.hits,
                             .evictions = m.evictions,
                             .prefetches = m.prefetches,
                             .prefetch_used = m.prefetch_used,
                             .device = m.device};
    abi_write_struct(out, &r, sizeof r);
    return MDIFF_OK;
}

static int em_reset(mdiff_context *ctx)
{
    md_expert_cache *c = cache_of(ctx);
    if (!ctx)
        return MDIFF_ERR_INVALID;
    if (!c)
        return MDIFF_ERR_UNSUPPORTED;
    md_expert_cache_reset(c);
    return MDIFF_OK;
}

static int em_estimate(mdiff_context *ctx, uint64_t bound, const char *routes,
                       mdiff_expert_estimate *out, char *msg, size_t msg_cap)
{
    abi_message(msg, msg_cap, "");
    if (!ctx || !routes || !out || out->struct_size < sizeof(size_t)) {
        abi_message(msg, msg_cap, "expert_memory.estimate: ctx, routes and out are required");
        return MDIFF_ERR_INVALID;
    }
    md_expert_cache *c = cache_of(ctx);
    if (!c) {
        abi_message(msg, msg_cap, "expert_memory.estimate: the model has no MoE layers");
        return MDIFF_ERR_UNSUPPORTED;
    }
    if (abi_enter(ctx) != MDIFF_OK) {
        abi_message(msg, msg_cap, "expert_memory.estimate: the context is generating");
        return MDIFF_ERR_BUSY;
    }
    md_error err = {0};
    md_moe_routes *r = NULL;
    md_expert_estimate e;
    md_status st = md_moe_routes_parse(routes, MDIFF_MOE_ROUTES_MAX, &r, &err);
    if (st == MD_OK)
        st = md_moe_routes_bind_model(r, ctx->model, &err);
    if (st == MD_OK)
        st = md_expert_cache_simulate(c, r, bound, &e, &err);
    md_moe_routes_free(r);
    abi_leave(ctx);
    if (st != MD_OK) {
        abi_message(msg, msg_cap, err.msg);
        return abi_status(st);
    }
    mdiff_expert_estimate o = {.struct_size = sizeof o,
                               .steps = e.steps,
                               .first_loads = e.first_loads,
                               .loads_per_step = e.loads_per_step,
                               .bytes_per_step = e.bytes_per_step,
                               .used_per_step = e.used_per_step};
    abi_write_struct(out, &o, sizeof o);
    return MDIFF_OK;
}

static const mdiff_expert_memory_api expert_memory_v1 = {.struct_size =
                                                             sizeof(mdiff_expert_memory_api),
                                                         .get = em_get,
                                                         .reset = em_reset,
                                                         .estimate = em_estimate};

const void *abi_expert_memory_api(void)
{
    return &expert_memory_v1;
}
