/* Test helper for the shell tests (no Python on a bare CI machine):
 *   md-test-image pixels FILE [X0 Y0 X1 Y1]  decoded RGB of a region, raw, on stdout
 *   md-test-image size FILE                  WxH
 *   md-test-image make FILE W H PATTERN [KEY TEXT]
 *                                            gradient | left-white (mask, white x < W/2) |
 *                                            black (a mask that selects nothing),
 *                                            with a PNG text chunk KEY = TEXT
 *   md-test-image text FILE KEY              a PNG text chunk
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/image_read.h"
#include "host/image_write.h"

static int usage(void)
{
    fprintf(stderr, "usage: md-test-image pixels FILE [X0 Y0 X1 Y1] | size FILE | "
                    "make FILE W H gradient|left-white|black | text FILE KEY\n");
    return 2;
}

static int make(const char *path, int w, int h, const char *pattern, const char *key,
                const char *text)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    if (!rgb)
        return 1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            if (!strcmp(pattern, "left-white")) {
                p[0] = p[1] = p[2] = x < w / 2 ? 255 : 0;
            } else if (!strcmp(pattern, "black")) {
                p[0] = p[1] = p[2] = 0;
            } else {
                p[0] = (uint8_t)(x * 255 / (w > 1 ? w - 1 : 1));
                p[1] = (uint8_t)(y * 255 / (h > 1 ? h - 1 : 1));
                p[2] = (uint8_t)((x + y) * 13);
            }
        }
    mdh_error err = {0};
    md_text_chunk chunk = {key, text};
    int st = md_image_write(path, rgb, w, h, &chunk, key ? 1 : 0, &err);
    free(rgb);
    if (st != MDIFF_OK)
        fprintf(stderr, "md-test-image: %s\n", err.msg);
    return st != MDIFF_OK;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && !strcmp(argv[1], "make"))
        return make(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5], argc >= 8 ? argv[6] : NULL,
                    argc >= 8 ? argv[7] : NULL);
    if (argc == 4 && !strcmp(argv[1], "text")) {
        char *text = NULL;
        mdh_error err = {0};
        if (md_png_read_text(argv[2], argv[3], &text, &err) != MDIFF_OK) {
            fprintf(stderr, "md-test-image: %s\n", err.msg);
            return 1;
        }
        printf("%s\n", text);
        free(text);
        return 0;
    }
    if (argc < 3)
        return usage();
    md_image img;
    mdh_error err = {0};
    if (md_image_read(argv[2], &img, &err) != MDIFF_OK) {
        fprintf(stderr, "md-test-image: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    if (!strcmp(argv[1], "size")) {
        printf("%dx%d\n", img.width, img.height);
    } else if (!strcmp(argv[1], "pixels")) {
        int x0 = 0, y0 = 0, x1 = img.width, y1 = img.height;
        if (argc == 7) {
            x0 = atoi(argv[3]);
            y0 = atoi(argv[4]);
            x1 = atoi(argv[5]);
            y1 = atoi(argv[6]);
        }
        if (x0 < 0 || y0 < 0 || x1 > img.width || y1 > img.height || x0 >= x1 || y0 >= y1) {
            fprintf(stderr, "md-test-image: region outside the %dx%d image\n", img.width,
                    img.height);
            rc = 1;
        }
        for (int y = y0; !rc && y < y1; y++)
            for (int x = x0; x < x1; x++)
                fwrite(img.rgba + ((size_t)y * img.width + x) * 4, 1, 3, stdout);
    } else {
        rc = usage();
    }
    md_image_free(&img);
    return rc;
}
