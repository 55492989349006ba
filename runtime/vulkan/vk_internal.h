/* Shared state of the Vulkan backend; not part of the public API.
 *
 * Naming device memory: every device buffer reserves a range of host
 * address space (PROT_NONE, never touched) of its own size, and a tensor's
 * `data` is an address inside that range. Any pointer into it, a view with
 * another shape or a sub-range, names (buffer, offset) unambiguously, and a
 * stray host dereference faults instead of corrupting memory. */
#ifndef MD_VK_INTERNAL_H
#define MD_VK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <vulkan/vulkan.h>

#include "runtime/backend.h"
#include "runtime/vulkan_api.h"

#define MD_VK_MAX_BINDINGS 6
#define MD_VK_MAX_SPEC 8
#define MD_VK_MAX_HAZARDS 96
#define MD_VK_QUERY_CAP 4096
#define MD_VK_PROFILE_SLOTS 64
/* Offsets of tensors inside device buffers are multiples of this; it is at
 * least any device's minStorageBufferOffsetAlignment seen in practice. */
#define MD_VK_ALIGN 256

/* The shaders, each with its number of storage-buffer bindings. The SPIR-V
 * of each is embedded as md_spv_NAME / md_spv_NAME_size. */
#define MD_VK_SHADERS(X)                                                                           \
    X(gemm, 4)                                                                                     \
    X(conv2d, 4)                                                                                   \
    X(group_norm, 4)                                                                               \
    X(layer_norm, 4)                                                                               \
    X(activation, 2)                                                                               \
    X(geglu, 2)                                                                                    \
    X(attention, 4)                                                                                \
    X(gemm_f16, 4)      /* fp16 arithmetic variants; empty when not built */                       \
    X(conv2d_f16, 4)                                                                               \
    X(attention_f16, 4)                                                                            \
    X(axpy, 3)                                                                                     \
    X(scale, 2)                                                                                    \
    X(channel_bias, 3)                                                                             \
    X(upsample, 2)                                                                                 \
    X(concat, 3)                                                                                   \
    X(transpose, 2)                                                                                \
    X(embedding, 3)                                                                                \
    X(add_position, 2)                                                                             \
    X(gather_rows, 3)                                                                              \
    X(scatter_rows, 4)                                                                             \
    X(rows_weighted, 3)                                                                            \
    X(moe_topk, 4)                                                                                 \
    X(moe_permute, 3)                                                                              \
    X(moe_grouped_gemm, 5)                                                                         \
    X(moe_combine, 5)

typedef enum md_vk_shader {
#define MD_VK_ENUM(name, nb) MD_VK_SH_##name,
    MD_VK_SHADERS(MD_VK_ENUM)
#undef MD_VK_ENUM
    MD_VK_SHADER_COUNT
} md_vk_shader;

/* Weight dtype codes as the shaders read them (spec constants). */
enum { MD_VK_DT_F32 = 0, MD_VK_DT_F16 = 1, MD_VK_DT_BF16 = 2 };

typedef struct md_vk_buffer {
    VkBuffer buf;
    VkDeviceMemory mem;
    VkDeviceSize size;
    void *map;    /* host mapping (host-visible buffers) or NULL */
    uintptr_t va; /* base of the reserved address range naming it */
} md_vk_buffer;

/* One storage-buffer binding of a dispatch. The bound range starts at an
 * aligned offset; `elem` is where the tensor starts inside it, in elements
 * of its dtype. lo/hi is the byte range in device address space for hazard
 * tracking (0/0: host memory that the device only reads). */
typedef struct md_vk_arg {
    VkBuffer buf;
    VkDeviceSize offset, range;
    VkDeviceSize at; /* exact byte offset of the data (copies and fills) */
    uint32_t elem;
    uintptr_t lo, hi;
    int write;
} md_vk_arg;

typedef struct md_vk_pipe {
    md_vk_shader shader;
    int nspec;
    uint32_t spec[MD_VK_MAX_SPEC];
    VkPipeline pipeline;
} md_vk_pipe;

