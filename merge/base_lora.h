/* A merge config's top-level `loras`: fused into the base model (its
 * U-Net weights outside the MoE layers and its text encoders), as SegMoE
 * fuses them into its base pipeline before adding the experts. */
#ifndef MD_BASE_LORA_H
#define MD_BASE_LORA_H

#include "../io/safetensors.h"
#include "../lora/lora_bind.h"
#include "merge_config.h"

typedef struct md_base_lora {
    md_lora_binding b;
    md_lora_file **files;
    int nfiles;
    md_weights *maps[3];     /* unet, text_encoder, text_encoder_2 (those present) */
    int nmaps;
    md_safetensors *te[2];   /* the base's text encoder files, NULL when absent */
} md_base_lora;

/* Opens and binds every top-level LoRA of cfg against the base's U-Net
 * file `unet` and its text encoders; nothing to do without any. Errors
 * name the config, the key and the LoRA file. */
md_status md_base_lora_open(md_base_lora *bl, const md_merge_config *cfg, md_safetensors *unet,
                            md_error *err);
/* Whether base weight `name` (U-Net or text encoder) is modified. */
int md_base_lora_modifies(const md_base_lora *bl, const char *name);
/* The fused weight of `name` as f32 (malloc'd into *out). */
md_status md_base_lora_fused(const md_base_lora *bl, const char *name, float **out,
                             md_error *err);
/* Rewrites the copied text encoder file `dst` (encoder 0 or 1) with its
 * fused weights, when the LoRAs modify any. */
md_status md_base_lora_write_te(const md_base_lora *bl, int which, const char *dst,
                                md_error *err);
void md_base_lora_close(md_base_lora *bl);

#endif
