/* ABI 1.5: the expert memory bound through the public header only. The
 * model reports its experts' memory and the least bound; a request under a
 * bound gives the unbounded image while the "moe.expert_memory" feature
 * shows the bound held and experts evicted; a bound below the least one is
 * refused; the context's bound is the default of requests; a 1.4-sized
 * struct has no bound; and `estimate` replays a routes text through a cache
 * of a given bound with the loads worked out by hand. */
#include "abi_test.h"

#define STEPS 3

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
    CHECK(api->abi_minor >= 5, "ABI 1.5 table (minor %d)", api->abi_minor);
    mdiff_context *ctx = test_context(api, "tiny-sd-moe"); /* 4 experts, top-2, sequence */
    const mdiff_expert_memory_api *em = api->get_feature(MDIFF_FEATURE_EXPERT_MEMORY);
    CHECK(em && em->get && em->reset && em->estimate, "the moe.expert_memory feature");
    if (!em)
        return test_report("abi_v1_5");

    mdiff_model_info info = {.struct_size = sizeof info};
    CHECK(api->model_info(ctx, &info) == MDIFF_OK && info.expert_memory > 0 &&
              info.expert_memory_minimum > 0 && info.expert_memory_minimum < info.expert_memory,
          "model_info: expert memory %llu, least bound %llu",
          (unsigned long long)info.expert_memory, (unsigned long long)info.expert_memory_minimum);

    mdiff_gen_params p = request(api);
    CHECK(p.max_expert_memory == 0, "no bound by default");
    uint64_t base = test_generate_hash(api, ctx, &p);

    /* At the least bound: the same image, the bound held, experts evicted. */
    em->reset(ctx);
    p.max_expert_memory = info.expert_memory_minimum;
    CHECK(test_generate_hash(api, ctx, &p) == base, "the least bound gives the unbounded image");
    mdiff_expert_memory m = {.struct_size = sizeof m};
    CHECK(em->get(ctx, &m) == MDIFF_OK && m.total == info.expert_memory &&
              m.peak <= info.expert_memory_minimum && m.evictions > 0 && m.loads > 0,
          "bounded: peak %llu of bound %llu, %llu loads, %llu evictions",
          (unsigned long long)m.peak, (unsigned long long)info.expert_memory_minimum,
          (unsigned long long)m.loads, (unsigned long long)m.evictions);

    /* Below the least bound: refused by resolve_params and generate alike. */
    char msg[512];
    mdiff_gen_params r = {.struct_size = sizeof r};
    p.max_expert_memory = info.expert_memory_minimum - 1;
    CHECK(api->resolve_params(ctx, &p, &r, msg, sizeof msg) == MDIFF_ERR_INVALID &&
              strstr(msg, "max_expert_memory"),
          "a bound below the least one: '%s'", msg);

    /* A 1.4 host's struct ends before max_expert_memory: never read. */
    mdiff_gen_params old = request(api);
    old.struct_size = offsetof(mdiff_gen_params, max_expert_memory);
    old.max_expert_memory = 1;
    CHECK(api->resolve_params(ctx, &old, &r, msg, sizeof msg) == MDIFF_OK &&
              r.max_expert_memory == 0,
          "a 1.4 struct has no bound: '%s' (%llu)", msg, (unsigned long long)r.max_expert_memory);

    /* The context's bound is the default of a request that leaves it 0. */
    mdiff_context_params cp;
    api->context_params_init(&cp, sizeof cp);
    cp.model_path = test_model("tiny-sd-moe");
    cp.threads = 2;
    cp.max_expert_memory = info.expert_memory / 2;
    mdiff_context *bounded = NULL;
    CHECK(api->context_create(&cp, &bounded, msg, sizeof msg) == MDIFF_OK, "%s", msg);
    if (bounded) {
        p = request(api);
        CHECK(api->resolve_params(bounded, &p, &r, msg, sizeof msg) == MDIFF_OK &&
                  r.max_expert_memory == info.expert_memory / 2,
              "the context's bound: %llu", (unsigned long long)r.max_expert_memory);
        CHECK(test_generate_hash(api, bounded, &p) == base, "the context's bound: the same image");
        api->context_destroy(bounded);
    }

    /* estimate: experts 1 and 3 of each of the 21 layers every step. Half
     * the experts' memory holds them all (nothing loads after the first
     * step); the least bound holds one, so every use loads. */
    test_layers l = {0};
    const mdiff_router_trace_api *tr = api->get_feature(MDIFF_FEATURE_ROUTER_TRACE);
    tr->set(ctx, test_on_layer, &l);
    p = request(api);
    test_generate_hash(api, ctx, &p);
    tr->set(ctx, NULL, NULL);
    static char routes[1 << 16];
    CHECK(l.n == 21 && test_pinned_routes(&l, STEPS, 1, 3, routes, sizeof routes) > 0,
          "21 MoE layers traced (%d)", l.n);
    mdiff_expert_estimate e = {.struct_size = sizeof e};
    CHECK(em->estimate(ctx, info.expert_memory / 2, routes, &e, msg, sizeof msg) == MDIFF_OK &&
              e.steps == STEPS && e.first_loads == (uint64_t)(2 * l.n) &&
              e.loads_per_step == 0.0 && e.used_per_step == 2.0 * l.n,
          "half the memory: '%s' %d steps, first %llu, %.1f per step, %.1f used", msg, e.steps,
          (unsigned long long)e.first_loads, e.loads_per_step, e.used_per_step);
    CHECK(em->estimate(ctx, info.expert_memory_minimum, routes, &e, msg, sizeof msg) ==
                  MDIFF_OK &&
              e.loads_per_step == 2.0 * l.n && e.bytes_per_step >= e.loads_per_step,
          "the least bound: %.1f loads per step (expected %d)", e.loads_per_step, 2 * l.n);
    CHECK(em->estimate(ctx, 0, "{\"format\": \"other\"}", &e, msg, sizeof msg) ==
                  MDIFF_ERR_INVALID && msg[0],
          "a bad routes text: '%s'", msg);

    /* A dense model has no expert memory. */
    mdiff_context *dense = test_context(api, "tiny-sd-dense");
    CHECK(api->model_info(dense, &info) == MDIFF_OK && info.expert_memory == 0 &&
              em->get(dense, &m) == MDIFF_ERR_UNSUPPORTED,
          "dense: expert memory %llu", (unsigned long long)info.expert_memory);
    api->context_destroy(dense);
    api->context_destroy(ctx);
    return test_report("abi_v1_5");
}
