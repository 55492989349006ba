/* Small labels on 8-bit RGB images (heatmaps): stb_easy_font's bitmap
 * font (Debian libstb-dev), whose glyphs come as axis-aligned quads,
 * filled here pixel by pixel. Glyphs are about 6 px wide and 7 px tall
 * above the baseline (9 px with descenders). */
#ifndef MD_TEXT_DRAW_H
#define MD_TEXT_DRAW_H

#include <stdint.h>

/* Pixels `text` takes across. */
int md_text_width(const char *text);
/* Line height in pixels. */
int md_text_height(void);
/* Draws `text` with its top-left corner at (x, y) on rgb [h][w][3],
 * clipped to the image. */
void md_text_draw(uint8_t *rgb, int w, int h, int x, int y, const char *text,
                  const uint8_t color[3]);

#endif
