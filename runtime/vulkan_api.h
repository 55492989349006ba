/* Vulkan-specific entry points beyond the op table: listing devices (for
 * `moe-diffuse devices`), the per-op profile and the validation-layer
 * message count. Every function exists in builds without Vulkan too (they
 * then report no devices or MD_ERR_UNSUPPORTED). */
#ifndef MD_VULKAN_API_H
#define MD_VULKAN_API_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

typedef struct md_vulkan_device_info {
    int index;
    char name[256];
    const char *type;      /* "discrete", "integrated", "virtual", "cpu", "other" */
    uint32_t api_version;  /* VK_MAKE_API_VERSION layout */
    uint32_t vendor_id, device_id;
    uint64_t device_memory; /* bytes of the largest device-local heap */
    uint64_t max_binding;   /* maxStorageBufferRange: the largest tensor it can bind */
    int usable;             /* compute queue and the features the backend needs */
    const char *why_not;    /* when !usable: the missing piece */
    int fp16;               /* shaderFloat16 and this build's fp16 shaders: fp16 arithmetic
                               by default (docs/vulkan.md, "Precision") */
} md_vulkan_device_info;

/* Fills up to `cap` entries and sets *count to the number of devices.
 * No Vulkan loader or no device: *count = 0 and MD_OK; the reason, if any,
 * goes to err->msg with err->code left MD_OK. */
md_status md_vulkan_list_devices(md_vulkan_device_info *out, int cap, int *count, md_error *err);

/* "NAME (TYPE), PRECISION" of a Vulkan backend's device, e.g.
 * "llvmpipe (...) (cpu), fp16"; NULL for any other backend. */
const char *md_vulkan_device_name(md_backend *be);

/* The arithmetic of the expensive ops (linear, conv2d, attention): "fp16"
 * (fp16 products, fp32 sums) or "fp32"; NULL for any other backend. Every
 * other op, and all activations in memory, are fp32 either way. */
const char *md_vulkan_precision(md_backend *be);

/* The per-op profile collected since creation or the last reset (needs
 * md_vulkan_options.profile or MD_VK_PROFILE=1): one line per op label,
 * most expensive first, with calls, total and mean GPU time. Waits for
 * pending work first. MD_ERR_UNSUPPORTED when profiling is off. */
md_status md_vulkan_profile_report(md_backend *be, char *buf, size_t cap, md_error *err);
void md_vulkan_profile_reset(md_backend *be);

/* Validation-layer messages (warnings and errors) seen so far; the first
 * one's text goes to `first` when given. */
uint64_t md_vulkan_validation_messages(md_backend *be, char *first, size_t cap);

/* Counters of the command stream since creation (tests, docs). */
typedef struct md_vulkan_stats {
    uint64_t dispatches, barriers, submits;
    uint64_t weight_bytes, arena_bytes;
    /* Weights loaded on demand (weights_load: the expert cache under a
     * bound): device bytes held now and at most at once. */
    uint64_t ondemand_bytes, ondemand_peak;
} md_vulkan_stats;
int md_vulkan_stats_get(md_backend *be, md_vulkan_stats *out);

#endif
