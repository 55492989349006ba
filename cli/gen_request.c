/* One image: inputs read and fitted, the generation through the library
 * (which also pastes the unmasked pixels back when inpainting), the output
 * with its infotext. */
#include "gen_request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "infotext.h"
#include "io/image_read.h"
#include "io/image_resize.h"
#include "io/image_write.h"

void md_gen_request_init(md_gen_request *r)
{
    memset(r, 0, sizeof *r);
    r->prompt = "";
    r->steps = 20;
    r->cfg_scale = 7.5f;
    r->sampler = MD_SAMPLER_DPMPP_2M_KARRAS;
    r->strength = 0.75f;
}

md_status md_gen_request_check(const md_gen_request *r, md_error *err)
{
    if (!r->prompt)
        return md_fail(err, MD_ERR_INVALID, "no prompt given");
    if (strlen(r->prompt) > MD_GEN_PROMPT_MAX ||
        (r->negative_prompt && strlen(r->negative_prompt) > MD_GEN_PROMPT_MAX))
        return md_fail(err, MD_ERR_INVALID, "a prompt is longer than %d bytes", MD_GEN_PROMPT_MAX);
    if (r->steps < 1 || r->steps > 1000)
        return md_fail(err, MD_ERR_INVALID, "steps must be 1..1000 (got %d)", r->steps);
    if (!(r->cfg_scale >= 0.0f && r->cfg_scale <= 100.0f))
        return md_fail(err, MD_ERR_INVALID, "cfg scale must be 0..100");
    if ((int)r->sampler < 0 || r->sampler >= MD_SAMPLER_COUNT)
        return md_fail(err, MD_ERR_INVALID, "unknown sampler %d", (int)r->sampler);
    for (int k = 0; k < 2; k++) {
        int v = k ? r->height : r->width;
        if (v && (v < 8 || v > 8192 || v % 8))
            return md_fail(err, MD_ERR_INVALID, "%s %d: must be a multiple of 8 in 8..8192",
                           k ? "height" : "width", v);
    }
    if (r->clip_skip < 0 || r->clip_skip > 64)
        return md_fail(err, MD_ERR_INVALID, "clip skip must be 0..64 (got %d)", r->clip_skip);
    if (r->mask && !r->init_image)
        return md_fail(err, MD_ERR_INVALID, "a mask (%s) needs an init image as well", r->mask);
    if (r->init_image && !(r->strength > 0.0f && r->strength <= 1.0f))
        return md_fail(err, MD_ERR_INVALID, "strength must be in (0, 1] (got %g)",
                       (double)r->strength);
    if (!r->output)
        return md_fail(err, MD_ERR_INVALID, "no output file given");
    if (md_image_format_of(r->output) == MD_IMAGE_UNKNOWN)
        return md_fail(err, MD_ERR_INVALID,
                       "%s: unknown image type (use .png, .jpg, .jpeg or .bmp)", r->output);
    return MD_OK;
}

int md_gen_native_size(const md_cli_engine *e)
{
    return e->info.native_width;
}

static int round8(double v)
{
    int r = (int)((v + 4.0) / 8.0) * 8;
    return r < 8 ? 8 : r > 8192 ? 8192 : r;
}

/* The generation size for an init image of iw x ih (see --help / man page). */
static void size_for_image(const md_gen_request *r, int iw, int ih, int *w, int *h)
{
    if (r->width && r->height) {
        *w = r->width;
        *h = r->height;
    } else if (r->width) {
        *w = r->width;
        *h = round8((double)ih * r->width / iw);
    } else if (r->height) {
        *h = r->height;
        *w = round8((double)iw * r->height / ih);
    } else {
        *w = round8(iw);
        *h = round8(ih);
    }
}

typedef struct inputs {
    float *init; /* [4, H, W]: RGB planes then alpha */
    float *mask; /* [H, W], 1 = repaint */
} inputs;

