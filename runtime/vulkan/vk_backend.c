/* The Vulkan backend object: creation, the memory entries of the op table,
 * sync, and the Vulkan-specific API (runtime/vulkan_api.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

#define MD_VK_RING_BYTES ((VkDeviceSize)16 << 20)

static int env_on(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static void vk_free(md_vk *vk)
{
    if (vk->dev) {
        md_vk_flush(vk);
        vkDeviceWaitIdle(vk->dev);
        md_vk_pipelines_free(vk);
        md_vk_arena_free(vk);
        md_vk_weights_free(vk);
        md_vk_buffer_free(vk, vk->ring);
        md_vk_buffer_free(vk, vk->readback);
        md_vk_buffer_free(vk, vk->dummy);
        if (vk->queries)
            vkDestroyQueryPool(vk->dev, vk->queries, NULL);
        if (vk->fence)
            vkDestroyFence(vk->dev, vk->fence, NULL);
        if (vk->cmd_pool)
            vkDestroyCommandPool(vk->dev, vk->cmd_pool, NULL);
    }
    md_vk_close(vk);
    free(vk->bufs);
    free(vk);
}

static void vk_destroy(md_backend *be)
{
    vk_free(md_vk_of(be));
    free(be);
}

static size_t vk_arena_mark(md_backend *be)
{
    return md_vk_arena_mark(md_vk_of(be));
}

static void vk_arena_reset(md_backend *be, size_t mark)
{
    md_vk_arena_reset(md_vk_of(be), mark);
}

static md_tensor vk_new_tensor(md_backend *be, int ndim, const int64_t *shape)
{
    md_vk *vk = md_vk_of(be);
    md_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = MD_F32;
    if (ndim < 0 || ndim > MD_MAX_DIMS)
        return t;
    t.ndim = ndim;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && n > INT64_MAX / 4 / shape[i]))
            return t;
        t.shape[i] = shape[i];
        n *= shape[i];
    }
    size_t bytes = (size_t)n * sizeof(float);
    if (bytes > vk->props.limits.maxStorageBufferRange) {
        char buf[96];
        md_vk_fail(vk,
                   "vulkan: an activation %s of %.1f MiB exceeds %s's storage-buffer binding "
                   "limit (%.1f MiB)",
                   md_shape_str(&t, buf, sizeof buf), (double)bytes / 1048576.0, vk->device_name,
                   (double)vk->props.limits.maxStorageBufferRange / 1048576.0);
        return t; /* data NULL: the caller reports it */
    }
    t.data = md_vk_arena_alloc(vk, bytes);
    return t;
}

static void vk_upload(md_backend *be, md_tensor *dst, const float *src)
{
    md_vk *vk = md_vk_of(be);
    md_error err = {0};
    if (md_vk_write_tensor(vk, dst, src, &err) != MD_OK)
        md_vk_fail(vk, "%s", err.msg);
}

static void vk_download(md_backend *be, const md_tensor *src, float *dst)
{
    md_vk *vk = md_vk_of(be);
    size_t bytes = (size_t)md_tensor_numel(src) * sizeof(float);
    if (bytes == 0)
        return;
    md_vk_arg from;
    if (md_vk_bind(vk, &from, src, MD_VK_TRANSFER, "download")) {
        if (!vk->readback || vk->readback->size < bytes) {
            md_vk_flush(vk); /* the old readback buffer may be in use */
            md_vk_buffer_free(vk, vk->readback);
            md_error err = {0};
            vk->readback = md_vk_buffer_new(vk, bytes, 1, &err);
            if (!vk->readback)
                md_vk_fail(vk, "vulkan: download: %s", err.msg);
        }
        if (vk->readback) {
            md_vk_arg to = {.buf = vk->readback->buf, .range = bytes};
            md_vk_copy(vk, &to, &from, bytes, "download");
        }
    }
    md_vk_flush(vk);
    if (vk->failed || !vk->readback) {
        /* Visibly wrong output; sync() says why. */
        for (size_t i = 0; i < bytes / sizeof(float); i++)
            dst[i] = NAN;
        return;
    }
    memcpy(dst, vk->readback->map, bytes);
}

