/* AutoencoderKL: KL decoder and encoder. A loaded md_vae keeps nothing
 * mutable: decode/encode only read it and take activations from the
 * backend passed in (its arena, reset on return; its f32 switch, restored),
 * so threads may run it at once, each with its own backend. That backend
 * must be able to use the weights (md_backend_shares_weights), else
 * MD_ERR_UNSUPPORTED. */
#ifndef MD_VAE_H
#define MD_VAE_H

#include "../config/config.h"
#include "../io/weights.h"

typedef struct md_vae md_vae;

md_status md_vae_load(md_vae **out, const md_vae_config *cfg, md_weights *w, md_backend *be,
                      md_error *err);
void md_vae_free(md_vae *v);
const md_vae_config *md_vae_config_of(const md_vae *v);
int md_vae_factor(const md_vae *v); /* 2^(levels-1) */

/* z [B, latent_channels, h, w] is the decoder input (already divided by the
 * scaling factor); image [B, out_channels, h*f, w*f], raw (no clamp). */
md_status md_vae_decode(const md_vae *v, md_backend *be, const float *z, int batch, int h, int w,
                        float *image, md_error *err);
/* image [B, in_channels, H, W] in [-1, 1]; mean/logvar [B, latent, H/f, W/f],
 * logvar clamped to [-30, 20]. */
md_status md_vae_encode(const md_vae *v, md_backend *be, const float *image, int batch, int H,
                        int W, float *mean, float *logvar, md_error *err);

#endif