static md_status read_inputs(const md_gen_request *r, int *w, int *h, inputs *in, md_error *err)
{
    md_image img = {0}, mask = {0};
    md_status st = md_image_read(r->init_image, &img, err);
    if (st == MD_OK && r->mask) {
        st = md_image_read(r->mask, &mask, err);
        if (st == MD_OK && (mask.width != img.width || mask.height != img.height))
            st = md_fail(err, MD_ERR_INVALID, "mask %s is %dx%d but the init image %s is %dx%d",
                         r->mask, mask.width, mask.height, r->init_image, img.width, img.height);
    }
    if (st != MD_OK)
        goto done;
    size_for_image(r, img.width, img.height, w, h);
    if (!r->quiet && (*w != img.width || *h != img.height)) {
        int same_aspect = (long long)img.width * *h == (long long)img.height * *w;
        fprintf(stderr, "moe-diffuse: init image %s is %dx%d: %s to %dx%d%s\n", r->init_image,
                img.width, img.height, same_aspect ? "scaled" : "scaled and centre-cropped", *w, *h,
                r->width || r->height ? "" : " (a multiple of 8; -W/-H choose the size)");
    }
    size_t plane = (size_t)*w * *h;
    in->init = malloc(sizeof(float) * 4 * plane);
    in->mask = r->mask ? malloc(sizeof(float) * 4 * plane) : NULL;
    if (!in->init || (r->mask && !in->mask)) {
        st = md_fail(err, MD_ERR_NOMEM, "out of memory for a %dx%d init image", *w, *h);
        goto done;
    }
    st = md_image_fit(&img, *w, *h, in->init, err);
    if (st == MD_OK && r->mask) {
        st = md_image_fit(&mask, *w, *h, in->mask, err);
        /* white = repaint: luminance (ITU-R 601, as PIL's "L"); transparent = keep */
        for (size_t i = 0; st == MD_OK && i < plane; i++)
            in->mask[i] = (0.299f * in->mask[i] + 0.587f * in->mask[plane + i] +
                           0.114f * in->mask[2 * plane + i]) *
                          in->mask[3 * plane + i];
    }
done:
    md_image_free(&img);
    md_image_free(&mask);
    return st;
}

