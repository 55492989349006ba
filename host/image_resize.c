#include "image_resize.h"

#include <math.h>
#include <stdlib.h>

/* Taps of one output position along one axis. */
typedef struct taps {
    int first, count;
    float *w;
} taps;

/* out_len positions over src_len source pixels at `scale` (out/src), the
 * kept window centred; widening the triangle by 1/scale when shrinking
 * averages every source pixel in, instead of skipping some. */
static taps *make_taps(int src_len, int out_len, double scale, int *max_count)
{
    double support = scale < 1.0 ? 1.0 / scale : 1.0;
    double offset = (src_len - out_len / scale) / 2.0;
    int span = (int)ceil(2 * support) + 2;
    taps *t = calloc((size_t)out_len, sizeof *t);
    float *w = calloc((size_t)out_len * span, sizeof *w);
    if (!t || !w) {
        free(t);
        free(w);
        return NULL;
    }
    for (int o = 0; o < out_len; o++) {
        double center = (o + 0.5) / scale + offset;
        int lo = (int)floor(center - support), hi = (int)ceil(center + support);
        if (lo < 0)
            lo = 0;
        if (hi > src_len - 1)
            hi = src_len - 1;
        if (hi - lo + 1 > span)
            hi = lo + span - 1;
        t[o].first = lo;
        t[o].w = w + (size_t)o * span;
        double sum = 0;
        for (int i = lo; i <= hi; i++) {
            double d = fabs(i + 0.5 - center) / support;
            double v = d < 1.0 ? 1.0 - d : 0.0;
            t[o].w[i - lo] = (float)v;
            sum += v;
        }
        if (sum <= 0) { /* centre outside every tap: take the nearest pixel */
            int n = (int)floor(center);
            t[o].first = n < 0 ? 0 : n >= src_len ? src_len - 1 : n;
            t[o].w[0] = 1.0f;
            t[o].count = 1;
            continue;
        }
        for (int i = lo; i <= hi; i++)
            t[o].w[i - lo] = (float)(t[o].w[i - lo] / sum);
        t[o].count = hi - lo + 1;
    }
    *max_count = span;
    return t;
}

static void free_taps(taps *t)
{
    if (t)
        free(t[0].w);
    free(t);
}

int md_image_fit(const md_image *src, int width, int height, float *planes, mdh_error *err)
{
    const int sw = src->width, sh = src->height;
    size_t plane = (size_t)width * height;
    if (sw == width && sh == height) {
        for (size_t i = 0; i < plane; i++)
            for (int c = 0; c < 4; c++)
                planes[c * plane + i] = src->rgba[4 * i + c] / 255.0f;
        return MDIFF_OK;
    }
    double sx = (double)width / sw, sy = (double)height / sh;
    double scale = sx > sy ? sx : sy;
    int spanx, spany;
    taps *tx = make_taps(sw, width, scale, &spanx);
    taps *ty = make_taps(sh, height, scale, &spany);
    float *rows = malloc(sizeof(float) * 4 * (size_t)sh * width); /* horizontal pass */
    if (!tx || !ty || !rows) {
        free_taps(tx);
        free_taps(ty);
        free(rows);
        return mdh_fail(err, MDIFF_ERR_NOMEM, "out of memory resizing a %dx%d image", sw, sh);
    }
    for (int y = 0; y < sh; y++) {
        const uint8_t *in = src->rgba + (size_t)y * sw * 4;
        for (int x = 0; x < width; x++) {
            float acc[4] = {0};
            for (int k = 0; k < tx[x].count; k++) {
                const uint8_t *p = in + 4 * (size_t)(tx[x].first + k);
                for (int c = 0; c < 4; c++)
                    acc[c] += tx[x].w[k] * p[c];
            }
            for (int c = 0; c < 4; c++)
                rows[((size_t)c * sh + y) * width + x] = acc[c] / 255.0f;
        }
    }
    for (int c = 0; c < 4; c++)
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++) {
                float acc = 0;
                for (int k = 0; k < ty[y].count; k++)
                    acc += ty[y].w[k] * rows[((size_t)c * sh + ty[y].first + k) * width + x];
                planes[c * plane + (size_t)y * width + x] = acc < 0 ? 0 : acc > 1 ? 1 : acc;
            }
    free_taps(tx);
    free_taps(ty);
    free(rows);
    return MDIFF_OK;
}
