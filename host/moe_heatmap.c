/* The routing heatmap (see moe_heatmap.h). */
#include "moe_heatmap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_png.h"
#include "text_draw.h"

static const uint8_t INK[3] = {30, 30, 30};

void md_moe_heatmap_colour(double v, uint8_t rgb[3])
{
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    /* Each stop is brighter in luminance than the one before, so the
     * colour order follows the count order. */
    static const double stops[3][3] = {{20, 20, 90}, {30, 150, 140}, {250, 230, 40}};
    int i = v < 0.5 ? 0 : 1;
    double t = v < 0.5 ? v * 2 : (v - 0.5) * 2;
    for (int c = 0; c < 3; c++)
        rgb[c] = (uint8_t)lround(stops[i][c] + (stops[i + 1][c] - stops[i][c]) * t);
}

void md_moe_short_name(const char *layer, char *out, size_t cap)
{
    static const char *const longs[][2] = {{"down_blocks", "d"}, {"up_blocks", "u"},
                                           {"mid_block", "m"},   {"attentions", "a"},
                                           {"transformer_blocks", "t"}};
    size_t n = 0;
    out[0] = '\0';
    const char *p = layer;
    while (*p && n + 1 < cap) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        const char *part = p, *sep = dot ? "." : "";
        size_t plen = len;
        for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++)
            if (strlen(longs[i][0]) == len && !strncmp(p, longs[i][0], len)) {
                part = longs[i][1];
                plen = strlen(part);
                /* the index that follows joins its abbreviation: "d1" */
                if (dot && dot[1] >= '0' && dot[1] <= '9')
                    sep = "";
            }
        n += (size_t)snprintf(out + n, cap - n, "%.*s%s", (int)plen, part, sep);
        if (n >= cap)
            n = cap - 1;
        p = dot ? dot + 1 : p + len;
    }
}

typedef struct layout {
    int rows_h;   /* the grid's height */
    int label_w;  /* layer-name column */
    int expert_w; /* expert-index column */
    int bar_h;
} layout;

static void fill(md_heatmap *h, int x, int y, int w, int hh, const uint8_t rgb[3])
{
    for (int py = y; py < y + hh && py < h->height; py++)
        for (int px = x; px < x + w && px < h->width; px++)
            memcpy(h->rgb + ((size_t)py * (size_t)h->width + (size_t)px) * 3, rgb, 3);
}

int md_moe_heatmap_row_y(const md_moe_stats *s, const md_heatmap *h, int layer, int expert)
{
    int y = h->grid_y, E = 0;
    for (int l = 0; l < layer; l++) {
        md_moe_stats_layer(s, l, &E);
        y += E * h->cell + h->layer_gap;
    }
    return y + expert * h->cell;
}

/* Panel 0: every row; 1: the negative (unconditional) half; 2: the positive. */
static double share(const md_moe_stats_cell *st, int panel, int e)
{
    if (panel == 0)
        return (double)st->load[e] / (double)st->rows;
    const int64_t *half = st->load_half[panel - 1];
    return half ? (double)half[e] / ((double)st->rows / 2.0) : 0.0;
}

static void draw_cells(const md_moe_stats *s, md_heatmap *h, int panel)
{
    const int calls = md_moe_stats_calls(s);
    const int x0 = h->grid_x + panel * h->panel_step;
    for (int l = 0; l < md_moe_stats_layers(s); l++) {
        int E = 0;
        md_moe_stats_layer(s, l, &E);
        for (int c = 0; c < calls; c++) {
            md_moe_stats_cell st;
            int have = md_moe_stats_get(s, c, l, &st);
            for (int e = 0; e < E; e++) {
                uint8_t rgb[3] = {0, 0, 0};
                if (have && st.rows > 0)
                    md_moe_heatmap_colour(share(&st, panel, e), rgb);
                fill(h, x0 + c * h->cell, md_moe_heatmap_row_y(s, h, l, e), h->cell, h->cell,
                     rgb);
            }
        }
    }
}

