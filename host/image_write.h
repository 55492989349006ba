/* Image output by file extension: .png through libpng (with text chunks),
 * .jpg/.jpeg (quality 95) and .bmp through stb_image_write. Every format is
 * written through output_file.h (a fresh temporary renamed over the
 * target), so a failed or cancelled run never leaves a partial image. */
#ifndef MD_IMAGE_WRITE_H
#define MD_IMAGE_WRITE_H

#include "image_png.h"

typedef enum md_image_format {
    MD_IMAGE_UNKNOWN = 0,
    MD_IMAGE_PNG,
    MD_IMAGE_JPEG,
    MD_IMAGE_BMP
} md_image_format;

/* From the extension, case-insensitive. */
md_image_format md_image_format_of(const char *path);

/* rgb: interleaved 8-bit RGB. Text chunks are stored in PNGs only. */
int md_image_write(const char *path, const uint8_t *rgb, int width, int height,
                         const md_text_chunk *text, size_t ntext, mdh_error *err);

#endif
