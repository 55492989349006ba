/* Checks a PNG written by a host (GIMP, Krita):
 *   png-check FILE W H
 *     exit 0 when FILE is a W x H PNG whose colour values are not constant;
 *   png-check --same-outside A B X Y W H
 *     exit 0 when A and B (same size) have equal RGB outside the rectangle
 *     and differ inside it.
 * Prints what it found either way. */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rgba {
    int w, h;
    unsigned char *px; /* RGBA */
} rgba;

static int load(const char *path, rgba *img)
{
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&pi, path)) {
        printf("%s: not a readable PNG (%s)\n", path, pi.message);
        return 0;
    }
    pi.format = PNG_FORMAT_RGBA;
    img->w = (int)pi.width;
    img->h = (int)pi.height;
    img->px = malloc(PNG_IMAGE_SIZE(pi));
    if (!img->px || !png_image_finish_read(&pi, NULL, img->px, 0, NULL)) {
        printf("%s: cannot decode (%s)\n", path, pi.message);
        free(img->px);
        return 0;
    }
    return 1;
}

static int check_size(const char *path, int w, int h)
{
    rgba img;
    if (!load(path, &img))
        return 1;
    int lo = 255, hi = 0;
    for (size_t i = 0; i < (size_t)img.w * img.h * 4; i++)
        if (i % 4 != 3) {
            lo = img.px[i] < lo ? img.px[i] : lo;
            hi = img.px[i] > hi ? img.px[i] : hi;
        }
    printf("%s: %dx%d, colour values %d..%d\n", path, img.w, img.h, lo, hi);
    free(img.px);
    return img.w == w && img.h == h && hi - lo > 8 ? 0 : 1;
}

static int check_outside(const char *a_path, const char *b_path, int x0, int y0, int w, int h)
{
    rgba a, b;
    if (!load(a_path, &a))
        return 1;
    if (!load(b_path, &b)) {
        free(a.px);
        return 1;
    }
    long outside_diff = 0, inside_diff = 0;
    if (a.w == b.w && a.h == b.h)
        for (int y = 0; y < a.h; y++)
            for (int x = 0; x < a.w; x++) {
                int in = x >= x0 && x < x0 + w && y >= y0 && y < y0 + h;
                size_t i = ((size_t)y * a.w + x) * 4;
                int diff = memcmp(a.px + i, b.px + i, 3) != 0;
                outside_diff += !in && diff;
                inside_diff += in && diff;
            }
    printf("%s vs %s: %ld pixels differ outside, %ld inside the %dx%d+%d+%d rectangle\n", a_path,
           b_path, outside_diff, inside_diff, w, h, x0, y0);
    int ok = a.w == b.w && a.h == b.h && outside_diff == 0 && inside_diff > 0;
    free(a.px);
    free(b.px);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 4)
        return check_size(argv[1], atoi(argv[2]), atoi(argv[3]));
    if (argc == 8 && !strcmp(argv[1], "--same-outside"))
        return check_outside(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), atoi(argv[6]),
                             atoi(argv[7]));
    fprintf(stderr, "usage: png-check FILE W H | png-check --same-outside A B X Y W H\n");
    return 2;
}
