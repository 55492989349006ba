/* moediffuse.h: the plugin ABI of libmoediffuse, the only interface a host
 * application uses. A host calls one exported function, moediffuse_get_api,
 * and reaches everything else through the table it returns.
 *
 * VERSIONING
 *   moediffuse_get_api(MOEDIFFUSE_ABI_MAJOR, MOEDIFFUSE_ABI_MINOR) returns
 *   the table, or NULL when the library does not serve that major. Within a
 *   major nothing is removed or reordered: minors only append functions to
 *   the table and fields to the structs. A host compiled against a newer
 *   minor than the library's checks api->abi_minor (or api->struct_size)
 *   before using what that minor added.
 *
 * STRUCTS
 *   Every struct starts with `size_t struct_size`, set to sizeof by the side
 *   that owns the memory (the *_init functions do it for the host). The
 *   library reads and writes only the first struct_size bytes, and fields a
 *   host's older struct lacks take their defaults. Fields are appended in
 *   8-byte groups so that a version's sizeof has no tail padding and
 *   struct_size alone tells which fields are present.
 *
 * ERRORS
 *   Functions return MDIFF_OK (0) or a negative mdiff_status. Those that
 *   can fail for a reason worth reading take a caller-owned message buffer
 *   (msg, msg_cap; NULL/0 for none), always NUL-terminated when msg_cap > 0.
 *
 * OWNERSHIP
 *   Nothing allocated crosses the boundary except an output image the
 *   library allocated (its flags hold MDIFF_IMAGE_LIBRARY_OWNED), which the
 *   host frees with api->image_free. Strings the library returns are static.
 *   What the host passes in is read during the call only (the context keeps
 *   a copy of the model path); callbacks and their user pointers are kept
 *   until replaced.
 *
 * THREADING
 *   - A context holds one loaded model and runs one generation at a time:
 *     a generate (or any other call that needs the model) made while one is
 *     running on that context returns MDIFF_ERR_BUSY at once.
 *   - Several contexts may generate in parallel from different threads,
 *     also contexts that share one loaded model (context params'
 *     share_model, 1.3): a loaded model never changes while it generates;
 *     each context keeps its own per-generation buffers.
 *   - Callbacks (progress, log) run on the thread that called into the
 *     library, during that call.
 *   - context_destroy may be called while a generation (or another call)
 *     runs on that context, from another thread or from inside its progress
 *     callback. It then does not wait: it cancels the generation, which
 *     returns MDIFF_ERR_CANCELLED with no output, and the context is freed
 *     when that call returns. From then on no new callback of the context
 *     (progress, log, router trace, router override) starts; one already
 *     running on the generating thread may finish, so keep its user data
 *     until the generate call has returned. Any other call on ctx after
 *     context_destroy, and a second destroy, remain the host's error.
 *   - api->cancel may be called from any thread, and from a signal handler
 *     (it is a lock-free atomic store): the generation in progress stops
 *     at its next check and returns MDIFF_ERR_CANCELLED with no output. A
 *     cancel made while no generation runs is ignored.
 *   - A context's worker threads are created by context_create and inherit
 *     the calling thread's signal mask.
 *   - The CPU backend uses OpenBLAS, whose thread count is process-wide:
 *     creating a context sets it to that context's thread count, for every
 *     user of OpenBLAS in the process.
 *
 * The library never writes to stdout or stderr, never exits or aborts,
 * installs no signal handlers and keeps no global mutable state. */
#ifndef MOEDIFFUSE_H
#define MOEDIFFUSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MOEDIFFUSE_ABI_MAJOR 1
#define MOEDIFFUSE_ABI_MINOR 6

#if defined(__GNUC__)
#define MOEDIFFUSE_EXPORT __attribute__((visibility("default")))
#else
#define MOEDIFFUSE_EXPORT
#endif

typedef enum mdiff_status {
    MDIFF_OK = 0,
    MDIFF_ERR_INVALID = -1,     /* bad argument or parameter value */
    MDIFF_ERR_IO = -2,          /* a file could not be opened or read */
    MDIFF_ERR_FORMAT = -3,      /* a model file is malformed */
    MDIFF_ERR_NOMEM = -4,
    MDIFF_ERR_UNSUPPORTED = -5, /* valid request this model or build cannot serve */
    MDIFF_ERR_CANCELLED = -6,   /* cancelled by the progress callback or api->cancel */
    MDIFF_ERR_BUSY = -7,        /* the context is running a generation */
    MDIFF_ERR_NUMERIC = -8      /* (1.3) NaN or Inf appeared while generating (poisoned
                                   weights, fp16 overflow); the message names the stage.
                                   Hosts built before 1.3 see an unknown negative status:
                                   a failure */
} mdiff_status;

typedef struct mdiff_context mdiff_context; /* opaque: one loaded model */

/* ---- images ----
 * 8-bit, interleaved, rows `stride` bytes apart (0 = width * channels).
 * channels: 1 (grey, masks), 3 (RGB) or 4 (RGBA). */
#define MDIFF_IMAGE_LIBRARY_OWNED 1u /* data was allocated by the library */

typedef struct mdiff_image {
    size_t struct_size;
    uint8_t *data;
    int32_t width, height;
    int32_t channels;
    int32_t stride;
    uint32_t flags;    /* set by the library */
    uint32_t reserved; /* 0 */
} mdiff_image;

