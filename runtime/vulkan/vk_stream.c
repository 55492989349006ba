/* The command stream: ops record into one command buffer, which is
 * submitted and waited for only at sync points (a download, a full staging
 * ring, a reset that frees memory, an explicit sync). Barriers are inserted
 * only where a command touches memory that recorded work since the last
 * barrier wrote (or, for a write, read). */
#include <string.h>

#include "vk_internal.h"

static const VkPipelineStageFlags MD_VK_STAGES =
    VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;

int md_vk_begin(md_vk *vk)
{
    if (vk->recording)
        return 1;
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    if (vkBeginCommandBuffer(vk->cmd, &bi) != VK_SUCCESS) {
        md_vk_fail(vk, "vulkan: cannot begin a command buffer");
        return 0;
    }
    vk->recording = 1;
    vk->nreads = vk->nwrites = 0;
    if (vk->profile) {
        vkCmdResetQueryPool(vk->cmd, vk->queries, 0, MD_VK_QUERY_CAP);
        vkCmdWriteTimestamp(vk->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, vk->queries, 0);
        vk->query_label[0] = NULL;
        vk->nqueries = 1;
    }
    return 1;
}

static void profile_add(md_vk *vk, const char *label, double ns)
{
    int i = 0;
    while (i < vk->nprof && strcmp(vk->prof[i].label, label) != 0)
        i++;
    if (i == vk->nprof) {
        if (vk->nprof == MD_VK_PROFILE_SLOTS)
            i = MD_VK_PROFILE_SLOTS - 1; /* more labels than slots: the last one collects */
        else
            vk->prof[vk->nprof++] = (md_vk_prof){label, 0, 0.0};
    }
    vk->prof[i].calls++;
    vk->prof[i].ns += ns;
}

static void profile_collect(md_vk *vk)
{
    uint64_t t[MD_VK_QUERY_CAP];
    uint32_t n = vk->nqueries;
    vk->nqueries = 0;
    if (n < 2)
        return;
    if (vkGetQueryPoolResults(vk->dev, vk->queries, 0, n, sizeof t, t, sizeof t[0],
                              VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) != VK_SUCCESS)
        return;
    double period = (double)vk->props.limits.timestampPeriod;
    for (uint32_t i = 1; i < n; i++)
        if (vk->query_label[i])
            profile_add(vk, vk->query_label[i], (double)(t[i] - t[i - 1]) * period);
}

md_status md_vk_flush(md_vk *vk)
{
    vk->ring_used = 0; /* nothing recorded reads it once this returns */
    if (!vk->recording)
        return vk->failed ? vk->sticky.code : MD_OK;
    /* Make every device write visible to host reads (downloads). */
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    vkCmdPipelineBarrier(vk->cmd, MD_VK_STAGES, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0,
                         NULL);
    vk->recording = 0;
    vk->nreads = vk->nwrites = 0;
    VkResult r = vkEndCommandBuffer(vk->cmd);
    if (r == VK_SUCCESS) {
        VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                           .commandBufferCount = 1,
                           .pCommandBuffers = &vk->cmd};
        r = vkQueueSubmit(vk->queue, 1, &si, vk->fence);
        if (r == VK_SUCCESS) {
            r = vkWaitForFences(vk->dev, 1, &vk->fence, VK_TRUE, UINT64_MAX);
            vkResetFences(vk->dev, 1, &vk->fence);
        }
    }
    vk->submits++;
    if (r == VK_SUCCESS && vk->profile)
        profile_collect(vk);
    vk->nqueries = 0;
    vkResetCommandPool(vk->dev, vk->cmd_pool, 0);
    if (r != VK_SUCCESS)
        md_vk_fail(vk, "vulkan: running work on %s failed (VkResult %d%s)", vk->device_name,
                   (int)r, r == VK_ERROR_DEVICE_LOST ? ", device lost" : "");
    return vk->failed ? vk->sticky.code : MD_OK;
}

static int overlaps(const md_vk_range *set, int n, uintptr_t lo, uintptr_t hi)
{
    for (int i = 0; i < n; i++)
        if (lo < set[i].hi && set[i].lo < hi)
            return 1;
    return 0;
}

