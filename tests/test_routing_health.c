/* The routing-collapse detector as a pure function of slot counts: the
 * unused-expert share, the layer rule, the judged minimum and the layer
 * fraction, each just inside and just outside its threshold. */
#include "moe/routing_health.h"
#include "test_support.h"

/* One layer of 4 experts, top-2, from shares in 1/10000 of 20000 rows x 2 slots. */
static md_layer_health layer4(int s0, int s1, int s2, int s3, int64_t choices)
{
    const int64_t rows = 20000, slots = 2 * rows;
    int64_t c[4] = {slots * s0 / 10000, slots * s1 / 10000, slots * s2 / 10000,
                    slots * s3 / 10000};
    md_layer_health h;
    md_layer_health_of(c, 4, rows, choices, &h);
    return h;
}

static void test_layer_rule(void)
{
    /* The demo model's last layer at its narrowest: one expert near 1%. */
    md_layer_health h = layer4(100, 4900, 2500, 2500, 20000);
    CHECK(h.top_k == 2 && h.used == 4 && !h.collapsed && h.judged, "1%% share: used");
    CHECK(h.min_share > 0.0099 && h.min_share < 0.0101 && h.max_share > 0.489, "shares");
    /* Just under 0.5% does not count, just over does. */
    h = layer4(49, 4951, 2500, 2500, 20000);
    CHECK(h.used == 3 && !h.collapsed, "0.49%%: unused, 3 of 4 is no collapse");
    h = layer4(51, 4949, 2500, 2500, 20000);
    CHECK(h.used == 4, "0.51%%: used");
    /* Two of four (top-2): collapsed; two idle experts at 0.49% each too. */
    h = layer4(0, 5000, 5000, 0, 20000);
    CHECK(h.used == 2 && h.collapsed, "2 of 4 experts: collapsed");
    h = layer4(49, 4951, 4951, 49, 20000);
    CHECK(h.used == 2 && h.collapsed, "2 of 4 with crumbs below 0.5%%: collapsed");
    h = layer4(60, 4940, 4950, 50, 20000);
    CHECK(h.used == 4 && !h.collapsed, "crumbs above 0.5%%: not collapsed");
    /* 8 experts, top-2: half or fewer used collapses, five does not. */
    int64_t c8[8] = {10, 10, 10, 10, 0, 0, 0, 0};
    md_layer_health_of(c8, 8, 20, 20, &h);
    CHECK(h.top_k == 2 && h.used == 4 && h.collapsed, "4 of 8: collapsed");
    c8[4] = 10;
    md_layer_health_of(c8, 8, 25, 25, &h);
    CHECK(h.used == 5 && !h.collapsed, "5 of 8: not collapsed");
    /* Top-k = number of experts: nothing to choose, never collapsed. */
    int64_t c2[2] = {10, 10};
    md_layer_health_of(c2, 2, 10, 10, &h);
    CHECK(h.top_k == 2 && !h.collapsed, "k = E: no collapse");
    /* Nothing routed. */
    int64_t c0[4] = {0};
    md_layer_health_of(c0, 4, 0, 0, &h);
    CHECK(h.used == 0 && !h.judged && !h.collapsed, "empty layer");
}

static void test_judged(void)
{
    /* 4 experts, top-2, sequence routing (one choice per call): 8 calls
     * could pick each expert 4 times, 7 could not. */
    md_layer_health h = layer4(0, 5000, 5000, 0, 8);
    CHECK(h.judged && h.collapsed, "8 choices: judged");
    h = layer4(0, 5000, 5000, 0, 7);
    CHECK(!h.judged && !h.collapsed, "7 choices: too few to judge");
}

static void test_model_verdict(void)
{
    md_layer_health ok = layer4(2500, 2500, 2500, 2500, 20000);
    md_layer_health bad = layer4(0, 5000, 5000, 0, 20000);
    md_layer_health unjudged = layer4(0, 5000, 5000, 0, 3);
    /* 3 of 4 collapsed layers: exactly the fraction, a collapse. */
    md_routing_health h = {0};
    md_routing_health_add(&h, &bad);
    md_routing_health_add(&h, &bad);
    md_routing_health_add(&h, &ok);
    md_routing_health_add(&h, &bad);
    CHECK(h.layers == 4 && h.judged_layers == 4 && h.collapsed_layers == 3 && h.collapse,
          "3 of 4 layers: collapse");
    CHECK(h.experts_used == 10 && h.experts_total == 16 && h.min_share == 0.0 &&
              h.max_share > 0.499,
          "totals: %d of %d", h.experts_used, h.experts_total);
    /* 2 of 3 (67%): no collapse. */
    h = (md_routing_health){0};
    md_routing_health_add(&h, &bad);
    md_routing_health_add(&h, &ok);
    md_routing_health_add(&h, &bad);
    CHECK(h.collapsed_layers == 2 && !h.collapse, "2 of 3 layers: no collapse");
    /* Every layer collapsed (the SegMoE case): collapse. */
    h = (md_routing_health){0};
    for (int i = 0; i < 21; i++)
        md_routing_health_add(&h, &bad);
    CHECK(h.collapse, "21 of 21 layers: collapse");
    /* Layers too short to judge do not count either way. */
    h = (md_routing_health){0};
    md_routing_health_add(&h, &unjudged);
    md_routing_health_add(&h, &unjudged);
    CHECK(h.layers == 2 && h.judged_layers == 0 && !h.collapse, "unjudged: no verdict");
    md_routing_health_add(&h, &bad);
    CHECK(h.judged_layers == 1 && h.collapse, "one judged collapsed layer of one");
    /* A healthy model: nothing. */
    h = (md_routing_health){0};
    md_routing_health_add(&h, &ok);
    CHECK(h.collapsed_layers == 0 && !h.collapse && h.experts_used == 4, "healthy");
}

int main(void)
{
    test_layer_rule();
    test_judged();
    test_model_verdict();
    return md_test_finish("test_routing_health");
}
