/* Feature "moe.expert_settings": the experts per token a context's
 * generations use when their request leaves moe_top_k at 0. A setting of
 * the context: the loaded model is not touched. */
#include <stdio.h>
#include <string.h>

#include "abi_internal.h"

static int es_get(mdiff_context *ctx, mdiff_expert_settings *out)
{
    if (!ctx || !out || out->struct_size < ABI_1_0_EXPERT_SETTINGS_SIZE)
        return MDIFF_ERR_INVALID;
    if (abi_enter(ctx) != MDIFF_OK)
        return MDIFF_ERR_BUSY;
    const md_moe_config *moe = &ctx->model->unet_cfg.moe;
    out->top_k = !moe->enabled ? 0 : ctx->top_k ? ctx->top_k : moe->top_k;
    out->num_experts = moe->enabled ? moe->num_experts : 0;
    abi_leave(ctx);
    return MDIFF_OK;
}

static int es_set(mdiff_context *ctx, const mdiff_expert_settings *s, char *msg, size_t msg_cap)
{
    abi_message(msg, msg_cap, "");
    if (!ctx || !s || s->struct_size < ABI_1_0_EXPERT_SETTINGS_SIZE) {
        abi_message(msg, msg_cap, "expert_settings.set: ctx and settings are required");
        return MDIFF_ERR_INVALID;
    }
    if (abi_enter(ctx) != MDIFF_OK) {
        abi_message(msg, msg_cap, "expert_settings.set: the context is running a generation");
        return MDIFF_ERR_BUSY;
    }
    md_error err = {0};
    int rc = MDIFF_OK;
    md_status st = abi_set_top_k(ctx, s->top_k, &err);
    if (st != MD_OK) {
        rc = abi_status(st);
        char buf[sizeof err.msg + 32];
        snprintf(buf, sizeof buf, "expert_settings.set: %s", err.msg);
        abi_message(msg, msg_cap, buf);
    } else {
        const md_moe_config *moe = &ctx->model->unet_cfg.moe;
        abi_log(ctx, MDIFF_LOG_INFO, "now using %d of %d experts per token",
                ctx->top_k ? ctx->top_k : moe->top_k, moe->num_experts);
    }
    abi_leave(ctx);
    return rc;
}

static const mdiff_expert_settings_api expert_settings_v1 = {
    .struct_size = sizeof(mdiff_expert_settings_api),
    .get = es_get,
    .set = es_set,
};

const void *abi_expert_settings_api(void)
{
    return &expert_settings_v1;
}
