/* The compute backend interface. The CPU backend fills it today; the Vulkan
 * backend fills the same table. Model code (text encoder, U-Net, MoE, VAE)
 * only ever calls these entries and never touches activation memory
 * directly, so a model runs unchanged on any backend.
 *
 * Conventions:
 *  - Activations are MD_F32, contiguous, row-major, allocated with
 *    new_tensor() from the backend's arena. Outputs are allocated by the
 *    caller; unless an entry says otherwise, y must not alias an input.
 *  - Weights are md_tensor views of stored data (F32, F16 or BF16) that were
 *    passed once through prepare_weight(); they are widened where used.
 *  - Shapes are validated when a model is loaded, so ops trust them.
 *  - Host arrays (ids, row lists, weights of MoE rows) are plain pointers. */
#ifndef MD_BACKEND_H
#define MD_BACKEND_H

#include "status.h"
#include "tensor.h"

typedef enum md_act {
    MD_ACT_NONE = 0,
    MD_ACT_SILU,
    MD_ACT_GELU,        /* exact erf GELU */
    MD_ACT_GELU_TANH,
    MD_ACT_QUICK_GELU   /* x * sigmoid(1.702 x) */
} md_act;

typedef struct md_backend md_backend;

/* An MoE layer as the optional moe_routed() entry runs it: the gate and the
 * experts' weights as stacks from prepare_weight_stack() (expert e's w1 is
 * slice e of w1). */
typedef struct md_moe_routed {
    int token_topk;           /* 1: each row takes its own top_k experts; 0: top_k chosen
                                 once from the logits summed over all rows (SegMoE) */
    int top_k;                /* 1..16, at most the number of experts */
    const md_tensor *gate;    /* [E, in] */
    const md_tensor *w1, *b1; /* [E, n1, in]; [E, n1] or NULL */
    const md_tensor *w2, *b2; /* NULL: linear experts, expert(x) = x w1^T + b1. Else GEGLU
                                 experts: w2 [E, out, n1/2], b2 [E, out] or NULL,
                                 expert(x) = geglu(x w1^T + b1) w2^T + b2 */
} md_moe_routed;

struct md_backend {
    const char *name; /* "cpu", "vulkan" */
    void *impl;
    /* 1 when prepare_weight() leaves weights as they are in host memory, so
     * any other backend with host_weights can compute with them (CPU: a
     * second CPU backend runs a generation on weights a first one loaded).
     * 0 (Vulkan): weights live in the loading device's memory and only
     * that backend instance can use them. See md_backend_shares_weights(). */
    int host_weights;
    /* A wrapper (lora/lora_backend.h) computes with the weights another
     * backend prepared: that backend; NULL for a backend of its own. */
    md_backend *weights_of;

    void (*destroy)(md_backend *be);

    /* ---- memory ----
     * The arena makes a denoising step allocation-free after the first:
     * callers take a mark before a forward pass and reset to it after. */
    size_t (*arena_mark)(md_backend *be);
    void (*arena_reset)(md_backend *be, size_t mark);
    /* F32 tensor of the given shape from the arena (uninitialised).
     * On allocation failure the returned tensor has data == NULL. */
    md_tensor (*new_tensor)(md_backend *be, int ndim, const int64_t *shape);
    void (*upload)(md_backend *be, md_tensor *dst, const float *src);
    void (*download)(md_backend *be, const md_tensor *src, float *dst);
    /* Called once per weight at load time (CPU: nothing; Vulkan: upload). */
    md_status (*prepare_weight)(md_backend *be, md_tensor *w, md_error *err);

    /* ---- dense ops ---- */
    /* x [B,Cin,H,W], w [Cout,Cin,kh,kw], b [Cout] or NULL, y [B,Cout,Ho,Wo],
     * Ho = (H + 2*pad - kh)/stride + 1. */
    void (*conv2d)(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                   const md_tensor *b, int stride, int pad);
    /* x [..., in] viewed as rows, w [out, in] (or [out,in,1,1]), b [out] or
     * NULL, y [..., out]. */
    void (*linear)(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                   const md_tensor *b);
    /* x [B, C, ...]: statistics per (batch, group) over C/groups channels and
     * all trailing dims; optional SiLU after the affine. y may equal x. */
    void (*group_norm)(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *gamma,
                       const md_tensor *beta, int groups, float eps, int fuse_silu);
    /* Normalise over the last dim. y may equal x. */
    void (*layer_norm)(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *gamma,
                       const md_tensor *beta, float eps);
    /* Elementwise activation. y may equal x. */
    void (*activation)(md_backend *be, md_tensor *y, const md_tensor *x, md_act act);
    /* x [..., 2H] -> y [..., H] = x[..., :H] * gelu(x[..., H:]) (exact GELU). */
    void (*geglu)(md_backend *be, md_tensor *y, const md_tensor *x);
    /* Multi-head attention, tiled so memory does not grow with Nq*Nk.
     * q [B,Nq,C], k [B,Nk,C], v [B,Nk,Cv], o [B,Nq,Cv]; head h uses channels
     * [h*C/heads, (h+1)*C/heads) of q/k and likewise of v.
     * scores = scale * q.k; causal masks key j > query i. */
    void (*attention)(md_backend *be, md_tensor *o, const md_tensor *q, const md_tensor *k,
                      const md_tensor *v, int heads, float scale, int causal);

