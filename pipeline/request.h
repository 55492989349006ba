/* The generation request (mdiff_gen_params of include/moediffuse.h): its
 * defaults and its one validation. The ABI's gen_params_init,
 * resolve_params and generate, and md_generate itself, all come here. */
#ifndef MD_PIPELINE_REQUEST_H
#define MD_PIPELINE_REQUEST_H

#include <stddef.h>

#include "../include/moediffuse.h"
#include "../models/model.h"

/* The defaults of a host struct of host_size bytes (guidance: the model's
 * own for a 1.3 struct, 7.5 for an older one). */
void md_request_defaults(mdiff_gen_params *p, size_t host_size);

/* What a request's zero fields default to besides the model's own: the
 * context's settings (ABI context params). */
typedef struct md_request_context {
    const md_model *model;  /* NULL: only what needs no model is checked and resolved */
    int top_k;              /* moe_top_k 0 takes this, else the model's */
    uint64_t expert_budget; /* max_expert_memory 0 takes this (0: no bound) */
} md_request_context;

/* Checks `in` and resolves every default into `out` (out may be in):
 * with a model, the size (native, or the init image's), the model's
 * guidance, the sampler name, and the MoE settings in effect (moe_top_k
 * and max_expert_memory from the context, else the model's; 0 on a dense
 * model), the expert budget checked against the model's expert cache.
 * Pointers alias the input's. Image structs are the caller's to check. */
md_status md_request_resolve(const md_request_context *rc, const mdiff_gen_params *in,
                             mdiff_gen_params *out, md_error *err);

#endif
