/* Labels through stb_easy_font (see text_draw.h). */
#include "text_draw.h"

#include <math.h>
#include <string.h>

#include <stb_easy_font.h>

int md_text_width(const char *text)
{
    return stb_easy_font_width((char *)text);
}

int md_text_height(void)
{
    return 10; /* 9 px of glyph and one of spacing; stb's own 12 leaves a gap */
}

/* A vertex as stb_easy_font writes it: x, y, z and an RGBA colour. */
typedef struct easy_vertex {
    float x, y, z;
    uint8_t rgba[4];
} easy_vertex;

void md_text_draw(uint8_t *rgb, int w, int h, int x, int y, const char *text,
                  const uint8_t color[3])
{
    easy_vertex quads[4 * 512]; /* ~ 40 characters' worth; longer labels are cut */
    int n = stb_easy_font_print((float)x, (float)y, (char *)text, NULL, quads, sizeof quads);
    for (int q = 0; q < n; q++) {
        const easy_vertex *v = &quads[4 * q]; /* corners: v[0] top-left, v[2] bottom-right */
        int x0 = (int)lroundf(v[0].x), y0 = (int)lroundf(v[0].y);
        int x1 = (int)lroundf(v[2].x), y1 = (int)lroundf(v[2].y);
        for (int py = y0 < 0 ? 0 : y0; py < y1 && py < h; py++)
            for (int px = x0 < 0 ? 0 : x0; px < x1 && px < w; px++)
                memcpy(rgb + ((size_t)py * (size_t)w + (size_t)px) * 3, color, 3);
    }
}
