/* Routes files (format "moe-diffuse-routes", docs/moe.md "Route replay"):
 * every MoE layer's choice per denoising step, written by a host that
 * recorded a generation (the CLI's --moe-stats) and replayed by the layers
 * instead of their own choice. Parsing is linear in the text's length;
 * binding checks the routes against a model's layers. */
#ifndef MD_MOE_ROUTES_H
#define MD_MOE_ROUTES_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"

#define MD_MOE_ROUTES_FORMAT "moe-diffuse-routes"
#define MD_MOE_ROUTES_VERSION 1

/* One layer's choice at one step. */
typedef struct md_moe_route_entry {
    int token;       /* 1: one list per row; 0: one list per row group (sequence) */
    int k;           /* experts per list */
    int64_t n;       /* lists: rows (token) or groups (sequence) */
    int8_t *experts; /* n * k experts, -1 = an empty slot */
} md_moe_route_entry;

typedef struct md_moe_routes {
    int steps;       /* the request's steps the routes were recorded with */
    int first_step;  /* the first denoising step run (img2img starts part-way) */
    int groups;      /* row groups of each call: 2 with guidance, else 1 */
    int nlayers;
    char (*names)[160];
    int *num_experts;
    md_moe_route_entry *entries; /* [(step - first_step) * nlayers + file layer] */
    int *bound;      /* after md_moe_routes_bind: model layer index -> file layer */
    int nbound;
} md_moe_routes;

/* Parses the text (at most max_len bytes); MD_ERR_INVALID with a message
 * naming the problem and where (byte offset or JSON path). */
md_status md_moe_routes_parse(const char *text, size_t max_len, md_moe_routes **out,
                              md_error *err);
void md_moe_routes_free(md_moe_routes *r);
/* Checks the routes against a model's MoE layers, in the model's index
 * order (names and expert counts), and maps them. */
md_status md_moe_routes_bind(md_moe_routes *r, int count, const char *const *names,
                             const int *num_experts, md_error *err);
/* The entry of a bound model layer at denoising step `step` (absolute, as
 * the sampler counts); NULL when the routes have none. */
const md_moe_route_entry *md_moe_routes_at(const md_moe_routes *r, int step, int layer);

#endif