/* ---- callbacks ---- */
typedef enum mdiff_stage {
    MDIFF_STAGE_TEXT = 1,         /* encoding the prompts */
    MDIFF_STAGE_ENCODE_IMAGE = 2, /* encoding the init image */
    MDIFF_STAGE_DENOISE = 3,      /* one call per denoising step */
    MDIFF_STAGE_DECODE = 4        /* decoding the final latents */
} mdiff_stage;

typedef struct mdiff_progress {
    size_t struct_size;
    int32_t stage;            /* mdiff_stage */
    int32_t step;             /* denoising steps done (0 before the first) */
    int32_t total;            /* denoising steps this run takes */
    int32_t reserved;
    const mdiff_image *preview; /* RGB of the current latents when a preview is
                                   due (see preview_interval), else NULL;
                                   valid during the callback only */
} mdiff_progress;

/* A non-zero return cancels the generation. */
typedef int (*mdiff_progress_fn)(void *user, const mdiff_progress *progress);

typedef enum mdiff_log_level {
    MDIFF_LOG_ERROR = 0,
    MDIFF_LOG_WARN = 1,
    MDIFF_LOG_INFO = 2,
    MDIFF_LOG_DEBUG = 3
} mdiff_log_level;

typedef void (*mdiff_log_fn)(void *user, int level, const char *message);

/* ---- context ---- */
typedef struct mdiff_context_params {
    size_t struct_size;
    const char *model_path;   /* diffusers folder or .safetensors file */
    mdiff_progress_fn progress;
    void *progress_user;
    mdiff_log_fn log;         /* NULL = no logging */
    void *log_user;
    int32_t threads;          /* CPU threads; 0 = all online CPUs */
    int32_t moe_top_k;        /* experts per token for this context's generations (a request's
                                 moe_top_k wins); 0 = the model's own; 1..MDIFF_MAX_TOP_K */
    int32_t log_level;        /* messages up to this mdiff_log_level; default INFO */
    int32_t reserved;
    /* ABI 1.2 (a host built before 1.2 runs on the CPU, as it always did) */
    const char *backend;      /* "cpu", "vulkan" or "auto"; NULL = "auto": the best Vulkan
                                 GPU, else the CPU (never a CPU-type Vulkan device such as
                                 lavapipe). "vulkan" takes a CPU-type device when no GPU
                                 exists. When Vulkan cannot be used the CPU runs and the
                                 log says why (WARN for "vulkan", INFO for "auto"). */
    int32_t device;           /* Vulkan device index as MDIFF_FEATURE_DEVICES lists them;
                                 -1 (context_params_init's default) = the best */
    uint32_t flags;           /* MDIFF_CONTEXT_* */
    /* ABI 1.3 */
    mdiff_context *share_model; /* non-NULL: use this context's loaded model instead of loading
                                   model_path again (the weights are mapped once), so the two
                                   contexts generate in parallel on one model. The model lives
                                   until the last context using it is destroyed. CPU backend
                                   only (MDIFF_ERR_UNSUPPORTED on Vulkan); model_path, backend
                                   and device are then ignored. */
    /* ABI 1.5 */
    uint64_t max_expert_memory; /* bytes of routed experts' weights resident at once, for this
                                   context's generations whose request leaves its own at 0;
                                   0 = no bound. On Vulkan it also decides the loading: with a
                                   bound the experts stay in host memory and go to the device
                                   when used (an LRU cache, docs/moe.md "Expert memory");
                                   without, every expert is uploaded at load and a request's
                                   bound below the experts' size is MDIFF_ERR_INVALID. A
                                   shared model (share_model) keeps the loader's choice.
                                   MDIFF_EXPERT_MEMORY_ON_DEMAND: no bound of the context's
                                   own, but experts load on demand (requests bound them) */
} mdiff_context_params;

#define MDIFF_EXPERT_MEMORY_ON_DEMAND UINT64_MAX

/* Per-op GPU timestamps on the Vulkan backend, read with MDIFF_FEATURE_PROFILE. */
#define MDIFF_CONTEXT_PROFILE 1u

/* ---- generation ---- */

/* One LoRA of a request (1.6). The elements of gen_params' loras are
 * struct_size bytes apart (set it to sizeof(mdiff_lora)). */
typedef struct mdiff_lora {
    size_t struct_size;
    const char *path;              /* a LoRA .safetensors file: kohya / A1111 or diffusers /
                                      PEFT layout, for the model's family (docs/lora.md) */
    float weight;                  /* its scale: 1 = as trained, 0 = off, negative inverts */
    int32_t reserved;              /* 0 */
} mdiff_lora;

/* lora_flags (1.6): modules of a LoRA that match no layer of the model are
 * skipped instead of failing the request with MDIFF_ERR_INVALID. */
#define MDIFF_LORA_ALLOW_UNMATCHED 1u

