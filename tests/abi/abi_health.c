/* ABI 1.4 "moe.routing_health": the collapse warning arrives as a WARN log
 * event on a model whose layers only ever use 2 of their 4 experts, and
 * not on the bundled demo model or a healthy random one; the router
 * trace's groups says how guidance stacks the rows.
 * usage: abi_health COLLAPSED_MODEL HEALTHY_MODEL (tests/abi/health.sh) */
#include "abi_test.h"

typedef struct log_record {
    int warns, collapse_warns;
    char last[1024];
} log_record;

static void on_log(void *user, int level, const char *message)
{
    log_record *r = user;
    if (level == MDIFF_LOG_WARN) {
        r->warns++;
        r->collapse_warns += strstr(message, "routing collapse") != NULL;
        snprintf(r->last, sizeof r->last, "%s", message);
    }
}

static mdiff_context *open_model(const mdiff_api *api, const char *path, log_record *log,
                                 int level)
{
    mdiff_context_params cp;
    api->context_params_init(&cp, sizeof cp);
    cp.model_path = path;
    cp.threads = 2;
    cp.backend = "cpu";
    cp.log = on_log;
    cp.log_user = log;
    cp.log_level = level;
    char msg[512];
    mdiff_context *ctx = NULL;
    if (api->context_create(&cp, &ctx, msg, sizeof msg) != MDIFF_OK) {
        fprintf(stderr, "FAIL: cannot load %s: %s\n", path, msg);
        exit(1);
    }
    return ctx;
}

static int generate(const mdiff_api *api, mdiff_context *ctx, const char *prompt, int size,
                    float guidance)
{
    mdiff_gen_params p;
    api->gen_params_init(&p, sizeof p);
    p.prompt = prompt;
    p.seed = 7;
    p.width = p.height = size;
    if (guidance > 0)
        p.guidance = guidance;
    mdiff_image out;
    api->image_init(&out, sizeof out);
    char msg[512];
    int rc = api->generate(ctx, &p, &out, msg, sizeof msg);
    CHECK(rc == MDIFF_OK, "generate '%s': %s", prompt, msg);
    api->image_free(&out);
    return rc;
}

static void test_demo(const mdiff_api *api, const mdiff_routing_health_api *rh)
{
    char path[1024];
    const char *src = getenv("MD_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/models/demo", src ? src : ".");
    log_record log = {0};
    mdiff_context *ctx = open_model(api, path, &log, MDIFF_LOG_INFO);
    static const char *const prompts[] = {
        "a large yellow star in the center on a black background",
        "a large red circle in the center on a blue background",
        "a small cyan ring at the top on a white background"};
    for (int i = 0; i < 3; i++) {
        generate(api, ctx, prompts[i], 0, 0); /* the model's defaults: 64x64, CFG 4, 20 steps */
        mdiff_routing_health h = {.struct_size = sizeof h};
        CHECK(rh->get(ctx, &h) == MDIFF_OK, "get");
        /* Its last layer routes by object colour and may use only 2 experts
         * for one prompt (the cyan ring on white: docs/moe-health.md); one
         * layer of three is no collapse. */
        CHECK(h.layers == 3 && h.judged_layers == 3 && h.collapsed_layers <= 1 && !h.collapse,
              "demo '%s': %d layers, %d collapsed", prompts[i], h.layers, h.collapsed_layers);
        CHECK(h.experts_total == 12 && h.experts_used >= 10, "demo: %d of %d experts used",
              h.experts_used, h.experts_total);
        for (int l = 0; l < 2; l++) {
            mdiff_layer_health lh = {.struct_size = sizeof lh};
            CHECK(rh->layer(ctx, l, &lh) == MDIFF_OK && lh.experts_used == 4 && !lh.collapsed,
                  "demo layer %d uses all 4 experts", l);
        }
    }
    CHECK(log.collapse_warns == 0, "the demo model does not warn: '%s'", log.last);
    api->context_destroy(ctx);
}

