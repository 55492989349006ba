/* One image: inputs read and fitted, the generation, the inpainting
 * paste-back, the output with its infotext. */
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
#include "pipeline/inpaint_blend.h"

void md_gen_request_init(md_gen_request *r)
{
    memset(r, 0, sizeof *r);
    r->prompt = "";
    r->steps = 20;
    r->cfg_scale = 7.5f;
    r->sampler = MD_SAMPLER_DPMPP_2M_KARRAS;
    r->strength = 0.75f;
}

int md_gen_exit_code(md_status st)
{
    switch (st) {
    case MD_OK: return MD_EXIT_OK;
    case MD_ERR_CANCELLED: return MD_EXIT_CANCELLED;
    case MD_ERR_IO:
    case MD_ERR_FORMAT: return MD_EXIT_IO;
    case MD_ERR_INVALID:
    case MD_ERR_UNSUPPORTED: return MD_EXIT_USAGE;
    default: return MD_EXIT_FAILURE;
    }
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

static int native_size(const md_model *m)
{
    return m->default_size;
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

static char *model_name(const md_model *m, const md_gen_request *r)
{
    if (r->model_name)
        return strdup(r->model_name);
    char path[sizeof m->path];
    snprintf(path, sizeof path, "%s", m->path);
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

static char *moe_text(const md_model *m)
{
    const md_moe_config *moe = &m->unet_cfg.moe;
    if (!moe->enabled)
        return NULL;
    char buf[160];
    snprintf(buf, sizeof buf, "%d experts, top-%d, %s routing%s", moe->num_experts, moe->top_k,
             moe->routing == MD_ROUTE_TOKEN_TOPK ? "token" : "sequence",
             moe->shared_expert ? ", shared expert" : "");
    return strdup(buf);
}

static char *parameters_for(const md_model *m, const md_gen_request *r, int w, int h)
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
    if (r->init_image) {
        t.has |= MD_INFO_STRENGTH;
        t.strength = r->strength;
    }
    if (r->mask) {
        t.has |= MD_INFO_MASK_BLUR;
        t.mask_blur = md_inpaint_feather_radius(w, h);
    }
    t.model = model_name(m, r);
    t.moe = moe_text(m);
    char *text = md_infotext_format(&t, "moe-diffuse " MD_VERSION);
    free(t.model);
    free(t.moe);
    return text;
}

char *md_gen_request_parameters(const md_model *m, const md_gen_request *r)
{
    int native = native_size(m);
    return parameters_for(m, r, r->width ? r->width : native, r->height ? r->height : native);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

md_status md_gen_request_run(md_model *m, const md_gen_request *r, const md_gen_hooks *hooks,
                             md_gen_result *res, md_error *err)
{
    double t0 = now_seconds();
    md_status st = md_gen_request_check(r, err);
    if (st != MD_OK)
        return st;
    int w = r->width ? r->width : native_size(m);
    int h = r->height ? r->height : native_size(m);
    inputs in = {0};
    float *planes = NULL;
    uint8_t *rgb = NULL;
    char *params = NULL;
    if (r->init_image && (st = read_inputs(r, &w, &h, &in, err)) != MD_OK)
        goto done;

    md_gen_params p;
    md_gen_params_init(&p);
    p.prompt = r->prompt;
    p.negative_prompt = r->negative_prompt;
    p.steps = r->steps;
    p.cfg_scale = r->cfg_scale;
    p.sampler = r->sampler;
    p.seed = r->seed;
    p.width = w;
    p.height = h;
    p.clip_skip = r->clip_skip;
    p.init_image = in.init;
    p.strength = r->strength;
    p.mask = in.mask;
    p.prompt_syntax = 1;
    p.original_width = r->original_width;
    p.original_height = r->original_height;
    p.crop_top = r->crop_top;
    p.crop_left = r->crop_left;
    p.target_width = r->target_width;
    p.target_height = r->target_height;

    size_t npix = (size_t)w * h;
    planes = malloc(sizeof(float) * 3 * npix);
    rgb = malloc(3 * npix);
    params = parameters_for(m, r, w, h);
    if (!planes || !rgb || !params) {
        st = md_fail(err, MD_ERR_NOMEM, "out of memory for a %dx%d image", w, h);
        goto done;
    }
    if ((st = md_generate(m, &p, hooks, planes, err)) != MD_OK)
        goto done;
    if (in.mask && (st = md_inpaint_paste_back(planes, in.init, in.mask, w, h,
                                               md_inpaint_feather_radius(w, h), err)) != MD_OK)
        goto done;
    md_planes_to_rgb8(planes, w, h, rgb);
    md_text_chunk chunk = {"parameters", params};
    st = md_image_write(r->output, rgb, w, h, &chunk, 1, err);
    if (st == MD_OK && res) {
        res->width = w;
        res->height = h;
        res->seconds = now_seconds() - t0;
    }
done:
    free(in.init);
    free(in.mask);
    free(planes);
    free(rgb);
    free(params);
    return st;
}
