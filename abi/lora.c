/* Features "lora" (the LoRAs a request applies, checked as generate would)
 * and "model.files" (the file a Model hash covers). */
#include <stdio.h>
#include <string.h>

#include "../lora/lora_set.h"
#include "../pipeline/request_loras.h"
#include "abi_internal.h"

#define LORA_INFO_MIN (offsetof(mdiff_lora_info, matched) + sizeof(int32_t))

static int list_fail(char *msg, size_t cap, int status, const char *text)
{
    char buf[600];
    snprintf(buf, sizeof buf, "lora.list: %s", text);
    abi_message(msg, cap, buf);
    return status;
}

static void fill(mdiff_lora_info *out, const md_lora_use *u, const md_lora_set *set, int i)
{
    mdiff_lora_info info = {.struct_size = sizeof info, .weight = u->weight,
                            .from_prompt = u->from_prompt};
    snprintf(info.name, sizeof info.name, "%s", u->name);
    snprintf(info.path, sizeof info.path, "%s", u->path);
    md_lora_set_counts(set, i, &info.modules, &info.matched);
    abi_write_struct(out, &info, sizeof info);
}

static int lora_list(mdiff_context *ctx, const mdiff_gen_params *params, mdiff_lora_info *out,
                     int cap, char *msg, size_t msg_cap)
{
    abi_message(msg, msg_cap, "");
    if (!params || cap < 0 || (cap > 0 && !out))
        return list_fail(msg, msg_cap, MDIFF_ERR_INVALID, "params (and out when cap > 0) are required");
    for (int i = 0; i < cap; i++)
        if (out[i].struct_size < LORA_INFO_MIN)
            return list_fail(msg, msg_cap, MDIFF_ERR_INVALID,
                             "out[].struct_size must be sizeof(mdiff_lora_info)");
    mdiff_gen_params p;
    if (abi_read_gen_params(params, &p) != MDIFF_OK)
        return list_fail(msg, msg_cap, MDIFF_ERR_INVALID,
                         "params struct_size too small (use gen_params_init)");
    if (ctx && abi_enter(ctx) != MDIFF_OK)
        return list_fail(msg, msg_cap, MDIFF_ERR_BUSY, "the context is running a generation");
    md_error err = {0};
    md_request_loras loras = {0};
    md_lora_set *set = NULL;
    md_status st = p.prompt ? md_request_loras_collect(&p, &loras, &err)
                            : md_fail(&err, MD_ERR_INVALID, "prompt is NULL");
    if (st == MD_OK)
        st = md_lora_set_open(ctx ? ctx->model : NULL, loras.uses, loras.count,
                              (p.lora_flags & MDIFF_LORA_ALLOW_UNMATCHED) != 0, &set, &err);
    int rc = abi_status(st);
    if (st == MD_OK) {
        for (int i = 0; i < loras.count && i < cap; i++)
            fill(&out[i], &loras.uses[i], set, i);
        rc = loras.count;
    } else {
        list_fail(msg, msg_cap, rc, err.msg);
    }
    md_lora_set_free(set);
    md_request_loras_free(&loras);
    if (ctx)
        abi_leave(ctx);
    return rc;
}

static const mdiff_lora_api lora_v1 = {
    .struct_size = sizeof(mdiff_lora_api),
    .list = lora_list,
};

const void *abi_lora_api(void)
{
    return &lora_v1;
}

static int hash_file(mdiff_context *ctx, char *path, size_t cap)
{
    if (!ctx)
        return MDIFF_ERR_INVALID;
    if (abi_enter(ctx) != MDIFF_OK)
        return MDIFF_ERR_BUSY;
    int rc = abi_text_out(path, cap, ctx->model->hash_file);
    abi_leave(ctx);
    return rc;
}

static const mdiff_model_files_api model_files_v1 = {
    .struct_size = sizeof(mdiff_model_files_api),
    .hash_file = hash_file,
};

const void *abi_model_files_api(void)
{
    return &model_files_v1;
}