typedef struct mdiff_gen_params {
    size_t struct_size;
    const char *prompt;
    const char *negative_prompt;   /* NULL = none */
    const char *sampler;           /* NULL = "dpmpp_2m_karras"; see api->sampler_name */
    uint64_t seed;
    const mdiff_image *init_image; /* img2img and inpainting; resized to width x height */
    const mdiff_image *mask;       /* inpainting: first channel >= 128 is repainted;
                                      needs init_image; resized to width x height.
                                      Since 1.2 the pixels outside the mask are the
                                      init image's, blended over a feathered edge
                                      (min(w,h)/128 px, 1..8) */
    int32_t width, height;         /* 0 = the init image's size, else the model's native */
    int32_t steps;                 /* default 20 */
    float guidance;                /* classifier-free guidance scale, 0..100; <= 1 disables.
                                      Since 1.3 the default is MDIFF_GUIDANCE_MODEL (the model's
                                      own, model_info's default_guidance); a struct of an older
                                      minor defaults to 7.5 as it always did */
    float strength;                /* img2img/inpaint: 0 < strength <= 1; default 0.75 */
    int32_t preview_interval;      /* a preview every N denoising steps; 0 = none */
    /* ABI 1.1 */
    int32_t clip_skip;             /* skip the last N CLIP layers; 0 = the model's default */
    int32_t reserved1;             /* 0 */
    /* ABI 1.2 */
    int32_t prompt_syntax;         /* mdiff_prompt_syntax; default MDIFF_PROMPT_WEIGHTED */
    int32_t reserved2;             /* 0 */
    /* SDXL micro-conditioning (other families ignore it): the size the image
     * claims to come from, its crop's top-left corner, and the size aimed
     * at. 0 = the generation's size / no crop. */
    int32_t original_width, original_height;
    int32_t crop_top, crop_left;
    int32_t target_width, target_height;
    /* ABI 1.3: Mixture-of-Experts settings of this generation, read per
     * generation (the loaded weights never change, nothing is reloaded).
     * Dense models ignore them. */
    int32_t moe_top_k;             /* experts per token, 1..min(num_experts, MDIFF_MAX_TOP_K);
                                      0 = the context's (context params / moe.expert_settings),
                                      else the model's own */
    int32_t moe_routing;           /* mdiff_routing: MDIFF_ROUTING_SEQUENCE, _TOKEN or (1.4)
                                      _SEQUENCE_SPLIT; 0 (MDIFF_ROUTING_MODEL) = the model's own */
    /* ABI 1.4: more Mixture-of-Experts controls (docs/moe.md, "Controls").
     * All zero / NULL = routing exactly as before. */
    float moe_capacity;            /* token routing: each expert takes at most
                                      ceil(moe_capacity * rows * k / experts) rows per call
                                      and guidance half (rows: the half's); overflow goes to the row's next-best expert with room,
                                      else to the residual path. 0 = no cap; > 0, at most 64.
                                      With sequence routing it is MDIFF_ERR_INVALID */
    float moe_skip;                /* 0 <= moe_skip < 1: a chosen expert whose renormalised
                                      weight is below it is dropped (never the top choice);
                                      per token (token routing) or per call on the mean weight
                                      (sequence routing). 0 = off */
    const char *moe_schedule;      /* per range of denoising progress: k, skip and/or a pinned
                                      expert set, e.g. "0-0.3:k=2;0.3-1:k=1/skip=0.1" or
                                      "0-0.5:experts=0,2;0.5-1:k=2"; NULL = none. At most
                                      MDIFF_MOE_SCHEDULE_MAX bytes */
    const char *moe_routes;        /* the text of a routes file (format "moe-diffuse-routes",
                                      as the CLI's --moe-stats writes it): every layer's experts
                                      per step are taken from it, whatever the other MoE fields
                                      say. NULL = none. At most MDIFF_MOE_ROUTES_MAX bytes */
    /* ABI 1.5 */
    uint64_t max_expert_memory;    /* at most this many bytes of routed experts' weights
                                      resident while generating (least recently used experts
                                      are released, and loaded again when chosen: the image is
                                      the same, only slower); 0 = the context's (context params),
                                      else no bound. At least model_info's
                                      expert_memory_minimum (MDIFF_ERR_INVALID below it). Dense
                                      models ignore it. Generations sharing one model share its
                                      resident experts: each evicts down to its own bound. */
    /* ABI 1.6: LoRAs, applied for this generation only (the loaded model is
     * not changed; docs/lora.md). Several add up. */
    const mdiff_lora *loras;       /* lora_count LoRA files and weights; NULL = none */
    int32_t lora_count;            /* 0..MDIFF_MAX_LORAS */
    uint32_t lora_flags;           /* MDIFF_LORA_* */
    const char *lora_dir;          /* with the weighted prompt syntax, the prompt's
                                      <lora:NAME:WEIGHT> and <lora:NAME> (weight 1) tags are
                                      taken out of the prompt and applied before loras[], from
                                      lora_dir/NAME.safetensors (NAME may name a subfolder, never
                                      leave lora_dir). A tag with lora_dir NULL, or a NAME not
                                      there, is MDIFF_ERR_IO. NULL = none. The plain syntax leaves
                                      tags in the text */
    int32_t vae_tile;              /* decode the image in overlapping tiles of this many pixels
                                      a side (a multiple of the VAE's factor, at least 32): the
                                      memory of one tile, not exact across seams (docs/vae-
                                      tiling.md). 0 = automatic: whole, unless the host's
                                      available memory cannot hold a whole decode (resolve_params
                                      then gives the tile chosen); MDIFF_VAE_TILE_OFF = never */
    int32_t reserved3;             /* 0 */
} mdiff_gen_params;

/* guidance value meaning "the model's own default" (ABI 1.3). */
#define MDIFF_GUIDANCE_MODEL (-1.0f)
/* The longest prompt or negative prompt, in bytes. */
#define MDIFF_PROMPT_MAX 16384
/* The most experts per token any MoE setting takes. */
#define MDIFF_MAX_TOP_K 16
/* gen_params.vae_tile: decode whole, whatever the memory (1.6). */
#define MDIFF_VAE_TILE_OFF (-1)
/* The most LoRAs one request applies, loras[] and prompt tags together (1.6). */
#define MDIFF_MAX_LORAS 32
/* The longest moe_schedule and moe_routes texts, in bytes (1.4). */
#define MDIFF_MOE_SCHEDULE_MAX 4096
#define MDIFF_MOE_ROUTES_MAX (256 * 1024 * 1024)

