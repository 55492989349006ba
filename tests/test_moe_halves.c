/* Routing statistics per classifier-free-guidance half: the demo model
 * generates through the library with a router trace that feeds
 * md_moe_stats and, beside it, a reference count made here from the raw
 * events (rows [0, rows/2) unconditional, the rest conditional). The two
 * must agree for every step, layer and expert, the halves must add up to
 * the total, and the halves must differ somewhere (so a swap would show). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/moe_stats.h"
#include "moediffuse.h"
#include "test_support.h"

enum { MAX_CALLS = 32, MAX_LAYERS = 8, E = 4 };

typedef struct reference {
    md_moe_stats *stats;
    int step, calls, groups_seen;
    char names[MAX_LAYERS][160];
    int nlayers;
    int64_t half[MAX_CALLS][MAX_LAYERS][2][E];
} reference;

static int layer_of(reference *r, const char *name)
{
    for (int i = 0; i < r->nlayers; i++)
        if (!strcmp(r->names[i], name))
            return i;
    snprintf(r->names[r->nlayers], sizeof r->names[0], "%s", name);
    return r->nlayers++;
}

static void on_event(void *user, const mdiff_router_event *ev)
{
    reference *r = user;
    if (ev->step != r->step) {
        md_moe_stats_next_call(r->stats);
        r->step = ev->step;
    }
    md_moe_call c = {.layer = ev->layer_name, .num_experts = ev->num_experts,
                     .top_k = ev->top_k, .rows = ev->rows, .logits = ev->logits,
                     .choice = ev->choice, .row_groups = ev->groups};
    md_moe_stats_record(r->stats, &c);
    r->groups_seen |= ev->groups == 2;
    int l = layer_of(r, ev->layer_name);
    if (ev->step >= MAX_CALLS || l >= MAX_LAYERS || ev->num_experts != E)
        return;
    r->calls = ev->step + 1;
    for (int64_t row = 0; row < ev->rows; row++)
        for (int k = 0; k < ev->top_k; k++)
            r->half[ev->step][l][row >= ev->rows / 2][ev->choice[row * ev->top_k + k]]++;
}

static mdiff_context *open_demo(const mdiff_api *api)
{
    char path[1024];
    const char *src = getenv("MD_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/models/demo", src ? src : ".");
    mdiff_context_params cp;
    api->context_params_init(&cp, sizeof cp);
    cp.model_path = path;
    cp.threads = 2;
    cp.backend = "cpu";
    mdiff_context *ctx = NULL;
    char msg[512];
    if (api->context_create(&cp, &ctx, msg, sizeof msg) != MDIFF_OK)
        FAIL("cannot load %s: %s", path, msg);
    return ctx;
}

static int generate(const mdiff_api *api, mdiff_context *ctx, float guidance)
{
    mdiff_gen_params p;
    api->gen_params_init(&p, sizeof p);
    p.prompt = "a large yellow star in the center on a black background";
    p.negative_prompt = "a blue square";
    p.seed = 3;
    p.steps = 8;
    p.guidance = guidance;
    mdiff_image out;
    api->image_init(&out, sizeof out);
    char msg[512];
    int rc = api->generate(ctx, &p, &out, msg, sizeof msg);
    CHECK(rc == MDIFF_OK, "generate: %s", msg);
    api->image_free(&out);
    return rc;
}

/* One traced generation: the statistics and the reference beside them. */
static reference *traced(const mdiff_api *api, mdiff_context *ctx, float guidance)
{
    const mdiff_router_trace_api *tr = api->get_feature(MDIFF_FEATURE_ROUTER_TRACE);
    reference *r = calloc(1, sizeof *r);
    r->stats = md_moe_stats_new();
    tr->set(ctx, on_event, r);
    generate(api, ctx, guidance);
    tr->set(ctx, NULL, NULL);
    return r;
}

static void test_halves(const mdiff_api *api, mdiff_context *ctx)
{
    reference *r = traced(api, ctx, 4.0f);
    CHECK(r->groups_seen && r->calls == 8 && md_moe_stats_calls(r->stats) == 8 &&
              md_moe_stats_layers(r->stats) == 3 && r->nlayers == 3,
          "8 steps x 3 layers with 2 row groups (%d calls)", md_moe_stats_calls(r->stats));
    int agree = 1, sums = 1, differ = 0;
    for (int c = 0; c < r->calls; c++)
        for (int l = 0; l < r->nlayers; l++) {
            md_moe_stats_cell cell;
            if (!md_moe_stats_get(r->stats, c, l, &cell) || !cell.load_half[0]) {
                agree = 0;
                continue;
            }
            for (int e = 0; e < E; e++) {
                agree &= cell.load_half[0][e] == r->half[c][l][0][e] &&
                         cell.load_half[1][e] == r->half[c][l][1][e];
                sums &= cell.load_half[0][e] + cell.load_half[1][e] == cell.load[e];
                differ |= r->half[c][l][0][e] != r->half[c][l][1][e];
            }
        }
    CHECK(agree, "per-half loads equal the reference count");
    CHECK(sums, "the halves add up to the total");
    CHECK(differ, "the negative and the positive prompt route differently somewhere");
    md_moe_stats_free(r->stats);
    free(r);
}

static void test_no_guidance(const mdiff_api *api, mdiff_context *ctx)
{
    reference *r = traced(api, ctx, 1.0f);
    md_moe_stats_cell cell;
    CHECK(!r->groups_seen && md_moe_stats_get(r->stats, 0, 0, &cell) && !cell.load_half[0] &&
              !cell.load_half[1],
          "without guidance there are no halves");
    md_moe_stats_free(r->stats);
    free(r);
}

int main(void)
{
    const mdiff_api *api = moediffuse_get_api(MOEDIFFUSE_ABI_MAJOR, MOEDIFFUSE_ABI_MINOR);
    mdiff_context *ctx = CHECK(api != NULL) ? open_demo(api) : NULL;
    if (ctx) {
        test_halves(api, ctx);
        test_no_guidance(api, ctx);
        api->context_destroy(ctx);
    }
    return md_test_finish("test_moe_halves");
}
