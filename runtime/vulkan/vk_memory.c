/* Device buffers, the address map that names them, tensor bindings and
 * weight upload. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vk_internal.h"

/* Weights are packed into blocks of this size (larger weights get their
 * own), so a model is a few dozen allocations, not one per tensor. */
#define MD_VK_WEIGHT_BLOCK ((VkDeviceSize)64 << 20)

static VkDeviceSize round_up(VkDeviceSize v, VkDeviceSize a)
{
    return (v + a - 1) / a * a;
}

void md_vk_fail(md_vk *vk, const char *fmt, ...)
{
    if (vk->failed)
        return;
    vk->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(vk->sticky.msg, sizeof vk->sticky.msg, fmt, ap);
    va_end(ap);
    vk->sticky.code = MD_ERR_INVALID;
}

/* Keeps vk->bufs sorted by va. */
static int map_insert(md_vk *vk, md_vk_buffer *b)
{
    if (vk->nbufs == vk->bufs_cap) {
        size_t cap = vk->bufs_cap ? vk->bufs_cap * 2 : 32;
        md_vk_buffer **p = realloc(vk->bufs, cap * sizeof *p);
        if (!p)
            return 0;
        vk->bufs = p;
        vk->bufs_cap = cap;
    }
    size_t i = vk->nbufs;
    while (i > 0 && vk->bufs[i - 1]->va > b->va) {
        vk->bufs[i] = vk->bufs[i - 1];
        i--;
    }
    vk->bufs[i] = b;
    vk->nbufs++;
    return 1;
}

static void map_remove(md_vk *vk, const md_vk_buffer *b)
{
    for (size_t i = 0; i < vk->nbufs; i++)
        if (vk->bufs[i] == b) {
            memmove(vk->bufs + i, vk->bufs + i + 1, (vk->nbufs - i - 1) * sizeof *vk->bufs);
            vk->nbufs--;
            return;
        }
}