typedef enum mdiff_prompt_syntax {
    /* "(word:1.3)" / "(word)" / "[word]" emphasis; prompts past 75 tokens are
     * encoded in 75-token chunks (at most 8, i.e. 600 tokens; longer is
     * MDIFF_ERR_INVALID). The default of 1.2 hosts. */
    MDIFF_PROMPT_WEIGHTED = 0,
    /* Plain text truncated to 75 tokens, as diffusers does; what hosts
     * built against 1.0/1.1 get. */
    MDIFF_PROMPT_PLAIN = 1
} mdiff_prompt_syntax;

/* ---- model information (filled by the library) ---- */
typedef enum mdiff_family { MDIFF_FAMILY_SD1 = 1, MDIFF_FAMILY_SD2 = 2, MDIFF_FAMILY_SDXL = 3 } mdiff_family;
typedef enum mdiff_routing {
    MDIFF_ROUTING_NONE = 0,     /* model_info: a dense model */
    MDIFF_ROUTING_MODEL = 0,    /* gen_params.moe_routing: the model's own (1.3) */
    MDIFF_ROUTING_SEQUENCE = 1, /* SegMoE: experts chosen once per call */
    MDIFF_ROUTING_TOKEN = 2,    /* each token chooses its experts */
    MDIFF_ROUTING_SEQUENCE_SPLIT = 3 /* (1.4) as SEQUENCE, but with classifier-free guidance
                                        each half (unconditional, conditional) chooses its own */
} mdiff_routing;

typedef struct mdiff_model_info {
    size_t struct_size;
    uint64_t params_total;     /* every weight of every component */
    uint64_t params_active;    /* weights one generation uses: of each MoE layer's
                                  experts, only top_k of num_experts count */
    uint64_t params_unet;      /* the U-Net's share of params_total */
    int32_t family;            /* mdiff_family */
    int32_t native_width, native_height;
    int32_t size_multiple;     /* width and height must be multiples of this */
    int32_t unet_levels;       /* resolution levels of the U-Net */
    int32_t transformer_blocks;/* transformer blocks in the U-Net */
    int32_t moe_layers;        /* MoE layers (0 for a dense model) */
    int32_t num_experts;       /* per MoE layer (0 for a dense model) */
    int32_t top_k;             /* experts used per token (0 for a dense model) */
    int32_t routing;           /* mdiff_routing */
    /* ABI 1.2 */
    float default_guidance;    /* the model's own (diffusers model_index.json "_default_guidance_scale"),
                                  else the family's usual: SDXL 5.0, others 7.5 */
    int32_t text_encoders;     /* 1, or 2 (SDXL) */
    int32_t shared_expert;     /* 1: each MoE layer also has an always-on expert */
    int32_t reserved;
    /* ABI 1.5 */
    uint64_t expert_memory;    /* bytes of all routed experts' weights (as stored), what
                                  max_expert_memory is measured against; 0 for a dense model */
    uint64_t expert_memory_minimum; /* the smallest max_expert_memory that works: the
                                  largest expert plus what cannot be released (experts
                                  converted on load, or on Vulkan loaded whole) */
} mdiff_model_info;

/* ---- optional features, found by id with api->get_feature ----
 * Each returns a table that starts with its struct_size; a NULL answer
 * means the library lacks the feature. */

/* "moe.router_stats": how often each expert of each MoE layer was chosen.
 * Collection is off until enabled; counts add up over generations until
 * reset. On a dense model, layer_count is 0. */
#define MDIFF_FEATURE_ROUTER_STATS "moe.router_stats"

typedef struct mdiff_layer_stats {
    size_t struct_size;
    char name[160];            /* the layer's module path */
    int32_t num_experts, top_k;
    uint64_t calls;            /* forward calls observed */
    uint64_t tokens;           /* rows routed, summed over calls */
} mdiff_layer_stats;

typedef struct mdiff_router_stats_api {
    size_t struct_size;
    int (*enable)(mdiff_context *ctx, int on);
    int (*reset)(mdiff_context *ctx);
    /* >= 0: the number of MoE layers seen so far; < 0: a status */
    int (*layer_count)(mdiff_context *ctx);
    /* counts[e] (for e < counts_cap) = times expert e was chosen for a
     * token (each token makes top_k choices). */
    int (*layer)(mdiff_context *ctx, int index, mdiff_layer_stats *out, uint64_t *counts,
                 int counts_cap);
} mdiff_router_stats_api;

/* "moe.expert_settings": read or change the experts per token this
 * context's generations use when a request leaves moe_top_k at 0. Since
 * 1.3 set changes a per-context setting only: nothing is reloaded, and it
 * works for diffusers folders and single files alike. */
#define MDIFF_FEATURE_EXPERT_SETTINGS "moe.expert_settings"

typedef struct mdiff_expert_settings {
    size_t struct_size;
    int32_t top_k;        /* get: in use; set: wanted, 0 = the model's own */
    int32_t num_experts;  /* get only */
} mdiff_expert_settings;

typedef struct mdiff_expert_settings_api {
    size_t struct_size;
    int (*get)(mdiff_context *ctx, mdiff_expert_settings *out);
    int (*set)(mdiff_context *ctx, const mdiff_expert_settings *settings, char *msg,
               size_t msg_cap);
} mdiff_expert_settings_api;

