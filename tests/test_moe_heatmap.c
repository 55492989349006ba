/* The routing heatmap: the bare grid's size, the labelled map's margins
 * and its text (pixels that differ from the bare map's background), cells
 * drawn where the layout says, the guidance halves' panels, short layer
 * names, and a colour that grows brighter with the count. */
#include <string.h>

#include "host/moe_heatmap.h"
#include "host/text_draw.h"
#include "moe/router.h"
#include "test_support.h"

static double luminance(const uint8_t *p)
{
    return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
}

static const uint8_t *pixel(const md_heatmap *h, int x, int y)
{
    return h->rgb + ((size_t)y * (size_t)h->width + (size_t)x) * 3;
}

/* 2 layers x 4 experts over 3 calls; in call c expert e of layer 0 gets
 * e + c of every 10 rows' choices. */
static md_moe_stats *make_stats(void)
{
    md_moe_stats *s = md_moe_stats_new();
    static const char *const names[2] = {"down_blocks.1.attentions.0.transformer_blocks.0.ff",
                                         "up_blocks.0.attentions.1.transformer_blocks.0.ff"};
    for (int c = 0; c < 3; c++)
        for (int l = 0; l < 2; l++) {
            int32_t choice[10];
            float logits[10 * 4] = {0};
            for (int i = 0; i < 10; i++)
                choice[i] = i < 1 + c ? 0 : i < 3 + c ? 1 : i < 6 ? 2 : 3;
            md_moe_call call = {.layer = names[l], .num_experts = 4, .top_k = 1, .rows = 10,
                                .logits = logits, .choice = choice};
            md_moe_stats_record(s, &call);
        }
    return s;
}

static void test_geometry(const md_moe_stats *s)
{
    md_heatmap bare, lab;
    mdh_error err = {0};
    CHECK(md_moe_heatmap_render(s, 6, 0, &bare, &err) == MDIFF_OK, "%s", err.msg);
    CHECK(md_moe_heatmap_render(s, 6, 1, &lab, &err) == MDIFF_OK, "%s", err.msg);
    /* Bare: 3 calls x 6 px; 8 rows x 6 px + a 2 px gap. */
    CHECK(bare.width == 18 && bare.height == 50 && bare.grid_x == 0 && bare.grid_y == 0,
          "bare %dx%d", bare.width, bare.height);
    /* Labelled: names to the left, title above, step axis below, scale to the right. */
    CHECK(lab.grid_x > md_text_width("d1.a0.t0.ff") && lab.grid_y >= md_text_height(),
          "grid at %d,%d", lab.grid_x, lab.grid_y);
    CHECK(lab.width > lab.grid_x + 18 + 20 && lab.height > lab.grid_y + 6 * 8 + 4 + md_text_height(),
          "labelled %dx%d", lab.width, lab.height);
    /* Every cell is drawn as in the bare map, at the layout's place. */
    int same = 1;
    for (int l = 0; l < 2; l++)
        for (int e = 0; e < 4; e++)
            for (int c = 0; c < 3; c++) {
                const uint8_t *a = pixel(&bare, c * 6 + 3, md_moe_heatmap_row_y(s, &bare, l, e) + 3);
                const uint8_t *b = pixel(&lab, lab.grid_x + c * 6 + 3,
                                         md_moe_heatmap_row_y(s, &lab, l, e) + 3);
                same &= !memcmp(a, b, 3);
            }
    CHECK(same, "cells match the bare map");
    /* Text: dark pixels in the name column, the title and below the grid. */
    int name_ink = 0, axis_ink = 0, title_ink = 0;
    for (int y = lab.grid_y; y < lab.grid_y + 24; y++)
        for (int x = 0; x < lab.grid_x - 4; x++)
            name_ink += luminance(pixel(&lab, x, y)) < 100;
    for (int y = lab.grid_y + 50; y < lab.height; y++)
        for (int x = lab.grid_x; x < lab.grid_x + 18; x++)
            axis_ink += luminance(pixel(&lab, x, y)) < 100;
    for (int y = 0; y < lab.grid_y; y++)
        for (int x = 0; x < lab.width; x++)
            title_ink += luminance(pixel(&lab, x, y)) < 100;
    CHECK(name_ink > 20 && axis_ink > 5 && title_ink > 50, "ink: names %d, axis %d, title %d",
          name_ink, axis_ink, title_ink);
    /* The scale: bright at its top, dark at its bottom. */
    int bx = lab.grid_x + 18 + 10 + 5;
    CHECK(luminance(pixel(&lab, bx, lab.grid_y)) > 180 &&
              luminance(pixel(&lab, bx, lab.grid_y + 59)) < 40,
          "colour scale");
    md_moe_heatmap_free(&bare);
    md_moe_heatmap_free(&lab);
}