static md_status vk_prepare_weight(md_backend *be, md_tensor *w, md_error *err)
{
    return md_vk_upload_weight(md_vk_of(be), w, err);
}

static md_status vk_prepare_weight_stack(md_backend *be, md_tensor *const *ws, int n,
                                         md_error *err)
{
    return md_vk_upload_weight_stack(md_vk_of(be), ws, n, err);
}

static md_status vk_weights_load(md_backend *be, const md_tensor *const *host, md_tensor *dev,
                                 int n, void **handle, md_error *err)
{
    md_vk_buffer *b = NULL;
    md_status s = md_vk_load_weights(md_vk_of(be), host, dev, n, &b, err);
    *handle = b;
    return s;
}

static void vk_weights_unload(md_backend *be, void *handle)
{
    md_vk_unload_weights(md_vk_of(be), handle);
}

static md_status vk_sync(md_backend *be, md_error *err)
{
    md_vk *vk = md_vk_of(be);
    md_vk_flush(vk);
    if (!vk->failed)
        return MD_OK;
    md_status s = md_fail(err, vk->sticky.code, "%s", vk->sticky.msg);
    vk->failed = 0; /* reported once; later work starts clean */
    return s;
}

static md_status init(md_vk *vk, const md_vulkan_options *opt, md_error *err)
{
    MD_TRY(md_vk_open(vk, opt, err));
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_TRANSIENT_BIT,
                                   .queueFamilyIndex = vk->queue_family};
    if (vkCreateCommandPool(vk->dev, &pci, NULL, &vk->cmd_pool) != VK_SUCCESS)
        return md_fail(err, MD_ERR_UNSUPPORTED, "vulkan: cannot create a command pool");
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .commandPool = vk->cmd_pool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                       .commandBufferCount = 1};
    if (vkAllocateCommandBuffers(vk->dev, &cai, &vk->cmd) != VK_SUCCESS)
        return md_fail(err, MD_ERR_UNSUPPORTED, "vulkan: cannot allocate a command buffer");
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if (vkCreateFence(vk->dev, &fci, NULL, &vk->fence) != VK_SUCCESS)
        return md_fail(err, MD_ERR_UNSUPPORTED, "vulkan: cannot create a fence");
    MD_TRY(md_vk_layouts_create(vk, err));
    vk->ring = md_vk_buffer_new(vk, MD_VK_RING_BYTES, 1, err);
    vk->dummy = vk->ring ? md_vk_buffer_new(vk, MD_VK_ALIGN, 0, err) : NULL;
    if (!vk->ring || !vk->dummy)
        return md_fail_context(err, "vulkan: staging buffers: ");
    if (vk->profile) {
        uint32_t n = 0;
        vkGetPhysicalDeviceQueueFamilyProperties(vk->phys, &n, NULL);
        VkQueueFamilyProperties *q = calloc(n, sizeof *q);
        if (!q)
            return md_fail(err, MD_ERR_NOMEM, "vulkan: out of host memory");
        vkGetPhysicalDeviceQueueFamilyProperties(vk->phys, &n, q);
        uint32_t bits = q[vk->queue_family].timestampValidBits;
        free(q);
        if (bits == 0 || !vk->props.limits.timestampComputeAndGraphics)
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "vulkan: profiling asked for, but %s has no compute timestamps",
                           vk->device_name);
        VkQueryPoolCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                     .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                     .queryCount = MD_VK_QUERY_CAP};
        if (vkCreateQueryPool(vk->dev, &qci, NULL, &vk->queries) != VK_SUCCESS)
            return md_fail(err, MD_ERR_UNSUPPORTED, "vulkan: cannot create a query pool");
    }
    return MD_OK;
}