/* "moe.router_trace" (1.2): every MoE layer call of a generation as it
 * happens, on the generating thread (with classifier-free guidance the
 * unconditional and the conditional rows arrive in one call, in that
 * order: see groups, 1.4). */
#define MDIFF_FEATURE_ROUTER_TRACE "moe.router_trace"

typedef struct mdiff_router_event {
    size_t struct_size;
    const char *layer_name;    /* the layer's module path */
    int32_t step;              /* denoising steps completed before this call */
    int32_t num_experts, top_k;
    int32_t reserved;
    int64_t rows;              /* tokens routed in this call */
    const float *logits;       /* [rows, num_experts] gate logits */
    const int32_t *choice;     /* [rows, top_k] the experts each row went to; since 1.4 -1
                                  marks a slot left empty (moe_skip, or moe_capacity's
                                  residual path) */
    /* ABI 1.4 */
    int64_t skipped;           /* expert-rows of this call dropped by moe_skip */
    int64_t dropped;           /* expert-rows of this call sent to the residual path by
                                  moe_capacity (no expert with room was left) */
    int32_t groups;            /* the rows are this many equal groups, one per image of the
                                  U-Net's batch: 2 with classifier-free guidance, the
                                  unconditional (negative prompt) rows first, then the
                                  conditional ones; 1 without guidance */
    int32_t routing;           /* mdiff_routing this call used (SEQUENCE for a replayed
                                  sequence route, TOKEN for a replayed token route) */
} mdiff_router_event;

/* The event and everything it points to are valid during the callback only. */
typedef void (*mdiff_router_trace_fn)(void *user, const mdiff_router_event *event);

typedef struct mdiff_router_trace_api {
    size_t struct_size;
    /* fn NULL turns tracing off (the default). MDIFF_ERR_BUSY while generating. */
    int (*set)(mdiff_context *ctx, mdiff_router_trace_fn fn, void *user);
} mdiff_router_trace_api;

/* "moe.router_override" (1.5): the host takes part in routing ("paint with
 * experts"). Its callback is offered every MoE layer call of a generation
 * after the gate logits are computed and before the experts run; it may
 * read the logits, add a bias to them and switch the call between token
 * and sequence routing. The experts chosen and their weights are then
 * made from logits + bias, with every other control of the request
 * (top-k, moe_skip, moe_capacity, pinned experts of moe_schedule) as
 * usual; a router trace sees the biased logits and that choice.
 *   - Forcing: a bias of +1e4 on an expert puts it among a row's (token
 *     routing) or the call's (sequence routing: the choice is made from the
 *     logits summed over the rows, so bias every row) chosen experts;
 *     -1e4 keeps it out. As weights are a softmax over the chosen experts'
 *     biased logits, a forced expert takes nearly all of the weight; a
 *     bias of a few units only tips the choice.
 *   - Rows: `groups` equal groups, one per image of the U-Net's batch
 *     (with classifier-free guidance [unconditional; conditional]); when
 *     grid_height/grid_width are set, row r is pixel (x, y) = (p %
 *     grid_width, p / grid_width), p = r % (grid_height * grid_width), of
 *     the latents at the call's U-Net level (the latent size, halved per
 *     level down). They are 0 for the projections of the text context
 *     (cross-attention keys and values), whose rows are text tokens.
 *   - Calls whose experts a replayed routes file (moe_routes) gives are not
 *     offered. On Vulkan an override makes every MoE layer route on the
 *     host (slower: the logits are downloaded).
 *   - Threading and lifetime: called on the generating thread, during
 *     api->generate, one call at a time. The call struct and all it points
 *     to are valid during the callback only. The callback must not call
 *     the library for that context, except api->cancel. `user` is kept
 *     until the override is replaced; after a context_destroy no new call
 *     starts (see THREADING).
 *   - A non-finite bias (or biased logit) or an unknown routing fails the
 *     generation with MDIFF_ERR_INVALID and a message naming the layer. */
#define MDIFF_FEATURE_ROUTER_OVERRIDE "moe.router_override"

typedef struct mdiff_router_override_call {
    size_t struct_size;
    const char *layer_name;    /* the layer's module path */
    int32_t layer_index;       /* 0 .. model_info's moe_layers - 1, in the model's load order */
    int32_t step;              /* denoising steps completed before this call */
    int32_t total_steps;       /* denoising steps this run takes */
    int32_t num_experts;
    int32_t top_k;             /* experts per row (token) or per call (sequence) */
    int32_t groups;            /* equal row groups: 2 with guidance ([uncond; cond]), else 1 */
    int64_t rows;              /* tokens routed in this call */
    int32_t grid_height;       /* each group's token grid: rows = groups * grid_height *
                                  grid_width; 0 when the rows are no grid (text tokens) */
    int32_t grid_width;
    const float *logits;       /* [rows, num_experts] gate logits as computed */
    float *bias;               /* [rows, num_experts], zeroed: the host adds to it */
    int32_t routing;           /* in: the mdiff_routing this call would use (SEQUENCE, TOKEN or
                                  SEQUENCE_SPLIT); out: the one it uses, e.g. TOKEN to route
                                  a sequence-routed (SegMoE) model's call per token */
    int32_t reserved;
} mdiff_router_override_call;

/* 0 goes on; non-zero cancels the generation (MDIFF_ERR_CANCELLED). */
typedef int (*mdiff_router_override_fn)(void *user, mdiff_router_override_call *call);

