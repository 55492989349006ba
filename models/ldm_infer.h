/* Architecture of a single-file checkpoint from its tensor shapes plus the
 * defaults of its family. Shapes tell levels, widths, layers, attention
 * placement, transformer depths, context width and projection kind; they do
 * not tell head counts (SD1: 8 heads; SD2/SDXL: 64-wide heads), norm
 * groups (32), prediction type or scaling factor, which come from the
 * family, an LDM .yaml, or an explicit architecture override. */
#ifndef MD_LDM_INFER_H
#define MD_LDM_INFER_H

#include "../config/config.h"
#include "../io/safetensors.h"
#include "model.h"

/* SD1: cond_stage_model.transformer; SD2: cond_stage_model.model;
 * SDXL: conditioner.embedders / label_emb. */
md_status md_ldm_detect_family(const md_safetensors *st, md_family *out, md_error *err);

md_status md_ldm_infer_unet(const md_safetensors *st, md_family fam, md_unet_config *cfg,
                            md_error *err);
md_status md_ldm_infer_vae(const md_safetensors *st, md_family fam, md_vae_config *cfg,
                           md_error *err);
/* HF CLIP names under prefix (CLIP-L: QuickGELU, 64-wide heads). */
md_status md_ldm_infer_clip(const md_safetensors *st, const char *prefix, md_clip_config *cfg,
                            md_error *err);
/* OpenCLIP names under prefix (exact GELU, 64-wide heads). drop_last: SD 2.x
 * runs the penultimate layer, so the last resblock is not part of the
 * encoder. with_projection: keep text_projection (SDXL te2). */
md_status md_ldm_infer_open_clip(const md_safetensors *st, const char *prefix, int drop_last,
                                 int with_projection, md_clip_config *cfg, md_error *err);
/* The scheduler config the family's diffusers release ships. */
void md_ldm_sched_defaults(md_family fam, md_sched_config *cfg);

#endif
