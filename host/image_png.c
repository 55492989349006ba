#include "image_png.h"

#include "output_file.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void md_planes_to_rgb8(const float *planes, int width, int height, uint8_t *rgb)
{
    size_t plane = (size_t)width * height;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) {
            float v = planes[c * plane + i] * 255.0f + 0.5f;
            rgb[3 * i + c] = (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
        }
}

/* libpng reports errors by longjmp; keeping all of it in one function keeps
 * the jump target valid. */
static int write_stream(FILE *f, const uint8_t *rgb, int width, int height,
                        const md_text_chunk *text, size_t ntext)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    if (!png)
        return 0;
    png_infop info = png_create_info_struct(png);
    png_text *chunks = ntext ? calloc(ntext, sizeof *chunks) : NULL;
    if (!info || (ntext && !chunks)) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        free(chunks);
        return 0;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(chunks);
        return 0;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (size_t i = 0; i < ntext; i++) {
        /* tEXt is Latin-1: UTF-8 text goes into iTXt (as A1111 does). */
        int ascii = 1;
        for (const unsigned char *c = (const unsigned char *)text[i].text; *c && ascii; c++)
            ascii = *c < 0x80;
        chunks[i].compression = ascii ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
        chunks[i].key = (png_charp)text[i].key;
        chunks[i].text = (png_charp)text[i].text;
    }
    if (ntext)
        png_set_text(png, info, chunks, (int)ntext);
    png_write_info(png, info);
    for (int y = 0; y < height; y++)
        png_write_row(png, (png_const_bytep)(rgb + (size_t)y * width * 3));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(chunks);
    return 1;
}

typedef struct png_args {
    const uint8_t *rgb;
    int width, height;
    const md_text_chunk *text;
    size_t ntext;
} png_args;

static int write_png_file(FILE *f, void *user)
{
    const png_args *a = user;
    return write_stream(f, a->rgb, a->width, a->height, a->text, a->ntext);
}

int md_png_write(const char *path, const uint8_t *rgb, int width, int height,
                 const md_text_chunk *text, size_t ntext, mdh_error *err)
{
    png_args a = {rgb, width, height, text, ntext};
    return mdh_output_write(path, write_png_file, &a, err);
}

int md_png_encode(const uint8_t *rgb, int width, int height, const md_text_chunk *text,
                  size_t ntext, unsigned char **png, size_t *size, mdh_error *err)
{
    *png = NULL;
    *size = 0;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return mdh_fail(err, MDIFF_ERR_NOMEM, "out of memory for a PNG");
    int ok = write_stream(f, rgb, width, height, text, ntext);
    if (fclose(f) != 0 || !ok) {
        free(buf);
        return mdh_fail(err, MDIFF_ERR_NOMEM, "out of memory encoding a %dx%d PNG", width, height);
    }
    *png = (unsigned char *)buf;
    *size = len;
    return MDIFF_OK;
}
