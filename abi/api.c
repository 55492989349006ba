/* The exported entry point and the function table, plus the small entries
 * that need no model: names, defaults, cancel, image_free. */
#include <stdlib.h>
#include <string.h>

#include "../sampling/sampler.h"
#include "../pipeline/request.h"
#include "abi_internal.h"

#ifndef MD_LIBRARY_VERSION
#define MD_LIBRARY_VERSION "0.0.0"
#endif

/* Every version of a struct must end on an 8-byte boundary (see the
 * header): struct_size then tells exactly which fields a host has. */
_Static_assert(sizeof(mdiff_image) == ABI_1_0_IMAGE_SIZE, "mdiff_image layout");
_Static_assert(sizeof(mdiff_progress) == 32, "mdiff_progress layout");
_Static_assert(offsetof(mdiff_context_params, backend) == ABI_1_0_CONTEXT_PARAMS_SIZE,
               "mdiff_context_params 1.0 layout");
_Static_assert(offsetof(mdiff_context_params, share_model) == 80,
               "mdiff_context_params 1.2 layout");
_Static_assert(offsetof(mdiff_context_params, max_expert_memory) == 88,
               "mdiff_context_params 1.3 layout");
_Static_assert(sizeof(mdiff_context_params) == 96, "mdiff_context_params 1.5 layout");
_Static_assert(offsetof(mdiff_gen_params, clip_skip) == ABI_1_0_GEN_PARAMS_SIZE,
               "mdiff_gen_params 1.0 layout");
_Static_assert(offsetof(mdiff_gen_params, prompt_syntax) == 88, "mdiff_gen_params 1.1 layout");
_Static_assert(offsetof(mdiff_gen_params, moe_top_k) == 120, "mdiff_gen_params 1.2 layout");
_Static_assert(offsetof(mdiff_gen_params, moe_capacity) == ABI_1_3_GEN_PARAMS_SIZE,
               "mdiff_gen_params 1.3 layout");
_Static_assert(offsetof(mdiff_gen_params, moe_schedule) == 136, "mdiff_gen_params 1.4 layout");
_Static_assert(offsetof(mdiff_gen_params, max_expert_memory) == ABI_1_4_GEN_PARAMS_SIZE,
               "mdiff_gen_params 1.4 layout");
_Static_assert(offsetof(mdiff_gen_params, loras) == ABI_1_5_GEN_PARAMS_SIZE,
               "mdiff_gen_params 1.5 layout");
_Static_assert(offsetof(mdiff_gen_params, vae_tile) == 184, "mdiff_gen_params 1.6 layout");
_Static_assert(sizeof(mdiff_gen_params) == ABI_1_6_GEN_PARAMS_SIZE, "mdiff_gen_params 1.6 size");
_Static_assert(sizeof(mdiff_lora) == 24, "mdiff_lora layout");
_Static_assert(sizeof(mdiff_lora_info) == 4376, "mdiff_lora_info layout");
_Static_assert(offsetof(mdiff_model_info, default_guidance) == 72, "mdiff_model_info 1.0 layout");
_Static_assert(offsetof(mdiff_model_info, expert_memory) == 88, "mdiff_model_info 1.2 layout");
_Static_assert(sizeof(mdiff_model_info) == 104, "mdiff_model_info 1.5 layout");
_Static_assert(sizeof(mdiff_expert_memory) == 96, "mdiff_expert_memory layout");
_Static_assert(sizeof(mdiff_expert_estimate) == 48, "mdiff_expert_estimate layout");
_Static_assert(offsetof(mdiff_router_event, skipped) == 56, "mdiff_router_event 1.2 layout");
_Static_assert(sizeof(mdiff_router_event) == 80, "mdiff_router_event 1.4 layout");
_Static_assert(sizeof(mdiff_routing_health) == 40, "mdiff_routing_health layout");
_Static_assert(sizeof(mdiff_layer_health) == 200, "mdiff_layer_health layout");
_Static_assert(sizeof(mdiff_layer_stats) == 192, "mdiff_layer_stats layout");
_Static_assert(sizeof(mdiff_expert_settings) == ABI_1_0_EXPERT_SETTINGS_SIZE,
               "mdiff_expert_settings layout");
