/* Component configs from diffusers / transformers config.json objects.
 * `file` names the source (a path, or e.g. "architecture.unet") in every
 * error. Values this engine cannot run (another block type, another
 * embedding kind, ...) fail with MD_ERR_UNSUPPORTED naming the field. */
#ifndef MD_CONFIG_JSON_H
#define MD_CONFIG_JSON_H

#include <cjson/cJSON.h>

#include "../runtime/status.h"
#include "config.h"
/* Every parser validates what it fills, and its callers check inferred
 * configs the same way. */
#include "config_validate.h"

/* Reads and parses a JSON file (must hold an object). */
md_status md_json_read_file(const char *path, cJSON **out, md_error *err);

/* UNet2DConditionModel config. A "segmoe_config" or "moe_config" member
 * fills cfg->moe (see md_moe_config_from_json). */
md_status md_unet_config_from_json(const cJSON *j, const char *file, md_unet_config *cfg,
                                   md_error *err);

/* MoE settings, two accepted forms:
 *  - SegMoE's "segmoe_config": num_experts, num_experts_per_tok,
 *    moe_layers "ff" | "attn" | "all", type "sd" | "sdxl", and
 *    down_idx_start/end, up_idx_start/end (SegMoE's defaults per type when
 *    absent). Routing is always MD_ROUTE_SEQUENCE_TOPK. SegMoE's merge
 *    recipe (base_model, experts, loras, init) is accepted and not used.
 *  - our own "moe_config": num_experts, top_k (or num_experts_per_tok; both
 *    must agree), routing "token" | "sequence" (default "token"), moe_layers
 *    as above (default "ff"), the same four index bounds (default: every
 *    down and up block).
 * Both take shared_expert (bool, default false): an always-on expert whose
 * output is added to the routed mixture. Any other key fails with
 * MD_ERR_UNSUPPORTED naming it (docs/moe-config.md lists them all).
 * `levels` bounds the indices. is_segmoe selects the form. */
md_status md_moe_config_from_json(const cJSON *j, int is_segmoe, int levels, const char *file,
                                  md_moe_config *cfg, md_error *err);

/* AutoencoderKL config (norm eps is diffusers' fixed 1e-6). */
md_status md_vae_config_from_json(const cJSON *j, const char *file, md_vae_config *cfg,
                                  md_error *err);

/* CLIPTextConfig. projection_dim is set only when "architectures" names
 * CLIPTextModelWithProjection; the loader also sets it when the weights
 * hold a text_projection. Token ids come from the config (legacy CLIP-L
 * configs say bos 0 / eos 2, which are mapped to 49406 / 49407); loaders
 * replace them with the tokenizer's. */
md_status md_clip_config_from_json(const cJSON *j, const char *file, md_clip_config *cfg,
                                   md_error *err);

/* scheduler_config.json of any diffusers scheduler class. */
md_status md_sched_config_from_json(const cJSON *j, const char *file, md_sched_config *cfg,
                                    md_error *err);

/* SD 1.x defaults (PNDM config of SD 1.5). */
void md_sched_config_default(md_sched_config *cfg);

#endif
