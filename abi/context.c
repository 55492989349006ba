/* Contexts: creating one picks a backend (CPU or Vulkan) and loads a model
 * on it; logging goes to the context's callback. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi_internal.h"

void abi_log(mdiff_context *ctx, int level, const char *fmt, ...)
{
    if (!ctx->log || level > ctx->log_level)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ctx->log(ctx->log_user, level, buf);
}

/* The U-Net config of a diffusers folder with the MoE top-k replaced: the
 * loader takes it as an architecture override ({"unet": ...}). */
static md_status top_k_override(const char *dir, int top_k, cJSON **out, md_error *err)
{
    *out = NULL;
    char path[1100];
    snprintf(path, sizeof path, "%s/unet/config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: changing the experts per token needs a diffusers folder with "
                       "unet/config.json",
                       dir);
    char *text = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        text = malloc((size_t)n + 1);
        if (text && fread(text, 1, (size_t)n, f) == (size_t)n)
            text[n] = '\0';
        else {
            free(text);
            text = NULL;
        }
    }
    fclose(f);
    if (!text)
        return md_fail(err, MD_ERR_IO, "%s: cannot read", path);
    cJSON *unet = cJSON_Parse(text);
    free(text);
    if (!unet)
        return md_fail(err, MD_ERR_FORMAT, "%s: not valid JSON", path);
    cJSON *seg = cJSON_GetObjectItemCaseSensitive(unet, "segmoe_config");
    cJSON *own = cJSON_GetObjectItemCaseSensitive(unet, "moe_config");
    cJSON *moe = cJSON_IsObject(seg) ? seg : cJSON_IsObject(own) ? own : NULL;
    if (!moe) {
        cJSON_Delete(unet);
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: the model has no experts to choose", dir);
    }
    /* SegMoE names it num_experts_per_tok; our format prefers top_k. */
    const char *key = moe == seg ? "num_experts_per_tok" : "top_k";
    cJSON_DeleteItemFromObjectCaseSensitive(moe, key);
    cJSON *root = cJSON_CreateObject();
    if (!cJSON_AddNumberToObject(moe, key, top_k) || !root) {
        cJSON_Delete(unet);
        cJSON_Delete(root);
        return md_fail(err, MD_ERR_NOMEM, "out of memory");
    }
    cJSON_AddItemToObject(root, "unet", unet);
    *out = root;
    return MD_OK;
}

void abi_stats_clear(mdiff_context *ctx)
{
    for (int i = 0; i < ctx->nstats; i++)
        free(ctx->stats[i].counts);
    ctx->nstats = 0;
}

md_status abi_load_model(mdiff_context *ctx, int top_k, md_error *err)
{
    cJSON *arch = NULL;
    if (top_k > 0) {
        md_status st = top_k_override(ctx->model_path, top_k, &arch, err);
        if (st != MD_OK)
            return st;
    }
    md_model_options mo = {.backend = ctx->be, .architecture = arch};
    md_model *m = NULL;
    md_status st = md_model_load(ctx->model_path, &mo, &m, err);
    cJSON_Delete(arch);
    /* A bad value inside the model's files is a malformed model, not a bad
     * argument of the host's. */
    if (st == MD_ERR_INVALID)
        st = MD_ERR_FORMAT;
    md_unet_state *state = NULL;
    if (st == MD_OK && (st = md_unet_state_new(m->unet, &state, err)) != MD_OK)
        md_model_free(m);
    if (st != MD_OK)
        return st;
    /* Only now is the old model let go, so a failed reload changes nothing. */
    md_unet_state_free(ctx->run_state);
    md_model_free(ctx->model);
    ctx->model = m;
    ctx->run_state = state;
    ctx->top_k = top_k;
    abi_stats_clear(ctx); /* the layers the statistics pointed at are gone */
    abi_update_observer(ctx);
    return MD_OK;
}

