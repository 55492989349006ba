/* api->generate: checks the request, runs the engine's pipeline with hooks
 * that report progress (stages, steps, previews) and honour cancel, and
 * hands the image over only when the whole run succeeded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../pipeline/inpaint_blend.h"
#include "../pipeline/pipeline.h"
#include "../vae/vae_tiled.h"
#include "abi_internal.h"
#include "image_convert.h"

typedef struct gen_run {
    mdiff_context *ctx;
    int total;            /* denoising steps the run takes */
    int has_init;
    int width, height;
    int preview_interval;
    int vae_tile;         /* the request's: previews decode in the same tiles */
    float *preview_latents, *preview_planes;
    uint8_t *preview_rgb;
    mdiff_image preview;
    int preview_ready;
} gen_run;

/* Calls the host's progress; a non-zero answer becomes a cancel request, so
 * stages that cannot stop the pipeline still stop the run at its next check. */
static int report(gen_run *r, int stage, int step, const mdiff_image *preview)
{
    mdiff_context *ctx = r->ctx;
    if (ctx->progress && !abi_destroy_pending(ctx)) {
        mdiff_progress p = {.struct_size = sizeof p, .stage = stage, .step = step,
                            .total = r->total, .preview = preview};
        if (ctx->progress(ctx->progress_user, &p))
            atomic_store(&ctx->cancel, 1);
    }
    return atomic_load(&ctx->cancel) != 0;
}

/* Decodes the current latents into the preview image (a full VAE decode:
 * exact, and its cost is why previews come every N steps). */
static void make_preview(gen_run *r, const float *latents, size_t n)
{
    md_model *m = r->ctx->model;
    size_t npix = (size_t)r->width * r->height;
    if (!r->preview_latents) {
        r->preview_latents = malloc(sizeof(float) * n);
        r->preview_planes = malloc(sizeof(float) * (size_t)m->vae_cfg.out_channels * npix);
        r->preview_rgb = malloc(3 * npix);
        if (!r->preview_latents || !r->preview_planes || !r->preview_rgb) {
            r->preview_interval = 0; /* no memory for previews: carry on without */
            return;
        }
    }
    float inv = 1.0f / m->vae_cfg.scaling_factor;
    for (size_t i = 0; i < n; i++)
        r->preview_latents[i] = latents[i] * inv;
    int f = md_vae_factor(m->vae);
    md_error err = {0};
    md_status st = r->vae_tile > 0
                       ? md_vae_decode_tiled(m->vae, r->ctx->be, r->preview_latents, r->height / f,
                                             r->width / f, r->vae_tile, r->preview_planes, &err)
                       : md_vae_decode(m->vae, r->ctx->be, r->preview_latents, 1, r->height / f,
                                       r->width / f, r->preview_planes, &err);
    if (st != MD_OK) {
        abi_log(r->ctx, MDIFF_LOG_WARN, "preview: %s", err.msg);
        return;
    }
    for (size_t i = 0; i < 3 * npix; i++)
        r->preview_planes[i] = r->preview_planes[i] * 0.5f + 0.5f;
    abi_planes_to_image(r->preview_planes, r->width, r->height, r->preview_rgb, 3,
                        (size_t)r->width * 3);
    r->preview = (mdiff_image){.struct_size = sizeof r->preview, .data = r->preview_rgb,
                               .width = r->width, .height = r->height, .channels = 3,
                               .stride = r->width * 3};
    r->preview_ready = 1;
}

static void on_tensor(void *user, const char *name, int step, const float *data, size_t n)
{
    gen_run *r = user;
    if (!strcmp(name, "latents")) {
        if (r->preview_interval > 0 &&
            ((step + 1) % r->preview_interval == 0 || step + 1 == r->total))
            make_preview(r, data, n);
    } else if (!strcmp(name, "timesteps")) {
        if (r->has_init) /* the init image is encoded next */
            report(r, MDIFF_STAGE_ENCODE_IMAGE, 0, NULL);
    } else if (!strcmp(name, "final_latents")) {
        report(r, MDIFF_STAGE_DECODE, r->total, NULL);
    }
}

static int on_progress(void *user, int step, int total)
{
    gen_run *r = user;
    const mdiff_image *preview = r->preview_ready ? &r->preview : NULL;
    r->preview_ready = 0;
    r->ctx->trace_step = step;
    (void)total;
    return report(r, MDIFF_STAGE_DENOISE, step, preview);
}

static int fail(char *msg, size_t cap, int status, const char *text)
{
    abi_message(msg, cap, text);
    return status;
}

/* The output image description; the request itself is checked by
 * abi_resolve_request. */
static int check_output(const mdiff_gen_params *p, const mdiff_image *out, char *msg, size_t cap)
{
    char buf[512];
    if (out->struct_size < ABI_1_0_IMAGE_SIZE)
        return fail(msg, cap, MDIFF_ERR_INVALID,
                    "generate: output image struct_size too small (use image_init)");
    int ch = out->channels ? out->channels : 3;
    if (ch != 3 && ch != 4)
        return fail(msg, cap, MDIFF_ERR_INVALID, "generate: output channels must be 3 or 4");
    if (out->data) {
        if (out->width != p->width || out->height != p->height) {
            snprintf(buf, sizeof buf,
                     "generate: the output buffer is %dx%d but the image will be %dx%d",
                     out->width, out->height, p->width, p->height);
            return fail(msg, cap, MDIFF_ERR_INVALID, buf);
        }
        if (out->stride != 0 && out->stride < out->width * ch)
            return fail(msg, cap, MDIFF_ERR_INVALID, "generate: output stride smaller than a row");
    }
    return MDIFF_OK;
}

