/* ABI 1.4: the MoE controls of a request through the public header only.
 * A 1.3-sized struct gets the 1.4 fields' defaults (the same image as a
 * default 1.4 request); resolve_params checks them against the model; the
 * router event reports groups, routing, skipped and empty slots; and the
 * routes text replays a recorded generation exactly. */
#include "abi_test.h"

#define STEPS 3

typedef struct trace {
    int events;
    int64_t skipped, empty, groups_seen;
    int32_t routing;
} trace;

static void on_event(void *user, const mdiff_router_event *ev)
{
    trace *t = user;
    t->events++;
    t->skipped += ev->skipped;
    t->groups_seen = ev->groups;
    t->routing = ev->routing;
    for (int64_t i = 0; i < ev->rows * ev->top_k; i++)
        t->empty += ev->choice[i] < 0;
}

static mdiff_gen_params request(const mdiff_api *api)
{
    mdiff_gen_params p;
    api->gen_params_init(&p, sizeof p);
    p.prompt = "a cat";
    p.seed = 3;
    p.steps = STEPS;
    p.sampler = "ddim";
    return p;
}

int main(void)
{
    const mdiff_api *api = test_api();
    CHECK(api->abi_minor >= 4, "ABI 1.4 table (minor %d)", api->abi_minor);
    mdiff_context *ctx = test_context(api, "tiny-sd-moe"); /* 4 experts, top-2, sequence */
    const mdiff_router_trace_api *tr = api->get_feature(MDIFF_FEATURE_ROUTER_TRACE);
    mdiff_gen_params p = request(api);
    CHECK(p.moe_capacity == 0.0f && p.moe_skip == 0.0f && !p.moe_schedule && !p.moe_routes,
          "1.4 defaults: all off");

    /* A 1.3 host's struct ends before moe_capacity: the same image. */
    uint64_t base = test_generate_hash(api, ctx, &p);
    mdiff_gen_params old = p;
    old.struct_size = offsetof(mdiff_gen_params, moe_capacity);
    old.moe_skip = 0.9f; /* beyond the host's struct: never read */
    CHECK(test_generate_hash(api, ctx, &old) == base, "a 1.3 struct generates as before");

    /* resolve_params: checked against the model (sequence routing). */
    char msg[512];
    mdiff_gen_params r = {.struct_size = sizeof r};
    p.moe_capacity = 1.0f;
    CHECK(api->resolve_params(ctx, &p, &r, msg, sizeof msg) == MDIFF_ERR_INVALID &&
              strstr(msg, "token routing only"),
          "capacity with sequence routing: '%s'", msg);
    p.moe_routing = MDIFF_ROUTING_TOKEN;
    CHECK(api->resolve_params(ctx, &p, &r, msg, sizeof msg) == MDIFF_OK &&
              r.moe_capacity == 1.0f,
          "capacity with token routing: '%s'", msg);
    p = request(api);
    p.moe_schedule = "0-1:experts=4";
    CHECK(api->resolve_params(ctx, &p, &r, msg, sizeof msg) == MDIFF_ERR_INVALID &&
              strstr(msg, "experts must be 0..3"),
          "schedule expert out of range: '%s'", msg);

    /* The trace: split routing with guidance, skip counted. */
    trace t = {0};
    p = request(api);
    p.moe_routing = MDIFF_ROUTING_SEQUENCE_SPLIT;
    p.moe_skip = 0.45f;
    tr->set(ctx, on_event, &t);
    uint64_t split = test_generate_hash(api, ctx, &p);
    tr->set(ctx, NULL, NULL);
    CHECK(t.events > 0 && t.groups_seen == 2 && t.routing == MDIFF_ROUTING_SEQUENCE_SPLIT,
          "events %d: groups %lld, routing %d", t.events, (long long)t.groups_seen, t.routing);
    CHECK(t.skipped > 0 && t.skipped == t.empty,
          "skipped %lld expert-rows = %lld empty slots", (long long)t.skipped,
          (long long)t.empty);
    CHECK(split != base, "split routing with skip changes the image");

    /* Replay: a hand-made routes text (experts 1 and 3 for both halves in
     * every call) gives the image of the schedule that pins 1 and 3. */
    p = request(api);
    p.moe_schedule = "0-1:experts=1,3";
    uint64_t pinned = test_generate_hash(api, ctx, &p);
    CHECK(pinned != base, "pinned experts change the image");
    test_layers l = {0};
    tr->set(ctx, test_on_layer, &l);
    test_generate_hash(api, ctx, &p);
    tr->set(ctx, NULL, NULL);
    static char text[1 << 16];
    int n = test_pinned_routes(&l, STEPS, 1, 3, text, sizeof text);
    CHECK(l.n == 21 && n > 0, "21 MoE layers traced (%d)", l.n);
    p = request(api);
    p.moe_routes = text;
    p.moe_top_k = 1; /* routes win over every other MoE field */
    CHECK(test_generate_hash(api, ctx, &p) == pinned, "replayed routes = the pinned schedule's image");
    p.steps = STEPS + 1;
    mdiff_image img;
    api->image_init(&img, sizeof img);
    CHECK(api->generate(ctx, &p, &img, msg, sizeof msg) == MDIFF_ERR_INVALID &&
              strstr(msg, "moe_routes: recorded for steps 1..3 of 3"),
          "routes of another step count: '%s'", msg);
    api->context_destroy(ctx);
    return test_report("abi_v1_4");
}
