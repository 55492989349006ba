/* Renaming of single-file checkpoints (original LDM / SGM key layouts) into
 * the diffusers names the component code looks up. Renamed tensors are
 * views of the file's mapping (no copies), except SDXL's OpenCLIP
 * text_projection, which is stored transposed and gets an owned copy held
 * by the md_weights. Every key under a component prefix must map (except
 * non-weights: position_ids, logit_scale, attn_mask, VAE loss.*); a key that
 * does not fit the given architecture is an error naming it. */
#ifndef MD_LDM_NAMES_H
#define MD_LDM_NAMES_H

#include "../config/config.h"
#include "../io/safetensors.h"
#include "../io/weights.h"

#define MD_LDM_UNET_PREFIX "model.diffusion_model."
#define MD_LDM_VAE_PREFIX "first_stage_model."
#define MD_LDM_SD1_TE_PREFIX "cond_stage_model.transformer."   /* HF CLIP-L names */
#define MD_LDM_SD2_TE_PREFIX "cond_stage_model.model."         /* OpenCLIP ViT-H */
#define MD_LDM_SDXL_TE1_PREFIX "conditioner.embedders.0.transformer." /* HF CLIP-L */
#define MD_LDM_SDXL_TE2_PREFIX "conditioner.embedders.1.model."       /* OpenCLIP bigG */

/* model.diffusion_model.* (input_blocks / middle_block / output_blocks /
 * time_embed / label_emb / out) -> UNet2DConditionModel names. The block
 * numbering follows from cfg: levels, layers_per_block, which levels have
 * attention, downsamplers after every level but the last, upsamplers after
 * every up block but the last. */
md_status md_ldm_rename_unet(const md_safetensors *st, const md_unet_config *cfg, md_weights *out,
                             md_error *err);

/* The inverse for messages: the file's key (with its prefix) of a
 * diffusers U-Net name under cfg; 0 when the name has none. */
int md_ldm_unet_key(const md_unet_config *cfg, const char *name, char *out, size_t cap);

/* first_stage_model.* -> AutoencoderKL names (decoder.up.{i} is
 * up_blocks.{levels-1-i}; mid attention 1x1 convs become [C, C] linears). */
md_status md_ldm_rename_vae(const md_safetensors *st, const md_vae_config *cfg, md_weights *out,
                            md_error *err);

/* HF CLIPTextModel keys under prefix -> text_model.* (position_ids buffers
 * are skipped). */
md_status md_ldm_rename_clip(const md_safetensors *st, const char *prefix, md_weights *out,
                             md_error *err);

/* OpenCLIP text tower under prefix -> HF CLIPTextModel(WithProjection)
 * names. in_proj_weight [3W, W] / in_proj_bias [3W] become q/k/v row-slice
 * views. Only the first `layers` resblocks are kept: SD 2.x runs the
 * penultimate layer, so its text encoder has resblocks - 1 layers, as in
 * the diffusers conversion. text_projection [W, P] is kept (as
 * text_projection.weight [P, W]) only when with_projection. */
md_status md_ldm_rename_open_clip(const md_safetensors *st, const char *prefix, int layers,
                                  int with_projection, md_weights *out, md_error *err);

/* Number of transformer.resblocks.N under an OpenCLIP prefix (N max + 1). */
int md_ldm_open_clip_layers(const md_safetensors *st, const char *prefix);

#endif
