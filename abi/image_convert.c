#include "image_convert.h"

#include <math.h>

#include "abi_internal.h"

static size_t row_bytes(const mdiff_image *img)
{
    return img->stride ? (size_t)img->stride : (size_t)img->width * (size_t)img->channels;
}

const char *abi_image_problem(const mdiff_image *img)
{
    if (img->struct_size < ABI_1_0_IMAGE_SIZE)
        return "struct_size too small (use image_init)";
    if (!img->data)
        return "no pixel data";
    if (img->width < 1 || img->height < 1 || img->width > 16384 || img->height > 16384)
        return "size out of range (1..16384)";
    if (img->channels != 1 && img->channels != 3 && img->channels != 4)
        return "channels must be 1, 3 or 4";
    if (img->stride != 0 && img->stride < img->width * img->channels)
        return "stride smaller than a row";
    return NULL;
}

static float sample(const mdiff_image *img, int x, int y, int c)
{
    const uint8_t *px = img->data + (size_t)y * row_bytes(img) + (size_t)x * img->channels;
    return px[img->channels >= 3 ? c : 0] * (1.0f / 255.0f);
}

/* Source coordinate of a destination pixel centre (align_corners=False). */
static float src_coord(int d, int dst_n, int src_n, int *i0, int *i1)
{
    float s = ((float)d + 0.5f) * (float)src_n / (float)dst_n - 0.5f;
    if (s < 0.0f)
        s = 0.0f;
    int a = (int)floorf(s);
    if (a > src_n - 1)
        a = src_n - 1;
    *i0 = a;
    *i1 = a + 1 < src_n ? a + 1 : a;
    return s - (float)a;
}

void abi_image_to_rgb_planes(const mdiff_image *img, int w, int h, float *planes)
{
    size_t plane = (size_t)w * h;
    for (int y = 0; y < h; y++) {
        int y0, y1;
        float fy = src_coord(y, h, img->height, &y0, &y1);
        for (int x = 0; x < w; x++) {
            int x0, x1;
            float fx = src_coord(x, w, img->width, &x0, &x1);
            for (int c = 0; c < 3; c++) {
                float top = sample(img, x0, y0, c) * (1 - fx) + sample(img, x1, y0, c) * fx;
                float bot = sample(img, x0, y1, c) * (1 - fx) + sample(img, x1, y1, c) * fx;
                planes[c * plane + (size_t)y * w + x] = top * (1 - fy) + bot * fy;
            }
        }
    }
}

void abi_image_to_mask(const mdiff_image *img, int w, int h, float *mask)
{
    for (int y = 0; y < h; y++) {
        int sy = (int)((int64_t)y * img->height / h);
        for (int x = 0; x < w; x++) {
            int sx = (int)((int64_t)x * img->width / w);
            mask[(size_t)y * w + x] = img->data[(size_t)sy * row_bytes(img) + (size_t)sx * img->channels] *
                                      (1.0f / 255.0f);
        }
    }
}

void abi_planes_to_image(const float *planes, int w, int h, uint8_t *data, int channels,
                         size_t stride)
{
    size_t plane = (size_t)w * h;
    for (int y = 0; y < h; y++) {
        uint8_t *row = data + (size_t)y * stride;
        for (int x = 0; x < w; x++) {
            for (int c = 0; c < 3; c++) {
                /* the rounding of md_planes_to_rgb8, so bytes match the CLI's PNGs */
                float v = planes[c * plane + (size_t)y * w + x] * 255.0f + 0.5f;
                row[(size_t)x * channels + c] = (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
            }
            if (channels == 4)
                row[(size_t)x * channels + 3] = 255;
        }
    }
}
