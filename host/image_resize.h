/* Fitting an image to a generation size: scaled (keeping its aspect ratio)
 * to cover width x height, then centre-cropped, with an antialiased
 * triangle filter. An image already of that size is copied exactly. */
#ifndef MD_IMAGE_RESIZE_H
#define MD_IMAGE_RESIZE_H

#include "host_error.h"
#include "image_read.h"

/* planes [4, height, width] in [0, 1]: R, G, B, alpha. */
int md_image_fit(const md_image *src, int width, int height, float *planes, mdh_error *err);

#endif
