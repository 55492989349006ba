/* Routing collapse: whether the experts of a model's MoE layers were used
 * over one whole generation, from the slots each expert received (a row
 * routed to top-k experts makes k slots). A pure function of the counts;
 * the thresholds and the measurements behind them are in
 * docs/moe-health.md. */
#ifndef MD_ROUTING_HEALTH_H
#define MD_ROUTING_HEALTH_H

#include <stdint.h>

/* An expert with a smaller share of its layer's slots over the run counts
 * as unused. */
#define MD_HEALTH_MIN_SHARE 0.005
/* A layer is judged only when its router chose often enough for every
 * expert to have been picked this many times (choices x top_k >=
 * MD_HEALTH_MIN_PICKS x num_experts): a sequence-routed layer chooses once
 * per call, so a short run cannot show whether its choice varies. */
#define MD_HEALTH_MIN_PICKS 4
/* Routing has collapsed when at least this fraction of the judged MoE
 * layers collapsed. */
#define MD_HEALTH_LAYER_FRACTION 0.75

typedef struct md_layer_health {
    int num_experts, top_k;
    int used;             /* experts with a share >= MD_HEALTH_MIN_SHARE */
    double min_share, max_share;
    int judged;           /* enough choices to judge (MD_HEALTH_MIN_PICKS) */
    int collapsed;        /* judged, num_experts > top_k and
                             used <= max(top_k, num_experts / 2) */
} md_layer_health;

/* slots[num_experts] of one layer over a run, with `rows` rows routed
 * (top_k = slots / rows) in `choices` router decisions (rows for token
 * routing, calls for sequence routing). A layer that routed nothing has
 * used 0. */
void md_layer_health_of(const int64_t *slots, int num_experts, int64_t rows, int64_t choices,
                        md_layer_health *out);

typedef struct md_routing_health {
    int layers;           /* layers that routed rows */
    int judged_layers, collapsed_layers;
    int experts_used, experts_total; /* over the layers */
    double min_share, max_share;     /* over every expert of every layer */
    int collapse;
} md_routing_health;

/* Zero `h` first; adds one layer (one with used 0 is ignored) and updates
 * the verdict. */
void md_routing_health_add(md_routing_health *h, const md_layer_health *layer);

#endif
