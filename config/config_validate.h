/* Consistency checks shared by every source of a component config (JSON,
 * inference from shapes, YAML): level count, positive channels, groups
 * dividing channels, heads dividing channels, MoE index bounds. `file`
 * names the source in every error. */
#ifndef MD_CONFIG_VALIDATE_H
#define MD_CONFIG_VALIDATE_H

#include "../runtime/status.h"
#include "config.h"

md_status md_unet_config_validate(const md_unet_config *cfg, const char *file, md_error *err);
md_status md_vae_config_validate(const md_vae_config *cfg, const char *file, md_error *err);
md_status md_clip_config_validate(const md_clip_config *cfg, const char *file, md_error *err);

#endif
