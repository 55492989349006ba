/* Prompt to pixels: text encoding, classifier-free guidance, the sampler
 * loop and the VAE, for txt2img, img2img and inpainting. Matches diffusers'
 * StableDiffusion(XL)Pipeline / Img2Img / Inpaint semantics (see the
 * golden README), with hooks so tests can feed recorded noise and observe
 * every intermediate tensor. */
#ifndef MD_PIPELINE_H
#define MD_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "../include/moediffuse.h"
#include "../models/model.h"
#include "../sampling/sampler.h"
#include "request.h"

typedef enum md_noise_kind {
    MD_NOISE_INITIAL = 0, /* the latent noise of the first step (also add_noise's noise) */
    MD_NOISE_ENCODER = 1, /* VAE posterior sample noise (img2img, inpaint) */
    MD_NOISE_STEP = 2     /* per-step noise of ancestral samplers; step index given */
} md_noise_kind;

/* The request's images as the pipeline takes them: float planes of the
 * generation's size (the ABI converts a host's 8-bit images). */
typedef struct md_gen_images {
    const float *init_image; /* img2img / inpaint: RGB [3, height, width] in [0, 1]; NULL = none */
    const float *mask;       /* inpaint: [height, width], 1 = repaint; needs init_image */
} md_gen_images;

typedef struct md_gen_hooks {
    void *user;
    /* Supplies noise instead of the seeded RNG; return 1 when filled. */
    int (*noise)(void *user, md_noise_kind kind, int step, float *out, size_t n);
    /* Observes named intermediate tensors (host memory): "prompt_embeds",
     * "add_text_embeds", "add_time_ids", "timesteps", "init_noise_sigma",
     * "image_latents", "latents_init", "mask_latent", "noise_pred" and
     * "latents" (once per step, `step` set), "final_latents", "image". */
    void (*tensor)(void *user, const char *name, int step, const float *data, size_t n);
    /* Progress after each step; a non-zero return cancels the run. */
    int (*progress)(void *user, int step, int total);
} md_gen_hooks;

/* Where one generation computes. The model is only read by a generation;
 * what it writes goes here, so several generations may run on one loaded
 * model at once from different threads, each with its own md_gen_run
 * (own backend and U-Net state; host-weight backends only, see
 * md_backend_shares_weights in runtime/backend.h). Not owned by md_generate. */
typedef struct md_gen_run {
    /* Activations (arena, and on the CPU the thread pool). NULL: the backend
     * the model was loaded with (md_model_options.backend), which then
     * serves one generation at a time. A backend that cannot use the
     * model's weights (another Vulkan instance) is MD_ERR_UNSUPPORTED. */
    md_backend *backend;
    /* Made with md_unet_state_new(m->unet) and reused across generations
     * (its observer is called for every MoE layer call; the request's MoE
     * settings are set on it). NULL: a state is made for the call and freed
     * after it. */
    md_unet_state *unet;
    /* How the request's LoRAs are applied: 0 = the default (MD_LORA_SIDE:
     * docs/lora.md, "Which way"), else 1 + an md_lora_apply. */
    int lora_apply;
} md_gen_run;

/* One generation of the request `req` (md_request_resolve resolves and
 * checks it first: a resolved request passes unchanged; its init_image and
 * mask structs are not read: the planes come in `images`, NULL = none).
 * image: [3, height, width] in [0, 1]. run NULL = {NULL, NULL}. Buffers
 * are allocated once per call; denoising steps after the first allocate
 * nothing. */
md_status md_generate(const md_model *m, const md_gen_run *run, const mdiff_gen_params *req,
                      const md_gen_images *images, const md_gen_hooks *hooks, float *image,
                      md_error *err);

/* Images in the U-Net's batch for a resolved request: 2 with classifier-
 * free guidance (unconditional first, then conditional), else 1. Every MoE
 * layer call then routes rows of this many equal groups. */
int md_generate_batch(const mdiff_gen_params *resolved);

/* Text conditioning for one prompt (exposed for tests and tools), computed
 * on be (which must be able to use the model's weights):
 * embeds [77, context_dim]; pooled [pooled_dim] (SDXL) may be NULL. */
md_status md_encode_prompt(const md_model *m, md_backend *be, const char *text, int clip_skip,
                           float *embeds, float *pooled, md_error *err);

/* AUTOMATIC1111-style conditioning (pipeline/prompt_conditioning.c):
 * md_prompt_chunk_count() tells how many 77-token chunks `text` needs (or an
 * error past text/prompt_weights.h's MD_PROMPT_MAX_CHUNKS); then
 * md_encode_prompt_weighted() fills embeds [chunks * 77, context_dim] with
 * the weighted chunks, padding up to `chunks` with empty-prompt chunks (so
 * prompt and negative prompt can share one length). pooled (SDXL) is the
 * first chunk's. Bit-identical to md_encode_prompt for a plain prompt of at
 * most 75 tokens. */
md_status md_prompt_chunk_count(const md_model *m, const char *text, int *chunks, md_error *err);
md_status md_encode_prompt_weighted(const md_model *m, md_backend *be, const char *text,
                                    int clip_skip, int chunks, float *embeds, float *pooled,
                                    md_error *err);

#endif