static void test_monotone(const md_moe_stats *s)
{
    md_heatmap h;
    mdh_error err = {0};
    CHECK(md_moe_heatmap_render(s, 4, 0, &h, &err) == MDIFF_OK, "%s", err.msg);
    /* Call 2 of layer 0: expert loads 3, 2, 1, 4 of 10 rows. */
    double lum[4];
    for (int e = 0; e < 4; e++)
        lum[e] = luminance(pixel(&h, 2 * 4 + 1, md_moe_heatmap_row_y(s, &h, 0, e) + 1));
    CHECK(lum[2] < lum[1] && lum[1] < lum[0] && lum[0] < lum[3], "cells %g %g %g %g", lum[0],
          lum[1], lum[2], lum[3]);
    md_moe_heatmap_free(&h);
    double prev = -1;
    int rising = 1;
    for (int i = 0; i <= 100; i++) {
        uint8_t rgb[3];
        md_moe_heatmap_colour(i / 100.0, rgb);
        rising &= luminance(rgb) > prev;
        prev = luminance(rgb);
    }
    CHECK(rising, "the colour scale brightens with the share");
}

/* With guidance the labelled map has three panels: all rows, the negative
 * half and the positive half, each cell coloured by its own half's share. */
static void test_halves(void)
{
    md_moe_stats *s = md_moe_stats_new();
    int32_t choice[10];
    float logits[10 * 4] = {0};
    for (int i = 0; i < 10; i++)
        choice[i] = i < 5 ? 0 : 1; /* negative half -> expert 0, positive -> expert 1 */
    md_moe_call call = {.layer = "mid_block.attentions.0.transformer_blocks.0.ff",
                        .num_experts = 4, .top_k = 1, .rows = 10, .logits = logits,
                        .choice = choice, .row_groups = 2};
    md_moe_stats_record(s, &call);
    md_heatmap one, three;
    mdh_error err = {0};
    CHECK(md_moe_heatmap_render(s, 6, 0, &one, &err) == MDIFF_OK && one.panels == 1,
          "bare: one panel");
    CHECK(md_moe_heatmap_render(s, 6, 1, &three, &err) == MDIFF_OK && three.panels == 3 &&
              three.width >= three.grid_x + 2 * three.panel_step + 6,
          "labelled: three panels, %dx%d", three.width, three.height);
    static const double want[3][2] = {{0.5, 0.5}, {1.0, 0.0}, {0.0, 1.0}};
    int right = 1;
    for (int p = 0; p < 3; p++)
        for (int e = 0; e < 2; e++) {
            uint8_t rgb[3];
            md_moe_heatmap_colour(want[p][e], rgb);
            right &= !memcmp(pixel(&three, three.grid_x + p * three.panel_step + 3,
                                   md_moe_heatmap_row_y(s, &three, 0, e) + 3),
                             rgb, 3);
        }
    CHECK(right, "each panel shows its own rows' shares");
    md_moe_heatmap_free(&one);
    md_moe_heatmap_free(&three);
    md_moe_stats_free(s);
}

static void test_short_names(void)
{
    char out[64];
    md_moe_short_name("down_blocks.1.attentions.0.transformer_blocks.0.ff", out, sizeof out);
    CHECK(!strcmp(out, "d1.a0.t0.ff"), "%s", out);
    md_moe_short_name("mid_block.attentions.0.transformer_blocks.1.attn2.to_k", out, sizeof out);
    CHECK(!strcmp(out, "m.a0.t1.attn2.to_k"), "%s", out);
    md_moe_short_name("up_blocks.3.attentions.2.transformer_blocks.9.ff", out, 6);
    CHECK(!strcmp(out, "u3.a2"), "cut: %s", out);
}

int main(void)
{
    md_moe_stats *s = make_stats();
    if (!CHECK(s != NULL && md_moe_stats_calls(s) == 3))
        return md_test_finish("test_moe_heatmap");
    test_geometry(s);
    test_monotone(s);
    test_halves();
    test_short_names();
    md_moe_stats_free(s);
    return md_test_finish("test_moe_heatmap");
}
