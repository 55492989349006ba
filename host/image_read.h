/* Reading images that may come from anywhere: PNG through libpng (any bit
 * depth, palette, gray, alpha, interlaced) and JPEG through libjpeg-turbo
 * (gray, YCbCr; not CMYK), recognised by their first bytes, decoded to
 * 8-bit RGBA. Bad files give an error naming the file and the problem. */
#ifndef MD_IMAGE_READ_H
#define MD_IMAGE_READ_H

#include <stddef.h>
#include <stdint.h>

#include "host_error.h"

/* Larger images are refused before any pixel memory is allocated. */
#define MD_IMAGE_MAX_SIDE 16384

typedef struct md_image {
    int width, height;
    uint8_t *rgba; /* width * height * 4 bytes, rows top to bottom */
} md_image;

int md_image_read(const char *path, md_image *out, mdh_error *err);
void md_image_free(md_image *img);

/* The two decoders (md_image_read picks one by the file's signature). */
int md_image_read_png(const char *path, md_image *out, mdh_error *err);
int md_image_read_jpeg(const char *path, md_image *out, mdh_error *err);

/* The text of a PNG's tEXt/zTXt/iTXt chunk `key` (the first one), as UTF-8
 * (tEXt that is not valid UTF-8 is read as Latin-1). *text is malloc'd;
 * a PNG without the chunk is MDIFF_ERR_FORMAT with a message saying so. */
int md_png_read_text(const char *path, const char *key, char **text, mdh_error *err);

/* The same from bytes in memory (an upload); `name` stands for the path in
 * errors. Images wider or taller than max_side (0 or more than
 * MD_IMAGE_MAX_SIDE: MD_IMAGE_MAX_SIDE) are refused before their pixels are
 * allocated. */
int md_image_decode(const void *data, size_t size, const char *name, int max_side, md_image *out,
                    mdh_error *err);
int md_image_decode_png(const void *data, size_t size, const char *name, int max_side,
                        md_image *out, mdh_error *err);
int md_image_decode_jpeg(const void *data, size_t size, const char *name, int max_side,
                         md_image *out, mdh_error *err);
int md_png_decode_text(const void *data, size_t size, const char *name, const char *key,
                       char **text, mdh_error *err);

#endif
