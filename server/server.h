/* `moe-diffuse serve`: AUTOMATIC1111's /sdapi/v1 web API over one loaded
 * model (docs/server.md). A host of libmoediffuse like the CLI: the public
 * header and the host-side helper library only.
 *
 * Threads: libmicrohttpd runs each connection on a thread of its own, so
 * /progress and /interrupt answer while a generation runs; generations
 * take gen_lock one at a time (a context runs one generation at a time);
 * what /progress and /moe/v1/stats read is kept under state_lock. */
#ifndef MD_SERVER_H
#define MD_SERVER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "moediffuse.h"

#ifndef MD_VERSION
#define MD_VERSION "0.1.0"
#endif
#ifndef MD_DEFAULT_MODEL
#define MD_DEFAULT_MODEL "models/demo"
#endif

typedef struct md_server_config {
    const char *listen;   /* ADDR:PORT */
    const char *model;    /* NULL with models_dir: its first model */
    const char *models_dir; /* models /sdapi/v1/options can switch among; NULL = none */
    const char *auth;     /* "user:pass" (HTTP basic); NULL = none */
    const char *lora_dir; /* where <lora:NAME:W> tags are found; NULL = none */
    const char *backend;
    int device;
    int threads;
    size_t max_body;      /* bytes of a request body */
    int max_side;         /* pixels a side, of a generation and of an uploaded image */
    int max_images;       /* per request */
    int preview_interval; /* steps between /progress's current_image; 0 = none */
    int quiet;
} md_server_config;

typedef struct md_server {
    md_server_config cfg;
    const mdiff_api *api;
    mdiff_context *ctx;
    mdiff_model_info info;
    char model_path[4096]; /* the loaded model */
    char model_name[256];  /* the model's file or folder name without .safetensors */
    char model_file[4096]; /* the file A1111's hash is of */
    char sha256[65];       /* "" when it could not be computed */
    char hash10[11];
    pthread_mutex_t gen_lock;

    pthread_mutex_t state_lock;    /* guards everything below */
    int stopping;                  /* SIGINT / SIGTERM came: no new generation */
    int busy;
    const char *job;               /* "txt2img" or "img2img" while busy */
    int interrupted;
    int job_count, job_no;         /* images of the running request, and the one running */
    int step, steps;
    double started;                /* monotonic seconds */
    char job_timestamp[16];        /* YYYYmmddHHMMSS, as A1111 */
    uint8_t *preview;              /* the last preview's RGB (preview_w x preview_h); NULL = none */
    int preview_w, preview_h;
    char *last_stats;              /* the last run's routing statistics as JSON; NULL = none */
    int client_fd;                 /* the running request's socket (-1: unknown) */
    int client_gone;               /* its client disconnected: the job was cancelled */
} md_server;

/* A reply: the status and a malloc'd body (JSON unless content_type says). */
typedef struct md_reply {
    int client_fd;       /* the request's socket, to notice a client gone; -1 = unknown */
    int status;
    char *body;
    size_t size;
    const char *content_type;
} md_reply;

/* Sets a JSON body (taking it) or, for a NULL json, a 500. */
void md_reply_json(md_reply *r, int status, cJSON *json);
/* {"detail": msg, "error": a name for status}. */
void md_reply_error(md_reply *r, int status, const char *msg);

double md_server_now(void);

/* engine.c: loads the model (msg says why not). */
int md_server_open(md_server *s, const md_server_config *cfg, char *msg, size_t cap);
void md_server_close(md_server *s);
/* Loads another model in place of the loaded one (which stays on a
 * failure). Called under gen_lock; the fields change under state_lock. */
int md_server_switch(md_server *s, const char *path, char *msg, size_t cap);

/* The endpoints. body/size: the request's body (NUL-terminated). */
void md_api_txt2img(md_server *s, const char *body, size_t size, md_reply *r);
void md_api_img2img(md_server *s, const char *body, size_t size, md_reply *r);
void md_api_progress(md_server *s, int skip_current_image, md_reply *r);
void md_api_interrupt(md_server *s, md_reply *r);
void md_api_samplers(md_server *s, md_reply *r);
void md_api_sd_models(md_server *s, md_reply *r);
void md_api_options_get(md_server *s, md_reply *r);
void md_api_options_set(md_server *s, const char *body, size_t size, md_reply *r);
void md_api_png_info(md_server *s, const char *body, size_t size, md_reply *r);
void md_api_loras(md_server *s, md_reply *r);
void md_api_moe_stats(md_server *s, md_reply *r);

/* http.c: listens on cfg.listen with a thread per connection; NULL (msg
 * says why) when it cannot. */
struct md_http;
struct md_http *md_server_http_start(md_server *s, char *msg, size_t cap);
void md_server_http_stop(struct md_http *h);

/* serve_main.c: `moe-diffuse serve ...`. */
int md_serve_main(int argc, char **argv);

#endif
