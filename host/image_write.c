#include "image_write.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO /* every write goes through write_cb below */
#include <stb_image_write.h>

#include "output_file.h"

md_image_format md_image_format_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash))
        return MD_IMAGE_UNKNOWN;
    if (!strcasecmp(dot, ".png"))
        return MD_IMAGE_PNG;
    if (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"))
        return MD_IMAGE_JPEG;
    if (!strcasecmp(dot, ".bmp"))
        return MD_IMAGE_BMP;
    return MD_IMAGE_UNKNOWN;
}

typedef struct stb_args {
    md_image_format fmt;
    const uint8_t *rgb;
    int width, height;
} stb_args;

typedef struct sink {
    FILE *f;
    int failed;
} sink;

static void write_cb(void *ctx, void *data, int size)
{
    sink *s = ctx;
    if (!s->failed && fwrite(data, 1, (size_t)size, s->f) != (size_t)size)
        s->failed = 1;
}

static int write_stb_file(FILE *f, void *user)
{
    const stb_args *a = user;
    sink s = {f, 0};
    int ok = a->fmt == MD_IMAGE_JPEG
                 ? stbi_write_jpg_to_func(write_cb, &s, a->width, a->height, 3, a->rgb, 95)
                 : stbi_write_bmp_to_func(write_cb, &s, a->width, a->height, 3, a->rgb);
    return ok && !s.failed;
}

static int write_stb(const char *path, md_image_format fmt, const uint8_t *rgb, int width,
                     int height, mdh_error *err)
{
    stb_args a = {fmt, rgb, width, height};
    return mdh_output_write(path, write_stb_file, &a, err);
}

int md_image_write(const char *path, const uint8_t *rgb, int width, int height,
                         const md_text_chunk *text, size_t ntext, mdh_error *err)
{
    md_image_format fmt = md_image_format_of(path);
    switch (fmt) {
    case MD_IMAGE_PNG: return md_png_write(path, rgb, width, height, text, ntext, err);
    case MD_IMAGE_JPEG:
    case MD_IMAGE_BMP: return write_stb(path, fmt, rgb, width, height, err);
    default:
        return mdh_fail(err, MDIFF_ERR_INVALID,
                       "%s: unknown image type (use .png, .jpg, .jpeg or .bmp)", path);
    }
}
