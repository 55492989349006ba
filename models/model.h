/* A loaded model: tokenizer(s), text encoder(s), U-Net (with MoE), VAE and
 * the scheduler settings, from a diffusers folder or a single-file
 * checkpoint. This is what the pipeline, the CLI and the ABI hold. */
#ifndef MD_MODEL_H
#define MD_MODEL_H

#include <cjson/cJSON.h>

#include "../config/config.h"
#include "../text/text_encoder.h"
#include "../text/tokenizer.h"
#include "../unet/unet.h"
#include "../vae/vae.h"

typedef enum md_family { MD_FAMILY_SD1 = 0, MD_FAMILY_SD2, MD_FAMILY_SDXL } md_family;

#define MD_MODEL_MAX_FILES 32 /* sharded weights count one per shard */

typedef struct md_model {
    md_family family;
    char path[1024];
    /* The file A1111's "Model hash" covers: the single file, or a diffusers
     * folder's U-Net weights (its shard index when sharded). */
    char hash_file[4096];

    md_tokenizer *tokenizer;   /* CLIP-L tokenizer (te1) */
    md_tokenizer *tokenizer2;  /* SDXL te2 tokenizer, else NULL */
    int32_t pad_id, pad_id2;   /* padding ids of the two tokenizers */

    md_clip_config te_cfg, te2_cfg;
    md_text_encoder *te, *te2; /* te2: SDXL only */

    md_unet_config unet_cfg;
    md_unet *unet;

    md_vae_config vae_cfg;
    md_vae *vae;

    md_sched_config sched_cfg;
    int force_zeros_for_empty_prompt; /* SDXL */

    /* Generation defaults of the family, for front ends: the native image
     * side in pixels (U-Net sample_size x VAE factor: 512 SD 1.x, 768 SD 2.x
     * v-prediction, 1024 SDXL) and the guidance scale (model_index.json's
     * "_default_guidance_scale", else 7.5; SDXL 5.0). */
    int default_size;
    float default_cfg;

    /* Loaded with md_model_options.defer_experts on a backend that loads
     * weights on demand: the expert cache fills the device under a budget. */
    int defer_experts;

    /* owned storage the components point into */
    md_safetensors *files[MD_MODEL_MAX_FILES];
    int nfiles;
    md_weights *weights[MD_MODEL_MAX_FILES];
    int nweights;
} md_model;

typedef struct md_model_options {
    md_backend *backend;            /* required */
    /* Architecture that a single file's shapes cannot tell: an object with
     * optional "unet", "vae", "text_encoder", "text_encoder_2", "scheduler"
     * members in diffusers config.json form (golden.json "architecture"). */
    const cJSON *architecture;
    const char *config_yaml;        /* an LDM/SGM .yaml (v-prediction, ...) */
    /* The routed experts stay in host memory and go to the device only when
     * a generation uses them, under its expert budget (moe/expert_cache.h).
     * Backends without weights_load (CPU) ignore it: their experts are
     * always used from the mapped files. */
    int defer_experts;
} md_model_options;

/* `path` is a diffusers folder (model_index.json) or a .safetensors file. */
md_status md_model_load(const char *path, const md_model_options *opt, md_model **out,
                        md_error *err);
void md_model_free(md_model *m);

/* Gives the resident pages of the mapped weights of every weights map whose
 * label starts with `component` ("unet", "vae", "text_encoder" covers both
 * encoders) back to the kernel (io/mapped_pages.h): a generation calls it
 * when a component is done with, so the peak memory of the next phase does
 * not also hold the last one's weights. The model is unchanged: a later read
 * maps the same bytes again from the page cache or the file. */
void md_model_release_pages(const md_model *m, const char *component);

#endif
