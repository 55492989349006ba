/* One image: inputs read and fitted, the generation through the library
 * (which also pastes the unmasked pixels back when inpainting), the output
 * with its infotext. */
#include "render.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../host/image_read.h"
#include "../host/image_resize.h"
#include "../host/image_write.h"
#include "../host/infotext.h"
#include "../host/output_file.h"
#include "../host/parameters.h"
#include "cli.h"

typedef struct inputs {
    float *init; /* [4, H, W]: RGB planes then alpha */
    float *mask; /* [H, W], 1 = repaint */
} inputs;

static int read_inputs(const mdh_request *rq, int quiet, int *w, int *h, inputs *in,
                       mdh_error *err)
{
    const mdiff_gen_params *r = &rq->p;
    md_image img = {0}, mask = {0};
    int st = md_image_read(rq->init_image, &img, err);
    if (st == MDIFF_OK && rq->mask) {
        st = md_image_read(rq->mask, &mask, err);
        if (st == MDIFF_OK && (mask.width != img.width || mask.height != img.height))
            st = mdh_fail(err, MDIFF_ERR_INVALID, "mask %s is %dx%d but the init image %s is %dx%d",
                         rq->mask, mask.width, mask.height, rq->init_image, img.width, img.height);
    }
    if (st != MDIFF_OK)
        goto done;
    mdh_size_for_image(r, img.width, img.height, w, h);
    if (!quiet && (*w != img.width || *h != img.height)) {
        int same_aspect = (long long)img.width * *h == (long long)img.height * *w;
        fprintf(stderr, "moe-diffuse: init image %s is %dx%d: %s to %dx%d%s\n", rq->init_image,
                img.width, img.height, same_aspect ? "scaled" : "scaled and centre-cropped", *w, *h,
                r->width || r->height ? "" : " (a multiple of 8; -W/-H choose the size)");
    }
    size_t plane = (size_t)*w * *h;
    in->init = malloc(sizeof(float) * 4 * plane);
    in->mask = rq->mask ? malloc(sizeof(float) * 4 * plane) : NULL;
    if (!in->init || (rq->mask && !in->mask)) {
        st = mdh_fail(err, MDIFF_ERR_NOMEM, "out of memory for a %dx%d init image", *w, *h);
        goto done;
    }
    st = md_image_fit(&img, *w, *h, in->init, err);
    if (st == MDIFF_OK && rq->mask) {
        st = md_image_fit(&mask, *w, *h, in->mask, err);
        /* white = repaint: luminance (ITU-R 601, as PIL's "L"); transparent = keep */
        for (size_t i = 0; st == MDIFF_OK && i < plane; i++)
            in->mask[i] = (0.299f * in->mask[i] + 0.587f * in->mask[plane + i] +
                           0.114f * in->mask[2 * plane + i]) *
                          in->mask[3 * plane + i];
    }
done:
    md_image_free(&img);
    md_image_free(&mask);
    return st;
}

static char *model_name(const md_cli_engine *e, const char *given)
{
    if (given)
        return strdup(given);
    char path[sizeof e->model_path];
    snprintf(path, sizeof path, "%s", e->model_path);
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        path[--n] = '\0';
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char *name = strdup(base);
    char *dot = name ? strrchr(name, '.') : NULL;
    if (dot && !strcmp(dot, ".safetensors"))
        *dot = '\0';
    return name;
}

/* rq's text with the resolved values of `resolved`. */
static char *parameters_for(const md_cli_engine *e, const mdh_request *rq,
                            const mdiff_gen_params *resolved, const char *given_name)
{
    char *model = model_name(e, given_name);
    mdh_parameters_source src = {.api = e->api, .info = &e->info,
                                 .model_hash = e->model_hash, .model_name = model,
                                 .version = "moe-diffuse " MD_VERSION};
    char *text = mdh_parameters_text(&src, rq, resolved, rq->mask != NULL);
    free(model);
    return text;
}

char *md_render_parameters(md_cli_engine *e, const mdh_request *r, const char *model_name)
{
    mdiff_gen_params resolved = {.struct_size = sizeof resolved};
    mdiff_gen_params p = r->p;
    p.init_image = p.mask = NULL;
    if (e->api->resolve_params(e->ctx, &p, &resolved, NULL, 0) != MDIFF_OK)
        return NULL;
    return parameters_for(e, r, &resolved, model_name);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint8_t to_byte(float v)
{
    v = v * 255.0f + 0.5f;
    return (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
}

/* The fitted inputs as the library takes them: 8-bit RGB, and the mask as
 * one 8-bit channel. The CLI fits (scales and centre-crops) itself, so the
 * library receives images of exactly the generation's size. */
static int to_library_images(const inputs *in, int w, int h, int has_mask, uint8_t **rgb,
                             uint8_t **mask)
{
    size_t plane = (size_t)w * h;
    *rgb = malloc(3 * plane);
    *mask = has_mask ? malloc(plane) : NULL;
    if (!*rgb || (has_mask && !*mask))
        return -1;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++)
            (*rgb)[3 * i + c] = to_byte(in->init[c * plane + i]);
    for (size_t i = 0; has_mask && i < plane; i++)
        (*mask)[i] = to_byte(in->mask[i]);
    return 0;
}

int md_read_routes(const char *path, char **text, char *msg, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, cap, "--moe-routes %s: cannot open: %s", path, strerror(errno));
        return MDIFF_ERR_IO;
    }
    size_t size = 0, room = 1 << 16;
    char *buf = malloc(room + 1);
    while (buf) {
        size += fread(buf + size, 1, room - size, f);
        if (size < room || size > MDIFF_MOE_ROUTES_MAX)
            break;
        room *= 2;
        char *grown = realloc(buf, room + 1);
        if (!grown)
            free(buf);
        buf = grown;
    }
    int failed = ferror(f);
    fclose(f);
    if (!buf || failed || size > MDIFF_MOE_ROUTES_MAX) {
        snprintf(msg, cap, "--moe-routes %s: %s", path,
                 !buf ? "out of memory" : failed ? "cannot read" : "larger than the 256 MiB limit");
        free(buf);
        return !buf ? MDIFF_ERR_NOMEM : failed ? MDIFF_ERR_IO : MDIFF_ERR_INVALID;
    }
    buf[size] = '\0';
    *text = buf;
    return MDIFF_OK;
}

