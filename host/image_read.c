#include "image_read.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int md_image_read(const char *path, md_image *out, mdh_error *err)
{
    out->width = out->height = 0;
    out->rgba = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return mdh_fail(err, MDIFF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char sig[8] = {0};
    size_t n = fread(sig, 1, sizeof sig, f);
    fclose(f);
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n == 8 && memcmp(sig, png_sig, 8) == 0)
        return md_image_read_png(path, out, err);
    if (n >= 3 && sig[0] == 0xff && sig[1] == 0xd8 && sig[2] == 0xff)
        return md_image_read_jpeg(path, out, err);
    return mdh_fail(err, MDIFF_ERR_FORMAT, "%s: not a PNG or JPEG image%s", path,
                   n == 0 ? " (the file is empty)" : "");
}

void md_image_free(md_image *img)
{
    free(img->rgba);
    img->rgba = NULL;
    img->width = img->height = 0;
}

int md_image_decode(const void *data, size_t size, const char *name, int max_side, md_image *out,
                    mdh_error *err)
{
    out->width = out->height = 0;
    out->rgba = NULL;
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const unsigned char *b = data;
    if (max_side <= 0 || max_side > MD_IMAGE_MAX_SIDE)
        max_side = MD_IMAGE_MAX_SIDE;
    if (size >= 8 && memcmp(b, png_sig, 8) == 0)
        return md_image_decode_png(data, size, name, max_side, out, err);
    if (size >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
        return md_image_decode_jpeg(data, size, name, max_side, out, err);
    return mdh_fail(err, MDIFF_ERR_FORMAT, "%s: not a PNG or JPEG image%s", name,
                    size == 0 ? " (it is empty)" : "");
}
