/* The MoE members of a UNet config: shared_expert in both forms, every key
 * checked against the known list (unknown ones named in the error, SegMoE's
 * merge recipe accepted), and the keys real SegMoE models carry (the
 * golden cases' segmoe_config, saved by SegMoE) still loading. */
#include <stdio.h>
#include <string.h>

#include "config/config_json.h"
#include "test_support.h"

#define FILE_LABEL "m/unet/config.json"

/* Parses {"segmoe_config" or "moe_config": <body>} with 2 levels. */
static md_status parse(int segmoe, const char *body, md_moe_config *m, md_error *err)
{
    char text[2048];
    snprintf(text, sizeof text, "{\"%s\": %s}", segmoe ? "segmoe_config" : "moe_config", body);
    cJSON *j = cJSON_Parse(text);
    if (!j) {
        FAIL("test JSON does not parse: %s", text);
        return MD_ERR_INVALID;
    }
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, segmoe ? "segmoe_config" : "moe_config");
    memset(err, 0, sizeof *err);
    md_status s = md_moe_config_from_json(o, segmoe, 2, FILE_LABEL, m, err);
    cJSON_Delete(j);
    return s;
}

static void test_shared_expert(void)
{
    md_moe_config m;
    md_error err;
    for (int segmoe = 0; segmoe < 2; segmoe++) {
        CHECK(parse(segmoe, "{\"num_experts\": 4, \"num_experts_per_tok\": 2}", &m, &err) == MD_OK,
              "%s", err.msg);
        CHECK(m.enabled && !m.shared_expert && m.top_k == 2, "segmoe=%d default", segmoe);
        CHECK(parse(segmoe, "{\"num_experts\": 4, \"shared_expert\": true}", &m, &err) == MD_OK,
              "%s", err.msg);
        CHECK(m.shared_expert == 1, "segmoe=%d: shared_expert true read", segmoe);
        CHECK(m.routing == (segmoe ? MD_ROUTE_SEQUENCE_TOPK : MD_ROUTE_TOKEN_TOPK));
        CHECK(parse(segmoe, "{\"num_experts\": 4, \"shared_expert\": false}", &m, &err) == MD_OK &&
              !m.shared_expert);
        /* A count or a string is not the documented bool. */
        CHECK(parse(segmoe, "{\"num_experts\": 4, \"shared_expert\": 1}", &m, &err) ==
                      MD_ERR_INVALID &&
                  strstr(err.msg, FILE_LABEL) && strstr(err.msg, "shared_expert"),
              "%s", err.msg);
    }
}

static void expect_unknown(int segmoe, const char *body, const char *key)
{
    md_moe_config m;
    md_error err;
    char want[128];
    snprintf(want, sizeof want, FILE_LABEL ": %s: unknown key \"%s\"",
             segmoe ? "segmoe_config" : "moe_config", key);
    md_status s = parse(segmoe, body, &m, &err);
    CHECK(s == MD_ERR_UNSUPPORTED && strstr(err.msg, want), "%s: got %d '%s', want '%s'", body,
          (int)s, err.msg, want);
}

static void test_unknown_keys(void)
{
    expect_unknown(1, "{\"num_experts\": 2, \"foo\": 1}", "foo");
    expect_unknown(0, "{\"num_experts\": 2, \"foo\": 1}", "foo");
    /* Keys of the other form, or of other MoE formats, are not silently
     * taken either: routing is not SegMoE's, type not ours. */
    expect_unknown(1, "{\"num_experts\": 2, \"routing\": \"token\"}", "routing");
    expect_unknown(1, "{\"num_experts\": 2, \"top_k\": 2}", "top_k");
    expect_unknown(0, "{\"num_experts\": 2, \"type\": \"sd\"}", "type");
    expect_unknown(0, "{\"num_experts\": 2, \"base_model\": \"x\"}", "base_model");
    expect_unknown(1, "{\"num_experts\": 2, \"num_shared_experts\": 1}", "num_shared_experts");
    expect_unknown(0, "{\"num_experts\": 2, \"shared_expert_intermediate_size\": 64}",
                   "shared_expert_intermediate_size");
    /* An unknown key fails even when a known one is fine before it. */
    expect_unknown(1, "{\"num_experts\": 2, \"moe_layers\": \"ff\", \"Shared_Expert\": true}",
                   "Shared_Expert");

    /* Unsupported values of known keys name the key. */
    md_moe_config m;
    md_error err;
    CHECK(parse(0, "{\"num_experts\": 4, \"top_k\": 2, \"num_experts_per_tok\": 1}", &m, &err) ==
                  MD_ERR_INVALID &&
              strstr(err.msg, "top_k") && strstr(err.msg, "num_experts_per_tok"),
          "%s", err.msg);
    CHECK(parse(0, "{\"num_experts\": 4, \"top_k\": 2, \"num_experts_per_tok\": 2}", &m, &err) ==
                  MD_OK &&
              m.top_k == 2,
          "%s", err.msg);
    CHECK(parse(0, "{\"num_experts\": 4, \"routing\": \"expert_choice\"}", &m, &err) ==
                  MD_ERR_UNSUPPORTED &&
              strstr(err.msg, "routing"),
          "%s", err.msg);
}

/* SegMoE's merge recipe rides along in segmoe_config and loads. */
static void test_segmoe_recipe(void)
{
    md_moe_config m;
    md_error err;
    CHECK(parse(1,
                "{\"base_model\": \"b\", \"num_experts\": 2, \"num_experts_per_tok\": 1, "
                "\"moe_layers\": \"all\", \"type\": \"sd\", \"init\": \"hidden\", \"experts\": "
                "[{\"source_model\": \"s\", \"positive_prompt\": \"p\", \"negative_prompt\": "
                "\"n\"}], \"loras\": [{\"source_model\": \"l\"}], \"down_idx_start\": 0, "
                "\"down_idx_end\": 1, \"up_idx_start\": 1, \"up_idx_end\": 2}",
                &m, &err) == MD_OK,
          "%s", err.msg);
    CHECK(m.num_experts == 2 && m.moe_ff && m.moe_attn && !m.shared_expert);
}

/* The golden SegMoE cases were saved by SegMoE itself: their configs keep
 * loading with the key check on. */
static void test_golden_segmoe(void)
{
    const char *cases[] = {"tiny-sd-moe/unet/config.json", "tiny-segmoe-sdxl/unet/config.json"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *j = md_test_load_golden_config(cases[i]);
        if (!CHECK(j != NULL, "%s: cannot read", cases[i]))
            continue;
        md_unet_config u;
        md_error err = {0};
        CHECK(md_unet_config_from_json(j, cases[i], &u, &err) == MD_OK, "%s", err.msg);
        CHECK(u.moe.enabled && !u.moe.shared_expert, "%s", cases[i]);
        cJSON_Delete(j);
    }
}

int main(void)
{
    test_shared_expert();
    test_unknown_keys();
    test_segmoe_recipe();
    test_golden_segmoe();
    return md_test_finish("test_moe_config");
}