typedef struct md_vk_range {
    uintptr_t lo, hi;
} md_vk_range;

typedef struct md_vk_arena_chunk md_vk_arena_chunk;

typedef struct md_vk_arena {
    md_vk_arena_chunk *chunks; /* newest first */
    md_vk_arena_chunk *spare;
    size_t used, high_water;
} md_vk_arena;

typedef struct md_vk_prof {
    const char *label;
    uint64_t calls;
    double ns;
} md_vk_prof;

typedef struct md_vk {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice phys;
    VkDevice dev;
    VkQueue queue;
    uint32_t queue_family;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties mem_props;
    PFN_vkCmdPushDescriptorSetKHR push_descriptor;
    char device_name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
    const char *device_type;
    char label[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE + 32]; /* "NAME (TYPE)" */

    /* every live buffer, sorted by va */
    md_vk_buffer **bufs;
    size_t nbufs, bufs_cap;

    /* weights: bump allocation in large device-local blocks */
    md_vk_buffer **wblocks;
    size_t nwblocks, wblocks_cap;
    size_t wblock_used; /* in the last block */
    uint64_t weight_bytes;
    uint64_t ondemand_bytes, ondemand_peak; /* weights_load's buffers */

    md_vk_arena arena;

    md_vk_buffer *ring; /* host-visible staging for uploads and op parameters */
    size_t ring_used;
    md_vk_buffer *readback;
    md_vk_buffer *dummy; /* bound where an optional tensor is absent */

    VkCommandPool cmd_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    int recording;

    md_vk_range reads[MD_VK_MAX_HAZARDS], writes[MD_VK_MAX_HAZARDS];
    int nreads, nwrites;
    uint64_t barriers, dispatches, submits; /* counters for tests and docs */

    VkShaderModule modules[MD_VK_SHADER_COUNT];
    VkDescriptorSetLayout set_layout[MD_VK_MAX_BINDINGS + 1];
    VkPipelineLayout pipe_layout[MD_VK_MAX_BINDINGS + 1];
    md_vk_pipe *pipes;
    size_t npipes, pipes_cap;

    int profile;
    VkQueryPool queries;
    uint32_t nqueries;
    const char *query_label[MD_VK_QUERY_CAP];
    md_vk_prof prof[MD_VK_PROFILE_SLOTS];
    int nprof;

    /* The first failure of an op (ops return nothing); reported by sync. */
    md_error sticky;
    int failed;

    int validation;
    /* fp16 arithmetic in linear, conv2d and attention (their _f16 shader
     * variants): the device has shaderFloat16 and the build the variants,
     * and nothing asked for f32 (docs/vulkan.md, "Precision"). */
    int fp16;
    int fp16_native; /* what the device and options allow; fp16 is 0 while f32 is forced */
    int f32_forced;
    uint64_t messages;
    char first_message[512];
} md_vk;

static inline md_vk *md_vk_of(md_backend *be)
{
    return (md_vk *)be->impl;
}

