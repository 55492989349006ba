/* The routing-collapse detector (see routing_health.h). */
#include "routing_health.h"

void md_layer_health_of(const int64_t *slots, int num_experts, int64_t rows, int64_t choices,
                        md_layer_health *out)
{
    *out = (md_layer_health){.num_experts = num_experts};
    int64_t sum = 0;
    for (int e = 0; e < num_experts; e++)
        sum += slots[e];
    if (sum <= 0 || rows <= 0)
        return;
    out->top_k = (int)(sum / rows);
    out->min_share = 1.0;
    for (int e = 0; e < num_experts; e++) {
        double share = (double)slots[e] / (double)sum;
        out->used += share >= MD_HEALTH_MIN_SHARE;
        out->min_share = share < out->min_share ? share : out->min_share;
        out->max_share = share > out->max_share ? share : out->max_share;
    }
    out->judged = choices * out->top_k >= (int64_t)MD_HEALTH_MIN_PICKS * num_experts;
    /* With top-k the router picks k experts per choice; a layer that used
     * only about that many (or at most half) over a whole run sends every
     * input to the same few experts. With num_experts == top_k there is no
     * choice to collapse. */
    int few = out->top_k > num_experts / 2 ? out->top_k : num_experts / 2;
    out->collapsed = out->judged && num_experts > out->top_k && out->used <= few;
}

void md_routing_health_add(md_routing_health *h, const md_layer_health *l)
{
    if (l->used == 0)
        return;
    if (h->layers == 0) {
        h->min_share = l->min_share;
        h->max_share = l->max_share;
    }
    h->min_share = l->min_share < h->min_share ? l->min_share : h->min_share;
    h->max_share = l->max_share > h->max_share ? l->max_share : h->max_share;
    h->layers++;
    h->judged_layers += l->judged;
    h->collapsed_layers += l->collapsed;
    h->experts_used += l->used;
    h->experts_total += l->num_experts;
    h->collapse = h->collapsed_layers > 0 &&
                  h->collapsed_layers >= MD_HEALTH_LAYER_FRACTION * h->judged_layers;
}
