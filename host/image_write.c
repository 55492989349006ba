#include "image_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO /* every write goes through write_cb below */
#include <stb_image_write.h>

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

static int write_stb(const char *path, md_image_format fmt, const uint8_t *rgb, int width,
                           int height, mdh_error *err)
{
    size_t len = strlen(path);
    char *tmp = malloc(len + 32);
    if (!tmp)
        return mdh_fail(err, MDIFF_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, len + 32, "%s.tmp%ld", path, (long)getpid());
    sink s = {fopen(tmp, "wb"), 0};
    if (!s.f) {
        int st = mdh_fail(err, MDIFF_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        free(tmp);
        return st;
    }
    int ok = fmt == MD_IMAGE_JPEG ? stbi_write_jpg_to_func(write_cb, &s, width, height, 3, rgb, 95)
                                  : stbi_write_bmp_to_func(write_cb, &s, width, height, 3, rgb);
    ok = ok && !s.failed;
    ok = (fflush(s.f) == 0) && ok;
    ok = (fclose(s.f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        free(tmp);
        return mdh_fail(err, MDIFF_ERR_IO, "%s: cannot write the image: %s", path,
                       ok ? strerror(e) : "write failed (disk full?)");
    }
    free(tmp);
    return MDIFF_OK;
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
