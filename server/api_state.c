/* GET /sdapi/v1/progress, POST /sdapi/v1/interrupt, GET /moe/v1/stats:
 * answered from the state the running job keeps, never waiting for it. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "../host/image_png.h"
#include "base64.h"
#include "server.h"

/* The latest preview as a base64 PNG (NULL when none). Called under state_lock. */
static char *preview_png(md_server *s)
{
    if (!s->preview)
        return NULL;
    unsigned char *png = NULL;
    size_t size = 0;
    mdh_error err = {0};
    if (md_png_encode(s->preview, s->preview_w, s->preview_h, NULL, 0, &png, &size, &err) !=
        MDIFF_OK)
        return NULL;
    char *b64 = md_base64_encode(png, size);
    free(png);
    return b64;
}

void md_api_progress(md_server *s, int skip_current_image, md_reply *r)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *st = cJSON_CreateObject();
    pthread_mutex_lock(&s->state_lock);
    double progress = 0.0, eta = 0.0;
    if (s->busy && s->job_count > 0) {
        double step = s->steps > 0 ? (double)s->step / s->steps : 0.0;
        progress = (s->job_no + step) / s->job_count;
        if (progress > 0.01) { /* A1111's estimate: time so far scaled by what is left */
            double spent = md_server_now() - s->started;
            eta = spent / progress - spent;
        }
    }
    char *image = s->busy && !skip_current_image ? preview_png(s) : NULL;
    cJSON_AddNumberToObject(j, "progress", progress);
    cJSON_AddNumberToObject(j, "eta_relative", eta);
    cJSON_AddBoolToObject(st, "skipped", 0);
    cJSON_AddBoolToObject(st, "interrupted", s->interrupted);
    cJSON_AddBoolToObject(st, "stopping_generation", 0);
    cJSON_AddStringToObject(st, "job", s->busy && s->job ? s->job : "");
    cJSON_AddNumberToObject(st, "job_count", s->busy ? s->job_count : 0);
    cJSON_AddStringToObject(st, "job_timestamp", s->job_timestamp[0] ? s->job_timestamp : "0");
    cJSON_AddNumberToObject(st, "job_no", s->busy ? s->job_no : 0);
    cJSON_AddNumberToObject(st, "sampling_step", s->busy ? s->step : 0);
    cJSON_AddNumberToObject(st, "sampling_steps", s->busy ? s->steps : 0);
    pthread_mutex_unlock(&s->state_lock);
    cJSON_AddItemToObject(j, "state", st);
    if (image)
        cJSON_AddStringToObject(j, "current_image", image);
    else
        cJSON_AddNullToObject(j, "current_image");
    cJSON_AddNullToObject(j, "textinfo");
    free(image);
    md_reply_json(r, 200, j);
}

void md_api_interrupt(md_server *s, md_reply *r)
{
    pthread_mutex_lock(&s->state_lock);
    if (s->busy) {
        s->interrupted = 1; /* also stops the images of the batch still to come */
        s->api->cancel(s->ctx);
    }
    pthread_mutex_unlock(&s->state_lock);
    md_reply_json(r, 200, cJSON_CreateObject());
}

void md_api_moe_stats(md_server *s, md_reply *r)
{
    pthread_mutex_lock(&s->state_lock);
    cJSON *j = s->last_stats ? cJSON_Parse(s->last_stats) : NULL;
    pthread_mutex_unlock(&s->state_lock);
    if (!j) {
        md_reply_error(r, 404, "no generation has run yet on the loaded model");
        return;
    }
    md_reply_json(r, 200, j);
}
