/* The read-only endpoints: samplers, the model, options, LoRAs, png-info. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../host/image_read.h"
#include "../host/infotext.h"
#include "base64.h"
#include "models.h"
#include "server.h"

void md_api_samplers(md_server *s, md_reply *r)
{
    cJSON *j = cJSON_CreateArray();
    for (int i = 0; s->api->sampler_name(i); i++) {
        const char *name = s->api->sampler_name(i);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", mdh_sampler_display_name(name));
        cJSON *aliases = cJSON_AddArrayToObject(e, "aliases");
        cJSON_AddItemToArray(aliases, cJSON_CreateString(name));
        cJSON_AddObjectToObject(e, "options");
        cJSON_AddItemToArray(j, e);
    }
    md_reply_json(r, 200, j);
}

/* A1111's title: "NAME [HASH]". */
static void title_of(const md_server *s, char *buf, size_t cap)
{
    if (s->hash10[0])
        snprintf(buf, cap, "%s [%s]", s->model_name, s->hash10);
    else
        snprintf(buf, cap, "%s", s->model_name);
}

/* The loaded model's entry. Called under state_lock. */
static cJSON *loaded_entry(const md_server *s)
{
    char title[320];
    title_of(s, title, sizeof title);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "title", title);
    cJSON_AddStringToObject(m, "model_name", s->model_name);
    if (s->hash10[0]) {
        cJSON_AddStringToObject(m, "hash", s->hash10);
        cJSON_AddStringToObject(m, "sha256", s->sha256);
    } else {
        cJSON_AddNullToObject(m, "hash");
        cJSON_AddNullToObject(m, "sha256");
    }
    cJSON_AddStringToObject(m, "filename", s->model_path);
    cJSON_AddNullToObject(m, "config");
    return m;
}

/* "ink" of "ink.safetensors". */
static void stem_of(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s", name);
    char *dot = strrchr(out, '.');
    if (dot && !strcmp(dot, ".safetensors"))
        *dot = '\0';
}

void md_api_sd_models(md_server *s, md_reply *r)
{
    cJSON *j = cJSON_CreateArray();
    char **names = NULL;
    int n = s->cfg.models_dir ? md_models_list(s->cfg.models_dir, &names) : 0;
    pthread_mutex_lock(&s->state_lock);
    cJSON_AddItemToArray(j, loaded_entry(s));
    /* The others are hashed when loaded (A1111 too lists unhashed models
     * without a hash): hashing gigabytes per listing would stall it. */
    for (int i = 0; i < n; i++) {
        char path[4096], stem[256];
        snprintf(path, sizeof path, "%s/%s", s->cfg.models_dir, names[i]);
        if (!strcmp(path, s->model_path))
            continue;
        stem_of(names[i], stem, sizeof stem);
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "title", stem);
        cJSON_AddStringToObject(m, "model_name", stem);
        cJSON_AddNullToObject(m, "hash");
        cJSON_AddNullToObject(m, "sha256");
        cJSON_AddStringToObject(m, "filename", path);
        cJSON_AddNullToObject(m, "config");
        cJSON_AddItemToArray(j, m);
    }
    pthread_mutex_unlock(&s->state_lock);
    md_models_free(names, n);
    md_reply_json(r, 200, j);
}

void md_api_options_get(md_server *s, md_reply *r)
{
    char title[320];
    cJSON *j = cJSON_CreateObject();
    pthread_mutex_lock(&s->state_lock);
    title_of(s, title, sizeof title);
    cJSON_AddStringToObject(j, "sd_model_checkpoint", title);
    cJSON_AddStringToObject(j, "sd_checkpoint_hash", s->sha256);
    pthread_mutex_unlock(&s->state_lock);
    cJSON_AddNumberToObject(j, "CLIP_stop_at_last_layers", 1);
    cJSON_AddNumberToObject(j, "show_progress_every_n_steps", s->cfg.preview_interval);
    cJSON_AddBoolToObject(j, "samples_save", 0);
    cJSON_AddStringToObject(j, "samples_format", "png");
    md_reply_json(r, 200, j);
}

/* A model is named by its title, name, hash or file name. Called under
 * gen_lock (the model fields are stable). */
static int names_loaded_model(const md_server *s, const char *v)
{
    char title[320];
    title_of(s, title, sizeof title);
    return !strcmp(v, title) || !strcmp(v, s->model_name) || !strcmp(v, s->model_path) ||
           (s->hash10[0] && (!strcmp(v, s->hash10) || !strcmp(v, s->sha256)));
}

