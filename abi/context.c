/* Contexts: creating one picks a backend (CPU or Vulkan) and loads a model
 * on it; logging goes to the context's callback. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi_internal.h"

void abi_log(mdiff_context *ctx, int level, const char *fmt, ...)
{
    if (!ctx->log || level > ctx->log_level || abi_destroy_pending(ctx))
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ctx->log(ctx->log_user, level, buf);
}

void abi_stats_clear(mdiff_context *ctx)
{
    for (int i = 0; i < ctx->nstats; i++)
        free(ctx->stats[i].counts);
    ctx->nstats = 0;
}

static md_status load_model(mdiff_context *ctx, md_error *err)
{
    /* With a bound, device backends leave the experts for the cache. */
    md_model_options mo = {.backend = ctx->be, .defer_experts = ctx->expert_budget != 0};
    md_model *m = NULL;
    md_status st = md_model_load(ctx->model_path, &mo, &m, err);
    /* A bad value inside the model's files is a malformed model, not a bad
     * argument of the host's. */
    if (st == MD_ERR_INVALID)
        st = MD_ERR_FORMAT;
    if (st != MD_OK)
        return st;
    ctx->shared = calloc(1, sizeof *ctx->shared);
    if (!ctx->shared) {
        md_model_free(m);
        return md_fail(err, MD_ERR_NOMEM, "out of memory");
    }
    ctx->shared->model = m;
    ctx->shared->loader = ctx->be;
    atomic_init(&ctx->shared->users, 1);
    ctx->model = m;
    return MD_OK;
}

/* share_model: the other context's loaded model, computed on a CPU backend
 * of this context's own. */
static md_status use_shared_model(mdiff_context *ctx, mdiff_context *owner, int threads,
                                  md_error *err)
{
    if (!owner->shared || !owner->shared->loader->host_weights)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "share_model: the model lives on a %s backend; only models on the CPU "
                       "can be shared",
                       owner->shared ? owner->shared->loader->name : "(none)");
    md_backend_request req = {.name = "cpu", .device = -1, .threads = threads};
    MD_TRY(md_backend_open(&req, &ctx->be, ctx->backend_note, sizeof ctx->backend_note, err));
    atomic_fetch_add(&owner->shared->users, 1);
    ctx->shared = owner->shared;
    ctx->model = owner->shared->model;
    snprintf(ctx->model_path, sizeof ctx->model_path, "%s", owner->model_path);
    return MD_OK;
}

/* A context's default experts per token (0 = the model's own); requests
 * with their own moe_top_k win. Nothing is reloaded. */
md_status abi_set_top_k(mdiff_context *ctx, int top_k, md_error *err)
{
    const md_moe_config *moe = &ctx->model->unet_cfg.moe;
    if (top_k != 0 && !moe->enabled)
        return md_fail(err, MD_ERR_UNSUPPORTED, "the model has no experts to choose");
    if (top_k < 0 || top_k > MDIFF_MAX_TOP_K || (moe->enabled && top_k > moe->num_experts))
        return md_fail(err, MD_ERR_INVALID, "moe_top_k must be 0..%d (got %d)",
                       moe->num_experts < MDIFF_MAX_TOP_K ? moe->num_experts : MDIFF_MAX_TOP_K,
                       top_k);
    ctx->top_k = top_k;
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
    if (params->struct_size < offsetof(mdiff_context_params, share_model) + sizeof(void *))
        p.share_model = NULL;
    if (!p.share_model && (!p.model_path || !*p.model_path)) {
        abi_message(msg, msg_cap, "context_create: no model_path given");
        return MDIFF_ERR_INVALID;
    }
    if (!p.share_model && strlen(p.model_path) >= sizeof(((mdiff_context *)0)->model_path)) {
        abi_message(msg, msg_cap, "context_create: model_path is too long");
        return MDIFF_ERR_INVALID;
    }
    if (p.threads < 0 || p.threads > 1024 || p.moe_top_k < 0 || p.moe_top_k > MDIFF_MAX_TOP_K ||
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
    if (!p.share_model)
        memcpy(ctx->model_path, p.model_path, strlen(p.model_path) + 1);
    ctx->threads = p.threads;
    if (params->struct_size >= offsetof(mdiff_context_params, max_expert_memory) + 8)
        ctx->expert_budget = p.max_expert_memory;
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
    md_status st;
    if (p.share_model) {
        st = use_shared_model(ctx, p.share_model, p.threads, &err);
        if (st == MD_OK)
            st = md_unet_state_new(ctx->model->unet, &ctx->run_state, &err);
        if (st == MD_OK) {
            abi_update_observer(ctx);
            st = abi_set_top_k(ctx, p.moe_top_k, &err);
        }
    } else if ((st = md_backend_open(&req, &ctx->be, ctx->backend_note,
                                     sizeof ctx->backend_note, &err)) == MD_OK) {
        ctx->profile = req.profile;
        /* An explicit "vulkan" that ended on the CPU is worth a warning. */
        int fell_back = ((p.backend && !strcmp(p.backend, "vulkan")) || p.device >= 0) &&
                        strcmp(ctx->be->name, "vulkan");
        abi_log(ctx, fell_back ? MDIFF_LOG_WARN : MDIFF_LOG_INFO, "%s", ctx->backend_note);
        st = load_model(ctx, &err);
        if (st == MD_OK)
            st = md_unet_state_new(ctx->model->unet, &ctx->run_state, &err);
        if (st == MD_OK) {
            abi_update_observer(ctx);
            st = abi_set_top_k(ctx, p.moe_top_k, &err);
        }
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
    for (;;) {
        int state = ABI_IDLE;
        if (atomic_compare_exchange_strong(&ctx->busy, &state, ABI_DESTROY_PENDING))
            break; /* idle: nothing else can use it any more */
        if (state == ABI_DESTROY_PENDING)
            return; /* already destroyed once: the running call frees it */
        /* A call runs: cancel it and leave the freeing to its abi_leave. If
         * it ended meanwhile, the state is idle again and the loop retries. */
        atomic_store(&ctx->cancel, 1);
        state = ABI_IN_CALL;
        if (atomic_compare_exchange_strong(&ctx->busy, &state, ABI_DESTROY_PENDING))
            return;
    }
    abi_context_free(ctx);
}

void abi_context_free(mdiff_context *ctx)
{
    md_unet_state_free(ctx->run_state);
    abi_model_ref *shared = ctx->shared;
    if (!shared || ctx->be != shared->loader)
        md_backend_destroy(ctx->be);
    if (shared && atomic_fetch_sub(&shared->users, 1) == 1) {
        md_model_free(shared->model);
        md_backend_destroy(shared->loader);
        free(shared);
    }
    abi_stats_clear(ctx);
    free(ctx->stats);
    free(ctx->health_layers);
    free(ctx);
}