static char *model_name(const md_cli_engine *e, const md_gen_request *r)
{
    if (r->model_name)
        return strdup(r->model_name);
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

static char *moe_text(const md_cli_engine *e)
{
    const mdiff_model_info *i = &e->info;
    if (i->routing == MDIFF_ROUTING_NONE)
        return NULL;
    char buf[160];
    snprintf(buf, sizeof buf, "%d experts, top-%d, %s routing%s", i->num_experts, i->top_k,
             i->routing == MDIFF_ROUTING_TOKEN ? "token" : "sequence",
             i->shared_expert ? ", shared expert" : "");
    return strdup(buf);
}

/* The feathering the library applies to an inpainting mask's edge
 * (moediffuse.h: min(w, h) / 128, 1..8 pixels), recorded as A1111's "Mask blur". */
static int mask_blur(int w, int h)
{
    int r = (w < h ? w : h) / 128;
    return r < 1 ? 1 : r > 8 ? 8 : r;
}

static char *parameters_for(const md_cli_engine *e, const md_gen_request *r, int w, int h)
{
    md_infotext t = {0};
    t.prompt = (char *)r->prompt;
    t.negative_prompt = (char *)r->negative_prompt;
    t.has = MD_INFO_STEPS | MD_INFO_SAMPLER | MD_INFO_CFG | MD_INFO_SEED | MD_INFO_SIZE |
            MD_INFO_CLIP_SKIP;
    t.steps = r->steps;
    t.sampler = r->sampler;
    t.cfg_scale = r->cfg_scale;
    t.seed = r->seed;
    t.width = w;
    t.height = h;
    t.clip_skip = r->clip_skip;
    if (r->plain_prompt)
        t.has |= MD_INFO_PLAIN_PROMPT;
    if (r->init_image) {
        t.has |= MD_INFO_STRENGTH;
        t.strength = r->strength;
    }
    if (r->mask) {
        t.has |= MD_INFO_MASK_BLUR;
        t.mask_blur = mask_blur(w, h);
    }
    t.model = model_name(e, r);
    t.moe = moe_text(e);
    char *text = md_infotext_format(&t, "moe-diffuse " MD_VERSION);
    free(t.model);
    free(t.moe);
    return text;
}

char *md_gen_request_parameters(const md_cli_engine *e, const md_gen_request *r)
{
    int native = md_gen_native_size(e);
    return parameters_for(e, r, r->width ? r->width : native, r->height ? r->height : native);
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

static int fail_with(char *msg, size_t cap, int status, const md_error *err)
{
    snprintf(msg, cap, "%s", err->msg);
    return status;
}

int md_gen_request_run(md_cli_engine *e, const md_gen_request *r, md_gen_result *res,
                       char *msg, size_t cap)
{
    const mdiff_api *api = e->api;
    double t0 = now_seconds();
    md_error err = {0};
    md_status st = md_gen_request_check(r, &err);
    if (st != MD_OK)
        return fail_with(msg, cap, MDIFF_ERR_INVALID, &err);
    int w = r->width ? r->width : md_gen_native_size(e);
    int h = r->height ? r->height : md_gen_native_size(e);
    inputs in = {0};
    uint8_t *init_rgb = NULL, *mask8 = NULL;
    char *params = NULL;
    mdiff_image out;
    api->image_init(&out, sizeof out);
    int rc = MDIFF_OK;
    if (r->init_image && (st = read_inputs(r, &w, &h, &in, &err)) != MD_OK) {
        rc = st == MD_ERR_INVALID ? MDIFF_ERR_INVALID
             : st == MD_ERR_NOMEM ? MDIFF_ERR_NOMEM
                                  : MDIFF_ERR_IO;
        fail_with(msg, cap, rc, &err);
        goto done;
    }
    params = parameters_for(e, r, w, h);
    if (!params || (r->init_image && to_library_images(&in, w, h, r->mask != NULL, &init_rgb,
                                                       &mask8) != 0)) {
        snprintf(msg, cap, "out of memory for a %dx%d image", w, h);
        rc = MDIFF_ERR_NOMEM;
        goto done;
    }
    mdiff_image init_img, mask_img;
    api->image_init(&init_img, sizeof init_img);
    api->image_init(&mask_img, sizeof mask_img);
    init_img.data = init_rgb;
    init_img.width = mask_img.width = w;
    init_img.height = mask_img.height = h;
    init_img.channels = 3;
    mask_img.data = mask8;
    mask_img.channels = 1;

    mdiff_gen_params p;
    api->gen_params_init(&p, sizeof p);
    p.prompt = r->prompt;
    p.negative_prompt = r->negative_prompt;
    p.sampler = md_cli_sampler_name(r->sampler);
    p.seed = r->seed;
    p.init_image = init_rgb ? &init_img : NULL;
    p.mask = mask8 ? &mask_img : NULL;
    p.width = w;
    p.height = h;
    p.steps = r->steps;
    p.guidance = r->cfg_scale;
    p.strength = r->strength;
    p.clip_skip = r->clip_skip;
    p.prompt_syntax = r->plain_prompt ? MDIFF_PROMPT_PLAIN : MDIFF_PROMPT_WEIGHTED;
    p.original_width = r->original_width;
    p.original_height = r->original_height;
    p.crop_top = r->crop_top;
    p.crop_left = r->crop_left;
    p.target_width = r->target_width;
    p.target_height = r->target_height;
    out.channels = 3;
    rc = api->generate(e->ctx, &p, &out, msg, cap);
    if (rc != MDIFF_OK)
        goto done;
    md_text_chunk chunk = {"parameters", params};
    if ((st = md_image_write(r->output, out.data, w, h, &chunk, 1, &err)) != MD_OK) {
        rc = fail_with(msg, cap, MDIFF_ERR_IO, &err);
        goto done;
    }
    if (res) {
        res->width = w;
        res->height = h;
        res->seconds = now_seconds() - t0;
    }
done:
    api->image_free(&out);
    free(in.init);
    free(in.mask);
    free(init_rgb);
    free(mask8);
    free(params);
    return rc;
}