/* Records the first op failure; later ops still run. */
void md_vk_fail(md_vk *vk, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- instance and device (vk_device.c) ---- */
md_status md_vk_open(md_vk *vk, const md_vulkan_options *opt, md_error *err);
void md_vk_close(md_vk *vk);
uint32_t md_vk_memory_type(const md_vk *vk, uint32_t type_bits, VkMemoryPropertyFlags want);

/* ---- buffers and the address map (vk_memory.c) ---- */
/* host_visible: mapped staging memory; else device-local. */
md_vk_buffer *md_vk_buffer_new(md_vk *vk, VkDeviceSize size, int host_visible, md_error *err);
void md_vk_buffer_free(md_vk *vk, md_vk_buffer *b);
/* Weights loaded on demand into a buffer of their own (backend.h
 * weights_load / weights_unload). */
md_status md_vk_load_weights(md_vk *vk, const md_tensor *const *host, md_tensor *dev, int n,
                             md_vk_buffer **out, md_error *err);
void md_vk_unload_weights(md_vk *vk, md_vk_buffer *b);
/* The buffer holding [p, p + bytes), or NULL. */
md_vk_buffer *md_vk_find(const md_vk *vk, const void *p, size_t bytes);
/* Binding of a tensor (activation or prepared weight); 0 on failure (the
 * failure is recorded, naming `op`). t may be NULL: the dummy buffer.
 * flags: MD_VK_WRITE when the command writes it; MD_VK_TRANSFER for copies
 * and fills, which have no binding-size limit. */
enum { MD_VK_READ = 0, MD_VK_WRITE = 1, MD_VK_TRANSFER = 2 };
int md_vk_bind(md_vk *vk, md_vk_arg *a, const md_tensor *t, int flags, const char *op);
/* Copies host data into the staging ring and returns a read-only binding
 * of it (MoE row lists, ids); 0 on failure. */
int md_vk_bind_host(md_vk *vk, md_vk_arg *a, const void *src, size_t bytes, const char *op);
md_status md_vk_upload_weight(md_vk *vk, md_tensor *w, md_error *err);
/* n weights of one dtype and size back to back (prepare_weight_stack). */
md_status md_vk_upload_weight_stack(md_vk *vk, md_tensor *const *ws, int n, md_error *err);
/* Host data into an activation (recorded; the source may be reused at once). */
md_status md_vk_write_tensor(md_vk *vk, const md_tensor *dst, const void *src, md_error *err);
void md_vk_weights_free(md_vk *vk);

/* ---- activation arena (vk_arena.c) ---- */
void *md_vk_arena_alloc(md_vk *vk, size_t bytes);
size_t md_vk_arena_mark(const md_vk *vk);
void md_vk_arena_reset(md_vk *vk, size_t mark);
void md_vk_arena_free(md_vk *vk);
size_t md_vk_arena_bytes(const md_vk *vk);

/* ---- command stream (vk_stream.c) ---- */
int md_vk_begin(md_vk *vk);
/* Submits what was recorded and waits; MD_OK when nothing was pending. */
md_status md_vk_flush(md_vk *vk);
/* Inserts a barrier when one of the ranges conflicts with work recorded
 * since the last barrier, then records the ranges. */
void md_vk_hazard(md_vk *vk, const md_vk_arg *args, int nargs);
void md_vk_dispatch(md_vk *vk, md_vk_shader sh, const uint32_t *spec, int nspec,
                    const md_vk_arg *args, int nargs, const void *push, uint32_t push_bytes,
                    uint32_t gx, uint32_t gy, uint32_t gz, const char *label);
/* Buffer copies and fills (transfer commands), hazard-tracked like dispatches. */
void md_vk_copy(md_vk *vk, const md_vk_arg *dst, const md_vk_arg *src, VkDeviceSize bytes,
                const char *label);
void md_vk_fill_words(md_vk *vk, const md_vk_arg *dst, VkDeviceSize bytes, uint32_t word,
                      const char *label);
/* Host staging: room for `bytes` in the ring (flushing when full); NULL
 * when bytes exceed the ring. */
void *md_vk_ring_alloc(md_vk *vk, size_t bytes, VkDeviceSize *offset);
size_t md_vk_ring_capacity(const md_vk *vk);
/* Timestamp bookkeeping around the work recorded in the command buffer. */
void md_vk_profile_mark(md_vk *vk, const char *label);

/* ---- pipelines (vk_pipeline.c) ---- */
VkPipeline md_vk_pipeline(md_vk *vk, md_vk_shader sh, const uint32_t *spec, int nspec);
int md_vk_shader_bindings(md_vk_shader sh);
const char *md_vk_shader_name(md_vk_shader sh);
/* 0 for a variant this build did not compile (the fp16 ones, MD_VULKAN_FP16=OFF). */
int md_vk_shader_available(md_vk_shader sh);
md_status md_vk_layouts_create(md_vk *vk, md_error *err);
void md_vk_pipelines_free(md_vk *vk);

/* Workgroups for n items of `per_group` each, capped for grid-stride loops. */
static inline uint32_t md_vk_groups(int64_t n, int64_t per_group)
{
    int64_t g = (n + per_group - 1) / per_group;
    if (g < 1)
        g = 1;
    return g > 65535 ? 65535u : (uint32_t)g;
}

/* A float as the push-constant word that carries it. */
static inline uint32_t md_vk_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Weight dtype code for the shaders. */
static inline uint32_t md_vk_dt(const md_tensor *t)
{
    return !t ? MD_VK_DT_F32 : t->dtype == MD_F16 ? MD_VK_DT_F16
                           : t->dtype == MD_BF16  ? MD_VK_DT_BF16
                                                  : MD_VK_DT_F32;
}

/* ---- the op table entries, one file per family ---- */
void md_vk_op_conv2d(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                     const md_tensor *b, int stride, int pad);
/* Always f32: the MoE gate logits call it directly (their sums choose the
 * experts; CHECKING.md rule 5 keeps them f32 on every backend). */
void md_vk_op_linear(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                     const md_tensor *b);
/* The op table's linear: fp16 arithmetic when vk->fp16 (outputs of at
 * most 16 columns stay f32), else md_vk_op_linear. */
void md_vk_op_linear_mixed(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                           const md_tensor *b);
void md_vk_op_group_norm(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *gamma,
                         const md_tensor *beta, int groups, float eps, int fuse_silu);
void md_vk_op_layer_norm(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *gamma,
                         const md_tensor *beta, float eps);
void md_vk_op_activation(md_backend *be, md_tensor *y, const md_tensor *x, md_act act);
void md_vk_op_geglu(md_backend *be, md_tensor *y, const md_tensor *x);
void md_vk_op_attention(md_backend *be, md_tensor *o, const md_tensor *q, const md_tensor *k,
                        const md_tensor *v, int heads, float scale, int causal);
void md_vk_op_add(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b);
void md_vk_op_add_channel_bias(md_backend *be, md_tensor *y, const md_tensor *x,
                               const md_tensor *bias);
void md_vk_op_scale(md_backend *be, md_tensor *y, const md_tensor *x, float s);
void md_vk_op_axpy(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b, float s);
void md_vk_op_fill(md_backend *be, md_tensor *y, float value);
void md_vk_op_copy(md_backend *be, md_tensor *y, const md_tensor *x);
void md_vk_op_upsample_nearest2x(md_backend *be, md_tensor *y, const md_tensor *x);
void md_vk_op_concat_channels(md_backend *be, md_tensor *y, const md_tensor *a,
                              const md_tensor *b);
void md_vk_op_concat_last(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b);
void md_vk_op_nchw_to_tokens(md_backend *be, md_tensor *y, const md_tensor *x);
void md_vk_op_tokens_to_nchw(md_backend *be, md_tensor *y, const md_tensor *x);
void md_vk_op_embedding(md_backend *be, md_tensor *y, const md_tensor *table, const int32_t *ids,
                        int64_t n);
void md_vk_op_add_position(md_backend *be, md_tensor *y, const md_tensor *pos);
void md_vk_op_gather_rows(md_backend *be, md_tensor *y, const md_tensor *x, const int32_t *rows,
                          int64_t n);
void md_vk_op_scatter_add_rows(md_backend *be, md_tensor *y, const md_tensor *x,
                               const int32_t *rows, const float *weights, int64_t n);
void md_vk_op_add_rows_weighted(md_backend *be, md_tensor *y, const md_tensor *x,
                                const float *w);
void md_vk_op_moe_routed(md_backend *be, md_tensor *y, md_tensor *logits, md_tensor *choice,
                         const md_tensor *x, const md_moe_routed *m);

#endif
