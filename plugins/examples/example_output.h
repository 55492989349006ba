/* The example hosts' output: the image a generate call returned, as a
 * binary PPM (P6), which needs no image library. */
#ifndef MOEDIFFUSE_EXAMPLE_OUTPUT_H
#define MOEDIFFUSE_EXAMPLE_OUTPUT_H

#include <stdio.h>

#include "moediffuse.h"

/* img: RGB (channels 3). 0 on success, -1 when the file cannot be written. */
static inline int example_write_ppm(const char *path, const mdiff_image *img)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fprintf(f, "P6\n%d %d\n255\n", img->width, img->height);
    for (int y = 0; y < img->height; y++)
        fwrite(img->data + (size_t)y * img->stride, 3, (size_t)img->width, f);
    int failed = ferror(f);
    return fclose(f) != 0 || failed ? -1 : 0;
}

/* After generate returned rc: on success writes the image to path and frees
 * it, else prints the failure. Returns rc, or MDIFF_ERR_IO when the file
 * could not be written. */
static inline int example_deliver(const mdiff_api *api, int rc, mdiff_image *img,
                                  const char *path, const char *msg)
{
    if (rc != MDIFF_OK) {
        fprintf(stderr, "%s: %s\n", api->status_name(rc), msg);
        return rc;
    }
    if (example_write_ppm(path, img) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        rc = MDIFF_ERR_IO;
    }
    api->image_free(img);
    return rc;
}

#endif
