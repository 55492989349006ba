/* Mixture-of-Experts layers. A layer is a gate [E, D] and E experts of the
 * same shape. One code path serves both routing modes; only the selection
 * step differs (moe/router.h):
 *   - sequence top-k (SegMoE): experts chosen once per call from the gate
 *     logits summed over all rows, every row weighted by a softmax over the
 *     chosen experts' logits;
 *   - token top-k: each row picks its own top-k.
 * Per-generation controls (md_moe_options: sequence-split, capacity, skip,
 * pinned experts, replayed routes; docs/moe.md) change only the plan.
 * Rows are grouped by expert, each expert runs one GEMM over just its rows,
 * unchosen experts do no work, and the weighted outputs are scattered back:
 * on the host's plan (moe/router.c), or, on a backend with moe_routed
 * (Vulkan), all of it on the device with one grouped GEMM per expert
 * linear and no readback (runtime/backend.h). */
#ifndef MD_MOE_H
#define MD_MOE_H

#include "../config/config.h"
#include "../io/weights.h"
#include "moe_routes.h"
#include "router.h"

typedef enum md_moe_kind { MD_MOE_LINEAR, MD_MOE_GEGLU_FF } md_moe_kind;

typedef struct md_expert_cache md_expert_cache; /* expert_cache.h */

typedef struct md_moe_expert {
    /* MD_MOE_LINEAR: w1 [out,in], b1 (optional). MD_MOE_GEGLU_FF: w1/b1 = net.0.proj
     * [2*inner, dim], w2/b2 = net.2 [dim, inner]. */
    md_tensor *w1, *b1, *w2, *b2;
} md_moe_expert;

/* Host-side buffers one MoE layer reuses between calls of one generation
 * (logits, route plan, trace copies). Owned by the run state (for the U-Net:
 * md_unet_state, one per layer index), never by the loaded layer, so the
 * model stays read-only during forward. Starts empty; grown on demand, so
 * steady-state calls do not allocate. One thread at a time. */
typedef struct md_moe_scratch md_moe_scratch;
md_moe_scratch *md_moe_scratch_new(void); /* NULL on out-of-memory */
void md_moe_scratch_free(md_moe_scratch *s);

/* Per-generation routing choices. Zero-initialised = the layer's own
 * (what its config says), so a default generation is unchanged. */
typedef enum md_moe_routing_choice {
    MD_MOE_ROUTING_LAYER = 0,    /* the layer's own md_routing */
    MD_MOE_ROUTING_SEQUENCE = 1, /* MD_ROUTE_SEQUENCE_TOPK (SegMoE) */
    MD_MOE_ROUTING_TOKEN = 2,    /* MD_ROUTE_TOKEN_TOPK */
    MD_MOE_ROUTING_SEQUENCE_SPLIT = 3 /* sequence, each row group choosing its own */
} md_moe_routing_choice;

/* One call offered to a router override (docs/moe.md, "Router override")
 * after the gate logits are on the host and before the choice is made. */
typedef struct md_moe_override_call {
    const struct md_moe_layer *layer;
    int top_k;
    int64_t rows;
    int groups;                    /* equal row groups (CFG: [uncond; cond]) */
    int grid_h, grid_w;            /* each group's token grid (rows = groups * h * w); 0 when
                                      the rows are not a grid (text tokens) */
    const float *logits;           /* [rows, E] as the gate computed them */
    float *bias;                   /* [rows, E], zeroed; the choice and the weights are made
                                      from logits + bias */
    md_moe_routing_choice routing; /* in: what the call uses (never _LAYER); out: wanted */
} md_moe_override_call;
/* MD_OK goes on; any other status fails the call with err set. */
typedef md_status (*md_moe_override_fn)(void *user, md_moe_override_call *call, md_error *err);

/* Per generation, and per step where a schedule says so (the pipeline sets
 * them before each U-Net call). docs/moe.md, "Controls". */
typedef struct md_moe_options {
    int top_k;                     /* 0 = the layer's own; else 1..min(num_experts, 16) */
    md_moe_routing_choice routing; /* MD_MOE_ROUTING_LAYER = the layer's own */
    int groups;                    /* the call's rows are this many equal row groups (2 with
                                      classifier-free guidance: [uncond; cond]); 0 = 1 */
    float capacity;                /* token routing: rows per expert cap factor; 0 = none */
    float skip;                    /* drop threshold of renormalised weights; 0 = none */
    uint64_t pinned;               /* bit e: the call uses only pinned experts; 0 = all */
    const md_moe_routes *routes;   /* replay (bound to the model), NULL = none */
    int step;                      /* the denoising step, for replay */
    uint64_t expert_budget;        /* bytes of routed experts' weights resident at once
                                      (expert_cache.h); 0 = no bound */
    md_moe_override_fn override;   /* NULL = none; not called for replayed calls */
    void *override_user;
    int grid_h, grid_w;            /* the token grid of the call's row groups, set by the
                                      transformer block; 0 = not a grid */
} md_moe_options;

