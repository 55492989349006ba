/* Features "backend.devices" (the Vulkan devices this build can see) and
 * "backend.profile" (per-op GPU time and the backend a context runs on). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/vulkan_api.h"
#include "abi_internal.h"

static int device_type(const char *type)
{
    if (!strcmp(type, "discrete"))
        return MDIFF_DEVICE_DISCRETE;
    if (!strcmp(type, "integrated"))
        return MDIFF_DEVICE_INTEGRATED;
    if (!strcmp(type, "virtual"))
        return MDIFF_DEVICE_VIRTUAL;
    if (!strcmp(type, "cpu"))
        return MDIFF_DEVICE_CPU;
    return MDIFF_DEVICE_OTHER;
}

/* Struct size of mdiff_device_info as 1.2 released it. */
enum { ABI_1_2_DEVICE_INFO_SIZE = 560 };
_Static_assert(sizeof(mdiff_device_info) == ABI_1_2_DEVICE_INFO_SIZE, "mdiff_device_info layout");

static int list_devices(mdiff_device_info *out, int cap, char *msg, size_t msg_cap)
{
    abi_message(msg, msg_cap, "");
    if (cap < 0 || (cap > 0 && !out)) {
        abi_message(msg, msg_cap, "devices: out is NULL or cap is negative");
        return MDIFF_ERR_INVALID;
    }
    for (int i = 0; i < cap; i++)
        if (out[i].struct_size < ABI_1_2_DEVICE_INFO_SIZE) {
            abi_message(msg, msg_cap, "devices: struct_size too small");
            return MDIFF_ERR_INVALID;
        }
    md_vulkan_device_info found[16];
    int count = 0;
    md_error err = {0};
    md_status st = md_vulkan_list_devices(found, 16, &count, &err);
    if (st != MD_OK) {
        abi_message(msg, msg_cap, err.msg);
        return abi_status(st);
    }
    if (count == 0)
        abi_message(msg, msg_cap, err.msg[0] ? err.msg : "no Vulkan device");
    if (count > 16)
        count = 16; /* the documented maximum: what the list can describe */
    for (int i = 0; i < cap && i < count && i < 16; i++) {
        const md_vulkan_device_info *d = &found[i];
        mdiff_device_info r = {.struct_size = sizeof r,
                               .index = d->index,
                               .type = device_type(d->type),
                               .memory = d->device_memory,
                               .max_binding = d->max_binding,
                               .vendor_id = d->vendor_id,
                               .device_id = d->device_id,
                               .api_version = d->api_version,
                               .usable = d->usable};
        snprintf(r.name, sizeof r.name, "%s", d->name);
        snprintf(r.why_not, sizeof r.why_not, "%s", d->usable || !d->why_not ? "" : d->why_not);
        abi_write_struct(&out[i], &r, sizeof r);
    }
    return count;
}

static const mdiff_devices_api devices_api = {.struct_size = sizeof devices_api,
                                              .list = list_devices};

const void *abi_devices_api(void)
{
    return &devices_api;
}

/* Takes the context for a profile call: a status unless it is profiling on Vulkan. */
static int enter_profiling(mdiff_context *ctx)
{
    if (!ctx)
        return MDIFF_ERR_INVALID;
    if (!ctx->profile || strcmp(ctx->be->name, "vulkan"))
        return MDIFF_ERR_UNSUPPORTED;
    return abi_enter(ctx);
}

static int profile_report(mdiff_context *ctx, char *text, size_t cap)
{
    int rc = enter_profiling(ctx);
    if (rc != MDIFF_OK)
        return rc;
    size_t big = 64 * 1024;
    char *buf = malloc(big);
    rc = MDIFF_ERR_NOMEM;
    if (buf) {
        md_error err = {0};
        md_status st = md_vulkan_profile_report(ctx->be, buf, big, &err);
        rc = st == MD_OK ? abi_text_out(text, cap, buf) : abi_status(st);
        free(buf);
    }
    abi_leave(ctx);
    return rc;
}

static int profile_reset(mdiff_context *ctx)
{
    int rc = enter_profiling(ctx);
    if (rc != MDIFF_OK)
        return rc;
    md_vulkan_profile_reset(ctx->be);
    abi_leave(ctx);
    return MDIFF_OK;
}

static int backend_name(mdiff_context *ctx, char *text, size_t cap)
{
    if (!ctx)
        return MDIFF_ERR_INVALID;
    char buf[400];
    const char *dev = md_vulkan_device_name(ctx->be);
    if (dev)
        snprintf(buf, sizeof buf, "%s: %s", ctx->be->name, dev);
    else
        snprintf(buf, sizeof buf, "%s", ctx->be->name);
    return abi_text_out(text, cap, buf);
}

static const mdiff_profile_api profile_api = {.struct_size = sizeof profile_api,
                                              .report = profile_report,
                                              .reset = profile_reset,
                                              .backend_name = backend_name};

const void *abi_profile_api(void)
{
    return &profile_api;
}
