/* POST /sdapi/v1/txt2img and /img2img: one request at a time on the one
 * model, its images returned as base64 PNGs carrying the `parameters`
 * text, with A1111's "parameters" (the request) and "info" (a JSON string). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../host/image_png.h"
#include "../host/infotext.h"
#include "../host/parameters.h"
#include "base64.h"
#include "gen_request.h"
#include "inputs.h"
#include "server.h"

/* The generation's reply under construction. */
typedef struct run {
    md_server *s;
    md_gen_request *g;
    mdiff_gen_params resolved;
    cJSON *images, *seeds, *infotexts;
    int done;
} run;

/* Whether the client closed its connection: nobody waits for the image, so
 * the queue moves on. A peek at the socket, which nothing else reads while
 * its connection's thread is here. */
static int client_gone(int fd)
{
    char c;
    return fd >= 0 && recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Steps and the latest preview for /progress; a non-zero return cancels. */
static int on_progress(void *user, const mdiff_progress *pr)
{
    md_server *s = user;
    pthread_mutex_lock(&s->state_lock);
    if (pr->stage == MDIFF_STAGE_DENOISE) {
        s->step = pr->step;
        s->steps = pr->total;
    }
    const mdiff_image *img = pr->preview;
    if (img && img->data && img->channels == 3 && img->width > 0 && img->height > 0) {
        size_t row = (size_t)img->width * 3, n = row * img->height;
        uint8_t *copy = malloc(n);
        if (copy) { /* a preview that cannot be kept is skipped */
            size_t stride = img->stride ? (size_t)img->stride : row;
            for (int y = 0; y < img->height; y++)
                memcpy(copy + y * row, img->data + y * stride, row);
            free(s->preview);
            s->preview = copy;
            s->preview_w = img->width;
            s->preview_h = img->height;
        }
    }
    if (!s->client_gone && client_gone(s->client_fd))
        s->client_gone = 1;
    int stop = s->interrupted || s->stopping || s->client_gone;
    pthread_mutex_unlock(&s->state_lock);
    return stop;
}

/* The `parameters` text of one image, as the CLI writes it. */
static char *parameters_for(const md_server *s, const mdh_request *rq,
                            const mdiff_gen_params *resolved, int has_mask)
{
    mdh_parameters_source src = {.api = s->api, .info = &s->info,
                                 .model_hash = s->hash10, .model_name = s->model_name,
                                 .version = "moe-diffuse " MD_VERSION};
    return mdh_parameters_text(&src, rq, resolved, has_mask);
}

/* One image into the reply; 0, else the HTTP status with msg. */
static int one_image(run *rn, mdiff_gen_params *p, char *msg, size_t cap)
{
    md_server *s = rn->s;
    mdiff_gen_params resolved = {.struct_size = sizeof resolved};
    int st = s->api->resolve_params(s->ctx, p, &resolved, msg, cap);
    if (st != MDIFF_OK)
        return st == MDIFF_ERR_INVALID || st == MDIFF_ERR_UNSUPPORTED || st == MDIFF_ERR_IO ? 422
                                                                                             : 500;
    rn->resolved = resolved;
    char *params = parameters_for(s, &rn->g->req, &resolved, p->mask != NULL);
    if (!params) {
        snprintf(msg, cap, "out of memory");
        return 500;
    }
    mdiff_image out;
    s->api->image_init(&out, sizeof out);
    out.channels = 3;
    st = s->api->generate(s->ctx, p, &out, msg, cap);
    int rc = 0;
    if (st == MDIFF_ERR_CANCELLED) {
        rc = -1;
    } else if (st != MDIFF_OK) {
        rc = st == MDIFF_ERR_INVALID || st == MDIFF_ERR_UNSUPPORTED || st == MDIFF_ERR_IO ? 422
                                                                                           : 500;
    } else {
        md_text_chunk chunk = {"parameters", params};
        unsigned char *png = NULL;
        size_t size = 0;
        mdh_error err = {0};
        char *b64 = NULL;
        if (md_png_encode(out.data, out.width, out.height, &chunk, 1, &png, &size, &err) !=
                MDIFF_OK ||
            !(b64 = md_base64_encode(png, size))) {
            snprintf(msg, cap, "out of memory for the PNG");
            rc = 500;
        } else {
            if (rn->g->send_images)
                cJSON_AddItemToArray(rn->images, cJSON_CreateString(b64));
            cJSON_AddItemToArray(rn->seeds, cJSON_CreateNumber((double)p->seed));
            cJSON_AddItemToArray(rn->infotexts, cJSON_CreateString(params));
            rn->done++;
        }
        free(b64);
        free(png);
    }
    s->api->image_free(&out);
    free(params);
    return rc;
}

/* The routing counts of the run just finished, kept for /moe/v1/stats. */
static void keep_stats(md_server *s, const mdiff_routing_health *health)
{
    const mdiff_router_stats_api *rs = s->api->get_feature(MDIFF_FEATURE_ROUTER_STATS);
    int n = rs && s->info.routing != MDIFF_ROUTING_NONE ? rs->layer_count(s->ctx) : 0;
    cJSON *j = cJSON_CreateObject();
    cJSON *layers = cJSON_AddArrayToObject(j, "layers");
    cJSON_AddStringToObject(j, "model", s->model_name);
    cJSON_AddBoolToObject(j, "moe", s->info.routing != MDIFF_ROUTING_NONE);
    for (int i = 0; i < n; i++) {
        mdiff_layer_stats ls = {.struct_size = sizeof ls};
        uint64_t counts[256] = {0};
        if (rs->layer(s->ctx, i, &ls, counts, 256) != MDIFF_OK)
            continue;
        cJSON *l = cJSON_CreateObject();
        cJSON_AddStringToObject(l, "name", ls.name);
        cJSON_AddNumberToObject(l, "num_experts", ls.num_experts);
        cJSON_AddNumberToObject(l, "top_k", ls.top_k);
        cJSON_AddNumberToObject(l, "calls", (double)ls.calls);
        cJSON_AddNumberToObject(l, "tokens", (double)ls.tokens);
        cJSON *c = cJSON_AddArrayToObject(l, "counts");
        for (int e = 0; e < ls.num_experts && e < 256; e++)
            cJSON_AddItemToArray(c, cJSON_CreateNumber((double)counts[e]));
        cJSON_AddItemToArray(layers, l);
    }
    if (health && health->layers > 0) {
        cJSON *h = cJSON_AddObjectToObject(j, "routing_health");
        cJSON_AddNumberToObject(h, "layers", health->layers);
        cJSON_AddNumberToObject(h, "judged_layers", health->judged_layers);
        cJSON_AddNumberToObject(h, "collapsed_layers", health->collapsed_layers);
        cJSON_AddBoolToObject(h, "collapse", health->collapse);
        cJSON_AddNumberToObject(h, "experts_used", health->experts_used);
        cJSON_AddNumberToObject(h, "experts_total", health->experts_total);
        cJSON_AddNumberToObject(h, "min_share", health->min_share);
        cJSON_AddNumberToObject(h, "max_share", health->max_share);
    }
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    pthread_mutex_lock(&s->state_lock);
    free(s->last_stats);
    s->last_stats = text;
    pthread_mutex_unlock(&s->state_lock);
}

/* A1111's "info": the generation as a JSON string. */
static char *info_of(const run *rn, uint64_t seed)
{
    const md_server *s = rn->s;
    const mdh_request *r = &rn->g->req;
    const mdiff_gen_params *v = &rn->resolved;
    cJSON *j = cJSON_CreateObject();
    const char *prompt = r->p.prompt ? r->p.prompt : "";
    const char *neg = r->p.negative_prompt ? r->p.negative_prompt : "";
    cJSON_AddStringToObject(j, "prompt", prompt);
    cJSON *all = cJSON_AddArrayToObject(j, "all_prompts");
    cJSON *allneg = cJSON_AddArrayToObject(j, "all_negative_prompts");
    for (int i = 0; i < rn->done; i++) {
        cJSON_AddItemToArray(all, cJSON_CreateString(prompt));
        cJSON_AddItemToArray(allneg, cJSON_CreateString(neg));
    }
    cJSON_AddStringToObject(j, "negative_prompt", neg);
    cJSON_AddNumberToObject(j, "seed", (double)seed);
    cJSON_AddItemToObject(j, "all_seeds", cJSON_Duplicate(rn->seeds, 1));
    cJSON_AddNumberToObject(j, "subseed", -1);
    cJSON_AddNumberToObject(j, "subseed_strength", 0);
    cJSON_AddNumberToObject(j, "width", v->width);
    cJSON_AddNumberToObject(j, "height", v->height);
    cJSON_AddStringToObject(j, "sampler_name",
                            mdh_sampler_display_name(v->sampler ? v->sampler : "dpmpp_2m_karras"));
    cJSON_AddNumberToObject(j, "cfg_scale", v->guidance);
    cJSON_AddNumberToObject(j, "steps", v->steps);
    cJSON_AddNumberToObject(j, "batch_size", rn->g->batch_size);
    cJSON_AddBoolToObject(j, "restore_faces", 0);
    cJSON_AddStringToObject(j, "sd_model_name", s->model_name);
    if (s->hash10[0])
        cJSON_AddStringToObject(j, "sd_model_hash", s->hash10);
    else
        cJSON_AddNullToObject(j, "sd_model_hash");
    if (v->init_image)
        cJSON_AddNumberToObject(j, "denoising_strength", v->strength);
    else
        cJSON_AddNullToObject(j, "denoising_strength");
    cJSON_AddNumberToObject(j, "clip_skip", v->clip_skip > 0 ? v->clip_skip + 1 : 1);
    cJSON_AddItemToObject(j, "infotexts", cJSON_Duplicate(rn->infotexts, 1));
    cJSON_AddItemToObject(j, "styles", cJSON_CreateArray());
    cJSON_AddStringToObject(j, "job_timestamp", s->job_timestamp);
    cJSON_AddStringToObject(j, "version", "moe-diffuse " MD_VERSION);
    cJSON_AddBoolToObject(j, "interrupted", rn->done < rn->g->batch_size * rn->g->n_iter);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return text;
}

static void begin_job(md_server *s, const char *job, int fd, int images, int steps)
{
    time_t now = time(NULL);
    struct tm tm;
    pthread_mutex_lock(&s->state_lock);
    s->busy = 1;
    s->job = job;
    s->client_fd = fd;
    s->client_gone = 0;
    s->interrupted = 0;
    s->job_count = images;
    s->job_no = 0;
    s->step = 0;
    s->steps = steps;
    s->started = md_server_now();
    strftime(s->job_timestamp, sizeof s->job_timestamp, "%Y%m%d%H%M%S",
             localtime_r(&now, &tm));
    free(s->preview);
    s->preview = NULL;
    pthread_mutex_unlock(&s->state_lock);
}

static void end_job(md_server *s)
{
    pthread_mutex_lock(&s->state_lock);
    s->busy = 0;
    s->client_fd = -1;
    pthread_mutex_unlock(&s->state_lock);
}

static int interrupted(md_server *s)
{
    pthread_mutex_lock(&s->state_lock);
    if (!s->client_gone && client_gone(s->client_fd))
        s->client_gone = 1;
    int v = s->interrupted || s->stopping || s->client_gone;
    pthread_mutex_unlock(&s->state_lock);
    return v;
}

/* The run under gen_lock: every image of the request. */
static int run_all(run *rn, const md_inputs *in, uint64_t seed, char *msg, size_t cap)
{
    md_server *s = rn->s;
    mdiff_gen_params p = rn->g->req.p;
    mdiff_image init, mask;
    s->api->image_init(&init, sizeof init);
    s->api->image_init(&mask, sizeof mask);
    if (in->rgb) {
        init.data = in->rgb;
        init.width = mask.width = in->width;
        init.height = mask.height = in->height;
        init.channels = 3;
        mask.data = in->mask;
        mask.channels = 1;
        p.init_image = &init;
        p.mask = in->mask ? &mask : NULL;
        p.width = in->width;
        p.height = in->height;
    }
    p.max_expert_memory = mdh_request_expert_memory(&rn->g->req, s->info.expert_memory);
    p.preview_interval = s->cfg.preview_interval;
    int images = rn->g->batch_size * rn->g->n_iter;
    const mdiff_router_stats_api *rs = s->api->get_feature(MDIFF_FEATURE_ROUTER_STATS);
    if (rs && s->info.routing != MDIFF_ROUTING_NONE)
        rs->reset(s->ctx);
    s->api->set_progress(s->ctx, on_progress, s);
    int rc = 0;
    for (int i = 0; i < images && !rc; i++) {
        if (interrupted(s))
            break;
        pthread_mutex_lock(&s->state_lock);
        s->job_no = i;
        pthread_mutex_unlock(&s->state_lock);
        p.seed = seed + (uint64_t)i;
        rc = one_image(rn, &p, msg, cap);
    }
    s->api->set_progress(s->ctx, NULL, NULL);
    const mdiff_routing_health_api *ha = s->api->get_feature(MDIFF_FEATURE_ROUTING_HEALTH);
    mdiff_routing_health health = {.struct_size = sizeof health};
    if (!ha || ha->get(s->ctx, &health) != MDIFF_OK)
        health.layers = 0;
    keep_stats(s, &health);
    return rc < 0 ? 0 : rc; /* interrupted: the images done so far, as A1111 */
}

static void generate(md_server *s, const char *body, size_t size, int img2img, md_reply *r)
{
    md_gen_limits lim = {.max_side = s->cfg.max_side, .max_images = s->cfg.max_images,
                         .max_steps = 1000};
    md_gen_request g;
    md_inputs in = {0};
    char msg[1024] = "";
    int rc = md_gen_request_parse(body, size, img2img, &lim, &g, msg, sizeof msg);
    if (!rc && s->cfg.lora_dir &&
        mdh_request_set_string(&g.req, mdh_request_field("lora_dir"), s->cfg.lora_dir) != MDIFF_OK)
        rc = 500;
    if (!rc && img2img) /* decoded before waiting for the model: a bad image fails at once */
        rc = md_inputs_load(&g, s->cfg.max_side, &in, msg, sizeof msg);
    if (rc) {
        md_reply_error(r, rc, msg[0] ? msg : "out of memory");
        md_gen_request_free(&g);
        return;
    }
    uint64_t seed = g.random_seed ? mdh_random_seed() : g.req.p.seed;
    run rn = {.s = s, .g = &g, .images = cJSON_CreateArray(), .seeds = cJSON_CreateArray(),
              .infotexts = cJSON_CreateArray()};
    pthread_mutex_lock(&s->gen_lock);
    pthread_mutex_lock(&s->state_lock);
    int stopping = s->stopping;
    pthread_mutex_unlock(&s->state_lock);
    if (stopping) {
        rc = 503;
        snprintf(msg, sizeof msg, "the server is shutting down");
    } else if (client_gone(r->client_fd)) { /* gave up while queued: nothing to make */
        rc = 503;
        snprintf(msg, sizeof msg, "the client disconnected");
    } else {
        begin_job(s, img2img ? "img2img" : "txt2img", r->client_fd, g.batch_size * g.n_iter,
                  g.req.p.steps);
        rc = run_all(&rn, &in, seed, msg, sizeof msg);
        end_job(s);
    }
    pthread_mutex_unlock(&s->gen_lock);
    if (rc) {
        md_reply_error(r, rc, msg);
    } else {
        cJSON *j = cJSON_CreateObject();
        char *info = info_of(&rn, seed);
        cJSON_AddItemToObject(j, "images", rn.images);
        rn.images = NULL;
        cJSON_AddItemToObject(j, "parameters", g.echo);
        g.echo = NULL;
        cJSON_AddStringToObject(j, "info", info ? info : "{}");
        free(info);
        md_reply_json(r, 200, j);
    }
    cJSON_Delete(rn.images);
    cJSON_Delete(rn.seeds);
    cJSON_Delete(rn.infotexts);
    md_inputs_free(&in);
    md_gen_request_free(&g);
}

void md_api_txt2img(md_server *s, const char *body, size_t size, md_reply *r)
{
    generate(s, body, size, 0, r);
}

void md_api_img2img(md_server *s, const char *body, size_t size, md_reply *r)
{
    generate(s, body, size, 1, r);
}