typedef struct md_moe_layer {
    char name[160];        /* diffusers module path, e.g. "...transformer_blocks.0.ff" */
    md_moe_kind kind;
    md_routing routing;
    int num_experts, top_k;
    int in_dim, out_dim;
    md_tensor *gate;       /* [E, in_dim], no bias */
    md_moe_expert *experts;
    md_moe_expert shared;  /* always-on expert (w1 == NULL when absent) */
    int inner_dim;         /* MD_MOE_GEGLU_FF: the GEGLU width */
    /* Backends with moe_routed (backend.h): the experts' weights stored as
     * stacks [E, ...], each expert's tensors being slices of them, so the
     * whole layer runs on the device. Set only when every stack was made;
     * otherwise the layer routes on the host. data NULL: no such weight. */
    int device_routed;
    md_tensor stack_w1, stack_b1, stack_w2, stack_b2;
    int index;             /* 0.. in the owning model's load order (md_unet numbers its
                              layers), selects the run state's scratch; 0 standalone */
    /* The owning model's expert cache (NULL standalone: experts used as
     * loaded) and this layer's first entry in it. The cache is the one
     * part of a loaded model that generations change; it locks itself. */
    md_expert_cache *cache;
    int cache_first;
} md_moe_layer;

/* What one MoE call did; handed to an observer when one is set. Host
 * memory, valid during the callback only. */
typedef struct md_moe_trace {
    const md_moe_layer *layer;
    md_routing routing;         /* what this call used, options applied (its top-k: plan->top_k) */
    int split;                  /* sequence routing chose per row group (plan->groups) */
    int64_t rows;
    const float *input;         /* [rows, in_dim] */
    const float *router_logits; /* [rows, E] */
    const md_route_plan *plan;
    const float *output;        /* [rows, out_dim] */
} md_moe_trace;
typedef void (*md_moe_observer)(void *user, const md_moe_trace *trace);

/* Routing counts of a scratch's layer since the last reset: the slots each
 * expert received (a row with top-k makes k). Counted where the choice is
 * made on the host (every CPU call; device-routed calls only when
 * observed, as their choices stay on the device otherwise), so counting
 * costs no readback. */
typedef struct md_moe_usage {
    const md_moe_layer *layer; /* NULL: no counted call */
    const int64_t *slots;      /* layer->num_experts entries */
    int64_t calls, rows;       /* rows: routed, summed over calls */
    int64_t choices;           /* router decisions: rows (token routing), calls (sequence) */
} md_moe_usage;
void md_moe_usage_of(const md_moe_scratch *s, md_moe_usage *out);
void md_moe_usage_reset(md_moe_scratch *s);

/* Loads `prefix`.gate.weight and `prefix`.experts.{e}.* (and, with
 * cfg->shared_expert, `prefix`.shared_expert.*). For MD_MOE_LINEAR an expert
 * is `experts.{e}.weight` [out_dim, in_dim] with an optional bias; for
 * MD_MOE_GEGLU_FF `experts.{e}.net.0.proj` and `experts.{e}.net.2`. */
md_status md_moe_layer_load(md_moe_layer *layer, md_moe_kind kind, const md_moe_config *cfg,
                            md_weights *w, const char *prefix, int in_dim, int out_dim,
                            md_backend *be, md_error *err);
/* With cfg->defer_experts the routed experts' weights are left unprepared
 * for an expert cache that loads them onto be on demand (be->weights_load);
 * the layer then routes on the host. */
void md_moe_layer_free(md_moe_layer *layer);

/* x [..., in_dim] viewed as rows; y [..., out_dim] (allocated by the
 * caller, not aliasing x), both from be's arena. The layer is only read:
 * every write goes to `scratch` (this layer's, of the calling generation)
 * and be's arena, so one layer serves any number of generations at once,
 * each with its own scratch and backend. opt NULL = the layer's own top-k
 * and routing; a top_k above num_experts or 16 is MD_ERR_INVALID naming
 * the layer, and so is a replayed route that does not fit the call.
 * opt->override, when set, is offered each call that is not replayed
 * before the choice is made (moe_override.c); such calls route on the host. */
md_status md_moe_forward(md_backend *be, const md_moe_layer *layer, md_moe_scratch *scratch,
                         const md_moe_options *opt, md_tensor *y, const md_tensor *x,
                         md_moe_observer observer, void *observer_user, md_error *err);

#endif
