#include "gen_request.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/infotext.h"
#include "base64.h"

/* Keys read by A1111's meaning below; the generic pass skips them. */
static const char *const a1111_keys[] = {
    "seed", "cfg_scale", "sampler_name", "sampler_index", "scheduler", "denoising_strength",
    "batch_size", "n_iter", "override_settings", "init_images", "mask",
    "inpainting_mask_invert", "mask_blur", "send_images", NULL};

/* Request fields that name files or folders: never from a client. */
static const char *const refused_keys[] = {"init_image", "moe_routes", "loras", "lora_dir",
                                           NULL};

static int in_list(const char *const *list, const char *key)
{
    for (; *list; list++)
        if (!strcmp(*list, key))
            return 1;
    return 0;
}

static int fail(char *msg, size_t cap, int status, const char *fmt, const char *key)
{
    snprintf(msg, cap, fmt, key);
    return status;
}

/* An integer-valued JSON number within [lo, hi]. */
static int get_int(const cJSON *v, const char *key, int lo, int hi, int *out, char *msg,
                   size_t cap)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return fail(msg, cap, 422, "%s: must be an integer", key);
    if (v->valuedouble < lo || v->valuedouble > hi) {
        snprintf(msg, cap, "%s: must be between %d and %d", key, lo, hi);
        return 422;
    }
    *out = (int)v->valuedouble;
    return 0;
}

static int set_named(mdh_request *r, const char *name, const cJSON *v, char *msg, size_t cap)
{
    mdh_error err = {0};
    if (mdh_request_set_json(r, mdh_request_field(name), v, &err) != MDIFF_OK) {
        snprintf(msg, cap, "%s", err.msg);
        return err.code == MDIFF_ERR_NOMEM ? 500 : 422;
    }
    return 0;
}

static int decode_image(const cJSON *v, const char *key, unsigned char **data, size_t *size,
                        char *msg, size_t cap)
{
    if (!cJSON_IsString(v))
        return fail(msg, cap, 422, "%s: must be a base64 image (a string)", key);
    int rc = md_base64_decode(v->valuestring, data, size);
    if (rc == -2)
        return fail(msg, cap, 500, "%s: out of memory", key);
    if (rc != 0 || *size == 0)
        return fail(msg, cap, 422, "%s: not valid base64", key);
    return 0;
}

static int sampler(md_gen_request *g, const cJSON *root, char *msg, size_t cap)
{
    const char *key = "sampler_name";
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!name || cJSON_IsNull(name))
        name = cJSON_GetObjectItemCaseSensitive(root, key = "sampler_index");
    const cJSON *sched = cJSON_GetObjectItemCaseSensitive(root, "scheduler");
    if (sched && !cJSON_IsNull(sched) && !cJSON_IsString(sched))
        return fail(msg, cap, 422, "%s: must be a string", "scheduler");
    if (!name || cJSON_IsNull(name))
        return 0;
    if (!cJSON_IsString(name))
        return fail(msg, cap, 422, "%s: must be a string", key);
    const char *st = cJSON_IsString(sched) ? sched->valuestring : NULL;
    if (st && (!st[0] || !strcmp(st, "Automatic") || !strcmp(st, "automatic")))
        st = NULL; /* A1111's "Automatic": the sampler's own schedule */
    const char *ours = mdh_sampler_from_display(name->valuestring, st);
    if (!ours && st) /* a scheduler the name already implies */
        ours = mdh_sampler_from_display(name->valuestring, NULL);
    if (!ours) {
        snprintf(msg, cap,
                 "%s: unknown sampler '%.200s'%s%.64s%s (GET /sdapi/v1/samplers lists them)",
                 key, name->valuestring, st ? " with scheduler '" : "", st ? st : "",
                 st ? "'" : "");
        return 422;
    }
    if (mdh_request_set_string(&g->req, mdh_request_field("sampler"), ours) != MDIFF_OK)
        return fail(msg, cap, 500, "%s: out of memory", key);
    return 0;
}

static int override_settings(md_gen_request *g, const cJSON *v, char *msg, size_t cap)
{
    if (cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsObject(v))
        return fail(msg, cap, 422, "%s: must be an object", "override_settings");
    const cJSON *skip = cJSON_GetObjectItemCaseSensitive(v, "CLIP_stop_at_last_layers");
    if (skip && !cJSON_IsNull(skip)) {
        int n = 0;
        int rc = get_int(skip, "override_settings.CLIP_stop_at_last_layers", 1, 12, &n, msg, cap);
        if (rc)
            return rc;
        g->req.p.clip_skip = n - 1; /* A1111 counts the last layer as 1 */
    }
    return 0;
}