    /* ---- elementwise and layout ---- */
    /* y = a + b (same shape). y may equal a or b. */
    void (*add)(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b);
    /* x [B, C, ...], bias [B, C] (an activation): y = x + bias[b, c]. y may equal x. */
    void (*add_channel_bias)(md_backend *be, md_tensor *y, const md_tensor *x,
                             const md_tensor *bias);
    /* y = x * s. y may equal x. */
    void (*scale)(md_backend *be, md_tensor *y, const md_tensor *x, float s);
    /* y = a + s * b (same shape). y may equal a. */
    void (*axpy)(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b, float s);
    void (*fill)(md_backend *be, md_tensor *y, float value);
    void (*copy)(md_backend *be, md_tensor *y, const md_tensor *x);
    /* x [B,C,H,W] -> y [B,C,Ho,Wo] with Ho in {2H-1, 2H}, Wo in {2W-1, 2W}:
     * y[.., i, j] = x[.., i/2, j/2] (an odd size is the 2x result cropped;
     * the U-Net needs it where the down path halved an odd size). */
    void (*upsample_nearest2x)(md_backend *be, md_tensor *y, const md_tensor *x);
    /* a [B,Ca,...], b [B,Cb,...] -> y [B,Ca+Cb,...] (dim 1) */
    void (*concat_channels)(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b);
    /* Concatenate along the last dim: a [R, Da], b [R, Db] -> y [R, Da+Db]. */
    void (*concat_last)(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b);
    /* x [B,C,H,W] -> y [B,H*W,C] and back. */
    void (*nchw_to_tokens)(md_backend *be, md_tensor *y, const md_tensor *x);
    void (*tokens_to_nchw)(md_backend *be, md_tensor *y, const md_tensor *x);
    /* y [n, dim] = table[ids[i]] (table is a weight [vocab, dim]). */
    void (*embedding)(md_backend *be, md_tensor *y, const md_tensor *table, const int32_t *ids,
                      int64_t n);
    /* y [B,N,D] += pos[:N] (pos is a weight [Nmax, D]). */
    void (*add_position)(md_backend *be, md_tensor *y, const md_tensor *pos);

    /* ---- MoE row routing ---- */
    /* y [n, D] = x[rows[i], :] */
    void (*gather_rows)(md_backend *be, md_tensor *y, const md_tensor *x, const int32_t *rows,
                        int64_t n);
    /* y[rows[i], :] += weights[i] * x[i, :], for i < n (rows may repeat only
     * across calls, never within one). */
    void (*scatter_add_rows)(md_backend *be, md_tensor *y, const md_tensor *x,
                             const int32_t *rows, const float *weights, int64_t n);
    /* y [R, D] += w[r] * x [R, D] (one weight per row). */
    void (*add_rows_weighted)(md_backend *be, md_tensor *y, const md_tensor *x, const float *w);

    /* ---- optional: MoE layers routed on the device ----
     * NULL on the CPU backend, which routes on the host (moe/router.c):
     * the gate logits are in host memory there anyway. A GPU would have to
     * download them in every MoE layer of every step, a queue sync in the
     * middle of the U-Net; with these two entries a whole layer stays on
     * the device. moe/ (moe_load.c, moe_layer.c) uses them when both are
     * present. */
    /* Stores n weights of one dtype and element count back to back, as one
     * stack [n, ...]; ws[i]->data then points at slice i, usable like any
     * prepared weight. MD_ERR_UNSUPPORTED, with nothing prepared, when the
     * stack cannot be bound as one tensor on this device (the caller then
     * prepares them one by one and routes on the host). */
    md_status (*prepare_weight_stack)(md_backend *be, md_tensor *const *ws, int n, md_error *err);
    /* x [rows, in] -> y [rows, out]: per row, the sum of w_i * expert_i(x)
     * over its chosen experts (ties to the lower index; w = softmax over
     * the chosen experts' logits of the row), added in ascending expert
     * order (token mode) or top-k order (sequence mode), from 0. Also fills
     * logits [rows, E] and choice [rows, top_k] (expert indices as exact
     * floats, in top-k order) for an observer to download afterwards.
     * Temporaries come from the arena (the caller resets it); nothing is
     * read back to the host. */
    void (*moe_routed)(md_backend *be, md_tensor *y, md_tensor *logits, md_tensor *choice,
                       const md_tensor *x, const md_moe_routed *m);