/* Step numbers (1-based) every 1, 2, 5, 10, 20, 50 ... steps, as dense as
 * their digits allow; then the axis name. */
static void draw_step_axis(const md_moe_stats *s, md_heatmap *h, int x0, int y)
{
    const int calls = md_moe_stats_calls(s);
    static const int nice[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};
    char num[16];
    snprintf(num, sizeof num, "%d", calls);
    int every = 1;
    for (size_t i = 0; i < sizeof nice / sizeof nice[0] && nice[i] * h->cell < md_text_width(num) + 4; i++)
        every = i + 1 < sizeof nice / sizeof nice[0] ? nice[i + 1] : nice[i];
    for (int c = 0; c < calls; c++) {
        int step = c + 1;
        /* step 1 too, where it does not crowd the next number */
        if (step % every != 0 && !(step == 1 && every >= 4))
            continue;
        int cx = x0 + c * h->cell + h->cell / 2;
        fill(h, cx, y, 1, 3, INK);
        snprintf(num, sizeof num, "%d", step);
        md_text_draw(h->rgb, h->width, h->height, cx - md_text_width(num) / 2, y + 4, num, INK);
    }
    const char *name = "step";
    int grid_w = calls * h->cell;
    md_text_draw(h->rgb, h->width, h->height, x0 + grid_w / 2 - md_text_width(name) / 2,
                 y + 4 + md_text_height(), name, INK);
}

/* A vertical bar, 0 at the bottom and 1 at the top, with its numbers. */
static void draw_scale(md_heatmap *h, int x, int y, int bar_h)
{
    for (int py = 0; py < bar_h; py++) {
        uint8_t rgb[3];
        md_moe_heatmap_colour(1.0 - (double)py / (double)(bar_h - 1), rgb);
        fill(h, x, y + py, 10, 1, rgb);
    }
    static const char *const ticks[] = {"0", "0.25", "0.5", "0.75", "1"};
    for (int i = 0; i < 5; i++) {
        int ty = y + (int)lround((1.0 - i / 4.0) * (bar_h - 1));
        fill(h, x + 10, ty, 3, 1, INK);
        md_text_draw(h->rgb, h->width, h->height, x + 15, ty - 3, ticks[i], INK);
    }
}

static void draw_labels(const md_moe_stats *s, md_heatmap *h, const layout *lo, int pad)
{
    md_text_draw(h->rgb, h->width, h->height, pad, pad,
                 "MoE routing: share of each step's rows per expert", INK);
    for (int l = 0; l < md_moe_stats_layers(s); l++) {
        int E = 0;
        char name[160], idx[16];
        md_moe_short_name(md_moe_stats_layer(s, l, &E), name, sizeof name);
        int top = md_moe_heatmap_row_y(s, h, l, 0);
        md_text_draw(h->rgb, h->width, h->height, pad, top + (E * h->cell - 7) / 2, name, INK);
        for (int e = 0; e < E; e++) {
            snprintf(idx, sizeof idx, "e%d", e);
            md_text_draw(h->rgb, h->width, h->height, h->grid_x - 3 - md_text_width(idx),
                         md_moe_heatmap_row_y(s, h, l, e) + (h->cell - 7) / 2, idx, INK);
        }
    }
    static const char *const titles[3] = {"all rows", "negative (uncond)", "positive (cond)"};
    for (int p = 0; p < h->panels; p++) {
        int x0 = h->grid_x + p * h->panel_step;
        if (h->panels > 1)
            md_text_draw(h->rgb, h->width, h->height, x0, h->grid_y - md_text_height() - 1,
                         titles[p], INK);
        draw_step_axis(s, h, x0, h->grid_y + lo->rows_h + 2);
    }
    int right = h->grid_x + (h->panels - 1) * h->panel_step + md_moe_stats_calls(s) * h->cell;
    draw_scale(h, right + 10, h->grid_y, lo->bar_h);
}

