/* PNG output through libpng, written through output_file.h (a fresh
 * temporary renamed over the target) so a failed or cancelled run never
 * leaves a partial image and nothing planted at the path is followed. */
#ifndef MD_IMAGE_PNG_H
#define MD_IMAGE_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "host_error.h"

typedef struct md_text_chunk {
    const char *key;
    const char *text;
} md_text_chunk;

/* rgb: interleaved 8-bit RGB, width*height*3 bytes. */
int md_png_write(const char *path, const uint8_t *rgb, int width, int height,
                       const md_text_chunk *text, size_t ntext, mdh_error *err);

/* The same PNG in memory (for the server's responses): *png is malloc'd,
 * *size bytes. */
int md_png_encode(const uint8_t *rgb, int width, int height, const md_text_chunk *text,
                  size_t ntext, unsigned char **png, size_t *size, mdh_error *err);

/* planes [3, H, W] in [0, 1] -> interleaved 8-bit RGB, round(255 x). */
void md_planes_to_rgb8(const float *planes, int width, int height, uint8_t *rgb);

#endif
