/* Expert selection: turns gate logits into a routing plan (which rows go to
 * which expert, with which weight). Host code, shared by every backend. */
#ifndef MD_ROUTER_H
#define MD_ROUTER_H

#include <stdint.h>

#include "../config/config.h"

typedef struct md_route_plan {
    int num_experts, top_k;
    int max_k;        /* capacity of the per-row arrays in experts per row */
    int64_t rows;
    int64_t max_rows; /* capacity of the per-row arrays */
    /* Sequence mode: the k experts chosen for the whole call, in descending
     * order of summed logit. Token mode: unused (-1). */
    int selected[16];
    /* For expert e: count[e] rows, listed in rows_of[offset[e] ...] with
     * weight_of[offset[e] ...]; offset has num_experts+1 entries. */
    int64_t *offset;
    int32_t *rows_of;
    float *weight_of;
    /* Per row, the chosen experts (rows * top_k), for statistics. */
    int32_t *choice;
} md_route_plan;

/* NULL on out-of-memory or when top_k is not in [1, min(num_experts, 16)]. */
md_route_plan *md_route_plan_new(int num_experts, int top_k, int64_t max_rows);
void md_route_plan_free(md_route_plan *p);
/* Makes room for `rows` rows (keeps the plan when it is large enough, so
 * steady-state calls do not allocate). 0 on success, -1 on out-of-memory. */
int md_route_plan_reserve(md_route_plan *p, int64_t rows);
/* Sets the k that the next md_router_plan() chooses, growing the per-row
 * arrays when k exceeds what they were made for (so k can change per call).
 * 0 on success; -1 on out-of-memory or k not in [1, min(num_experts, 16)],
 * the plan then unchanged. */
int md_route_plan_set_k(md_route_plan *p, int k);

/* logits [rows, E] (host). Fills the plan; ties break to the lower index.
 * rows must not exceed plan->max_rows. Per-row weights are a softmax over
 * the chosen experts' logits only. */
void md_router_plan(md_route_plan *plan, md_routing mode, const float *logits, int64_t rows);

#endif
