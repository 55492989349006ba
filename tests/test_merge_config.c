/* The SegMoE merge config reader (merge/merge_config.c): YAML typed as
 * SegMoE's SafeLoader types it, defaults, paths resolved next to the file,
 * LoRA prompts appended to their expert's, and every bad input refused
 * with the file and key in the message. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "merge/merge_config.h"
#include "test_support.h"

static char dir[512], path[600];

static md_status parse(const char *yaml, md_merge_config *c, md_error *err)
{
    return md_merge_config_parse(path, yaml, strlen(yaml), c, err);
}

static void test_good(void)
{
    const char *yaml = "base_model: base\n"
                       "num_experts: 7\n" /* informational: the list decides */
                       "num_experts_per_tok: 2\n"
                       "moe_layers: all\n"
                       "type: sd\n"
                       "experts:\n"
                       "  - source_model: src.safetensors\n"
                       "    positive_prompt: \"(photo:1.3), 8K\"\n"
                       "    negative_prompt: blurry\n"
                       "    loras:\n"
                       "      - source_model: lora.safetensors\n"
                       "        positive_prompt: extra\n"
                       "  - source_model: base\n";
    md_merge_config c;
    md_error err = {0};
    if (!CHECK(parse(yaml, &c, &err) == MD_OK, "good config: %s", err.msg))
        return;
    char want[700];
    snprintf(want, sizeof want, "%s/base", dir);
    CHECK(!strcmp(c.base, want), "base resolved next to the file: %s", c.base);
    CHECK(c.nexperts == 2 && c.top_k == 2 && c.layers == MD_MERGE_LAYERS_ALL && !c.sdxl &&
          c.init == MD_MERGE_INIT_HIDDEN);
    CHECK(!strcmp(c.experts[0].positive, "(photo:1.3), 8K extra"), "LoRA prompt appended: '%s'",
          c.experts[0].positive);
    CHECK(!strcmp(c.experts[0].negative, "blurry") && !strcmp(c.experts[1].positive, "") &&
          c.experts[0].nloras == 1 && c.experts[0].loras[0].scale == 1.0f);
    const cJSON *n = cJSON_GetObjectItem(c.yaml, "num_experts");
    CHECK(cJSON_IsNumber(n) && n->valueint == 2, "saved num_experts is the count");
    CHECK(cJSON_IsString(cJSON_GetObjectItem(c.yaml, "type")), "type kept as a string");
    md_merge_config_free(&c);

    /* SegMoE's defaults: attn, top-1, type sdxl. */
    if (!CHECK(parse("base_model: base\nexperts:\n  - source_model: base\n", &c, &err) == MD_OK,
               "minimal config: %s", err.msg))
        return;
    CHECK(c.layers == MD_MERGE_LAYERS_ATTN && c.top_k == 1 && c.sdxl == 1);
    CHECK(cJSON_IsString(cJSON_GetObjectItem(c.yaml, "moe_layers")) &&
          cJSON_GetObjectItem(c.yaml, "num_experts_per_tok")->valueint == 1);
    md_merge_config_free(&c);
}

static void expect_error(const char *name, const char *yaml, md_status code, const char *text)
{
    md_merge_config c;
    md_error err = {0};
    md_status s = parse(yaml, &c, &err);
    CHECK(s == code && strstr(err.msg, text) && strstr(err.msg, path),
          "%s: status %d (want %d), '%s' (want '%s' and the file)", name, s, code, err.msg, text);
    if (s == MD_OK)
        md_merge_config_free(&c);
}

int main(void)
{
    if (!md_test_make_temp_dir(dir, sizeof dir, "merge-config-"))
        return 1;
    snprintf(path, sizeof path, "%s/merge.yaml", dir);
    char p[700];
    const char *files[] = {"src.safetensors", "lora.safetensors", "old.ckpt"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        FILE *f = fopen(p, "w");
        if (f)
            fclose(f);
    }
    snprintf(p, sizeof p, "%s/base", dir);
    mkdir(p, 0755);
    test_good();

    const char *head = "base_model: base\nexperts:\n  - source_model: base\n";
    char y[512];
    expect_error("missing source",
                 "base_model: base\nexperts:\n  - source_model: nowhere\n", MD_ERR_IO,
                 "experts[0].source_model: 'nowhere' does not exist");
    expect_error("pickle source", "base_model: base\nexperts:\n  - source_model: old.ckpt\n",
                 MD_ERR_UNSUPPORTED, "experts[0].source_model: 'old.ckpt' is a pickle");
    expect_error("URL source",
                 "base_model: base\nexperts:\n  - source_model: https://civitai.com/x\n",
                 MD_ERR_UNSUPPORTED, "is a URL");
    snprintf(y, sizeof y, "%snum_experts_per_tok: 2\n", head);
    expect_error("top-k above the experts", y, MD_ERR_INVALID,
                 "num_experts_per_tok: 2 is more than the 1 experts");
    snprintf(y, sizeof y, "%smoe_layers: conv\n", head);
    expect_error("moe_layers", y, MD_ERR_INVALID, "moe_layers: 'conv' is not one of");
    snprintf(y, sizeof y, "%stype: sd3\n", head);
    expect_error("type", y, MD_ERR_INVALID, "type: 'sd3' is not one of sd, sdxl");
    snprintf(y, sizeof y, "%sinit: zeros\n", head);
    expect_error("init", y, MD_ERR_INVALID, "init: 'zeros' is not one of hidden, random");
    snprintf(y, sizeof y, "%sgate_noise: 1\n", head);
    expect_error("unknown key", y, MD_ERR_INVALID, "unknown key 'gate_noise'");
    expect_error("unknown expert key",
                 "base_model: base\nexperts:\n  - source_model: base\n    weight: 2\n",
                 MD_ERR_INVALID, "experts[0]: unknown key 'weight'");
    /* Fuzzing finding: a number beyond int was cast before its range was checked. */
    snprintf(y, sizeof y, "%snum_experts_per_tok: 1.5e108\n", head);
    expect_error("huge top-k", y, MD_ERR_INVALID, "num_experts_per_tok: must be a whole number");
    snprintf(y, sizeof y, "%snum_experts: -1e300\n", head);
    expect_error("huge num_experts", y, MD_ERR_INVALID, "num_experts: must be a whole number");
    expect_error("duplicate key", "base_model: base\nbase_model: base\n", MD_ERR_INVALID,
                 "key 'base_model' appears twice");
    expect_error("no experts", "base_model: base\n", MD_ERR_INVALID, "experts: missing");
    expect_error("prompt not a string",
                 "base_model: base\nexperts:\n  - source_model: base\n    positive_prompt: 12\n",
                 MD_ERR_INVALID, "experts[0].positive_prompt: must be a string");
    expect_error("not YAML", "base_model: [\n", MD_ERR_INVALID, "not valid YAML");
    expect_error("not a mapping", "- a\n- b\n", MD_ERR_INVALID, "must be a mapping");
    /* An alias bomb stays small: refused once it expands past the limit. */
    expect_error("alias bomb",
                 "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                 "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c]\n"
                 "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
                 MD_ERR_INVALID, "repeats too deeply");
    md_test_remove_tree(dir);
    return md_test_finish("test_merge_config");
}