int abi_context_create(const mdiff_context_params *params, mdiff_context **out, char *msg,
                       size_t msg_cap)
{
    abi_message(msg, msg_cap, "");
    if (!out) {
        abi_message(msg, msg_cap, "context_create: out is NULL");
        return MDIFF_ERR_INVALID;
    }
    *out = NULL;
    mdiff_context_params p = {.struct_size = sizeof p, .log_level = MDIFF_LOG_INFO, .device = -1};
    if (!params || abi_read_struct(&p, sizeof p, params, ABI_1_0_CONTEXT_PARAMS_SIZE) !=
                       MDIFF_OK) {
        abi_message(msg, msg_cap,
                    "context_create: params missing or struct_size too small (use "
                    "context_params_init)");
        return MDIFF_ERR_INVALID;
    }
    if (!p.model_path || !*p.model_path) {
        abi_message(msg, msg_cap, "context_create: no model_path given");
        return MDIFF_ERR_INVALID;
    }
    if (strlen(p.model_path) >= sizeof(((mdiff_context *)0)->model_path)) {
        abi_message(msg, msg_cap, "context_create: model_path is too long");
        return MDIFF_ERR_INVALID;
    }
    if (p.threads < 0 || p.threads > 1024 || p.moe_top_k < 0 || p.moe_top_k > 16 ||
        p.device < -1) {
        abi_message(msg, msg_cap,
                    "context_create: threads must be 0..1024, moe_top_k 0..16 and device >= -1");
        return MDIFF_ERR_INVALID;
    }
    if (p.flags & ~MDIFF_CONTEXT_PROFILE) {
        abi_message(msg, msg_cap, "context_create: unknown flags");
        return MDIFF_ERR_INVALID;
    }
    mdiff_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        abi_message(msg, msg_cap, "out of memory");
        return MDIFF_ERR_NOMEM;
    }
    memcpy(ctx->model_path, p.model_path, strlen(p.model_path) + 1);
    ctx->threads = p.threads;
    ctx->progress = p.progress;
    ctx->progress_user = p.progress_user;
    ctx->log = p.log;
    ctx->log_user = p.log_user;
    ctx->log_level = p.log_level;
    atomic_init(&ctx->busy, 0);
    atomic_init(&ctx->cancel, 0);

    /* Hosts built before 1.2 always ran on the CPU; they keep doing so. */
    if (params->struct_size < offsetof(mdiff_context_params, backend) + sizeof(p.backend))
        p.backend = "cpu";
    md_error err = {0};
    md_backend_request req = {.name = p.backend, .device = p.device, .threads = p.threads,
                              .profile = (p.flags & MDIFF_CONTEXT_PROFILE) != 0};
    md_status st = md_backend_open(&req, &ctx->be, ctx->backend_note, sizeof ctx->backend_note,
                                   &err);
    if (st == MD_OK) {
        ctx->profile = req.profile;
        /* An explicit "vulkan" that ended on the CPU is worth a warning. */
        int fell_back = ((p.backend && !strcmp(p.backend, "vulkan")) || p.device >= 0) &&
                        strcmp(ctx->be->name, "vulkan");
        abi_log(ctx, fell_back ? MDIFF_LOG_WARN : MDIFF_LOG_INFO, "%s", ctx->backend_note);
        st = abi_load_model(ctx, p.moe_top_k, &err);
    }
    if (st != MD_OK) {
        abi_log(ctx, MDIFF_LOG_ERROR, "%s", err.msg);
        abi_message(msg, msg_cap, err.msg);
        abi_context_destroy(ctx);
        return abi_status(st);
    }
    mdiff_model_info info = {.struct_size = sizeof info};
    abi_model_info(ctx, &info);
    abi_log(ctx, MDIFF_LOG_INFO,
            "loaded %s: %llu parameters (%llu active), native %dx%d, %d MoE layers of %d experts "
            "(top %d)",
            ctx->model_path, (unsigned long long)info.params_total,
            (unsigned long long)info.params_active, info.native_width, info.native_height,
            info.moe_layers, info.num_experts, info.top_k);
    *out = ctx;
    return MDIFF_OK;
}

void abi_context_destroy(mdiff_context *ctx)
{
    if (!ctx)
        return;
    md_unet_state_free(ctx->run_state);
    md_model_free(ctx->model);
    md_backend_destroy(ctx->be);
    abi_stats_clear(ctx);
    free(ctx->stats);
    free(ctx);
}
