/* What the MoE layer's files share (not part of moe.h): the host-side
 * buffers a layer reuses between the calls of one generation. */
#ifndef MD_MOE_INTERNAL_H
#define MD_MOE_INTERNAL_H

#include "moe.h"

struct md_moe_scratch {
    md_route_plan *plan; /* made by the first call (it knows num_experts) */
    float *logits;
    size_t logits_cap; /* floats */
    float *in_host, *out_host, *choice_host;
    size_t in_cap, out_cap, choice_cap;
    float *bias; /* the router override's [rows, E] (moe_override.c) */
    size_t bias_cap;
    /* Routing health (md_moe_usage): slots per expert since the last reset,
     * counted wherever a host plan exists. */
    const md_moe_layer *usage_layer;
    int64_t *usage;
    int usage_n;
    int64_t usage_calls, usage_rows, usage_choices;
    uint64_t last_experts; /* bit e: the previous host-routed call used expert e */
};

/* Grows a host buffer to hold n floats; keeps it when large enough. 0 on
 * success, -1 on out-of-memory (the buffer then unchanged). */
int md_moe_grow(float **buf, size_t *cap, size_t n);

/* Offers one call to opt->override (set): its bias is checked and added to
 * logits [rows, E] in place, and *routing becomes the routing it wants. A
 * non-finite bias, or a routing that is not SEQUENCE, SEQUENCE_SPLIT or
 * TOKEN, is MD_ERR_INVALID naming the layer. */
md_status md_moe_override_apply(md_moe_scratch *sc, const md_moe_layer *l,
                                const md_moe_options *opt, int k, int64_t rows, int groups,
                                float *logits, md_moe_routing_choice *routing, md_error *err);

#endif
