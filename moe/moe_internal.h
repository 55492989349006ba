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
    /* Routing health (md_moe_usage): slots per expert since the last reset,
     * counted wherever a host plan exists. */
    const md_moe_layer *usage_layer;
    int64_t *usage;
    int usage_n;
    int64_t usage_calls, usage_rows, usage_choices;
    uint64_t last_experts; /* bit e: the previous host-routed call used expert e */
};

#endif
