/* make-random-model: writes a diffusers folder with random weights for a
 * named architecture, so benchmarks and demos need no download. Weight
 * names and shapes come from the engine's own loaders (each lookup of a
 * missing weight synthesises it), so the file always matches the code. */
#ifndef MD_RANDOM_MODEL_H
#define MD_RANDOM_MODEL_H

#include <cjson/cJSON.h>
#include <stdint.h>

typedef struct rm_options {
    const char *preset;     /* tiny, sd15 */
    const char *out_dir;
    int experts, top_k;     /* 0 experts = dense */
    const char *moe_layers; /* ff, attn, all */
    int token_routing;
    int f16;
    uint64_t seed;
} rm_options;

typedef struct rm_configs {
    cJSON *unet, *vae, *text_encoder, *scheduler;
} rm_configs;

int rm_preset(const rm_options *o, rm_configs *out);

#endif