md_vk_buffer *md_vk_find(const md_vk *vk, const void *p, size_t bytes)
{
    uintptr_t a = (uintptr_t)p;
    size_t lo = 0, hi = vk->nbufs;
    while (lo < hi) { /* first buffer starting past a */
        size_t mid = (lo + hi) / 2;
        if (vk->bufs[mid]->va <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    md_vk_buffer *b = vk->bufs[lo - 1];
    if (a - b->va > b->size || bytes > b->size - (a - b->va))
        return NULL;
    return b;
}

md_vk_buffer *md_vk_buffer_new(md_vk *vk, VkDeviceSize size, int host_visible, md_error *err)
{
    size = round_up(size ? size : 1, MD_VK_ALIGN);
    md_vk_buffer *b = calloc(1, sizeof *b);
    if (!b) {
        md_fail(err, MD_ERR_NOMEM, "vulkan: out of host memory");
        return NULL;
    }
    b->size = size;
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                              .size = size,
                              .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                       VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                       VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                              .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    if (vkCreateBuffer(vk->dev, &bci, NULL, &b->buf) != VK_SUCCESS) {
        free(b);
        md_fail(err, MD_ERR_NOMEM, "vulkan: cannot create a buffer of %.1f MiB",
                (double)size / 1048576.0);
        return NULL;
    }
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(vk->dev, b->buf, &req);
    uint32_t type;
    if (host_visible) {
        type = md_vk_memory_type(vk, req.memoryTypeBits,
                                 VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                     VK_MEMORY_PROPERTY_HOST_COHERENT_BIT |
                                     VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
        if (type == UINT32_MAX)
            type = md_vk_memory_type(vk, req.memoryTypeBits,
                                     VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                         VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
    } else {
        type = md_vk_memory_type(vk, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
        if (type == UINT32_MAX)
            type = md_vk_memory_type(vk, req.memoryTypeBits, 0);
    }
    VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                .allocationSize = req.size,
                                .memoryTypeIndex = type};
    void *va = MAP_FAILED;
    if (type == UINT32_MAX || vkAllocateMemory(vk->dev, &mai, NULL, &b->mem) != VK_SUCCESS) {
        md_fail(err, MD_ERR_NOMEM, "vulkan: out of %s memory for a buffer of %.1f MiB on %s",
                host_visible ? "host-visible" : "device", (double)size / 1048576.0,
                vk->device_name);
        goto fail;
    }
    if (vkBindBufferMemory(vk->dev, b->buf, b->mem, 0) != VK_SUCCESS ||
        (host_visible && vkMapMemory(vk->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &b->map) != VK_SUCCESS)) {
        md_fail(err, MD_ERR_NOMEM, "vulkan: cannot bind or map a buffer of %.1f MiB",
                (double)size / 1048576.0);
        goto fail;
    }
    /* Address space only: no access, no backing, never touched. */
    va = mmap(NULL, (size_t)size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (va == MAP_FAILED) {
        md_fail(err, MD_ERR_NOMEM, "vulkan: cannot reserve %.1f MiB of address space",
                (double)size / 1048576.0);
        goto fail;
    }
    b->va = (uintptr_t)va;
    if (!map_insert(vk, b)) {
        md_fail(err, MD_ERR_NOMEM, "vulkan: out of host memory");
        goto fail;
    }
    return b;
fail:
    if (va != MAP_FAILED)
        munmap(va, (size_t)size);
    if (b->mem)
        vkFreeMemory(vk->dev, b->mem, NULL);
    vkDestroyBuffer(vk->dev, b->buf, NULL);
    free(b);
    return NULL;
}

void md_vk_buffer_free(md_vk *vk, md_vk_buffer *b)
{
    if (!b)
        return;
    map_remove(vk, b);
    munmap((void *)b->va, (size_t)b->size);
    vkDestroyBuffer(vk->dev, b->buf, NULL);
    vkFreeMemory(vk->dev, b->mem, NULL); /* unmaps too */
    free(b);
}

int md_vk_bind(md_vk *vk, md_vk_arg *a, const md_tensor *t, int flags, const char *op)
{
    memset(a, 0, sizeof *a);
    if (!t) {
        a->buf = vk->dummy->buf;
        a->range = vk->dummy->size;
        return 1;
    }
    size_t es = md_dtype_size(t->dtype);
    if (t->dtype != MD_F32 && t->dtype != MD_F16 && t->dtype != MD_BF16) {
        md_vk_fail(vk, "vulkan: %s: tensors of dtype %s are not supported", op,
                   md_dtype_name(t->dtype));
        return 0;
    }
    size_t bytes = (size_t)md_tensor_numel(t) * es;
    if (bytes == 0)
        bytes = es;
    md_vk_buffer *b = t->data ? md_vk_find(vk, t->data, bytes) : NULL;
    if (!b) {
        char shape[96];
        md_vk_fail(vk,
                   "vulkan: %s: a %s tensor %s is not in device memory (activations must come "
                   "from new_tensor, weights from prepare_weight)",
                   op, md_dtype_name(t->dtype), md_shape_str(t, shape, sizeof shape));
        return 0;
    }
    VkDeviceSize off = (uintptr_t)t->data - b->va;
    VkDeviceSize start = off / MD_VK_ALIGN * MD_VK_ALIGN;
    VkDeviceSize range = round_up(off + bytes - start, 4);
    if (start + range > b->size)
        range = b->size - start;
    if ((off - start) % es != 0) {
        md_vk_fail(vk, "vulkan: %s: tensor data is not aligned to its element size", op);
        return 0;
    }
    if (!(flags & MD_VK_TRANSFER) && range > vk->props.limits.maxStorageBufferRange) {
        md_vk_fail(vk,
                   "vulkan: %s: a tensor of %.1f MiB exceeds %s's storage-buffer binding limit "
                   "(%.1f MiB)",
                   op, (double)bytes / 1048576.0, vk->device_name,
                   (double)vk->props.limits.maxStorageBufferRange / 1048576.0);
        return 0;
    }
    a->buf = b->buf;
    a->offset = start;
    a->at = off;
    a->range = range;
    a->elem = (uint32_t)((off - start) / es);
    a->lo = (uintptr_t)t->data;
    a->hi = a->lo + bytes;
    a->write = flags & MD_VK_WRITE;
    return 1;
}

int md_vk_bind_host(md_vk *vk, md_vk_arg *a, const void *src, size_t bytes, const char *op)
{
    memset(a, 0, sizeof *a);
    VkDeviceSize off;
    void *dst = md_vk_ring_alloc(vk, bytes ? bytes : 4, &off);
    if (!dst) {
        md_vk_fail(vk, "vulkan: %s: %zu bytes of parameters exceed the staging ring (%zu)", op,
                   bytes, md_vk_ring_capacity(vk));
        return 0;
    }
    if (bytes)
        memcpy(dst, src, bytes);
    a->buf = vk->ring->buf;
    a->offset = off;
    a->at = off;
    a->range = round_up(bytes ? bytes : 4, 4);
    return 1;
}

/* Host bytes into a device buffer through the staging ring, in pieces when
 * they do not fit at once. */
static md_status write_buffer(md_vk *vk, md_vk_buffer *dst, VkDeviceSize off, const void *src,
                              size_t bytes, md_error *err)
{
    size_t cap = md_vk_ring_capacity(vk);
    const unsigned char *s = src;
    while (bytes > 0) {
        size_t n = bytes < cap ? bytes : cap;
        VkDeviceSize roff;
        void *p = md_vk_ring_alloc(vk, n, &roff);
        if (!p)
            return md_fail(err, MD_ERR_NOMEM, "vulkan: staging ring unavailable");
        memcpy(p, s, n);
        md_vk_arg from = {.buf = vk->ring->buf, .offset = roff, .at = roff, .range = n};
        md_vk_arg to = {.buf = dst->buf, .offset = off, .at = off, .range = n,
                        .lo = dst->va + off, .hi = dst->va + off + n, .write = 1};
        md_vk_copy(vk, &to, &from, n, "upload");
        if (vk->failed)
            return md_fail(err, MD_ERR_INVALID, "%s", vk->sticky.msg);
        s += n;
        off += n;
        bytes -= n;
    }
    return MD_OK;
}

/* Room for `bytes` of weights in the current block (or a new one; larger
 * than a block: a buffer of its own). */
static md_status weight_space(md_vk *vk, size_t bytes, md_vk_buffer **blk_out,
                              VkDeviceSize *off_out, md_error *err)
{
    VkDeviceSize need = round_up(bytes ? bytes : 4, MD_VK_ALIGN);
    md_vk_buffer *blk = vk->nwblocks ? vk->wblocks[vk->nwblocks - 1] : NULL;
    if (!blk || vk->wblock_used + need > blk->size) {
        if (vk->nwblocks == vk->wblocks_cap) {
            size_t cap = vk->wblocks_cap ? vk->wblocks_cap * 2 : 16;
            md_vk_buffer **p = realloc(vk->wblocks, cap * sizeof *p);
            if (!p)
                return md_fail(err, MD_ERR_NOMEM, "vulkan: out of host memory");
            vk->wblocks = p;
            vk->wblocks_cap = cap;
        }
        blk = md_vk_buffer_new(vk, need > MD_VK_WEIGHT_BLOCK ? need : MD_VK_WEIGHT_BLOCK, 0, err);
        if (!blk)
            return md_fail_context(err, "uploading weights: ");
        vk->wblocks[vk->nwblocks++] = blk;
        vk->wblock_used = 0;
    }
    *blk_out = blk;
    *off_out = vk->wblock_used;
    vk->wblock_used += need;
    vk->weight_bytes += bytes;
    return MD_OK;
}

static md_status check_dtype(const md_tensor *w, md_error *err)
{
    if (w->dtype != MD_F32 && w->dtype != MD_F16 && w->dtype != MD_BF16)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "vulkan backend: weight dtype %s is not supported (F32, F16 or BF16 only)",
                       md_dtype_name(w->dtype));
    if (!w->data && md_tensor_nbytes(w) > 0)
        return md_fail(err, MD_ERR_INVALID, "vulkan backend: weight has no data");
    return MD_OK;
}

md_status md_vk_upload_weight(md_vk *vk, md_tensor *w, md_error *err)
{
    MD_TRY(check_dtype(w, err));
    size_t bytes = md_tensor_nbytes(w);
    if (w->data && md_vk_find(vk, w->data, 1))
        return MD_OK; /* prepared before (a weight shared by two layers) */
    if (bytes > vk->props.limits.maxStorageBufferRange)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "vulkan backend: a weight of %.1f MiB exceeds %s's storage-buffer binding "
                       "limit (%.1f MiB)",
                       (double)bytes / 1048576.0, vk->device_name,
                       (double)vk->props.limits.maxStorageBufferRange / 1048576.0);
    md_vk_buffer *blk;
    VkDeviceSize off;
    MD_TRY(weight_space(vk, bytes, &blk, &off, err));
    if (bytes)
        MD_TRY(write_buffer(vk, blk, off, w->data, bytes, err));
    w->data = (void *)(blk->va + off);
    return MD_OK;
}

md_status md_vk_upload_weight_stack(md_vk *vk, md_tensor *const *ws, int n, md_error *err)
{
    if (n < 1)
        return md_fail(err, MD_ERR_UNSUPPORTED, "vulkan backend: an empty weight stack");
    size_t bytes = md_tensor_nbytes(ws[0]);
    for (int i = 0; i < n; i++) {
        MD_TRY(check_dtype(ws[i], err));
        if (ws[i]->dtype != ws[0]->dtype || md_tensor_nbytes(ws[i]) != bytes)
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "vulkan backend: stacked weights differ in dtype or size");
        if (ws[i]->data && md_vk_find(vk, ws[i]->data, 1))
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "vulkan backend: a weight of the stack was prepared before");
    }
    /* The grouped GEMM binds the stack whole; it must fit one binding. */
    uint64_t total = (uint64_t)bytes * (uint64_t)n;
    if (total > vk->props.limits.maxStorageBufferRange)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "vulkan backend: %d stacked weights of %.1f MiB exceed %s's storage-buffer "
                       "binding limit (%.1f MiB)",
                       n, (double)total / 1048576.0, vk->device_name,
                       (double)vk->props.limits.maxStorageBufferRange / 1048576.0);
    md_vk_buffer *blk;
    VkDeviceSize off;
    MD_TRY(weight_space(vk, (size_t)total, &blk, &off, err));
    for (int i = 0; i < n; i++) {
        VkDeviceSize at = off + (VkDeviceSize)i * bytes; /* slices back to back, any alignment */
        if (bytes)
            MD_TRY(write_buffer(vk, blk, at, ws[i]->data, bytes, err));
        ws[i]->data = (void *)(blk->va + at);
    }
    return MD_OK;
}