typedef struct mdiff_router_override_api {
    size_t struct_size;
    /* fn NULL turns the override off (the default). MDIFF_ERR_BUSY while generating. */
    int (*set)(mdiff_context *ctx, mdiff_router_override_fn fn, void *user);
} mdiff_router_override_api;

/* "moe.routing_health" (1.4): how the last generation used the experts of
 * each MoE layer, and whether its routing collapsed: in at least 3/4 of
 * the judged MoE layers at most max(top_k, num_experts / 2) experts each
 * got 0.5% or more of the layer's slots over the whole run
 * (docs/moe-health.md). A layer is judged when its router chose often
 * enough for each expert to have been picked 4 times (a sequence-routed
 * layer chooses once per step). After each generation of an MoE model the
 * library checks this and, on a collapse, logs a MDIFF_LOG_WARN message
 * through the context's log callback. The slots are counted where the
 * router runs on the host: always on the CPU; on Vulkan only while router
 * stats or a router trace are on (otherwise layers is 0: not measured). */
#define MDIFF_FEATURE_ROUTING_HEALTH "moe.routing_health"

typedef struct mdiff_routing_health {
    size_t struct_size;
    int32_t layers;            /* MoE layers measured in the last generation; 0 = none */
    int32_t collapsed_layers;  /* judged layers that used at most max(top_k, num_experts / 2) */
    int32_t collapse;          /* 1: routing collapsed (the WARN was logged) */
    int32_t experts_used;      /* summed over the layers: experts with >= 0.5% of the slots */
    int32_t experts_total;
    float min_share, max_share;/* the least and the most any expert of any layer got */
    int32_t judged_layers;     /* layers with enough router choices to judge */
} mdiff_routing_health;

typedef struct mdiff_layer_health {
    size_t struct_size;
    char name[160];            /* the layer's module path */
    int32_t num_experts, top_k;
    int32_t experts_used;
    int32_t collapsed;
    float min_share, max_share;/* of the layer's slots over the run */
    int32_t judged;            /* 1: enough router choices to judge the layer */
    int32_t reserved;
} mdiff_layer_health;

typedef struct mdiff_routing_health_api {
    size_t struct_size;
    /* The figures of the last generation (an unfinished one counts as none);
     * out->struct_size must be set, as for every struct the library fills. */
    int (*get)(mdiff_context *ctx, mdiff_routing_health *out);
    /* Layer `index` < layers, in the U-Net's order. */
    int (*layer)(mdiff_context *ctx, int index, mdiff_layer_health *out);
} mdiff_routing_health_api;

/* "moe.expert_memory" (1.5): the loaded model's resident experts under
 * max_expert_memory. The counters cover every generation on the model
 * (contexts sharing it included) since the model loaded or the last reset. */
#define MDIFF_FEATURE_EXPERT_MEMORY "moe.expert_memory"

typedef struct mdiff_expert_memory {
    size_t struct_size;
    uint64_t total;            /* = model_info expert_memory */
    uint64_t minimum;          /* = model_info expert_memory_minimum */
    uint64_t fixed;            /* bytes that stay resident whatever the bound */
    uint64_t resident;         /* now */
    uint64_t peak;             /* the most resident at once */
    uint64_t loads;            /* experts made resident (read again, or uploaded) */
    uint64_t hits;             /* expert uses that found it resident */
    uint64_t evictions;
    uint64_t prefetches;       /* loaded ahead from the previous step's choice (device) */
    uint64_t prefetch_used;    /* of those, used before being evicted */
    int32_t device;            /* 1: experts load onto a device (Vulkan with a bound) */
    int32_t reserved;
} mdiff_expert_memory;

/* What a bound would cost for a recorded generation's routing. */
typedef struct mdiff_expert_estimate {
    size_t struct_size;
    int32_t steps;             /* denoising steps the routes hold */
    int32_t reserved;
    uint64_t first_loads;      /* experts the first step loads (nothing resident yet) */
    double loads_per_step;     /* expert loads per later step: experts chosen that the bound
                                  had evicted, or that the previous steps never used */
    double bytes_per_step;     /* bytes those loads read per later step */
    double used_per_step;      /* experts used per step, all layers */
} mdiff_expert_estimate;

typedef struct mdiff_expert_memory_api {
    size_t struct_size;
    /* out->struct_size must be set; MDIFF_ERR_UNSUPPORTED on a dense model.
     * Both may be called while a generation runs (also from its progress
     * callback): the figures then include it. */
    int (*get)(mdiff_context *ctx, mdiff_expert_memory *out);
    /* Restarts the counters; the peak restarts at the next expert use. */
    int (*reset)(mdiff_context *ctx);
    /* Replays `routes` (a routes file's text, as moe_routes takes it, recorded
     * on this model) through a least-recently-used cache of `bound` bytes (0:
     * none), starting empty, in the order the layers run: how many experts a
     * generation with that routing loads per step. Nothing is computed on the
     * model; not while the context generates (MDIFF_ERR_BUSY). */
    int (*estimate)(mdiff_context *ctx, uint64_t bound, const char *routes,
                    mdiff_expert_estimate *out, char *msg, size_t msg_cap);
} mdiff_expert_memory_api;

/* "lora" (1.6): the LoRAs a request applies, as generate will apply them:
 * the prompt's tags (found in lora_dir), then loras[] in order. Hosts use it
 * to record them (names, weights, file hashes) and to check a request's
 * LoRAs before generating. */
#define MDIFF_FEATURE_LORA "lora"

