/* Records every MoE layer's choice per denoising step from the library's
 * router trace (moediffuse.h "moe.router_trace") and writes it as a routes
 * file (format "moe-diffuse-routes", docs/moe.md "Route replay"), whose
 * text a later request's moe_routes replays. */
#ifndef MDH_MOE_ROUTES_RECORD_H
#define MDH_MOE_ROUTES_RECORD_H

#include "host_error.h"
#include "moediffuse.h"

typedef struct mdh_routes_record mdh_routes_record;

mdh_routes_record *mdh_routes_record_new(void); /* NULL on out-of-memory */
void mdh_routes_record_free(mdh_routes_record *r);
/* One router event; out-of-memory and unrecordable calls (token routes of
 * layers with more than 16 experts) are remembered and reported by write. */
void mdh_routes_record_add(mdh_routes_record *r, const mdiff_router_event *ev);
/* Writes the routes of a generation of `steps` steps (the request's). */
int mdh_routes_record_write(const mdh_routes_record *r, const char *path, int steps,
                            mdh_error *err);

#endif
