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
    /* Per row, the chosen experts (rows * top_k), for statistics; -1 marks
     * a slot left empty (skip, or capacity's residual path). */
    int32_t *choice;
    float *slot_weight; /* rows * top_k: the weight of each choice (controlled plans) */
    /* What the last controlled plan left out, in expert-rows: dropped by
     * the skip threshold, and sent to the residual path by capacity. */
    int64_t skipped, dropped;
    int groups; /* row groups the plan was made for (1 or, with CFG, 2) */
} md_route_plan;

/* Controls of one call beyond top-k and mode (moe/router_controls.c).
 * All zero = md_router_plan exactly. docs/moe.md, "Controls". */
typedef struct md_route_controls {
    int groups;          /* the call's rows are this many equal, contiguous groups (CFG
                            halves: [uncond; cond]); 0 = 1 */
    int split;           /* sequence mode: each group chooses its own experts */
    float capacity;      /* token mode: at most ceil(capacity * rows * k / E) rows per expert */
    float skip;          /* drop a chosen expert (not the first) whose renormalised weight
                            (sequence: mean over the group's rows) is below this */
    uint64_t pinned;     /* bit e set: expert e may be chosen; 0 = every expert. Sequence
                            mode uses exactly these (top_k must be their count) */
    /* Replay: the choice given, not made. Token mode: [rows * top_k] experts
     * per row; sequence mode: [groups * top_k] experts per group. -1 = an
     * empty slot. Weights: a softmax over the given experts' logits. */
    const int8_t *forced;
} md_route_controls;

/* The row groups a call of `rows` rows is taken as: c->groups when they
 * divide the rows evenly, else one. */
static inline int md_route_groups(const md_route_controls *c, int64_t rows)
{
    return c->groups > 1 && rows % c->groups == 0 ? c->groups : 1;
}

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

/* md_router_plan with controls (NULL or all zero: the same plan, bit for
 * bit). Rows are handled in index order; each expert-row slot goes to the
 * plan's grouping with its weight. Sets skipped/dropped. 0 on success, -1
 * on out-of-memory (the plan is then empty: no expert runs). */
int md_router_plan_controlled(md_route_plan *plan, md_routing mode,
                              const md_route_controls *controls, const float *logits,
                              int64_t rows);
/* Whether controls change anything (else md_router_plan is what runs). */
int md_route_controls_active(const md_route_controls *controls);

#endif