/* api->cancel is documented as safe in a signal handler. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "cancel needs a lock-free atomic int");

void abi_message(char *msg, size_t cap, const char *text)
{
    if (!msg || cap == 0)
        return;
    size_t n = strlen(text);
    if (n >= cap)
        n = cap - 1;
    memcpy(msg, text, n);
    msg[n] = '\0';
}

int abi_status(md_status s)
{
    switch (s) {
    case MD_OK: return MDIFF_OK;
    case MD_ERR_INVALID: return MDIFF_ERR_INVALID;
    case MD_ERR_IO: return MDIFF_ERR_IO;
    case MD_ERR_FORMAT: return MDIFF_ERR_FORMAT;
    case MD_ERR_NOMEM: return MDIFF_ERR_NOMEM;
    case MD_ERR_UNSUPPORTED: return MDIFF_ERR_UNSUPPORTED;
    case MD_ERR_CANCELLED: return MDIFF_ERR_CANCELLED;
    case MD_ERR_BUSY: return MDIFF_ERR_BUSY;
    case MD_ERR_NUMERIC: return MDIFF_ERR_NUMERIC;
    }
    return MDIFF_ERR_INVALID;
}

int abi_read_struct(void *full, size_t full_size, const void *host, size_t min_size)
{
    size_t size = *(const size_t *)host;
    if (size < min_size)
        return MDIFF_ERR_INVALID;
    memcpy(full, host, size < full_size ? size : full_size);
    *(size_t *)full = full_size;
    return MDIFF_OK;
}

void abi_write_struct(void *host, const void *full, size_t full_size)
{
    size_t size = *(const size_t *)host;
    memcpy(host, full, size < full_size ? size : full_size);
    *(size_t *)host = size;
}

int abi_enter(mdiff_context *ctx)
{
    int expected = ABI_IDLE;
    return atomic_compare_exchange_strong(&ctx->busy, &expected, ABI_IN_CALL) ? MDIFF_OK
                                                                            : MDIFF_ERR_BUSY;
}

void abi_leave(mdiff_context *ctx)
{
    int expected = ABI_IN_CALL;
    if (!atomic_compare_exchange_strong(&ctx->busy, &expected, ABI_IDLE))
        abi_context_free(ctx); /* ABI_DESTROY_PENDING: the destroy waited for this call */
}

int abi_destroy_pending(const mdiff_context *ctx)
{
    return atomic_load(&((mdiff_context *)ctx)->busy) == ABI_DESTROY_PENDING;
}

static const char *api_version(void)
{
    return MD_LIBRARY_VERSION;
}

static const char *api_status_name(int status)
{
    switch (status) {
    case MDIFF_OK: return "ok";
    case MDIFF_ERR_INVALID: return "invalid argument";
    case MDIFF_ERR_IO: return "i/o error";
    case MDIFF_ERR_FORMAT: return "malformed file";
    case MDIFF_ERR_NOMEM: return "out of memory";
    case MDIFF_ERR_UNSUPPORTED: return "unsupported";
    case MDIFF_ERR_CANCELLED: return "cancelled";
    case MDIFF_ERR_BUSY: return "busy";
    case MDIFF_ERR_NUMERIC: return "non-finite values";
    }
    return "unknown status";
}

static const char *api_sampler_name(int index)
{
    return index >= 0 && index < MD_SAMPLER_COUNT ? md_sampler_name((md_sampler_kind)index) : NULL;
}

/* Writes the defaults into the first `size` bytes of a host struct. */
static void fill_defaults(void *host, size_t size, const void *defaults, size_t full_size)
{
    if (!host || size < sizeof(size_t))
        return;
    memset(host, 0, size);
    memcpy(host, defaults, size < full_size ? size : full_size);
    *(size_t *)host = size;
}

static void api_context_params_init(mdiff_context_params *p, size_t size)
{
    const mdiff_context_params d = {.struct_size = sizeof d, .log_level = MDIFF_LOG_INFO,
                                    .device = -1};
    fill_defaults(p, size, &d, sizeof d);
}

static void api_gen_params_init(mdiff_gen_params *p, size_t size)
{
    mdiff_gen_params d;
    md_request_defaults(&d, size);
    fill_defaults(p, size, &d, sizeof d);
}

