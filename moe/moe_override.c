/* The router override: a host's look at one MoE call before the experts
 * run (ABI "moe.router_override"). It reads the gate logits and returns a
 * bias to add to them and, optionally, another routing for the call. */
#include <math.h>
#include <string.h>

#include "moe_internal.h"

static int routing_ok(md_moe_routing_choice r)
{
    return r == MD_MOE_ROUTING_SEQUENCE || r == MD_MOE_ROUTING_SEQUENCE_SPLIT ||
           r == MD_MOE_ROUTING_TOKEN;
}

md_status md_moe_override_apply(md_moe_scratch *sc, const md_moe_layer *l,
                                const md_moe_options *opt, int k, int64_t rows, int groups,
                                float *logits, md_moe_routing_choice *routing, md_error *err)
{
    const int E = l->num_experts;
    const size_t n = (size_t)rows * (size_t)E;
    if (md_moe_grow(&sc->bias, &sc->bias_cap, n) != 0)
        return md_fail(err, MD_ERR_NOMEM, "MoE %s: out of memory for the router override",
                       l->name);
    memset(sc->bias, 0, n * sizeof *sc->bias);
    /* The grid is reported only when it accounts for every row: a cross-
     * attention projection's rows are text tokens, not latent pixels. */
    int gh = opt->grid_h, gw = opt->grid_w;
    int grid = gh > 0 && gw > 0 && (int64_t)groups * gh * gw == rows;
    md_moe_override_call call = {.layer = l,
                                 .top_k = k,
                                 .rows = rows,
                                 .groups = groups,
                                 .grid_h = grid ? gh : 0,
                                 .grid_w = grid ? gw : 0,
                                 .logits = logits,
                                 .bias = sc->bias,
                                 .routing = *routing};
    MD_TRY(opt->override(opt->override_user, &call, err));
    if (!routing_ok(call.routing))
        return md_fail(err, MD_ERR_INVALID, "MoE %s: the router override asked for routing %d",
                       l->name, (int)call.routing);
    for (size_t i = 0; i < n; i++) {
        float v = logits[i] + sc->bias[i];
        /* A non-finite logit is the weights' fault, found downstream as such. */
        if (!isfinite(sc->bias[i]) || (isfinite(logits[i]) && !isfinite(v)))
            return md_fail(err, MD_ERR_INVALID,
                           "MoE %s: the router override's bias for row %lld, expert %d is not "
                           "finite (%g, biased logit %g)",
                           l->name, (long long)(i / (size_t)E), (int)(i % (size_t)E),
                           (double)sc->bias[i], (double)v);
    }
    for (size_t i = 0; i < n; i++)
        logits[i] += sc->bias[i];
    *routing = call.routing;
    return MD_OK;
}
