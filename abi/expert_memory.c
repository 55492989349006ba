/* Feature "moe.expert_memory": the loaded model's expert cache, read
 * without taking the context (the cache locks itself), so a host may watch
 * it while a generation runs, from its progress callback too. */
#include <string.h>

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
    size_t size = out->struct_size;
    memcpy(out, &r, size < sizeof r ? size : sizeof r);
    out->struct_size = size;
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

static const mdiff_expert_memory_api expert_memory_v1 = {
    .struct_size = sizeof(mdiff_expert_memory_api), .get = em_get, .reset = em_reset};

const void *abi_expert_memory_api(void)
{
    return &expert_memory_v1;
}
