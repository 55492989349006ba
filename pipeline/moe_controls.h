/* The request's MoE controls as one generation runs them (docs/moe.md,
 * "Controls"): the per-generation options, the expert schedule and a
 * replayed routes file, turned into the md_moe_options of each step. */
#ifndef MD_PIPELINE_MOE_CONTROLS_H
#define MD_PIPELINE_MOE_CONTROLS_H

#include "../include/moediffuse.h"
#include "../models/model.h"
#include "../moe/moe_schedule.h"

typedef struct md_moe_controls {
    md_moe_options base;      /* the request's, before any schedule */
    md_moe_schedule schedule; /* count 0 = none */
    md_moe_routes *routes;    /* bound to the model; NULL = none */
} md_moe_controls;

/* What needs no model: capacity, skip, and the schedule's and routes'
 * syntax. */
md_status md_moe_controls_check_alone(const mdiff_gen_params *p, int parse_texts, md_error *err);
/* Against the model, on a resolved request (routing, guidance, steps
 * known): capacity only with token routing, schedule k and experts in
 * range, routes matching layers, steps and guidance. */
md_status md_moe_controls_check_model(const md_model *m, const mdiff_gen_params *p,
                                      md_error *err);
/* Opens the controls of a resolved request on a MoE model. */
md_status md_moe_controls_open(md_moe_controls *c, const md_model *m, const mdiff_gen_params *p,
                               int groups, md_error *err);
/* The options of denoising step `step` (absolute) of `steps`. */
void md_moe_controls_step(const md_moe_controls *c, int step, int steps, md_moe_options *out);
void md_moe_controls_close(md_moe_controls *c);
/* Binds parsed routes to the model's MoE layers (names and expert counts). */
md_status md_moe_routes_bind_model(md_moe_routes *r, const md_model *m, md_error *err);

/* The first denoising step a request runs (img2img with strength < 1
 * starts part-way down the schedule). */
int md_request_first_step(const mdiff_gen_params *p);

#endif