int md_moe_heatmap_render(const md_moe_stats *s, int cell, int labels, md_heatmap *out,
                          mdh_error *err)
{
    memset(out, 0, sizeof *out);
    if (md_moe_stats_failed(s))
        return mdh_fail(err, MDIFF_ERR_NOMEM, "MoE statistics: out of memory while recording");
    out->cell = cell > 0 ? cell : labels ? 10 : 8;
    out->layer_gap = labels ? 4 : 2;
    const int calls = md_moe_stats_calls(s), nl = md_moe_stats_layers(s);
    layout lo = {0};
    for (int l = 0; l < nl; l++) {
        int E = 0;
        char name[160], idx[16];
        md_moe_short_name(md_moe_stats_layer(s, l, &E), name, sizeof name);
        lo.rows_h += E * out->cell + (l ? out->layer_gap : 0);
        int w = md_text_width(name);
        lo.label_w = w > lo.label_w ? w : lo.label_w;
        snprintf(idx, sizeof idx, "e%d", E - 1);
        w = md_text_width(idx);
        lo.expert_w = w > lo.expert_w ? w : lo.expert_w;
    }
    if (calls == 0 || lo.rows_h == 0)
        return mdh_fail(err, MDIFF_ERR_INVALID, "no MoE layer was run: nothing to draw");
    const int pad = 4, grid_w = calls * out->cell;
    lo.bar_h = lo.rows_h > 60 ? lo.rows_h : 60;
    out->panels = labels && md_moe_stats_halves(s) ? 3 : 1;
    /* a panel is at least as wide as its title */
    int panel_w = grid_w > md_text_width("negative (uncond)") ? grid_w
                                                              : md_text_width("negative (uncond)");
    out->panel_step = panel_w + 12;
    if (labels) {
        out->grid_x = pad + lo.label_w + 6 + lo.expert_w + 3;
        out->grid_y = pad + md_text_height() + 4 + (out->panels > 1 ? md_text_height() + 2 : 0);
        int right = 10 + 10 + 5 + md_text_width("0.75") + pad;
        int title_w = pad + md_text_width("MoE routing: share of each step's rows per expert") + pad;
        out->width = out->grid_x + (out->panels - 1) * out->panel_step + grid_w + right;
        out->width = out->width > title_w ? out->width : title_w;
        int body = lo.rows_h > lo.bar_h ? lo.rows_h : lo.bar_h;
        int axis = 2 + 4 + 2 * md_text_height();
        out->height = out->grid_y + (body > lo.rows_h + axis ? body : lo.rows_h + axis) + pad;
    } else {
        out->width = grid_w;
        out->height = lo.rows_h;
    }
    size_t bytes = (size_t)out->width * (size_t)out->height * 3;
    out->rgb = malloc(bytes);
    if (!out->rgb)
        return mdh_fail(err, MDIFF_ERR_NOMEM, "heatmap: out of memory");
    memset(out->rgb, labels ? 255 : 128, bytes);
    for (int p = 0; p < out->panels; p++)
        draw_cells(s, out, p);
    if (labels)
        draw_labels(s, out, &lo, pad);
    return MDIFF_OK;
}

void md_moe_heatmap_free(md_heatmap *h)
{
    free(h->rgb);
    h->rgb = NULL;
}

int md_moe_stats_write_heatmap(const md_moe_stats *s, const char *path, int cell,
                               mdh_error *err)
{
    md_heatmap h;
    int st = md_moe_heatmap_render(s, cell, 1, &h, err);
    if (st != MDIFF_OK)
        return mdh_fail_context(err, "%s: ", path);
    st = md_png_write(path, h.rgb, h.width, h.height, NULL, 0, err);
    md_moe_heatmap_free(&h);
    return st;
}
