/* "segmoe_config" / "moe_config" members of a UNet config.json. */
#include <string.h>

#include "config_json.h"
#include "json_get.h"

/* The keys each form reads. A key in neither the form's list nor its
 * ignored list is an error: a setting this engine did not apply would
 * otherwise change the model's output without a word. */
static const char *const segmoe_keys[] = {
    "num_experts",  "num_experts_per_tok", "moe_layers", "type",         "down_idx_start",
    "down_idx_end", "up_idx_start",        "up_idx_end", "shared_expert", NULL};
/* SegMoE copies the recipe it merged the model from into segmoe_config:
 * the base and source models, their routing prompts, LoRAs and how the
 * gates were initialised (gate_init_seed: the seed of moe-diffuse merge's
 * gate-init noise). They matter only while merging; the saved weights
 * already hold their result. */
static const char *const segmoe_ignored[] = {"base_model", "experts", "loras", "init",
                                             "gate_init_seed", NULL};
static const char *const own_keys[] = {
    "num_experts",   "top_k",          "num_experts_per_tok", "routing",      "moe_layers",
    "shared_expert", "down_idx_start", "down_idx_end",        "up_idx_start", "up_idx_end",
    NULL};

static md_status moe_layers(const char *s, const char *file, md_moe_config *cfg, md_error *err)
{
    if (!strcmp(s, "ff")) {
        cfg->moe_ff = 1;
    } else if (!strcmp(s, "attn")) {
        cfg->moe_attn = 1;
    } else if (!strcmp(s, "all")) {
        cfg->moe_ff = 1;
        cfg->moe_attn = 1;
    } else {
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: \"moe_layers\": \"%s\" is not supported (ff, attn, all)", file, s);
    }
    return MD_OK;
}

md_status md_moe_config_from_json(const cJSON *j, int is_segmoe, int levels, const char *file,
                                  md_moe_config *cfg, md_error *err)
{
    const char *what = is_segmoe ? "segmoe_config" : "moe_config";
    memset(cfg, 0, sizeof *cfg);
    if (!cJSON_IsObject(j))
        return md_fail(err, MD_ERR_INVALID, "%s: \"%s\" is not an object", file, what);
    MD_TRY(md_json_check_keys(j, is_segmoe ? segmoe_keys : own_keys,
                              is_segmoe ? segmoe_ignored : NULL, file, what, err));
    cfg->enabled = 1;
    MD_TRY(md_json_int(j, "num_experts", 0, file, &cfg->num_experts, err));
    /* Both forms: an always-on expert beside the routed ones, weights under
     * <layer>.shared_expert.* (upstream SegMoE has none; default false). */
    MD_TRY(md_json_bool(j, "shared_expert", 0, file, &cfg->shared_expert, err));
    const char *layers = NULL;
    /* Defaults of the index bounds: SegMoE's per pipeline type; our own
     * format makes every down and up block MoE. */
    int down_start = 0, down_end = levels, up_start = 0, up_end = levels;
    if (is_segmoe) {
        cfg->routing = MD_ROUTE_SEQUENCE_TOPK;
        MD_TRY(md_json_int(j, "num_experts_per_tok", 1, file, &cfg->top_k, err));
        MD_TRY(md_json_string(j, "moe_layers", "attn", file, &layers, err));
        const char *type = NULL;
        MD_TRY(md_json_string(j, "type", "sd", file, &type, err));
        if (!strcmp(type, "sd")) {
            down_end = levels - 1;
            up_start = 1;
        } else if (!strcmp(type, "sdxl")) {
            down_start = 1;
            up_end = levels - 1;
        } else {
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "%s: segmoe_config \"type\": \"%s\" is not supported (sd, sdxl)", file,
                           type);
        }
    } else {
        int per_tok;
        MD_TRY(md_json_int(j, "num_experts_per_tok", 1, file, &per_tok, err));
        MD_TRY(md_json_int(j, "top_k", per_tok, file, &cfg->top_k, err));
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(j, "num_experts_per_tok");
        if (pt && !cJSON_IsNull(pt) && per_tok != cfg->top_k)
            return md_fail(err, MD_ERR_INVALID,
                           "%s: moe_config \"top_k\" %d and \"num_experts_per_tok\" %d differ",
                           file, cfg->top_k, per_tok);
        MD_TRY(md_json_string(j, "moe_layers", "ff", file, &layers, err));
        const char *routing = NULL;
        MD_TRY(md_json_string(j, "routing", "token", file, &routing, err));
        if (!strcmp(routing, "token"))
            cfg->routing = MD_ROUTE_TOKEN_TOPK;
        else if (!strcmp(routing, "sequence"))
            cfg->routing = MD_ROUTE_SEQUENCE_TOPK;
        else
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "%s: moe_config \"routing\": \"%s\" is not supported (token, sequence)",
                           file, routing);
    }
    MD_TRY(moe_layers(layers, file, cfg, err));
    MD_TRY(md_json_int(j, "down_idx_start", down_start, file, &cfg->down_start, err));
    MD_TRY(md_json_int(j, "down_idx_end", down_end, file, &cfg->down_end, err));
    MD_TRY(md_json_int(j, "up_idx_start", up_start, file, &cfg->up_start, err));
    MD_TRY(md_json_int(j, "up_idx_end", up_end, file, &cfg->up_end, err));
    if (cfg->num_experts < 1)
        return md_fail(err, MD_ERR_INVALID, "%s: %s \"num_experts\" must be at least 1", file, what);
    if (cfg->top_k < 1 || cfg->top_k > cfg->num_experts)
        return md_fail(err, MD_ERR_INVALID, "%s: %s top-k %d must be within 1..num_experts (%d)",
                       file, what, cfg->top_k, cfg->num_experts);
    if (cfg->down_start < 0 || cfg->down_start > cfg->down_end || cfg->down_end > levels ||
        cfg->up_start < 0 || cfg->up_start > cfg->up_end || cfg->up_end > levels)
        return md_fail(err, MD_ERR_INVALID,
                       "%s: %s block ranges down [%d, %d) / up [%d, %d) do not fit %d levels", file,
                       what, cfg->down_start, cfg->down_end, cfg->up_start, cfg->up_end, levels);
    return MD_OK;
}
