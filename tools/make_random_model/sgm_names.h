/* SGM key of a diffusers weight name, per component. Each returns 1 and
 * the full key (with its component prefix) in out, or 0 when the name has
 * no SGM counterpart. */
#ifndef MD_RM_SGM_NAMES_H
#define MD_RM_SGM_NAMES_H

#include <stddef.h>

#include "config/config.h"
#include "models/ldm_names.h"

int rm_sgm_unet_key(const md_unet_config *c, const char *name, char *out, size_t cap);
/* *unsqueeze: the weight is a [C, C] linear stored as a [C, C, 1, 1] conv. */
int rm_sgm_vae_key(const md_vae_config *c, const char *name, char *out, size_t cap,
                   int *unsqueeze);
/* OpenCLIP text tower; *qkv = 0/1/2 for q/k/v projections, which OpenCLIP
 * packs (in that order) into one in_proj weight/bias named in out, else -1.
 * text_projection is stored transposed ([width, projection]). */
int rm_sgm_open_clip_key(const char *name, char *out, size_t cap, int *qkv);

#endif
