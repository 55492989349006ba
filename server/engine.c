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

/* Loads path into d's model fields (d->api set); s gives the settings and
 * receives the log. */
static int load(md_server *d, md_server *s, const char *path, char *msg, size_t cap)
{
    mdiff_context_params cp;
    d->api->context_params_init(&cp, sizeof cp);
    cp.model_path = path;
    cp.threads = s->cfg.threads;
    cp.backend = s->cfg.backend;
    cp.device = s->cfg.device;
    cp.log = on_log;
    cp.log_user = s;
    cp.log_level = MDIFF_LOG_WARN;
    int rc = d->api->context_create(&cp, &d->ctx, msg, cap);
    if (rc != MDIFF_OK)
        return rc;
    d->info.struct_size = sizeof d->info;
    d->api->model_info(d->ctx, &d->info);
    snprintf(d->model_path, sizeof d->model_path, "%s", path);
    name_of(path, d->model_name, sizeof d->model_name);
    /* The hash is A1111's way to name a model; one that cannot be computed
     * only leaves it out. */
    const mdiff_model_files_api *files = d->api->get_feature(MDIFF_FEATURE_MODEL_FILES);
    mdh_error err = {0};
    if (files && files->hash_file(d->ctx, d->model_file, sizeof d->model_file) > 0 &&
        mdh_file_hash(d->model_file, MDH_HASH_FILE, d->sha256, &err) == MDIFF_OK)
        snprintf(d->hash10, sizeof d->hash10, "%.10s", d->sha256);
    else
        d->sha256[0] = d->hash10[0] = '\0';
    /* Routing counts for /moe/v1/stats: on for the context's life. */
    const mdiff_router_stats_api *rs = d->api->get_feature(MDIFF_FEATURE_ROUTER_STATS);
    if (rs && d->info.routing != MDIFF_ROUTING_NONE)
        rs->enable(d->ctx, 1);
    return MDIFF_OK;
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
    return load(s, s, cfg->model, msg, cap);
}

int md_server_switch(md_server *s, const char *path, char *msg, size_t cap)
{
    /* The new model loads beside the old one, so a failure keeps the old. */
    md_server *n = calloc(1, sizeof *n);
    if (!n) {
        snprintf(msg, cap, "out of memory");
        return MDIFF_ERR_NOMEM;
    }
    n->api = s->api;
    int rc = load(n, s, path, msg, cap);
    if (rc == MDIFF_OK) {
        pthread_mutex_lock(&s->state_lock);
        mdiff_context *old = s->ctx;
        s->ctx = n->ctx;
        s->info = n->info;
        memcpy(s->model_path, n->model_path, sizeof s->model_path);
        memcpy(s->model_name, n->model_name, sizeof s->model_name);
        memcpy(s->model_file, n->model_file, sizeof s->model_file);
        memcpy(s->sha256, n->sha256, sizeof s->sha256);
        memcpy(s->hash10, n->hash10, sizeof s->hash10);
        free(s->last_stats); /* of the other model */
        s->last_stats = NULL;
        pthread_mutex_unlock(&s->state_lock);
        s->api->context_destroy(old);
    }
    free(n);
    return rc;
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
