/* ABI MoE: model information of an MoE model, and the optional features
 * "moe.router_stats" and "moe.expert_settings". */
#include "abi_test.h"

static uint64_t generate_hash(const mdiff_api *api, mdiff_context *ctx)
{
    char msg[512];
    mdiff_gen_params p;
    api->gen_params_init(&p, sizeof p);
    p.prompt = "a castle made of glass";
    p.steps = 3;
    p.seed = 11;
    mdiff_image out;
    api->image_init(&out, sizeof out);
    int rc = api->generate(ctx, &p, &out, msg, sizeof msg);
    CHECK(rc == MDIFF_OK, "generate on the MoE model: '%s'", msg);
    uint64_t h = out.data ? image_hash(&out) : 0;
    api->image_free(&out);
    return h;
}

static void test_info(const mdiff_api *api, mdiff_context *ctx, mdiff_model_info *info)
{
    info->struct_size = sizeof *info;
    CHECK(api->model_info(ctx, info) == MDIFF_OK, "model_info");
    /* tiny-sd-moe: SegMoE, 4 experts, top 2; 7 MoE layers (q/k/v of both
     * attentions and the feed-forward) in each of 3 transformer blocks (one
     * in down_blocks.0, two in up_blocks.1). */
    CHECK(info->num_experts == 4 && info->top_k == 2 && info->routing == MDIFF_ROUTING_SEQUENCE &&
              info->moe_layers == 21,
          "MoE shape: %d experts, top %d, routing %d, %d layers", info->num_experts, info->top_k,
          info->routing, info->moe_layers);
    CHECK(info->params_active < info->params_total && info->params_active > 0,
          "active %llu < total %llu", (unsigned long long)info->params_active,
          (unsigned long long)info->params_total);
}

static void test_router_stats(const mdiff_api *api, mdiff_context *ctx, int moe_layers)
{
    const mdiff_router_stats_api *rs = api->get_feature(MDIFF_FEATURE_ROUTER_STATS);
    CHECK(rs && rs->struct_size >= sizeof *rs, "router stats feature");
    if (!rs)
        return;
    generate_hash(api, ctx);
    CHECK(rs->layer_count(ctx) == 0, "nothing counted while disabled");
    CHECK(rs->enable(ctx, 1) == MDIFF_OK, "enable");
    generate_hash(api, ctx);
    int n = rs->layer_count(ctx);
    CHECK(n == moe_layers, "every MoE layer seen: %d of %d", n, moe_layers);
    int consistent = 1;
    uint64_t calls = 0;
    for (int i = 0; i < n; i++) {
        mdiff_layer_stats st = {.struct_size = sizeof st};
        uint64_t counts[8] = {0};
        CHECK(rs->layer(ctx, i, &st, counts, 8) == MDIFF_OK, "layer %d", i);
        uint64_t sum = 0, used = 0;
        for (int e = 0; e < 8; e++) {
            sum += counts[e];
            used += counts[e] > 0;
        }
        /* Sequence routing: every row goes to exactly top_k experts. */
        consistent &= st.num_experts == 4 && st.top_k == 2 && sum == st.tokens * 2 &&
                      used >= 2 && counts[4] == 0 && st.name[0] != '\0';
        calls += st.calls;
    }
    CHECK(consistent, "per-layer counts add up to tokens x top_k");
    /* 3 steps, each layer runs once per U-Net call. */
    CHECK(calls == 3 * (uint64_t)n, "calls: %llu", (unsigned long long)calls);
    mdiff_layer_stats st = {.struct_size = sizeof st};
    CHECK(rs->layer(ctx, n, &st, NULL, 0) == MDIFF_ERR_INVALID, "index past the end");
    CHECK(rs->reset(ctx) == MDIFF_OK && rs->layer_count(ctx) == 0, "reset");
    rs->enable(ctx, 0);
}

static void test_expert_settings(const mdiff_api *api, mdiff_context *ctx, mdiff_model_info *info)
{
    const mdiff_expert_settings_api *es = api->get_feature(MDIFF_FEATURE_EXPERT_SETTINGS);
    CHECK(es && es->struct_size >= sizeof *es, "expert settings feature");
    if (!es)
        return;
    char msg[512];
    mdiff_expert_settings s = {.struct_size = sizeof s};
    CHECK(es->get(ctx, &s) == MDIFF_OK && s.top_k == 2 && s.num_experts == 4, "get: top %d of %d",
          s.top_k, s.num_experts);
    uint64_t top2 = generate_hash(api, ctx);
    s.top_k = 1;
    int rc = es->set(ctx, &s, msg, sizeof msg);
    CHECK(rc == MDIFF_OK, "set top_k 1: %d '%s'", rc, msg);
    mdiff_model_info one = {.struct_size = sizeof one};
    api->model_info(ctx, &one);
    CHECK(one.top_k == 1 && one.params_total == info->params_total &&
              one.params_active < info->params_active,
          "top 1: active %llu < %llu", (unsigned long long)one.params_active,
          (unsigned long long)info->params_active);
    CHECK(generate_hash(api, ctx) != top2, "one expert per token changes the image");
    s.top_k = 5;
    rc = es->set(ctx, &s, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_INVALID && strstr(msg, "top_k must be 0..4"), "top_k 5: '%s'", msg);
    s.top_k = 0; /* back to the model's own */
    CHECK(es->set(ctx, &s, msg, sizeof msg) == MDIFF_OK && generate_hash(api, ctx) == top2,
          "top_k 0 restores the model's choice");
}

static void test_dense(const mdiff_api *api)
{
    mdiff_context *ctx = test_context(api, "tiny-sd-dense");
    const mdiff_expert_settings_api *es = api->get_feature(MDIFF_FEATURE_EXPERT_SETTINGS);
    const mdiff_router_stats_api *rs = api->get_feature(MDIFF_FEATURE_ROUTER_STATS);
    char msg[256];
    mdiff_expert_settings s = {.struct_size = sizeof s, .top_k = 1};
    CHECK(es->set(ctx, &s, msg, sizeof msg) == MDIFF_ERR_UNSUPPORTED && strstr(msg, "no experts"),
          "dense model: '%s'", msg);
    rs->enable(ctx, 1);
    generate_hash(api, ctx);
    CHECK(rs->layer_count(ctx) == 0, "dense model: no MoE layers");
    api->context_destroy(ctx);
}

int main(void)
{
    const mdiff_api *api = test_api();
    mdiff_context *ctx = test_context(api, "tiny-sd-moe");
    mdiff_model_info info;
    test_info(api, ctx, &info);
    test_router_stats(api, ctx, info.moe_layers);
    test_expert_settings(api, ctx, &info);
    api->context_destroy(ctx);
    test_dense(api);
    return test_report("abi_moe");
}