static void test_collapsed(const mdiff_api *api, const mdiff_routing_health_api *rh,
                           const char *model)
{
    log_record log = {0};
    mdiff_context *ctx = open_model(api, model, &log, MDIFF_LOG_WARN);
    generate(api, ctx, "a cat", 64, 0);
    CHECK(log.collapse_warns == 1, "one collapse warning per generation, got %d",
          log.collapse_warns);
    CHECK(strstr(log.last, "3 of 3 MoE layers") && strstr(log.last, "at most 2 of the 4 experts"),
          "the warning says what collapsed: '%s'", log.last);
    mdiff_routing_health h = {.struct_size = sizeof h};
    CHECK(rh->get(ctx, &h) == MDIFF_OK && h.collapse && h.layers == 3 &&
              h.collapsed_layers == 3 && h.experts_used == 6 && h.experts_total == 12,
          "collapsed: %d of %d layers, %d of %d experts", h.collapsed_layers, h.layers,
          h.experts_used, h.experts_total);
    for (int i = 0; i < h.layers; i++) {
        mdiff_layer_health l = {.struct_size = sizeof l};
        CHECK(rh->layer(ctx, i, &l) == MDIFF_OK && l.experts_used == 2 && l.collapsed &&
                  l.judged && l.top_k == 2 && l.num_experts == 4 && l.min_share == 0.0f &&
                  l.max_share == 0.5f && strstr(l.name, ".ff"),
              "layer %d: %s used %d", i, l.name, l.experts_used);
    }
    mdiff_layer_health l = {.struct_size = sizeof l};
    CHECK(rh->layer(ctx, h.layers, &l) == MDIFF_ERR_INVALID, "index past the end");
    /* A host that asked for errors only hears nothing. */
    api->set_log(ctx, on_log, &log, MDIFF_LOG_ERROR);
    generate(api, ctx, "a cat", 64, 0);
    CHECK(log.collapse_warns == 1, "no WARN below the host's level");
    /* A failed request leaves no figures of an earlier run behind. */
    mdiff_gen_params p;
    api->gen_params_init(&p, sizeof p);
    p.prompt = "x";
    p.steps = -3;
    mdiff_image out;
    api->image_init(&out, sizeof out);
    CHECK(api->generate(ctx, &p, &out, NULL, 0) == MDIFF_ERR_INVALID, "bad steps");
    CHECK(rh->get(ctx, &h) == MDIFF_OK && h.layers == 0 && !h.collapse, "cleared by a failure");
    api->context_destroy(ctx);
}

static void test_healthy(const mdiff_api *api, const mdiff_routing_health_api *rh,
                         const char *model)
{
    log_record log = {0};
    mdiff_context *ctx = open_model(api, model, &log, MDIFF_LOG_WARN);
    generate(api, ctx, "a cat", 64, 0);
    mdiff_routing_health h = {.struct_size = sizeof h};
    CHECK(rh->get(ctx, &h) == MDIFF_OK && h.layers == 3 && !h.collapse &&
              h.collapsed_layers == 0,
          "healthy: %d collapsed of %d", h.collapsed_layers, h.layers);
    CHECK(log.collapse_warns == 0, "no warning: '%s'", log.last);
    api->context_destroy(ctx);
}

typedef struct groups_seen {
    int events, two, one, other;
    size_t size;
} groups_seen;

static void on_event(void *user, const mdiff_router_event *ev)
{
    groups_seen *g = user;
    g->events++;
    g->size = ev->struct_size;
    if (ev->groups == 2 && ev->rows % 2 == 0)
        g->two++;
    else if (ev->groups == 1)
        g->one++;
    else
        g->other++;
}

static void test_row_groups(const mdiff_api *api, const char *model)
{
    const mdiff_router_trace_api *tr = api->get_feature(MDIFF_FEATURE_ROUTER_TRACE);
    log_record log = {0};
    mdiff_context *ctx = open_model(api, model, &log, MDIFF_LOG_WARN);
    groups_seen g = {0};
    tr->set(ctx, on_event, &g);
    generate(api, ctx, "a cat", 64, 7.5f);
    CHECK(g.events > 0 && g.two == g.events && g.size >= 64,
          "guidance: every call has 2 row groups (%d of %d, struct %zu)", g.two, g.events, g.size);
    g = (groups_seen){0};
    generate(api, ctx, "a cat", 64, 1.0f);
    CHECK(g.events > 0 && g.one == g.events, "no guidance: 1 group (%d of %d)", g.one, g.events);
    tr->set(ctx, NULL, NULL);
    api->context_destroy(ctx);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: abi_health COLLAPSED_MODEL HEALTHY_MODEL\n");
        return 2;
    }
    const mdiff_api *api = test_api();
    CHECK(api->abi_minor >= 4, "ABI 1.4");
    const mdiff_routing_health_api *rh = api->get_feature(MDIFF_FEATURE_ROUTING_HEALTH);
    CHECK(rh && rh->struct_size >= sizeof *rh && rh->get && rh->layer, "the feature");
    if (!rh)
        return test_report("abi_health");
    test_demo(api, rh);
    test_collapsed(api, rh, argv[1]);
    test_healthy(api, rh, argv[2]);
    test_row_groups(api, argv[2]);
    return test_report("abi_health");
}