static int vk_force_f32(md_backend *be, int on)
{
    md_vk *vk = md_vk_of(be);
    int was = vk->f32_forced;
    vk->f32_forced = on != 0;
    vk->fp16 = vk->fp16_native && !vk->f32_forced;
    return was;
}

md_status md_backend_vulkan_create(md_backend **out, const md_vulkan_options *opt, md_error *err)
{
    *out = NULL;
    md_vulkan_options o = {.device = -1};
    if (opt)
        o = *opt;
    o.validation |= env_on("MD_VK_VALIDATION");
    o.profile |= env_on("MD_VK_PROFILE");
    const char *moe = getenv("MD_VK_MOE");
    o.host_moe |= moe && strcmp(moe, "host") == 0;
    /* MD_VK_FP16 decides only where the caller left the precision open. */
    const char *fp16 = getenv("MD_VK_FP16");
    if (o.fp16 == 0 && fp16 && *fp16) {
        if (strcmp(fp16, "0") != 0 && strcmp(fp16, "1") != 0 && strcmp(fp16, "auto") != 0)
            return md_fail(err, MD_ERR_INVALID, "MD_VK_FP16 is '%s': 0 (f32), 1 (fp16) or auto",
                           fp16);
        o.fp16 = fp16[0] == '1' ? 1 : fp16[0] == 'a' ? 2 : -1;
    }
    md_backend *be = calloc(1, sizeof *be);
    md_vk *vk = calloc(1, sizeof *vk);
    if (!be || !vk) {
        free(be);
        free(vk);
        return md_fail(err, MD_ERR_NOMEM, "vulkan backend: out of memory");
    }
    vk->profile = o.profile;
    md_status s = init(vk, &o, err);
    if (s != MD_OK) {
        vk_free(vk);
        free(be);
        return s;
    }
    be->name = "vulkan";
    be->impl = vk;
    be->destroy = vk_destroy;
    be->arena_mark = vk_arena_mark;
    be->arena_reset = vk_arena_reset;
    be->new_tensor = vk_new_tensor;
    be->upload = vk_upload;
    be->download = vk_download;
    be->prepare_weight = vk_prepare_weight;
    be->conv2d = md_vk_op_conv2d;
    be->linear = md_vk_op_linear_mixed;
    be->group_norm = md_vk_op_group_norm;
    be->layer_norm = md_vk_op_layer_norm;
    be->activation = md_vk_op_activation;
    be->geglu = md_vk_op_geglu;
    be->attention = md_vk_op_attention;
    be->add = md_vk_op_add;
    be->add_channel_bias = md_vk_op_add_channel_bias;
    be->scale = md_vk_op_scale;
    be->axpy = md_vk_op_axpy;
    be->fill = md_vk_op_fill;
    be->copy = md_vk_op_copy;
    be->upsample_nearest2x = md_vk_op_upsample_nearest2x;
    be->concat_channels = md_vk_op_concat_channels;
    be->concat_last = md_vk_op_concat_last;
    be->nchw_to_tokens = md_vk_op_nchw_to_tokens;
    be->tokens_to_nchw = md_vk_op_tokens_to_nchw;
    be->embedding = md_vk_op_embedding;
    be->add_position = md_vk_op_add_position;
    be->gather_rows = md_vk_op_gather_rows;
    be->scatter_add_rows = md_vk_op_scatter_add_rows;
    be->add_rows_weighted = md_vk_op_add_rows_weighted;
    if (!o.host_moe) { /* else MoE layers route on the host, as on the CPU */
        be->prepare_weight_stack = vk_prepare_weight_stack;
        be->moe_routed = md_vk_op_moe_routed;
    }
    be->weights_load = vk_weights_load;
    be->weights_unload = vk_weights_unload;
    be->sync = vk_sync;
    be->force_f32 = vk_force_f32;
    *out = be;
    return MD_OK;
}