typedef struct mdiff_lora_info {
    size_t struct_size;
    char name[256];            /* the file's name without folder and .safetensors; for a
                                  prompt tag, its NAME */
    char path[4096];           /* the file */
    float weight;
    int32_t from_prompt;       /* 1: a <lora:...> tag of the prompt, 0: from loras[] */
    int32_t modules;           /* modules the file changes (when checked against a model) */
    int32_t matched;           /* of those, modules that match a layer of the model
                                  (-1 without a context) */
} mdiff_lora_info;

typedef struct mdiff_lora_api {
    size_t struct_size;
    /* Fills up to cap entries (struct_size set by the host) and returns how
     * many LoRAs the request applies; < 0: a status with the reason in msg.
     * Opens each file; with ctx, also binds it to the loaded model, so every
     * error generate would give for the LoRAs comes here first (not while
     * the context generates: MDIFF_ERR_BUSY). */
    int (*list)(mdiff_context *ctx, const mdiff_gen_params *params, mdiff_lora_info *out,
                int cap, char *msg, size_t msg_cap);
} mdiff_lora_api;

/* "model.files" (1.6): the files a loaded model comes from. */
#define MDIFF_FEATURE_MODEL_FILES "model.files"

typedef struct mdiff_model_files_api {
    size_t struct_size;
    /* The file AUTOMATIC1111's "Model hash" is taken of: the single-file
     * checkpoint, or of a diffusers folder its U-Net's weights file (the
     * shard index for a sharded U-Net). Returns the length as describe does. */
    int (*hash_file)(mdiff_context *ctx, char *path, size_t cap);
} mdiff_model_files_api;

/* "model.describe" (1.2): a multi-line description of the loaded model for
 * people (components, sizes, MoE layout, weight types, memory estimate). */
#define MDIFF_FEATURE_DESCRIBE "model.describe"

typedef struct mdiff_describe_api {
    size_t struct_size;
    /* Writes at most cap bytes (NUL included) and returns the length of the
     * whole text, so a short buffer can be retried; < 0: a status. */
    int (*describe)(mdiff_context *ctx, char *text, size_t cap);
} mdiff_describe_api;

/* "backend.devices" (1.2): the Vulkan devices the library can see. */
#define MDIFF_FEATURE_DEVICES "backend.devices"

typedef enum mdiff_device_type {
    MDIFF_DEVICE_OTHER = 0,
    MDIFF_DEVICE_DISCRETE = 1,
    MDIFF_DEVICE_INTEGRATED = 2,
    MDIFF_DEVICE_VIRTUAL = 3,
    MDIFF_DEVICE_CPU = 4       /* e.g. lavapipe: only used when asked for */
} mdiff_device_type;

typedef struct mdiff_device_info {
    size_t struct_size;
    char name[256];
    int32_t index;             /* what context params' `device` takes */
    int32_t type;              /* mdiff_device_type */
    uint64_t memory;           /* bytes of the largest device-local heap */
    uint64_t max_binding;      /* the largest tensor the device can bind, bytes */
    uint32_t vendor_id, device_id;
    uint32_t api_version;      /* VK_MAKE_API_VERSION layout */
    int32_t usable;            /* 1: has what the backend needs */
    char why_not[256];         /* when not usable: the missing piece */
} mdiff_device_info;

typedef struct mdiff_devices_api {
    size_t struct_size;
    /* Fills up to cap entries (each with struct_size set by the host) and
     * returns how many devices exist, at most 16 (0 with a reason in msg
     * when there is no Vulkan loader, device or build support); < 0: a status. */
    int (*list)(mdiff_device_info *out, int cap, char *msg, size_t msg_cap);
} mdiff_devices_api;

/* "backend.profile" (1.2): with MDIFF_CONTEXT_PROFILE on the Vulkan
 * backend, GPU time per op since the context was created or reset. */
#define MDIFF_FEATURE_PROFILE "backend.profile"

typedef struct mdiff_profile_api {
    size_t struct_size;
    /* One line per op, most expensive first. Returns the text's length as
     * describe does; MDIFF_ERR_UNSUPPORTED when the context is not profiling. */
    int (*report)(mdiff_context *ctx, char *text, size_t cap);
    int (*reset)(mdiff_context *ctx);
    /* The backend and device in use, e.g. "vulkan: NVIDIA H100 (discrete)" or "cpu". */
    int (*backend_name)(mdiff_context *ctx, char *text, size_t cap);
} mdiff_profile_api;

/* ---- merging models (ABI 1.6) ----
 * api->merge builds a SegMoE Mixture-of-Experts model folder from a SegMoE
 * YAML config and the dense models it names (docs/merge.md). It needs no
 * context. */
typedef enum mdiff_merge_stage {
    MDIFF_MERGE_BASE = 1,      /* copying the base model's weights */
    MDIFF_MERGE_EXPERT = 2,    /* expert `expert` (0-based) starts */
    MDIFF_MERGE_GATE_STEP = 3, /* gate-initialisation step `step` of `steps` done */
    MDIFF_MERGE_WRITE = 4      /* gates and configs being written */
} mdiff_merge_stage;

typedef struct mdiff_merge_progress {
    size_t struct_size;
    int32_t stage;   /* mdiff_merge_stage */
    int32_t expert;  /* 0-based, of `experts` */
    int32_t experts;
    int32_t step;    /* MDIFF_MERGE_GATE_STEP: steps done, of `steps` */
    int32_t steps;
    int32_t reserved;
} mdiff_merge_progress;

