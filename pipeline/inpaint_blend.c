#include "inpaint_blend.h"

#include <stdlib.h>
#include <string.h>

int md_inpaint_feather_radius(int width, int height)
{
    int r = (width < height ? width : height) / 128;
    return r < 1 ? 1 : r > 8 ? 8 : r;
}

/* One box blur of `radius` along rows (stride 1) or columns (stride w),
 * edges clamped; tmp holds one line. */
static void box_line(float *line, float *tmp, int n, size_t stride, int radius)
{
    for (int i = 0; i < n; i++)
        tmp[i] = line[(size_t)i * stride];
    double sum = 0;
    for (int k = -radius; k <= radius; k++)
        sum += tmp[k < 0 ? 0 : k >= n ? n - 1 : k];
    const double inv = 1.0 / (2 * radius + 1);
    for (int i = 0; i < n; i++) {
        line[(size_t)i * stride] = (float)(sum * inv);
        int out = i - radius, in = i + radius + 1;
        sum += tmp[in >= n ? n - 1 : in] - tmp[out < 0 ? 0 : out];
    }
}

md_status md_inpaint_paste_back(float *image, const float *init, const float *mask, int width,
                                int height, int radius, md_error *err)
{
    size_t plane = (size_t)width * height;
    float *alpha = malloc(sizeof(float) * plane);
    float *tmp = malloc(sizeof(float) * (size_t)(width > height ? width : height));
    if (!alpha || !tmp) {
        free(alpha);
        free(tmp);
        return md_fail(err, MD_ERR_NOMEM, "out of memory blending the inpainted image");
    }
    for (size_t i = 0; i < plane; i++)
        alpha[i] = mask[i] >= 0.5f ? 1.0f : 0.0f;
    for (int pass = 0; radius > 0 && pass < 2; pass++) {
        for (int y = 0; y < height; y++)
            box_line(alpha + (size_t)y * width, tmp, width, 1, radius);
        for (int x = 0; x < width; x++)
            box_line(alpha + x, tmp, height, (size_t)width, radius);
    }
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < plane; i++) {
            float a = alpha[i];
            image[c * plane + i] = a * image[c * plane + i] + (1.0f - a) * init[c * plane + i];
        }
    free(alpha);
    free(tmp);
    return MD_OK;
}
