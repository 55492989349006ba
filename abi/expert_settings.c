/* Feature "moe.expert_settings": the experts used per token. Changing it
 * reloads the model with the new top-k (weights are memory-mapped, so a
 * reload costs little beyond the weights' first touch). */
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
    out->top_k = moe->enabled ? moe->top_k : 0;
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
    const md_moe_config *moe = &ctx->model->unet_cfg.moe;
    char buf[256];
    int rc = MDIFF_OK;
    if (!moe->enabled) {
        rc = MDIFF_ERR_UNSUPPORTED;
        abi_message(msg, msg_cap, "expert_settings.set: the model has no experts");
    } else if (s->top_k < 0 || s->top_k > moe->num_experts || s->top_k > 16) {
        rc = MDIFF_ERR_INVALID;
        snprintf(buf, sizeof buf, "expert_settings.set: top_k must be 0..%d (got %d)",
                 moe->num_experts < 16 ? moe->num_experts : 16, s->top_k);
        abi_message(msg, msg_cap, buf);
    } else if (s->top_k != ctx->top_k) {
        int num_experts = moe->num_experts;
        md_error err = {0};
        md_status st = abi_load_model(ctx, s->top_k, &err);
        if (st != MD_OK) {
            rc = abi_status(st);
            abi_message(msg, msg_cap, err.msg);
        } else {
            abi_log(ctx, MDIFF_LOG_INFO, "now using %d of %d experts per token",
                    ctx->model->unet_cfg.moe.top_k, num_experts);
        }
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