/* A non-zero return cancels the merge. */
typedef int (*mdiff_merge_progress_fn)(void *user, const mdiff_merge_progress *progress);

#define MDIFF_MERGE_GATE_INIT_CONFIG 0 /* the config's `init` (default: hidden) */
#define MDIFF_MERGE_GATE_INIT_HIDDEN 1 /* from each source's own hidden states */
#define MDIFF_MERGE_GATE_INIT_RANDOM 2 /* random gates, no model runs (quick tries) */

typedef struct mdiff_merge_params {
    size_t struct_size;      /* sizeof; no init function: zero the rest */
    const char *config_path; /* SegMoE YAML; its paths are relative to its folder */
    const char *output_path; /* the new model folder; must not exist */
    uint64_t seed;           /* noise of the gate-initialisation runs */
    int32_t gate_init;       /* MDIFF_MERGE_GATE_INIT_* */
    int32_t dtype_bits;      /* U-Net weights written: 16 (0 = 16) or 32 */
    int32_t threads;         /* CPU threads of the gate-init runs, 0 = all */
    int32_t reserved;
    mdiff_merge_progress_fn progress; /* may be NULL */
    void *progress_user;
    /* When non-NULL and set non-zero (from any thread or a signal
     * handler), the merge stops at its next check: MDIFF_ERR_CANCELLED. */
    const volatile int *cancel;
} mdiff_merge_params;

/* ---- the function table ---- */
typedef struct mdiff_api {
    size_t struct_size;
    int32_t abi_major, abi_minor;

    const char *(*version)(void);             /* library version, e.g. "0.1.0" */
    const char *(*status_name)(int status);   /* e.g. "cancelled" */
    const char *(*sampler_name)(int index);   /* NULL past the last sampler */

    /* Fill defaults and set struct_size = size (pass sizeof *p). */
    void (*context_params_init)(mdiff_context_params *p, size_t size);
    void (*gen_params_init)(mdiff_gen_params *p, size_t size);
    void (*image_init)(mdiff_image *img, size_t size);

    /* Loads the model. On failure *out is NULL. */
    int (*context_create)(const mdiff_context_params *params, mdiff_context **out, char *msg,
                          size_t msg_cap);
    /* Frees the context. Safe while a call runs on ctx (from another thread,
     * or from that call's own progress callback): the destroy is deferred,
     * see THREADING. NULL is a no-op; ctx must not be used after it. */
    void (*context_destroy)(mdiff_context *ctx);
    int (*set_progress)(mdiff_context *ctx, mdiff_progress_fn fn, void *user);
    int (*set_log)(mdiff_context *ctx, mdiff_log_fn fn, void *user, int level);
    /* info->struct_size must be set (sizeof *info). */
    int (*model_info)(mdiff_context *ctx, mdiff_model_info *info);

    /* One image. `out` (struct_size set, see image_init) is either
     *  - caller-allocated: data set, width/height equal to the generation's
     *    size, channels 3 or 4 (alpha = 255), stride as needed; the library
     *    writes it only on success; or
     *  - library-allocated: data NULL, channels 3 or 4 (0 = 3); on success
     *    the library fills every field and the host frees the pixels with
     *    image_free.
     * On failure (cancel included) `out` is left as it was. */
    int (*generate)(mdiff_context *ctx, const mdiff_gen_params *params, mdiff_image *out,
                    char *msg, size_t msg_cap);
    int (*cancel)(mdiff_context *ctx);
    /* Frees a library-allocated image's pixels and clears data; does
     * nothing to an image the library did not allocate. */
    void (*image_free)(mdiff_image *img);

    const void *(*get_feature)(const char *id);

    /* ABI 1.3 */
    /* The request as generate will run it, every default resolved: size
     * (native, or the init image's), guidance (the model's for
     * MDIFF_GUIDANCE_MODEL), sampler name, moe_top_k and moe_routing (the
     * ones in effect; 0 on a dense model). This is the one validation of a
     * request: generate applies the same. With ctx NULL only what needs no
     * model is checked and resolved (size, guidance and MoE fields may stay
     * 0 / MDIFF_GUIDANCE_MODEL). `out` (struct_size set) receives the
     * result; its pointers alias the input's. Hosts use it to check a
     * request before loading a model, and to record what was generated. */
    int (*resolve_params)(mdiff_context *ctx, const mdiff_gen_params *params,
                          mdiff_gen_params *out, char *msg, size_t msg_cap);

    /* ABI 1.6 */
    /* Merges params->config_path into the new folder params->output_path
     * (SegMoE's layout, written beside it under a temporary name and
     * renamed when complete). On any failure or cancel nothing is left.
     * Errors name the file and the config key: MDIFF_ERR_INVALID a bad
     * config value or key; MDIFF_ERR_IO a missing file or the output
     * existing or unwritable; MDIFF_ERR_FORMAT / MDIFF_ERR_UNSUPPORTED a
     * source that is malformed, a pickle checkpoint, or of another
     * architecture than the base. Present when struct_size covers it. */
    int (*merge)(const mdiff_merge_params *params, char *msg, size_t msg_cap);
} mdiff_api;

/* The one exported symbol. NULL when `major` is not served. */
MOEDIFFUSE_EXPORT const mdiff_api *moediffuse_get_api(int major, int minor);
typedef const mdiff_api *(*moediffuse_get_api_fn)(int major, int minor);
#define MOEDIFFUSE_ENTRY "moediffuse_get_api"

#ifdef __cplusplus
}
#endif

#endif
