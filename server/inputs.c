#include "inputs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/image_read.h"
#include "../host/image_resize.h"
#include "../host/parameters.h"

static uint8_t to_byte(float v)
{
    v = v * 255.0f + 0.5f;
    return (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
}

static int status_of(int st)
{
    return st == MDIFF_ERR_NOMEM ? 500 : 422;
}

int md_inputs_load(const md_gen_request *g, int max_side, md_inputs *in, char *msg, size_t cap)
{
    memset(in, 0, sizeof *in);
    md_image img = {0}, mask = {0};
    float *planes = NULL;
    mdh_error err = {0};
    int rc = 0;
    if (md_image_decode(g->init, g->init_size, "init_images[0]", max_side, &img, &err) !=
            MDIFF_OK ||
        (g->mask && md_image_decode(g->mask, g->mask_size, "mask", max_side, &mask, &err) !=
                        MDIFF_OK)) {
        snprintf(msg, cap, "%s", err.msg);
        rc = status_of(err.code);
        goto done;
    }
    if (g->mask && (mask.width != img.width || mask.height != img.height)) {
        snprintf(msg, cap, "mask is %dx%d but init_images[0] is %dx%d", mask.width, mask.height,
                 img.width, img.height);
        rc = 422;
        goto done;
    }
    mdh_size_for_image(&g->req.p, img.width, img.height, &in->width, &in->height);
    if (in->width > max_side || in->height > max_side) {
        snprintf(msg, cap, "width x height: %dx%d is past this server's limit of %d pixels a side",
                 in->width, in->height, max_side);
        rc = 422;
        goto done;
    }
    size_t plane = (size_t)in->width * in->height;
    planes = malloc(sizeof(float) * 4 * plane);
    in->rgb = malloc(3 * plane);
    in->mask = g->mask ? malloc(plane) : NULL;
    if (!planes || !in->rgb || (g->mask && !in->mask)) {
        snprintf(msg, cap, "out of memory for a %dx%d image", in->width, in->height);
        rc = 500;
        goto done;
    }
    if (md_image_fit(&img, in->width, in->height, planes, &err) != MDIFF_OK) {
        snprintf(msg, cap, "init_images[0]: %s", err.msg);
        rc = status_of(err.code);
        goto done;
    }
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++)
            in->rgb[3 * i + c] = to_byte(planes[c * plane + i]);
    if (g->mask) {
        if (md_image_fit(&mask, in->width, in->height, planes, &err) != MDIFF_OK) {
            snprintf(msg, cap, "mask: %s", err.msg);
            rc = status_of(err.code);
            goto done;
        }
        /* white = repaint: luminance (ITU-R 601, as PIL's "L") x alpha, as the CLI */
        int selected = 0;
        for (size_t i = 0; i < plane; i++) {
            float v = (0.299f * planes[i] + 0.587f * planes[plane + i] +
                       0.114f * planes[2 * plane + i]) * planes[3 * plane + i];
            in->mask[i] = to_byte(g->mask_invert ? 1.0f - v : v);
            selected |= in->mask[i] >= 128;
        }
        if (!selected) {
            snprintf(msg, cap, "mask selects nothing to repaint: white (or light) opaque pixels "
                               "are repainted, black or transparent ones kept");
            rc = 422;
        }
    }
done:
    md_image_free(&img);
    md_image_free(&mask);
    free(planes);
    if (rc)
        md_inputs_free(in);
    return rc;
}

void md_inputs_free(md_inputs *in)
{
    free(in->rgb);
    free(in->mask);
    in->rgb = in->mask = NULL;
}
