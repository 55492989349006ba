/* make-random-model: writes a diffusers folder with random weights for a
 * named architecture, so benchmarks and demos need no download; optionally
 * the same weights as one SGM single-file checkpoint. Weight names and
 * shapes come from the engine's own loaders (each lookup of a missing
 * weight synthesises it), so the folder always matches the code. */
#ifndef MD_RANDOM_MODEL_H
#define MD_RANDOM_MODEL_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "config/config.h"
#include "io/weights.h"

typedef struct rm_options {
    const char *preset;      /* tiny, sd15, sdxl, sdxl-small, segmoe-sd15-4x2, segmoe-sdxl-4x2 */
    const char *out_dir;     /* diffusers folder, or NULL */
    const char *single_file; /* SGM .safetensors (SDXL presets, dense), or NULL */
    int experts, top_k;      /* 0 experts = dense */
    const char *moe_layers;  /* ff, attn, all */
    int token_routing;
    int shared_expert;       /* MoE layers get an always-on expert (<layer>.shared_expert.*) */
    int f16;
    uint64_t seed;
} rm_options;

typedef struct rm_configs {
    cJSON *unet, *vae, *text_encoder, *text_encoder_2, *scheduler; /* text_encoder_2: SDXL */
    int sdxl;
} rm_configs;

int rm_preset(const rm_options *o, rm_configs *out);

/* The synthesized SDXL components (diffusers names) as one checkpoint in
 * the SGM layout that SDXL single files use. Returns 0 and a message in
 * msg on failure. */
int rm_write_sgm_file(const char *path, const md_unet_config *unet, const md_vae_config *vae,
                      md_weights *te, md_weights *te2, md_weights *wu, md_weights *wv, char *msg,
                      size_t cap);

#endif