/* ---- runtime/vulkan_api.h ---- */

static md_vk *vk_or_null(md_backend *be)
{
    return be && be->name && strcmp(be->name, "vulkan") == 0 ? md_vk_of(be) : NULL;
}

const char *md_vulkan_device_name(md_backend *be)
{
    md_vk *vk = vk_or_null(be);
    return vk ? vk->label : NULL;
}

const char *md_vulkan_precision(md_backend *be)
{
    md_vk *vk = vk_or_null(be);
    return !vk ? NULL : vk->fp16 ? "fp16" : "fp32";
}

static int by_time(const void *a, const void *b)
{
    double x = ((const md_vk_prof *)a)->ns, y = ((const md_vk_prof *)b)->ns;
    return x < y ? 1 : x > y ? -1 : 0;
}

md_status md_vulkan_profile_report(md_backend *be, char *buf, size_t cap, md_error *err)
{
    md_vk *vk = vk_or_null(be);
    if (!vk || !vk->profile)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "no Vulkan profile: use the vulkan backend with profiling on "
                       "(MD_VK_PROFILE=1)");
    md_vk_flush(vk);
    md_vk_prof sorted[MD_VK_PROFILE_SLOTS];
    int n = vk->nprof;
    memcpy(sorted, vk->prof, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, by_time);
    double total = 0;
    for (int i = 0; i < n; i++)
        total += sorted[i].ns;
    size_t used = 0;
    if (cap)
        buf[0] = '\0';
#define MD_VK_APPEND(...)                                                                          \
    do {                                                                                           \
        if (used < cap) {                                                                          \
            int w_ = snprintf(buf + used, cap - used, __VA_ARGS__);                                \
            used += w_ > 0 ? (size_t)w_ : 0;                                                       \
        }                                                                                          \
    } while (0)
    MD_VK_APPEND("%-20s %8s %12s %10s %6s\n", "op", "calls", "total ms", "mean us", "share");
    for (int i = 0; i < n; i++)
        MD_VK_APPEND("%-20s %8llu %12.3f %10.1f %5.1f%%\n", sorted[i].label,
                     (unsigned long long)sorted[i].calls, sorted[i].ns / 1e6,
                     sorted[i].ns / 1e3 / (double)sorted[i].calls,
                     total > 0 ? 100.0 * sorted[i].ns / total : 0.0);
    MD_VK_APPEND("%-20s %8s %12.3f\n", "total", "", total / 1e6);
    MD_VK_APPEND("arithmetic: %s\n", vk->fp16 ? "fp16 products, fp32 sums (linear, conv2d, "
                                                "attention); fp32 elsewhere"
                                              : "fp32");
#undef MD_VK_APPEND
    return MD_OK;
}

void md_vulkan_profile_reset(md_backend *be)
{
    md_vk *vk = vk_or_null(be);
    if (!vk)
        return;
    md_vk_flush(vk);
    vk->nprof = 0;
}

uint64_t md_vulkan_validation_messages(md_backend *be, char *first, size_t cap)
{
    md_vk *vk = vk_or_null(be);
    if (!vk)
        return 0;
    if (first && cap)
        snprintf(first, cap, "%s", vk->first_message);
    return vk->messages;
}

int md_vulkan_stats_get(md_backend *be, md_vulkan_stats *out)
{
    md_vk *vk = vk_or_null(be);
    memset(out, 0, sizeof *out);
    if (!vk)
        return 0;
    out->dispatches = vk->dispatches;
    out->barriers = vk->barriers;
    out->submits = vk->submits;
    out->weight_bytes = vk->weight_bytes;
    out->arena_bytes = md_vk_arena_bytes(vk);
    out->ondemand_bytes = vk->ondemand_bytes;
    out->ondemand_peak = vk->ondemand_peak;
    return 1;
}
