#include "engine.h"

#include <stdio.h>
#include <string.h>

#include "../host/a1111_hashes.h"
#include "cli.h"

const mdiff_api *md_cli_api(void)
{
    const mdiff_api *api = moediffuse_get_api(MOEDIFFUSE_ABI_MAJOR, MOEDIFFUSE_ABI_MINOR);
    if (!api || api->abi_minor < MOEDIFFUSE_ABI_MINOR) {
        fprintf(stderr, "moe-diffuse: libmoediffuse serves ABI %d.%d; this program needs %d.%d\n",
                api ? api->abi_major : 0, api ? api->abi_minor : 0, MOEDIFFUSE_ABI_MAJOR,
                MOEDIFFUSE_ABI_MINOR);
        return NULL;
    }
    return api;
}

/* Errors come back as the failing call's message; the log adds the rest. */
static void on_log(void *user, int level, const char *message)
{
    (void)user;
    if (level == MDIFF_LOG_ERROR)
        return;
    fprintf(stderr, "moe-diffuse: %s%s\n", level <= MDIFF_LOG_WARN ? "warning: " : "", message);
}

int md_cli_engine_open(md_cli_engine *e, const md_cli_engine_options *o, char *msg, size_t cap)
{
    memset(e, 0, sizeof *e);
    e->api = md_cli_api();
    if (!e->api) {
        snprintf(msg, cap, "the library is too old for this program");
        return MD_EXIT_FAILURE;
    }
    snprintf(e->model_path, sizeof e->model_path, "%s", o->model);
    mdiff_context_params cp;
    e->api->context_params_init(&cp, sizeof cp);
    cp.model_path = o->model;
    cp.threads = o->threads;
    cp.backend = o->backend;
    cp.device = o->device;
    cp.flags = o->profile ? MDIFF_CONTEXT_PROFILE : 0;
    cp.max_expert_memory = o->max_expert_memory;
    if (o->log_level >= 0) {
        cp.log = on_log;
        cp.log_level = o->log_level;
    }
    int rc = e->api->context_create(&cp, &e->ctx, msg, cap);
    if (rc != MDIFF_OK)
        return rc == MDIFF_ERR_INVALID ? MD_EXIT_USAGE : MD_EXIT_MODEL;
    e->info.struct_size = sizeof e->info;
    e->api->model_info(e->ctx, &e->info);
    /* Hashed once per file and cached (host/file_hash.h); a model that
     * loaded is readable, so a failure here only leaves the hash out. */
    mdh_error herr = {0};
    if (mdh_model_hash(e->api, e->ctx, e->model_hash, &herr) != MDIFF_OK)
        e->model_hash[0] = '\0';
    return MD_EXIT_OK;
}

void md_cli_engine_close(md_cli_engine *e)
{
    if (e->api)
        e->api->context_destroy(e->ctx);
    e->ctx = NULL;
}

uint64_t md_cli_context_expert_memory(const mdh_request *defaults)
{
    return defaults->expert_memory_percent > 0.0f ? MDIFF_EXPERT_MEMORY_ON_DEMAND
                                                  : defaults->p.max_expert_memory;
}

int md_cli_exit_code(int status)
{
    switch (status) {
    case MDIFF_OK: return MD_EXIT_OK;
    case MDIFF_ERR_CANCELLED: return MD_EXIT_CANCELLED;
    case MDIFF_ERR_IO:
    case MDIFF_ERR_FORMAT: return MD_EXIT_IO;
    case MDIFF_ERR_INVALID:
    case MDIFF_ERR_UNSUPPORTED: return MD_EXIT_USAGE;
    default: return MD_EXIT_FAILURE;
    }
}

int md_cli_sampler_count(void)
{
    const mdiff_api *api = moediffuse_get_api(MOEDIFFUSE_ABI_MAJOR, MOEDIFFUSE_ABI_MINOR);
    int n = 0;
    while (api && api->sampler_name(n))
        n++;
    return n;
}

const char *md_cli_sampler_name(int index)
{
    const mdiff_api *api = moediffuse_get_api(MOEDIFFUSE_ABI_MAJOR, MOEDIFFUSE_ABI_MINOR);
    const char *name = api ? api->sampler_name(index) : NULL;
    return name ? name : "?";
}