/* A1111's fields, in its meaning. */
static int a1111_fields(md_gen_request *g, const cJSON *root, int img2img,
                        const md_gen_limits *lim, char *msg, size_t cap)
{
    const cJSON *v;
    int rc;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "seed")) && !cJSON_IsNull(v)) {
        if (cJSON_IsNumber(v) && v->valuedouble == -1.0)
            g->random_seed = 1;
        else if ((rc = set_named(&g->req, "seed", v, msg, cap)))
            return rc;
        else
            g->random_seed = 0;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "cfg_scale")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v))
            return fail(msg, cap, 422, "%s: must be a number", "cfg_scale");
        if ((rc = set_named(&g->req, "guidance", v, msg, cap)))
            return rc;
    }
    if ((rc = sampler(g, root, msg, cap)))
        return rc;
    if (img2img && (v = cJSON_GetObjectItemCaseSensitive(root, "denoising_strength")) &&
        !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v))
            return fail(msg, cap, 422, "%s: must be a number", "denoising_strength");
        if ((rc = set_named(&g->req, "strength", v, msg, cap)))
            return rc;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "batch_size")) && !cJSON_IsNull(v) &&
        (rc = get_int(v, "batch_size", 1, lim->max_images, &g->batch_size, msg, cap)))
        return rc;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "n_iter")) && !cJSON_IsNull(v) &&
        (rc = get_int(v, "n_iter", 1, lim->max_images, &g->n_iter, msg, cap)))
        return rc;
    if (g->batch_size * g->n_iter > lim->max_images) {
        snprintf(msg, cap, "batch_size x n_iter: at most %d images a request", lim->max_images);
        return 422;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "override_settings")) &&
        (rc = override_settings(g, v, msg, cap)))
        return rc;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "send_images")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsBool(v))
            return fail(msg, cap, 422, "%s: must be true or false", "send_images");
        g->send_images = cJSON_IsTrue(v);
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "mask_blur")) && !cJSON_IsNull(v) &&
        (rc = get_int(v, "mask_blur", 0, 1024, &g->mask_blur, msg, cap)))
        return rc;
    if (!img2img)
        return 0;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "inpainting_mask_invert")) &&
        !cJSON_IsNull(v)) {
        if (cJSON_IsBool(v)) /* A1111 takes 0 / 1; some clients send a bool */
            g->mask_invert = cJSON_IsTrue(v);
        else if ((rc = get_int(v, "inpainting_mask_invert", 0, 1, &g->mask_invert, msg, cap)))
            return rc;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "init_images");
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1)
        return fail(msg, cap, 422, "%s: img2img needs a list of at least one base64 image",
                    "init_images");
    if ((rc = decode_image(cJSON_GetArrayItem(v, 0), "init_images[0]", &g->init, &g->init_size,
                           msg, cap)))
        return rc;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "mask")) && !cJSON_IsNull(v) &&
        (rc = decode_image(v, "mask", &g->mask, &g->mask_size, msg, cap)))
        return rc;
    return 0;
}

/* Every other key naming a request field, by its batch JSON Lines name. */
static int our_fields(md_gen_request *g, const cJSON *root, char *msg, size_t cap)
{
    for (const cJSON *v = root->child; v; v = v->next) {
        if (!v->string || in_list(a1111_keys, v->string))
            continue;
        if (in_list(refused_keys, v->string)) {
            snprintf(msg, cap,
                     "%s: not accepted by the server, which reads no file a client names "
                     "(send images as base64 init_images / mask, LoRAs as <lora:NAME:WEIGHT> "
                     "in the prompt)",
                     v->string);
            return 422;
        }
        const mdh_field *f = mdh_request_field(v->string);
        if (!f)
            continue; /* unknown: ignored, as A1111 does */
        int rc = set_named(&g->req, v->string, v, msg, cap);
        if (rc)
            return rc;
    }
    return 0;
}

static int check_limits(const md_gen_request *g, const md_gen_limits *lim, char *msg, size_t cap)
{
    const mdiff_gen_params *p = &g->req.p;
    if (p->width > lim->max_side || p->height > lim->max_side || p->width < 0 || p->height < 0) {
        snprintf(msg, cap, "width x height: %dx%d is past this server's limit of %d pixels a side",
                 p->width, p->height, lim->max_side);
        return 422;
    }
    if (p->steps > lim->max_steps) {
        snprintf(msg, cap, "steps: at most %d on this server", lim->max_steps);
        return 422;
    }
    return 0;
}

/* The body as "parameters" echoes it: images are not sent back. */
static cJSON *echo_of(const cJSON *root)
{
    cJSON *echo = cJSON_Duplicate(root, 1);
    static const char *const images[] = {"init_images", "mask"};
    for (int i = 0; echo && i < 2; i++) {
        /* case-sensitive, as every key is read: "Mask" is not the mask */
        cJSON *old = cJSON_GetObjectItemCaseSensitive(echo, images[i]);
        cJSON *null = old ? cJSON_CreateNull() : NULL;
        if (old && (!null || !cJSON_ReplaceItemViaPointer(echo, old, null))) {
            cJSON_Delete(null);
            cJSON_Delete(echo);
            echo = NULL;
        }
    }
    return echo;
}

int md_gen_request_parse(const char *body, size_t size, int img2img, const md_gen_limits *limits,
                         md_gen_request *g, char *msg, size_t cap)
{
    memset(g, 0, sizeof *g);
    mdh_request_init(&g->req);
    g->random_seed = 1;
    g->batch_size = g->n_iter = 1;
    g->send_images = 1;
    g->mask_blur = -1;
    cJSON *root = cJSON_ParseWithLength(body, size);
    if (!root)
        return fail(msg, cap, 400, "%s", "the body is not valid JSON");
    int rc = 0;
    if (!cJSON_IsObject(root))
        rc = fail(msg, cap, 422, "%s", "the body must be a JSON object");
    if (!rc)
        rc = a1111_fields(g, root, img2img, limits, msg, cap);
    if (!rc)
        rc = our_fields(g, root, msg, cap);
    if (!rc)
        rc = check_limits(g, limits, msg, cap);
    if (!rc && !(g->echo = echo_of(root)))
        rc = fail(msg, cap, 500, "%s", "out of memory");
    cJSON_Delete(root);
    return rc;
}

void md_gen_request_free(md_gen_request *g)
{
    mdh_request_clear(&g->req);
    free(g->init);
    free(g->mask);
    cJSON_Delete(g->echo);
    memset(g, 0, sizeof *g);
}
