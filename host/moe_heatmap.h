/* The routing heatmap of md_moe_stats: one column per call (denoising
 * step), one row per (layer, expert) in layer order; a cell's colour is
 * the share of the call's rows routed to the expert, dark blue 0 -> teal
 * -> yellow 1 (brighter = more, for any count). Labelled, it adds a title,
 * each layer's short name and its experts' indices (e0, e1, ...), the step
 * axis and a colour scale with its numbers; with guidance, beside the panel
 * of all rows, one for the negative (unconditional) and one for the
 * positive (conditional) half. */
#ifndef MD_MOE_HEATMAP_H
#define MD_MOE_HEATMAP_H

#include <stdint.h>

#include "moe_stats.h"

typedef struct md_heatmap {
    uint8_t *rgb;          /* [height][width][3] */
    int width, height;
    int grid_x, grid_y;    /* top-left pixel of the first cell */
    int cell;              /* cells are cell x cell pixels */
    int layer_gap;         /* pixels between two layers' rows */
    int panels;            /* 1, or 3 (all rows, negative half, positive half) */
    int panel_step;        /* pixels from one panel's left edge to the next's */
} md_heatmap;

/* cell <= 0: 8 unlabelled, 10 labelled. labels 0: the bare grid (gray
 * between layers); 1: labelled on white. */
int md_moe_heatmap_render(const md_moe_stats *s, int cell, int labels, md_heatmap *out,
                          mdh_error *err);
void md_moe_heatmap_free(md_heatmap *h);
/* Top pixel row of (layer, expert)'s cells in h. */
int md_moe_heatmap_row_y(const md_moe_stats *s, const md_heatmap *h, int layer, int expert);
/* The colour of a share in [0, 1]. */
void md_moe_heatmap_colour(double share, uint8_t rgb[3]);
/* "down_blocks.1.attentions.0.transformer_blocks.0.ff" -> "d1.a0.t0.ff". */
void md_moe_short_name(const char *layer, char *out, size_t cap);

/* The labelled heatmap as a PNG (cell <= 0: the default). */
int md_moe_stats_write_heatmap(const md_moe_stats *s, const char *path, int cell,
                               mdh_error *err);

#endif