static void api_image_init(mdiff_image *img, size_t size)
{
    const mdiff_image d = {.struct_size = sizeof d};
    fill_defaults(img, size, &d, sizeof d);
}

static int api_set_progress(mdiff_context *ctx, mdiff_progress_fn fn, void *user)
{
    if (!ctx)
        return MDIFF_ERR_INVALID;
    if (abi_enter(ctx) != MDIFF_OK)
        return MDIFF_ERR_BUSY;
    ctx->progress = fn;
    ctx->progress_user = user;
    abi_leave(ctx);
    return MDIFF_OK;
}

static int api_set_log(mdiff_context *ctx, mdiff_log_fn fn, void *user, int level)
{
    if (!ctx)
        return MDIFF_ERR_INVALID;
    if (abi_enter(ctx) != MDIFF_OK)
        return MDIFF_ERR_BUSY;
    ctx->log = fn;
    ctx->log_user = user;
    ctx->log_level = level;
    abi_leave(ctx);
    return MDIFF_OK;
}

static int api_cancel(mdiff_context *ctx)
{
    if (!ctx)
        return MDIFF_ERR_INVALID;
    atomic_store(&ctx->cancel, 1);
    return MDIFF_OK;
}

static void api_image_free(mdiff_image *img)
{
    if (!img || img->struct_size < ABI_1_0_IMAGE_SIZE ||
        !(img->flags & MDIFF_IMAGE_LIBRARY_OWNED))
        return;
    free(img->data);
    img->data = NULL;
    img->flags &= ~MDIFF_IMAGE_LIBRARY_OWNED;
}

static const void *api_get_feature(const char *id)
{
    if (!id)
        return NULL;
    if (!strcmp(id, MDIFF_FEATURE_ROUTER_STATS))
        return abi_router_stats_api();
    if (!strcmp(id, MDIFF_FEATURE_EXPERT_SETTINGS))
        return abi_expert_settings_api();
    if (!strcmp(id, MDIFF_FEATURE_ROUTER_TRACE))
        return abi_router_trace_api();
    if (!strcmp(id, MDIFF_FEATURE_ROUTER_OVERRIDE))
        return abi_router_override_api();
    if (!strcmp(id, MDIFF_FEATURE_ROUTING_HEALTH))
        return abi_routing_health_api();
    if (!strcmp(id, MDIFF_FEATURE_DESCRIBE))
        return abi_describe_api();
    if (!strcmp(id, MDIFF_FEATURE_DEVICES))
        return abi_devices_api();
    if (!strcmp(id, MDIFF_FEATURE_EXPERT_MEMORY))
        return abi_expert_memory_api();
    if (!strcmp(id, MDIFF_FEATURE_PROFILE))
        return abi_profile_api();
    if (!strcmp(id, MDIFF_FEATURE_LORA))
        return abi_lora_api();
    if (!strcmp(id, MDIFF_FEATURE_MODEL_FILES))
        return abi_model_files_api();
    return NULL;
}

static const mdiff_api api_v1 = {
    .struct_size = sizeof(mdiff_api),
    .abi_major = MOEDIFFUSE_ABI_MAJOR,
    .abi_minor = MOEDIFFUSE_ABI_MINOR,
    .version = api_version,
    .status_name = api_status_name,
    .sampler_name = api_sampler_name,
    .context_params_init = api_context_params_init,
    .gen_params_init = api_gen_params_init,
    .image_init = api_image_init,
    .context_create = abi_context_create,
    .context_destroy = abi_context_destroy,
    .set_progress = api_set_progress,
    .set_log = api_set_log,
    .model_info = abi_model_info,
    .generate = abi_generate,
    .cancel = api_cancel,
    .image_free = api_image_free,
    .get_feature = api_get_feature,
    .resolve_params = abi_resolve_params,
    .merge = abi_merge,
};

MOEDIFFUSE_EXPORT const mdiff_api *moediffuse_get_api(int major, int minor)
{
    (void)minor; /* every minor of a major is served: minors only append */
    return major == MOEDIFFUSE_ABI_MAJOR ? &api_v1 : NULL;
}