md_status md_vk_write_tensor(md_vk *vk, const md_tensor *dst, const void *src, md_error *err)
{
    size_t bytes = md_tensor_nbytes(dst);
    if (bytes == 0)
        return MD_OK;
    md_vk_buffer *b = dst->data ? md_vk_find(vk, dst->data, bytes) : NULL;
    if (!b)
        return md_fail(err, MD_ERR_INVALID, "vulkan: upload: the destination is not device memory");
    return write_buffer(vk, b, (uintptr_t)dst->data - b->va, src, bytes, err);
}

md_status md_vk_load_weights(md_vk *vk, const md_tensor *const *host, md_tensor *dev, int n,
                             md_vk_buffer **out, md_error *err)
{
    *out = NULL;
    VkDeviceSize total = 0;
    for (int i = 0; i < n; i++) {
        MD_TRY(check_dtype(host[i], err));
        size_t bytes = md_tensor_nbytes(host[i]);
        if (bytes > vk->props.limits.maxStorageBufferRange)
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "vulkan backend: a weight of %.1f MiB exceeds %s's storage-buffer "
                           "binding limit",
                           (double)bytes / 1048576.0, vk->device_name);
        total += round_up(bytes ? bytes : 4, MD_VK_ALIGN);
    }
    md_vk_buffer *b = md_vk_buffer_new(vk, total ? total : MD_VK_ALIGN, 0, err);
    if (!b)
        return md_fail_context(err, "loading weights on demand: ");
    VkDeviceSize off = 0;
    for (int i = 0; i < n; i++) {
        size_t bytes = md_tensor_nbytes(host[i]);
        md_status s = bytes ? write_buffer(vk, b, off, host[i]->data, bytes, err) : MD_OK;
        if (s != MD_OK) {
            md_vk_unload_weights(vk, b);
            return s;
        }
        dev[i] = *host[i];
        dev[i].data = (void *)(b->va + off);
        off += round_up(bytes ? bytes : 4, MD_VK_ALIGN);
    }
    vk->ondemand_bytes += b->size;
    if (vk->ondemand_bytes > vk->ondemand_peak)
        vk->ondemand_peak = vk->ondemand_bytes;
    *out = b;
    return MD_OK;
}

void md_vk_unload_weights(md_vk *vk, md_vk_buffer *b)
{
    if (!b)
        return;
    /* Work recorded so far may read the buffer: it runs first. */
    md_vk_flush(vk);
    vk->ondemand_bytes -= vk->ondemand_bytes >= b->size ? b->size : vk->ondemand_bytes;
    md_vk_buffer_free(vk, b);
}

void md_vk_weights_free(md_vk *vk)
{
    for (size_t i = 0; i < vk->nwblocks; i++)
        md_vk_buffer_free(vk, vk->wblocks[i]);
    free(vk->wblocks);
    vk->wblocks = NULL;
    vk->nwblocks = vk->wblocks_cap = 0;
}
