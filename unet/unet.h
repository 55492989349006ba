/* UNet2DConditionModel (SD 1.x/2.x, SDXL) with optional SegMoE / per-token
 * MoE layers in its transformer blocks. Built from md_unet_config and a
 * md_weights in diffusers naming.
 *
 * A loaded md_unet is read-only after md_unet_load: everything a forward
 * call writes lives in an md_unet_state (one per generation) and in the
 * arena of the backend passed to md_unet_forward. Any number of threads may
 * run forward on one md_unet at once, each with its own state and backend
 * (which backends can share the weights: runtime/backend.h,
 * md_backend_shares_weights). */
#ifndef MD_UNET_H
#define MD_UNET_H

#include "../config/config.h"
#include "../io/weights.h"
#include "../moe/expert_cache.h"
#include "../moe/moe.h"

typedef struct md_unet md_unet;

md_status md_unet_load(md_unet **out, const md_unet_config *cfg, md_weights *w, md_backend *be,
                       md_error *err);
/* Load options beyond the model's config. */
typedef struct md_unet_load_options {
    /* The routed experts stay in host memory until a generation needs them
     * (the expert cache loads them on demand, under the budget): only on a
     * backend with weights_load (Vulkan); ignored elsewhere. */
    int defer_experts;
} md_unet_load_options;
md_status md_unet_load_with(md_unet **out, const md_unet_config *cfg, md_weights *w,
                            md_backend *be, const md_unet_load_options *opt, md_error *err);
void md_unet_free(md_unet *u);
/* The model's expert cache (moe/expert_cache.h), NULL without MoE layers.
 * The one mutable part of a loaded U-Net; it locks itself. */
md_expert_cache *md_unet_expert_cache(const md_unet *u);
const md_unet_config *md_unet_config_of(const md_unet *u);
/* Number of MoE layers; they are numbered 0..count-1 (md_moe_layer.index). */
int md_unet_moe_layers(const md_unet *u);
/* MoE layer `index` (read-only), NULL out of range. */
const md_moe_layer *md_unet_moe_layer(const md_unet *u, int index);
/* The backend the weights were prepared on (not owned). */
md_backend *md_unet_backend(const md_unet *u);

/* Per-generation run state: the skip-connection stack, host scratch for
 * the time embedding, one md_moe_scratch per MoE layer, the MoE options and
 * the MoE observer. Made for one md_unet (sized from it; use it only with
 * that one), owned by the caller, used by one thread at a time. Buffers
 * grow on the first call of a shape, so later calls do not allocate. */
typedef struct md_unet_state md_unet_state;
md_status md_unet_state_new(const md_unet *u, md_unet_state **out, md_error *err);
void md_unet_state_free(md_unet_state *st);
/* A state keeps the cross-attention keys and values of its last text
 * context between calls, in the arena of the backend that computed them;
 * this gives that memory back. Call it when a generation ends, while its
 * backend still exists (md_unet_state_free does not touch backends). */
void md_unet_state_drop_kv(md_unet_state *st);
/* Called for every MoE layer call during forward (fn NULL = none). */
void md_unet_state_set_observer(md_unet_state *st, md_moe_observer fn, void *user);
/* Top-k and routing for every MoE layer of later calls (copied; NULL or
 * zeros = each layer's own). Checked per layer at forward time. Its
 * override fields are ignored: the override is set on its own, below. */
void md_unet_state_set_moe(md_unet_state *st, const md_moe_options *opt);
/* Offered every MoE layer call before its experts run (fn NULL = none),
 * whatever options each step sets. */
void md_unet_state_set_override(md_unet_state *st, md_moe_override_fn fn, void *user);
/* Routing counts of MoE layer `index` (0..md_unet_moe_layers-1) since the
 * last reset (moe.h md_moe_usage); a layer out of range reads as uncounted. */
void md_unet_state_usage(const md_unet_state *st, int index, md_moe_usage *out);
void md_unet_state_reset_usage(md_unet_state *st);

typedef struct md_unet_inputs {
    int batch;
    int height, width;        /* latent size */
    const float *sample;      /* [B, in_channels, H, W] */
    const float *timesteps;   /* [B] */
    const float *context;     /* [B, context_len, cross_attention_dim] */
    int context_len;
    const float *text_embeds; /* SDXL: [B, projection dim]; else NULL */
    const float *time_ids;    /* SDXL: [B, 6]; else NULL */
} md_unet_inputs;

/* eps [B, out_channels, H, W] (host). The model is only read; writes go to
 * st and to be's arena, reset to where it was on return except for the
 * cross-attention keys and values st keeps for later calls with the same
 * context (md_unet_state_drop_kv gives them back). be must be able to use
 * u's weights (md_backend_shares_weights), else MD_ERR_UNSUPPORTED. */
md_status md_unet_forward(const md_unet *u, md_unet_state *st, md_backend *be,
                          const md_unet_inputs *in, float *eps, md_error *err);

#endif
