/* MoE routing statistics: loads, entropies and busiest share from known
 * gate logits, call boundaries, and the JSON / heatmap writers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/moe_heatmap.h"
#include "host/moe_stats.h"
#include "moe/router.h"
#include "test_support.h"

/* A layer as the router trace names it. */
typedef struct md_moe_layer {
    char name[160];
    int num_experts, top_k;
} md_moe_layer;

/* Feeds `rows` rows of logits [rows, 4] through a token top-2 plan. */
static void feed(md_moe_stats *s, const md_moe_layer *l, const float *logits, int64_t rows)
{
    md_route_plan *plan = md_route_plan_new(l->num_experts, l->top_k, rows);
    md_router_plan(plan, MD_ROUTE_TOKEN_TOPK, logits, rows);
    md_moe_call c = {.layer = l->name, .num_experts = l->num_experts, .top_k = l->top_k,
                     .rows = rows, .logits = logits, .choice = plan->choice};
    md_moe_stats_record(s, &c);
    md_route_plan_free(plan);
}

int main(void)
{
    md_moe_layer a = {.num_experts = 4, .top_k = 2}, b = {.num_experts = 4, .top_k = 2};
    snprintf(a.name, sizeof a.name, "down_blocks.1.attentions.0.transformer_blocks.0.ff");
    snprintf(b.name, sizeof b.name, "up_blocks.0.attentions.0.transformer_blocks.0.ff");
    md_moe_stats *s = md_moe_stats_new();
    if (!CHECK(s != NULL))
        return md_test_finish("test_moe_stats");

    /* Call 0: layer a, 3 rows. Row 0 prefers experts 0,1; rows 1,2 prefer 2,0.
     * Equal logits in row 2 give the maximal entropy log 4. */
    const float la[] = {5, 4, 0, 0, /**/ 3, 0, 9, 0, /**/ 1, 1, 1, 1};
    feed(s, &a, la, 3);
    /* Row 2 ties break to the lower index: experts 0 and 1. */
    const float lb[] = {0, 0, 0, 7, 0, 0, 6, 7};
    feed(s, &b, lb, 2);
    /* Layer a again: call 1. */
    feed(s, &a, la, 1);

    CHECK(md_moe_stats_calls(s) == 2);
    CHECK(md_moe_stats_layers(s) == 2);
    md_moe_stats_cell c;
    CHECK(md_moe_stats_get(s, 0, 0, &c) == 1);
    CHECK(c.rows == 3);
    CHECK(c.load[0] == 3 && c.load[1] == 2 && c.load[2] == 1 && c.load[3] == 0,
          "load %lld %lld %lld %lld", (long long)c.load[0], (long long)c.load[1],
          (long long)c.load[2], (long long)c.load[3]);
    CHECK(fabs(c.busiest_share - 0.5) < 1e-12);
    /* Entropies of softmax over each row, averaged. */
    double want = 0.0;
    for (int r = 0; r < 3; r++) {
        double z = 0, h = 0;
        for (int e = 0; e < 4; e++)
            z += exp(la[r * 4 + e]);
        for (int e = 0; e < 4; e++) {
            double p = exp(la[r * 4 + e]) / z;
            h -= p * log(p);
        }
        want += h / 3.0;
    }
    CHECK(fabs(c.entropy - want) < 1e-9, "entropy %g, want %g", c.entropy, want);
    double lh = -(0.5 * log(0.5) + (2.0 / 6) * log(2.0 / 6) + (1.0 / 6) * log(1.0 / 6));
    CHECK(fabs(c.load_entropy - lh) < 1e-9);
    CHECK(md_moe_stats_get(s, 0, 1, &c) == 1);
    CHECK(c.load[2] == 1 && c.load[3] == 2 && c.load[0] == 1 && c.load[1] == 0);
    CHECK(md_moe_stats_get(s, 1, 0, &c) == 1 && c.rows == 1 && c.load[0] == 1 && c.load[1] == 1);
    CHECK(md_moe_stats_get(s, 1, 1, &c) == 0);

    /* An explicit boundary after an empty call does not add a call. */
    md_moe_stats_next_call(s);
    md_moe_stats_next_call(s);
    feed(s, &b, lb, 2);
    CHECK(md_moe_stats_calls(s) == 3);

    char dir[] = "/tmp/md_moe_stats_XXXXXX";
    if (!CHECK(mkdtemp(dir) != NULL)) {
        md_moe_stats_free(s);
        return md_test_finish("test_moe_stats");
    }
    char json[256], png[256];
    snprintf(json, sizeof json, "%s/stats.json", dir);
    snprintf(png, sizeof png, "%s/stats.png", dir);
    mdh_error err = {0};
    CHECK(md_moe_stats_write_json(s, json, &err) == MDIFF_OK, "%s", err.msg);
    CHECK(md_moe_stats_write_heatmap(s, png, 4, &err) == MDIFF_OK, "%s", err.msg);
    cJSON *j = md_test_read_json(json);
    CHECK(j != NULL);
    if (j) {
        CHECK(cJSON_GetObjectItem(j, "calls")->valueint == 3);
        const cJSON *layers = cJSON_GetObjectItem(j, "layers");
        CHECK(cJSON_GetArraySize(layers) == 2);
        const cJSON *tot = cJSON_GetObjectItem(cJSON_GetArrayItem(layers, 0), "total_load");
        CHECK(cJSON_GetArrayItem(tot, 0)->valueint == 4);
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "records")) == 4);
        cJSON_Delete(j);
    }
    /* The bare grid: 3 calls x 4 px wide, 8 expert rows x 4 px + a 2 px
     * separator high; the PNG is the labelled map, larger. */
    md_heatmap bare, labelled;
    CHECK(md_moe_heatmap_render(s, 4, 0, &bare, &err) == MDIFF_OK, "%s", err.msg);
    CHECK(bare.width == 12 && bare.height == 34, "bare %dx%d", bare.width, bare.height);
    CHECK(md_moe_heatmap_render(s, 4, 1, &labelled, &err) == MDIFF_OK, "%s", err.msg);
    FILE *f = fopen(png, "rb");
    unsigned char hdr[24] = {0};
    CHECK(f && fread(hdr, 1, 24, f) == 24);
    if (f)
        fclose(f);
    int pw = hdr[16] << 24 | hdr[17] << 16 | hdr[18] << 8 | hdr[19];
    int ph = hdr[20] << 24 | hdr[21] << 16 | hdr[22] << 8 | hdr[23];
    CHECK(pw == labelled.width && ph == labelled.height && pw > 12 && ph > 34, "png %dx%d", pw,
          ph);
    md_moe_heatmap_free(&bare);
    md_moe_heatmap_free(&labelled);
    remove(json);
    remove(png);
    rmdir(dir);
    md_moe_stats_free(s);
    return md_test_finish("test_moe_stats");
}