    /* ---- optional: weights loaded on demand (moe/expert_cache.c) ----
     * NULL on backends that compute with weights in host memory (CPU).
     * weights_load copies n host weights (F32/F16/BF16, as prepare_weight
     * takes them) into one new device allocation: dev[i] gets host[i]'s
     * dtype and shape with device data, usable like a prepared weight;
     * *handle names the allocation. The host tensors are not changed.
     * weights_unload frees it; work already recorded that reads it still
     * sees the weights (the free waits for that work). */
    md_status (*weights_load)(md_backend *be, const md_tensor *const *host, md_tensor *dev, int n,
                              void **handle, md_error *err);
    void (*weights_unload)(md_backend *be, void *handle);

    /* Optional: on = 1 makes every op compute in f32 until called with 0;
     * returns the previous setting. The VAE runs in f32 through it: SDXL's
     * VAE decoder has activations beyond fp16's range. NULL on backends that
     * only compute in f32 (CPU). */
    int (*force_f32)(md_backend *be, int on);

    /* Waits for all recorded work and reports the first failure of an op
     * since the last call (ops return nothing). NULL on backends whose ops
     * finish before they return (CPU): nothing to wait for. */
    md_status (*sync)(md_backend *be, md_error *err);
};

/* The CPU backend: OpenBLAS for GEMMs, `threads` worker threads for the rest
 * (0 = number of online CPUs). host_weights = 1. Several CPU backends may
 * compute at once from different threads: OpenBLAS's thread count is
 * process-wide and this backend changes it around attention, so every
 * OpenBLAS call (and that change) holds one process-wide lock; GEMMs of
 * concurrent backends therefore take turns while the rest overlaps. */
md_status md_backend_cpu_create(md_backend **out, int threads, md_error *err);

/* The Vulkan backend (runtime/vulkan/, docs/vulkan.md). Device indices are
 * those of md_vulkan_list_devices() (runtime/vulkan_api.h). */
typedef struct md_vulkan_options {
    int device;     /* an index, or -1: the first discrete GPU, else the first integrated one */
    int allow_cpu;  /* with device -1: a CPU-type device (lavapipe) when no GPU exists */
    int validation; /* VK_LAYER_KHRONOS_validation on, messages counted; also MD_VK_VALIDATION=1 */
    int profile;    /* per-op GPU timestamps; also MD_VK_PROFILE=1 */
    /* 0 (default) or -1: f32 arithmetic; 1: fp16 arithmetic or fail; 2: fp16
     * where the device has it. 0 leaves the choice to MD_VK_FP16 (0, 1, auto).
     * f32 is the default because fp16 misses CHECKING.md's module tolerance
     * (factor 10) on the U-Net: docs/vulkan.md, "Precision". */
    int fp16;
    int host_moe;   /* route MoE layers on the host like the CPU backend (no
                       moe_routed entry); also MD_VK_MOE=host. For comparisons. */
} md_vulkan_options;

/* opt NULL: device -1, no CPU devices, validation and profile from the
 * environment. MD_ERR_UNSUPPORTED when there is no usable device or the
 * build has no Vulkan. */
md_status md_backend_vulkan_create(md_backend **out, const md_vulkan_options *opt, md_error *err);

/* The backend a program asked for by name (runtime/backend_select.c):
 * "cpu"; "vulkan" (device -1: the best GPU, else a CPU-type Vulkan device);
 * "auto" (device -1: the best GPU, never a CPU-type device). When Vulkan
 * cannot be used (no loader, no device, a missing feature) it falls back to
 * the CPU backend and says why in `note`; `note` also names the backend and
 * device chosen. threads: CPU worker threads (0 = all cores). Fails only on
 * an unknown name, a device index that does not exist, or no memory. */
md_status md_backend_create(const char *name, int device, int threads, md_backend **out,
                            char *note, size_t note_cap, md_error *err);

/* The same with the options a library context can set. */
typedef struct md_backend_request {
    const char *name; /* NULL = "auto" */
    int device;       /* -1 = the best */
    int threads;
    int profile;      /* Vulkan: per-op GPU timestamps (md_vulkan_profile_report) */
} md_backend_request;
md_status md_backend_open(const md_backend_request *req, md_backend **out, char *note,
                          size_t note_cap, md_error *err);

/* Whether `be` can compute with weights that `loader` prepared: the same
 * backend, or two backends that both keep weights in host memory. Each
 * backend instance has its own arena (and, CPU, its own thread pool), so
 * two threads may run forward passes at once on shared weights as long as
 * each uses its own backend; one backend serves one thread at a time. */
static inline int md_backend_shares_weights(const md_backend *loader, const md_backend *be)
{
    if (be && be->weights_of)
        be = be->weights_of;
    return loader == be || (loader && be && loader->host_weights && be->host_weights);
}

static inline void md_backend_destroy(md_backend *be)
{
    if (be)
        be->destroy(be);
}

#endif