static int fail_with(char *msg, size_t cap, int status, const mdh_error *err)
{
    snprintf(msg, cap, "%s", err->msg);
    return status;
}

int md_render(md_cli_engine *e, const mdh_request *rq, const md_render_target *t,
              md_render_result *res, char *msg, size_t cap)
{
    const mdiff_api *api = e->api;
    double t0 = now_seconds();
    mdh_error err = {0};
    int st0;
    if (md_image_format_of(t->output) == MD_IMAGE_UNKNOWN) {
        snprintf(msg, cap, "%s: unknown image type (use .png, .jpg, .jpeg or .bmp)", t->output);
        return MDIFF_ERR_INVALID;
    }
    /* A folder that is gone or an over-long name is found before the
     * first step, not after the last (batch lines included). */
    if ((st0 = mdh_output_check(t->output, &err)) != MDIFF_OK)
        return fail_with(msg, cap, st0, &err);
    mdiff_gen_params p = rq->p;
    p.max_expert_memory = mdh_request_expert_memory(rq, e->info.expert_memory);
    inputs in = {0};
    uint8_t *init_rgb = NULL, *mask8 = NULL;
    char *params = NULL, *routes = NULL;
    mdiff_image out, init_img, mask_img;
    api->image_init(&out, sizeof out);
    api->image_init(&init_img, sizeof init_img);
    api->image_init(&mask_img, sizeof mask_img);
    mdiff_gen_params resolved = {.struct_size = sizeof resolved};
    int rc = MDIFF_OK, st;
    if (rq->mask && !rq->init_image) {
        snprintf(msg, cap, "a mask (%s) needs an init image as well", rq->mask);
        return MDIFF_ERR_INVALID;
    }
    if (rq->init_image) {
        /* The CLI fits (scales and centre-crops) the image itself, so the
         * library receives images of exactly the generation's size. */
        int w = 0, h = 0;
        if ((st = read_inputs(rq, t->quiet, &w, &h, &in, &err)) != MDIFF_OK) {
            rc = st == MDIFF_ERR_INVALID ? MDIFF_ERR_INVALID
                 : st == MDIFF_ERR_NOMEM ? MDIFF_ERR_NOMEM
                                         : MDIFF_ERR_IO;
            fail_with(msg, cap, rc, &err);
            goto done;
        }
        if (to_library_images(&in, w, h, rq->mask != NULL, &init_rgb, &mask8) != 0) {
            snprintf(msg, cap, "out of memory for a %dx%d image", w, h);
            rc = MDIFF_ERR_NOMEM;
            goto done;
        }
        /* A mask with no pixel the library counts as "repaint" (8-bit value
         * 128 or more after luminance x alpha) would return the init image
         * unchanged as if it were a result: refused before generating. */
        size_t selected = 0;
        for (size_t i = 0; mask8 && i < (size_t)w * h && !selected; i++)
            selected = mask8[i] >= 128;
        if (mask8 && !selected) {
            snprintf(msg, cap,
                     "mask %s selects nothing to repaint: white (or light) opaque pixels are "
                     "repainted, black or transparent ones kept",
                     rq->mask);
            rc = MDIFF_ERR_INVALID;
            goto done;
        }
        init_img.data = init_rgb;
        init_img.width = mask_img.width = w;
        init_img.height = mask_img.height = h;
        init_img.channels = 3;
        mask_img.data = mask8;
        mask_img.channels = 1;
        p.init_image = &init_img;
        p.mask = mask8 ? &mask_img : NULL;
        p.width = w;
        p.height = h;
    }
    if (rq->moe_routes) {
        if ((rc = md_read_routes(rq->moe_routes, &routes, msg, cap)) != MDIFF_OK)
            goto done;
        p.moe_routes = routes;
    }
    if ((rc = api->resolve_params(e->ctx, &p, &resolved, msg, cap)) != MDIFF_OK)
        goto done;
    params = parameters_for(e, rq, &resolved, t->model_name);
    if (!params) {
        snprintf(msg, cap, "out of memory");
        rc = MDIFF_ERR_NOMEM;
        goto done;
    }
    out.channels = 3;
    rc = api->generate(e->ctx, &p, &out, msg, cap);
    if (rc != MDIFF_OK)
        goto done;
    md_text_chunk chunk = {"parameters", params};
    if ((st = md_image_write(t->output, out.data, out.width, out.height, &chunk, 1, &err)) !=
        MDIFF_OK) {
        rc = fail_with(msg, cap, MDIFF_ERR_IO, &err);
        goto done;
    }
    if (res) {
        res->resolved = resolved;
        res->seconds = now_seconds() - t0;
    }
done:
    api->image_free(&out);
    free(in.init);
    free(in.mask);
    free(init_rgb);
    free(mask8);
    free(params);
    free(routes);
    return rc;
}