/* Writes the finished planes into the host's image, allocating when asked. */
static int deliver(const float *planes, int w, int h, mdiff_image *out, char *msg, size_t cap)
{
    int ch = out->channels ? out->channels : 3;
    if (out->data) {
        size_t stride = out->stride ? (size_t)out->stride : (size_t)w * ch;
        abi_planes_to_image(planes, w, h, out->data, ch, stride);
        return MDIFF_OK;
    }
    uint8_t *data = malloc((size_t)w * h * ch);
    if (!data)
        return fail(msg, cap, MDIFF_ERR_NOMEM, "generate: out of memory for the output image");
    abi_planes_to_image(planes, w, h, data, ch, (size_t)w * ch);
    out->data = data;
    out->width = w;
    out->height = h;
    out->channels = ch;
    out->stride = w * ch;
    out->flags |= MDIFF_IMAGE_LIBRARY_OWNED;
    return MDIFF_OK;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int run(mdiff_context *ctx, const mdiff_gen_params *request, mdiff_image *out, char *msg,
               size_t cap)
{
    mdiff_gen_params resolved, *p = &resolved;
    char why[480] = "";
    abi_health_begin(ctx);
    int rc = abi_resolve_request(ctx, request, p, why, sizeof why);
    if (rc != MDIFF_OK) {
        char buf[512];
        snprintf(buf, sizeof buf, "generate: %s", why);
        return fail(msg, cap, rc, buf);
    }
    if ((rc = check_output(p, out, msg, cap)) != MDIFF_OK)
        return rc;
    md_gen_images images = {0};

    size_t npix = (size_t)p->width * p->height;
    float *image = malloc(sizeof(float) * 3 * npix);
    float *init = p->init_image ? malloc(sizeof(float) * 3 * npix) : NULL;
    float *mask = p->mask ? malloc(sizeof(float) * npix) : NULL;
    gen_run r = {.ctx = ctx, .has_init = p->init_image != NULL, .width = p->width,
                 .height = p->height, .preview_interval = p->preview_interval,
                 .vae_tile = p->vae_tile};
    r.total = p->init_image && p->strength < 1.0f ? (int)(p->steps * p->strength) : p->steps;
    ctx->trace_total = r.total;
    md_error err = {0};
    md_status st;
    if (!image || (p->init_image && !init) || (p->mask && !mask)) {
        st = md_fail(&err, MD_ERR_NOMEM, "generate: out of memory for a %dx%d image", p->width,
                     p->height);
    } else {
        if (init) {
            abi_image_to_rgb_planes(p->init_image, p->width, p->height, init);
            images.init_image = init;
        }
        if (mask) {
            abi_image_to_mask(p->mask, p->width, p->height, mask);
            images.mask = mask;
        }
        abi_log(ctx, MDIFF_LOG_INFO, "generating %dx%d, %s, %d steps, guidance %g, seed %llu%s",
                p->width, p->height, p->sampler, p->steps, p->guidance,
                (unsigned long long)p->seed, mask ? ", inpainting" : init ? ", img2img" : "");
        double t0 = now_ms();
        md_gen_hooks hooks = {.user = &r, .tensor = on_tensor, .progress = on_progress};
        if (report(&r, MDIFF_STAGE_TEXT, 0, NULL))
            st = md_fail(&err, MD_ERR_CANCELLED, "cancelled before the first step");
        else
            st = md_generate(ctx->model, &(md_gen_run){.backend = ctx->be, .unet = ctx->run_state}, p, &images,
                             &hooks, image, &err);
        if (st == MD_OK && mask)
            st = md_inpaint_paste_back(image, init, mask, p->width, p->height,
                                       md_inpaint_feather_radius(p->width, p->height), &err);
        /* A cancel during decoding cannot stop the pipeline; it still voids the result. */
        if (st == MD_OK && atomic_load(&ctx->cancel))
            st = md_fail(&err, MD_ERR_CANCELLED, "cancelled while decoding");
        if (st == MD_OK) {
            abi_log(ctx, MDIFF_LOG_INFO, "done in %.0f ms", now_ms() - t0);
            abi_health_end(ctx);
        }
    }
    if (st == MD_OK) {
        rc = deliver(image, p->width, p->height, out, msg, cap);
    } else {
        rc = abi_status(st);
        abi_log(ctx, st == MD_ERR_CANCELLED ? MDIFF_LOG_INFO : MDIFF_LOG_ERROR, "%s", err.msg);
        abi_message(msg, cap, err.msg);
    }
    free(image);
    free(init);
    free(mask);
    free(r.preview_latents);
    free(r.preview_planes);
    free(r.preview_rgb);
    return rc;
}

int abi_generate(mdiff_context *ctx, const mdiff_gen_params *params, mdiff_image *out, char *msg,
                 size_t msg_cap)
{
    abi_message(msg, msg_cap, "");
    if (!ctx || !params || !out)
        return fail(msg, msg_cap, MDIFF_ERR_INVALID, "generate: ctx, params and out are required");
    mdiff_gen_params p;
    /* An older host's struct ends early: the fields it lacks keep their defaults. */
    if (abi_read_gen_params(params, &p) != MDIFF_OK)
        return fail(msg, msg_cap, MDIFF_ERR_INVALID,
                    "generate: params struct_size too small (use gen_params_init)");
    if (abi_enter(ctx) != MDIFF_OK)
        return fail(msg, msg_cap, MDIFF_ERR_BUSY,
                    "generate: the context is already running a generation");
    atomic_store(&ctx->cancel, 0);
    ctx->trace_step = 0;
    int rc = run(ctx, &p, out, msg, msg_cap);
    abi_leave(ctx);
    return rc;
}
