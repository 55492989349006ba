/* The one loaded model and the figures /sdapi/v1/sd-models reports of it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../host/file_hash.h"
#include "server.h"

double md_server_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void on_log(void *user, int level, const char *message)
{
    const md_server *s = user;
    if (level == MDIFF_LOG_ERROR || s->cfg.quiet)
        return; /* errors come back to the request that failed */
    fprintf(stderr, "moe-diffuse serve: %s%s\n", level <= MDIFF_LOG_WARN ? "warning: " : "",
            message);
}

/* "tiny-sd-dense" of "/models/tiny-sd-dense/" or "x.safetensors". */
static void name_of(const char *path, char *out, size_t cap)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';
    const char *base = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
    snprintf(out, cap, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot && !strcmp(dot, ".safetensors"))
        *dot = '\0';
}

int md_server_open(md_server *s, const md_server_config *cfg, char *msg, size_t cap)
{
    memset(s, 0, sizeof *s);
    s->client_fd = -1;
    s->cfg = *cfg;
    pthread_mutex_init(&s->gen_lock, NULL);
    pthread_mutex_init(&s->state_lock, NULL);
    s->api = moediffuse_get_api(MOEDIFFUSE_ABI_MAJOR, MOEDIFFUSE_ABI_MINOR);
    if (!s->api || s->api->abi_minor < MOEDIFFUSE_ABI_MINOR) {
        snprintf(msg, cap, "libmoediffuse serves ABI %d.%d; this program needs %d.%d",
                 s->api ? s->api->abi_major : 0, s->api ? s->api->abi_minor : 0,
                 MOEDIFFUSE_ABI_MAJOR, MOEDIFFUSE_ABI_MINOR);
        s->api = NULL;
        return MDIFF_ERR_UNSUPPORTED;
    }
    mdiff_context_params cp;
    s->api->context_params_init(&cp, sizeof cp);
    cp.model_path = cfg->model;
    cp.threads = cfg->threads;
    cp.backend = cfg->backend;
    cp.device = cfg->device;
    cp.log = on_log;
    cp.log_user = s;
    cp.log_level = MDIFF_LOG_WARN;
    int rc = s->api->context_create(&cp, &s->ctx, msg, cap);
    if (rc != MDIFF_OK)
        return rc;
    s->info.struct_size = sizeof s->info;
    s->api->model_info(s->ctx, &s->info);
    name_of(cfg->model, s->model_name, sizeof s->model_name);
    /* The hash is A1111's way to name a model; one that cannot be computed
     * only leaves it out. */
    const mdiff_model_files_api *files = s->api->get_feature(MDIFF_FEATURE_MODEL_FILES);
    mdh_error err = {0};
    if (files && files->hash_file(s->ctx, s->model_file, sizeof s->model_file) > 0 &&
        mdh_file_hash(s->model_file, MDH_HASH_FILE, s->sha256, &err) == MDIFF_OK)
        snprintf(s->hash10, sizeof s->hash10, "%.10s", s->sha256);
    else
        s->sha256[0] = s->hash10[0] = '\0';
    /* Routing counts for /moe/v1/stats: on for the context's life. */
    const mdiff_router_stats_api *rs = s->api->get_feature(MDIFF_FEATURE_ROUTER_STATS);
    if (rs && s->info.routing != MDIFF_ROUTING_NONE)
        rs->enable(s->ctx, 1);
    return MDIFF_OK;
}

void md_server_close(md_server *s)
{
    if (s->api)
        s->api->context_destroy(s->ctx);
    s->ctx = NULL;
    free(s->preview);
    free(s->last_stats);
    s->preview = NULL;
    s->last_stats = NULL;
    pthread_mutex_destroy(&s->gen_lock);
    pthread_mutex_destroy(&s->state_lock);
}
