/* The last step of inpainting, after the decode that the reference records
 * check: the area outside the mask gets the original pixels back (the VAE
 * round trip would otherwise soften them), blended across a feathered
 * mask edge so no seam shows. */
#ifndef MD_INPAINT_BLEND_H
#define MD_INPAINT_BLEND_H

#include "../runtime/status.h"

/* Default feather radius: min(width, height) / 128, clamped to 1..8 pixels
 * (4 at 512x512, as common UIs blur the mask). */
int md_inpaint_feather_radius(int width, int height);

/* image, init: [3, height, width] in [0, 1]; mask [height, width], 1 =
 * repainted (binarised at 0.5, as the pipeline does). The binary mask is
 * blurred twice with a box of `radius` (0 = a hard edge) and used as the
 * blend weight of the generated image. */
md_status md_inpaint_paste_back(float *image, const float *init, const float *mask, int width,
                                int height, int radius, md_error *err);

#endif