void md_vk_hazard(md_vk *vk, const md_vk_arg *args, int nargs)
{
    int need = vk->nreads + nargs > MD_VK_MAX_HAZARDS || vk->nwrites + nargs > MD_VK_MAX_HAZARDS;
    for (int i = 0; i < nargs && !need; i++) {
        if (args[i].hi <= args[i].lo)
            continue; /* host staging: written by the host before submission */
        need = overlaps(vk->writes, vk->nwrites, args[i].lo, args[i].hi) ||
               (args[i].write && overlaps(vk->reads, vk->nreads, args[i].lo, args[i].hi));
    }
    if (need) {
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                              .srcAccessMask =
                                  VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_SHADER_READ_BIT |
                                               VK_ACCESS_SHADER_WRITE_BIT |
                                               VK_ACCESS_TRANSFER_READ_BIT |
                                               VK_ACCESS_TRANSFER_WRITE_BIT};
        vkCmdPipelineBarrier(vk->cmd, MD_VK_STAGES, MD_VK_STAGES, 0, 1, &mb, 0, NULL, 0, NULL);
        vk->nreads = vk->nwrites = 0;
        vk->barriers++;
    }
    for (int i = 0; i < nargs; i++) {
        if (args[i].hi <= args[i].lo)
            continue;
        md_vk_range r = {args[i].lo, args[i].hi};
        if (args[i].write)
            vk->writes[vk->nwrites++] = r;
        else
            vk->reads[vk->nreads++] = r;
    }
}

void md_vk_profile_mark(md_vk *vk, const char *label)
{
    if (!vk->profile || !vk->recording)
        return;
    vkCmdWriteTimestamp(vk->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, vk->queries, vk->nqueries);
    vk->query_label[vk->nqueries++] = label;
    if (vk->nqueries == MD_VK_QUERY_CAP)
        md_vk_flush(vk);
}

void md_vk_dispatch(md_vk *vk, md_vk_shader sh, const uint32_t *spec, int nspec,
                    const md_vk_arg *args, int nargs, const void *push, uint32_t push_bytes,
                    uint32_t gx, uint32_t gy, uint32_t gz, const char *label)
{
    if (vk->failed)
        return; /* the result is wrong already; sync reports why */
    if (nargs != md_vk_shader_bindings(sh) || push_bytes > 128) {
        md_vk_fail(vk, "vulkan: %s: %d bindings / %u push bytes do not match shader %s", label,
                   nargs, push_bytes, md_vk_shader_name(sh));
        return;
    }
    VkPipeline pipe = md_vk_pipeline(vk, sh, spec, nspec);
    if (!pipe || !md_vk_begin(vk))
        return;
    md_vk_hazard(vk, args, nargs);
    vkCmdBindPipeline(vk->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    VkDescriptorBufferInfo info[MD_VK_MAX_BINDINGS];
    VkWriteDescriptorSet wr[MD_VK_MAX_BINDINGS];
    for (int i = 0; i < nargs; i++) {
        info[i] = (VkDescriptorBufferInfo){args[i].buf, args[i].offset, args[i].range};
        wr[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                       .dstBinding = (uint32_t)i,
                                       .descriptorCount = 1,
                                       .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                       .pBufferInfo = &info[i]};
    }
    VkPipelineLayout layout = vk->pipe_layout[nargs];
    vk->push_descriptor(vk->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, layout, 0, (uint32_t)nargs, wr);
    if (push_bytes)
        vkCmdPushConstants(vk->cmd, layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes, push);
    vkCmdDispatch(vk->cmd, gx, gy, gz);
    vk->dispatches++;
    md_vk_profile_mark(vk, label);
}

void md_vk_copy(md_vk *vk, const md_vk_arg *dst, const md_vk_arg *src, VkDeviceSize bytes,
                const char *label)
{
    if (vk->failed || bytes == 0 || !md_vk_begin(vk))
        return;
    md_vk_arg both[2] = {*src, *dst};
    md_vk_hazard(vk, both, 2);
    VkBufferCopy region = {src->at, dst->at, bytes};
    vkCmdCopyBuffer(vk->cmd, src->buf, dst->buf, 1, &region);
    md_vk_profile_mark(vk, label);
}

void md_vk_fill_words(md_vk *vk, const md_vk_arg *dst, VkDeviceSize bytes, uint32_t word,
                      const char *label)
{
    if (vk->failed || bytes == 0 || !md_vk_begin(vk))
        return;
    md_vk_hazard(vk, dst, 1);
    vkCmdFillBuffer(vk->cmd, dst->buf, dst->at, bytes, word);
    md_vk_profile_mark(vk, label);
}

size_t md_vk_ring_capacity(const md_vk *vk)
{
    return vk->ring ? (size_t)vk->ring->size : 0;
}

void *md_vk_ring_alloc(md_vk *vk, size_t bytes, VkDeviceSize *offset)
{
    size_t need = (bytes + MD_VK_ALIGN - 1) / MD_VK_ALIGN * MD_VK_ALIGN;
    if (!vk->ring || need > vk->ring->size)
        return NULL;
    if (vk->ring_used + need > vk->ring->size)
        md_vk_flush(vk);
    *offset = vk->ring_used;
    vk->ring_used += need;
    return (unsigned char *)vk->ring->map + *offset;
}