/* The --models-dir entry v names ("NAME", "NAME [HASH]", "NAME.safetensors"
 * or its path), into path; 0 when none. */
static int find_model(const md_server *s, const char *v, char *path, size_t cap)
{
    char **names = NULL;
    int n = s->cfg.models_dir ? md_models_list(s->cfg.models_dir, &names) : 0, found = 0;
    char want[320];
    snprintf(want, sizeof want, "%s", v);
    char *bracket = strstr(want, " [");
    if (bracket && want[strlen(want) - 1] == ']')
        *bracket = '\0'; /* the title's hash: the name decides */
    for (int i = 0; i < n && !found; i++) {
        char stem[256];
        stem_of(names[i], stem, sizeof stem);
        snprintf(path, cap, "%s/%s", s->cfg.models_dir, names[i]);
        found = !strcmp(want, stem) || !strcmp(want, names[i]) || !strcmp(v, path);
    }
    md_models_free(names, n);
    return found;
}

/* Switches to the model named by v (nothing when it is the loaded one);
 * returns 0, else the HTTP status with msg. */
static int choose_model(md_server *s, const char *v, char *msg, size_t cap)
{
    char path[4096];
    pthread_mutex_lock(&s->gen_lock); /* after the running generation */
    int rc = 0;
    if (names_loaded_model(s, v)) {
        rc = 0;
    } else if (!find_model(s, v, path, sizeof path)) {
        snprintf(msg, cap,
                 "sd_model_checkpoint: no model '%.200s' %s (GET /sdapi/v1/sd-models lists them)",
                 v, s->cfg.models_dir ? "in --models-dir" : "here: without --models-dir the "
                                                              "server serves one model");
        rc = 422;
    } else {
        char why[512] = "";
        if (!s->cfg.quiet)
            fprintf(stderr, "moe-diffuse serve: loading %s\n", path);
        if (md_server_switch(s, path, why, sizeof why) != MDIFF_OK) {
            snprintf(msg, cap, "sd_model_checkpoint: %.500s", why);
            rc = 500;
        }
    }
    pthread_mutex_unlock(&s->gen_lock);
    return rc;
}

void md_api_options_set(md_server *s, const char *body, size_t size, md_reply *r)
{
    cJSON *j = cJSON_ParseWithLength(body, size);
    if (!j) {
        md_reply_error(r, 400, "the body is not valid JSON");
        return;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        md_reply_error(r, 422, "the body must be a JSON object of options");
        return;
    }
    /* Other options are A1111's UI settings: accepted and ignored. */
    const cJSON *ck = cJSON_GetObjectItemCaseSensitive(j, "sd_model_checkpoint");
    char msg[800] = "";
    int rc = 0;
    if (ck && !cJSON_IsNull(ck) && !cJSON_IsString(ck)) {
        snprintf(msg, sizeof msg, "sd_model_checkpoint: must be a string");
        rc = 422;
    } else if (cJSON_IsString(ck)) {
        rc = choose_model(s, ck->valuestring, msg, sizeof msg);
    }
    cJSON_Delete(j);
    if (rc)
        md_reply_error(r, rc, msg);
    else
        md_reply_json(r, 200, cJSON_CreateNull());
}

/* A1111's parsed form of the text: "Prompt", "Negative prompt", then each
 * "Key: value" of the last line, with Size split into Size-1 and Size-2. */
