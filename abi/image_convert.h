/* Host images (8-bit interleaved, any size) to and from the engine's float
 * planes [C, H, W] in [0, 1]. */
#ifndef MD_ABI_IMAGE_CONVERT_H
#define MD_ABI_IMAGE_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "../include/moediffuse.h"

/* Checks a host image's fields (size limits, channels, stride, data); NULL
 * when valid, else what is wrong. */
const char *abi_image_problem(const mdiff_image *img);

/* RGB planes [3, h, w] of img, resized bilinearly when its size differs.
 * Grey images repeat their one channel; alpha is ignored. */
void abi_image_to_rgb_planes(const mdiff_image *img, int w, int h, float *planes);
/* One plane [h, w] from the first channel, nearest-neighbour resized. */
void abi_image_to_mask(const mdiff_image *img, int w, int h, float *mask);
/* planes [3, h, w] -> 8-bit rows of `channels` (3, or 4 with alpha 255). */
void abi_planes_to_image(const float *planes, int w, int h, uint8_t *data, int channels,
                         size_t stride);

#endif