static cJSON *parameters_of(const char *text)
{
    cJSON *j = cJSON_CreateObject();
    mdh_infotext t;
    mdh_error err = {0};
    if (mdh_infotext_parse(text, "image", &t, &err) != MDIFF_OK)
        return j; /* a text that is not A1111's: only "info" */
    const mdh_request *q = &t.req;
    cJSON_AddStringToObject(j, "Prompt", q->p.prompt ? q->p.prompt : "");
    cJSON_AddStringToObject(j, "Negative prompt", q->p.negative_prompt ? q->p.negative_prompt : "");
    int n = 0;
    const mdh_field *fields = mdh_request_fields(&n);
    char buf[256];
    for (int i = 0; i < n; i++) {
        const char *name = fields[i].name;
        if (!t.found[i] || !strcmp(name, "prompt") || !strcmp(name, "negative_prompt"))
            continue;
        const char *key = !strcmp(name, "steps")      ? "Steps"
                          : !strcmp(name, "sampler")  ? "Sampler"
                          : !strcmp(name, "guidance") ? "CFG scale"
                          : !strcmp(name, "seed")     ? "Seed"
                          : !strcmp(name, "width")    ? "Size-1"
                          : !strcmp(name, "height")   ? "Size-2"
                          : !strcmp(name, "strength") ? "Denoising strength"
                          : !strcmp(name, "clip_skip") ? "Clip skip"
                                                        : fields[i].infotext;
        if (!key)
            continue;
        if (!strcmp(name, "sampler"))
            snprintf(buf, sizeof buf, "%s",
                     mdh_sampler_display_name(q->p.sampler ? q->p.sampler : "dpmpp_2m_karras"));
        else if (!strcmp(name, "clip_skip"))
            snprintf(buf, sizeof buf, "%d", q->p.clip_skip + 1);
        else
            mdh_request_format(q, &fields[i], buf, sizeof buf);
        cJSON_AddStringToObject(j, key, buf);
    }
    if (t.model_hash)
        cJSON_AddStringToObject(j, "Model hash", t.model_hash);
    if (t.model)
        cJSON_AddStringToObject(j, "Model", t.model);
    if (t.lora_hashes)
        cJSON_AddStringToObject(j, "Lora hashes", t.lora_hashes);
    mdh_infotext_free(&t);
    return j;
}

void md_api_png_info(md_server *s, const char *body, size_t size, md_reply *r)
{
    (void)s;
    cJSON *j = cJSON_ParseWithLength(body, size);
    const cJSON *img = j ? cJSON_GetObjectItemCaseSensitive(j, "image") : NULL;
    unsigned char *data = NULL;
    size_t n = 0;
    if (!j) {
        md_reply_error(r, 400, "the body is not valid JSON");
    } else if (!cJSON_IsString(img)) {
        md_reply_error(r, 422, "image: must be a base64 PNG (a string)");
    } else if (md_base64_decode(img->valuestring, &data, &n) != 0 || n == 0) {
        md_reply_error(r, 422, "image: not valid base64");
    } else {
        char *text = NULL;
        mdh_error err = {0};
        int st = md_png_decode_text(data, n, "image", "parameters", &text, &err);
        cJSON *out = cJSON_CreateObject();
        /* An image without the text is no error for A1111: info is "". */
        cJSON_AddStringToObject(out, "info", st == MDIFF_OK ? text : "");
        cJSON_AddObjectToObject(out, "items");
        cJSON_AddItemToObject(out, "parameters",
                              st == MDIFF_OK ? parameters_of(text) : cJSON_CreateObject());
        free(text);
        md_reply_json(r, 200, out);
    }
    free(data);
    cJSON_Delete(j);
}

/* The .safetensors files below dir (subfolders too, as A1111 lists them;
 * symlinked folders are not followed, so a loop cannot trap the walk). */
static void list_loras(cJSON *out, const char *dir, const char *prefix, int depth)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && cJSON_GetArraySize(out) < 10000) {
        if (de->d_name[0] == '.')
            continue;
        char path[4096], name[1024];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= sizeof path ||
            (size_t)snprintf(name, sizeof name, "%s%s", prefix, de->d_name) >= sizeof name)
            continue;
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth > 0) {
                char sub[1024];
                snprintf(sub, sizeof sub, "%.1000s/", name);
                list_loras(out, path, sub, depth - 1);
            }
            continue;
        }
        size_t len = strlen(name);
        if (len <= 12 || strcmp(name + len - 12, ".safetensors") != 0)
            continue;
        name[len - 12] = '\0';
        cJSON *e = cJSON_CreateObject();
        /* The name a <lora:NAME:W> tag takes: the path below the folder. */
        const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
        cJSON_AddStringToObject(e, "name", name);
        cJSON_AddStringToObject(e, "alias", base);
        cJSON_AddStringToObject(e, "path", path);
        cJSON_AddObjectToObject(e, "metadata");
        cJSON_AddItemToArray(out, e);
    }
    closedir(d);
}

void md_api_loras(md_server *s, md_reply *r)
{
    cJSON *j = cJSON_CreateArray();
    if (s->cfg.lora_dir)
        list_loras(j, s->cfg.lora_dir, "", 8);
    md_reply_json(r, 200, j);
}
