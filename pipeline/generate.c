/* The denoising loop shared by txt2img, img2img and inpainting. */
#include "pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sampling/rng.h"
#include "../vae/vae_tiled.h"
#include "moe_controls.h"
#include "request_loras.h"

/* Noise streams of the seeded RNG (sampling/rng.h); per-step noise uses
 * stream MD_STREAM_STEP0 + step. */
enum { MD_STREAM_INITIAL = 0, MD_STREAM_ENCODER = 1, MD_STREAM_STEP0 = 16 };

typedef struct gen_state {
    const md_model *m;
    md_backend *be;       /* where this generation computes */
    md_unet_state *unet;  /* this generation's U-Net state */
    const mdiff_gen_params *p; /* resolved */
    const float *init_image;   /* [3, H, W] or NULL */
    const float *mask;         /* [H, W] or NULL */
    md_sampler_kind sampler;
    int weighted;              /* A1111 prompt syntax */
    md_moe_options moe;
    md_moe_controls moe_ctl; /* per-step MoE options: schedule, replay */
    const md_gen_hooks *h;
    int lat_c, lat_h, lat_w;
    size_t n;           /* latent elements of one image */
    int batch;          /* 2 with classifier-free guidance, else 1 */
    int ctx_dim, pooled_dim;
    int context_len;    /* 77, or 77 x chunks with prompt_syntax */
    float *embeds;      /* [batch, context_len, ctx_dim]: uncond first */
    float *pooled;      /* [batch, pooled_dim] (SDXL) */
    float *time_ids;    /* [batch, 6] (SDXL) */
    float *latents, *scaled, *model_in, *eps, *guided, *noise, *step_noise, *next;
    float *image_latents, *mask_latent;
    float *timestep_rows;
} gen_state;

static void emit(const gen_state *s, const char *name, int step, const float *data, size_t n)
{
    if (s->h && s->h->tensor)
        s->h->tensor(s->h->user, name, step, data, n);
}

static void draw_noise(const gen_state *s, md_noise_kind kind, int step, float *out, size_t n)
{
    if (s->h && s->h->noise && s->h->noise(s->h->user, kind, step, out, n))
        return;
    uint64_t stream = kind == MD_NOISE_INITIAL ? MD_STREAM_INITIAL
                      : kind == MD_NOISE_ENCODER ? MD_STREAM_ENCODER
                                                 : (uint64_t)MD_STREAM_STEP0 + (uint64_t)step;
    md_randn(s->p->seed, stream, 0, out, n);
}

/* A NaN or Inf anywhere poisons everything after it and still ends as an
 * image (the final clamp turns it grey or black), so it stops the generation
 * where it first appears. One pass over the data is negligible against the
 * stage that made it. */
static md_status check_finite(const float *x, size_t n, md_error *err, const char *stage)
{
    for (size_t k = 0; k < n; k++)
        if (!isfinite(x[k]))
            return md_fail(err, MD_ERR_NUMERIC,
                           "%s produced a non-finite value (%s at element %zu of %zu): the "
                           "model's weights hold NaN/Inf or the computation overflowed",
                           stage, isnan(x[k]) ? "NaN" : "Inf", k, n);
    return MD_OK;
}

static void free_state(gen_state *s)
{
    free(s->embeds);
    free(s->pooled);
    free(s->time_ids);
    free(s->latents);
    free(s->scaled);
    free(s->model_in);
    free(s->eps);
    free(s->guided);
    free(s->noise);
    free(s->step_noise);
    free(s->next);
    free(s->image_latents);
    free(s->mask_latent);
    free(s->timestep_rows);
}

static md_status alloc_state(gen_state *s, md_error *err)
{
    size_t n = s->n, b = (size_t)s->batch;
    s->embeds = calloc(b * MD_CLIP_CONTEXT * (size_t)s->ctx_dim, sizeof(float));
    s->pooled = calloc(b * (size_t)(s->pooled_dim > 0 ? s->pooled_dim : 1), sizeof(float));
    s->time_ids = calloc(b * 6, sizeof(float));
    s->latents = calloc(n, sizeof(float));
    s->scaled = calloc(n, sizeof(float));
    s->model_in = calloc(n * b, sizeof(float));
    s->eps = calloc(n * b, sizeof(float));
    s->guided = calloc(n, sizeof(float));
    s->noise = calloc(n, sizeof(float));
    s->step_noise = calloc(n, sizeof(float));
    s->next = calloc(n, sizeof(float));
    s->image_latents = calloc(n, sizeof(float));
    s->mask_latent = calloc(n, sizeof(float));
    s->timestep_rows = calloc(b, sizeof(float));
    if (!s->embeds || !s->pooled || !s->time_ids || !s->latents || !s->scaled || !s->model_in ||
        !s->eps || !s->guided || !s->noise || !s->step_noise || !s->next || !s->image_latents ||
        !s->mask_latent || !s->timestep_rows)
        return md_fail(err, MD_ERR_NOMEM, "out of memory for a %dx%d generation", s->p->width,
                       s->p->height);
    return MD_OK;
}

/* Prompt syntax: both prompts get the larger chunk count of the two. */
static md_status size_context(gen_state *s, int zero_uncond, md_error *err)
{
    const mdiff_gen_params *p = s->p;
    int chunks = 1, neg_chunks = 1;
    if (!s->weighted)
        return MD_OK;
    md_status st = md_prompt_chunk_count(s->m, p->prompt, &chunks, err);
    if (st != MD_OK)
        return md_fail_context(err, "encoding the prompt: ");
    if (s->batch == 2 && !zero_uncond) {
        st = md_prompt_chunk_count(s->m, p->negative_prompt ? p->negative_prompt : "", &neg_chunks,
                                   err);
        if (st != MD_OK)
            return md_fail_context(err, "encoding the negative prompt: ");
    }
    if (neg_chunks > chunks)
        chunks = neg_chunks;
    s->context_len = MD_CLIP_CONTEXT * chunks;
    float *e = calloc((size_t)s->batch * s->context_len * (size_t)s->ctx_dim, sizeof(float));
    if (!e)
        return md_fail(err, MD_ERR_NOMEM, "out of memory for the prompt conditioning");
    free(s->embeds);
    s->embeds = e;
    return MD_OK;
}

static md_status encode_text(gen_state *s, const char *text, float *embeds, float *pooled,
                             md_error *err)
{
    const mdiff_gen_params *p = s->p;
    if (!s->weighted)
        return md_encode_prompt(s->m, s->be, text, p->clip_skip, embeds, pooled, err);
    return md_encode_prompt_weighted(s->m, s->be, text, p->clip_skip,
                                     s->context_len / MD_CLIP_CONTEXT, embeds, pooled, err);
}

static md_status encode_conditioning(gen_state *s, md_error *err)
{
    const md_model *m = s->m;
    const mdiff_gen_params *p = s->p;
    int zero_uncond = s->batch == 2 && m->family == MD_FAMILY_SDXL &&
                      m->force_zeros_for_empty_prompt && p->negative_prompt == NULL;
    md_status st = size_context(s, zero_uncond, err);
    if (st != MD_OK)
        return st;
    size_t row = (size_t)s->context_len * s->ctx_dim;
    float *cond = s->embeds + (s->batch - 1) * row;
    float *cond_pooled = s->pooled_dim ? s->pooled + (size_t)(s->batch - 1) * s->pooled_dim : NULL;
    st = encode_text(s, p->prompt, cond, cond_pooled, err);
    if (st != MD_OK)
        return md_fail_context(err, "encoding the prompt: ");
    if (s->batch == 2 && !zero_uncond) { /* calloc'd rows already hold the zeros otherwise */
        const char *neg = p->negative_prompt ? p->negative_prompt : "";
        st = encode_text(s, neg, s->embeds, s->pooled_dim ? s->pooled : NULL, err);
        if (st != MD_OK)
            return md_fail_context(err, "encoding the negative prompt: ");
    }
    MD_TRY(check_finite(s->embeds, row * s->batch, err, "the text encoder"));
    if (s->pooled_dim)
        MD_TRY(check_finite(s->pooled, (size_t)s->batch * s->pooled_dim, err,
                            "the text encoder (pooled output)"));
    emit(s, "prompt_embeds", -1, s->embeds, row * s->batch);
    if (m->family == MD_FAMILY_SDXL) {
        emit(s, "add_text_embeds", -1, s->pooled, (size_t)s->batch * s->pooled_dim);
        float ids[6] = {
            (float)(p->original_height ? p->original_height : p->height),
            (float)(p->original_width ? p->original_width : p->width),
            (float)p->crop_top,
            (float)p->crop_left,
            (float)(p->target_height ? p->target_height : p->height),
            (float)(p->target_width ? p->target_width : p->width)};
        for (int b = 0; b < s->batch; b++)
            memcpy(s->time_ids + 6 * b, ids, sizeof ids);
        emit(s, "add_time_ids", -1, s->time_ids, 6 * (size_t)s->batch);
    }
    return MD_OK;
}

/* image_latents = scaling * (mean + exp(logvar/2) * noise) of the init image. */
static md_status encode_init_image(gen_state *s, md_error *err)
{
    const mdiff_gen_params *p = s->p;
    size_t npix = (size_t)p->width * p->height;
    float *img = malloc(sizeof(float) * 3 * npix);
    float *mean = malloc(sizeof(float) * s->n);
    float *logvar = malloc(sizeof(float) * s->n);
    md_status st = MD_OK;
    if (!img || !mean || !logvar) {
        st = md_fail(err, MD_ERR_NOMEM, "out of memory encoding the init image");
        goto done;
    }
    for (size_t i = 0; i < 3 * npix; i++)
        img[i] = 2.0f * s->init_image[i] - 1.0f;
    st = p->vae_tile > 0 ? md_vae_encode_tiled(s->m->vae, s->be, img, p->height, p->width,
                                               p->vae_tile, mean, logvar, err)
                         : md_vae_encode(s->m->vae, s->be, img, 1, p->height, p->width, mean,
                                         logvar, err);
    if (st != MD_OK) {
        md_fail_context(err, "encoding the init image: ");
        goto done;
    }
    draw_noise(s, MD_NOISE_ENCODER, 0, s->noise, s->n);
    float sf = s->m->vae_cfg.scaling_factor;
    for (size_t i = 0; i < s->n; i++)
        s->image_latents[i] = sf * (mean[i] + expf(0.5f * logvar[i]) * s->noise[i]);
    st = check_finite(s->image_latents, s->n, err, "the VAE encoder (init image)");
    if (st != MD_OK)
        goto done;
    emit(s, "image_latents", -1, s->image_latents, s->n);
done:
    free(img);
    free(mean);
    free(logvar);
    return st;
}

/* Nearest-neighbour resize of the binarised mask to latent size, as
 * F.interpolate(mode="nearest") indexes: src = floor(dst * in / out). */
static void make_mask_latent(gen_state *s)
{
    const mdiff_gen_params *p = s->p;
    size_t plane = (size_t)s->lat_h * s->lat_w;
    for (int y = 0; y < s->lat_h; y++) {
        int sy = (int)((int64_t)y * p->height / s->lat_h);
        for (int x = 0; x < s->lat_w; x++) {
            int sx = (int)((int64_t)x * p->width / s->lat_w);
            float v = s->mask[(size_t)sy * p->width + sx] >= 0.5f ? 1.0f : 0.0f;
            for (int c = 0; c < s->lat_c; c++)
                s->mask_latent[c * plane + (size_t)y * s->lat_w + x] = v;
        }
    }
    emit(s, "mask_latent", -1, s->mask_latent, plane);
}

static md_status run_unet(gen_state *s, md_sampler *smp, int i, md_error *err)
{
    float t = md_sampler_timesteps(smp)[i];
    md_sampler_scale_input(smp, i, s->latents, s->scaled, s->n);
    for (int b = 0; b < s->batch; b++) {
        memcpy(s->model_in + (size_t)b * s->n, s->scaled, sizeof(float) * s->n);
        s->timestep_rows[b] = t;
    }
    int sdxl = s->m->family == MD_FAMILY_SDXL;
    md_unet_inputs in = {
        .batch = s->batch,
        .height = s->lat_h,
        .width = s->lat_w,
        .sample = s->model_in,
        .timesteps = s->timestep_rows,
        .context = s->embeds,
        .context_len = s->context_len,
        .text_embeds = sdxl ? s->pooled : NULL,
        .time_ids = sdxl ? s->time_ids : NULL,
    };
    md_status st = md_unet_forward(s->m->unet, s->unet, s->be, &in, s->eps, err);
    if (st != MD_OK)
        return md_fail_context(err, "U-Net at step %d: ", i);
    char stage[48];
    snprintf(stage, sizeof stage, "the U-Net at step %d", i + 1);
    MD_TRY(check_finite(s->eps, s->n * (size_t)s->batch, err, stage));
    if (s->batch == 2) {
        const float *u = s->eps, *c = s->eps + s->n;
        float g = s->p->guidance;
        for (size_t k = 0; k < s->n; k++)
            s->guided[k] = u[k] + g * (c[k] - u[k]);
    } else {
        memcpy(s->guided, s->eps, sizeof(float) * s->n);
    }
    return MD_OK;
}

/* The request as this pipeline runs it: resolved (defaults filled, values
 * checked by the one validation, pipeline/request.c), with its names and
 * choices mapped to the engine's. */
static md_status take_request(gen_state *s, const mdiff_gen_params *req,
                              const md_gen_images *images, mdiff_gen_params *resolved,
                              md_error *err)
{
    md_request_context rc = {.model = s->m};
    MD_TRY(md_request_resolve(&rc, req, resolved, err));
    s->p = resolved;
    s->init_image = images ? images->init_image : NULL;
    s->mask = images ? images->mask : NULL;
    if (s->mask && !s->init_image)
        return md_fail(err, MD_ERR_INVALID, "inpainting needs an init image as well as a mask");
    /* The planes come apart from the request's image structs, which the
     * validation sees: their strength is checked here. */
    if (s->init_image && !(resolved->strength > 0.0f && resolved->strength <= 1.0f))
        return md_fail(err, MD_ERR_INVALID, "strength must be in (0, 1] (got %g)",
                       (double)resolved->strength);
    s->sampler = (md_sampler_kind)md_sampler_from_name(resolved->sampler);
    s->weighted = resolved->prompt_syntax == MDIFF_PROMPT_WEIGHTED;
    return MD_OK;
}

/* The backend and U-Net state of this call: the caller's, or the model's
 * backend and a state made here (*owned, freed by the caller). */
static md_status open_run(gen_state *s, const md_gen_run *run, md_unet_state **owned,
                          md_error *err)
{
    md_backend *loader = md_unet_backend(s->m->unet);
    s->be = run && run->backend ? run->backend : loader;
    if (!md_backend_shares_weights(loader, s->be))
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "the model's weights live on its %s backend; another %s backend cannot "
                       "use them (only host-memory backends such as the CPU share weights)",
                       loader->name, s->be->name);
    s->unet = run ? run->unet : NULL;
    if (!s->unet) {
        md_status st = md_unet_state_new(s->m->unet, owned, err);
        if (st != MD_OK)
            return st;
        s->unet = *owned;
    }
    md_unet_state_set_moe(s->unet, &s->moe);
    return MD_OK;
}

/* The request's LoRAs: the prompt without its tags goes to the text
 * encoder, and this generation computes through a wrapper that applies
 * them (the model is not changed). */
static md_status open_loras(gen_state *s, const md_gen_run *run, mdiff_gen_params *resolved,
                            md_request_loras *loras, md_lora_set **set, md_error *err)
{
    MD_TRY(md_request_loras_collect(resolved, loras, err));
    resolved->prompt = loras->prompt;
    if (loras->count == 0)
        return MD_OK;
    md_status st = md_lora_set_open(s->m, loras->uses, loras->count,
                                    (resolved->lora_flags & MDIFF_LORA_ALLOW_UNMATCHED) != 0, set,
                                    err);
    if (st != MD_OK)
        return st;
    int choice = run ? run->lora_apply : 0;
    md_lora_apply how = choice > 0 ? (md_lora_apply)(choice - 1) : MD_LORA_SIDE;
    st = md_lora_set_backend(*set, s->be, how, &s->be, err);
    return st == MD_OK ? MD_OK : md_fail_context(err, "applying the LoRAs: ");
}

int md_generate_batch(const mdiff_gen_params *resolved)
{
    return resolved->guidance > 1.0f ? 2 : 1;
}

md_status md_generate(const md_model *m, const md_gen_run *run, const mdiff_gen_params *req,
                      const md_gen_images *images, const md_gen_hooks *hooks, float *image,
                      md_error *err)
{
    int factor = md_vae_factor(m->vae);
    gen_state s = {.m = m, .h = hooks};
    mdiff_gen_params resolved;
    md_status st = take_request(&s, req, images, &resolved, err);
    if (st != MD_OK)
        return st;
    const mdiff_gen_params *p = &resolved;
    s.lat_c = m->unet_cfg.in_channels;
    s.lat_h = p->height / factor;
    s.lat_w = p->width / factor;
    s.n = (size_t)s.lat_c * s.lat_h * s.lat_w;
    s.batch = md_generate_batch(p);
    s.ctx_dim = m->unet_cfg.cross_attention_dim;
    s.pooled_dim = m->family == MD_FAMILY_SDXL ? m->te2_cfg.projection_dim : 0;
    s.context_len = MD_CLIP_CONTEXT;

    md_sampler *smp = NULL;
    float *decoded = NULL;
    md_unet_state *owned = NULL;
    md_request_loras loras = {0};
    md_lora_set *lora_set = NULL;
    st = md_moe_controls_open(&s.moe_ctl, m, p, s.batch, err);
    if (st != MD_OK)
        return st;
    s.moe = s.moe_ctl.base;
    st = open_run(&s, run, &owned, err);
    if (st == MD_OK)
        st = open_loras(&s, run, &resolved, &loras, &lora_set, err);
    if (st == MD_OK)
        st = alloc_state(&s, err);
    if (st == MD_OK)
        st = md_sampler_create(&smp, s.sampler, &m->sched_cfg, p->steps, err);
    if (st == MD_OK)
        st = encode_conditioning(&s, err);
    if (st != MD_OK)
        goto done;
    /* Each phase's peak memory holds only its own component's weights. */
    md_model_release_pages(m, "text_encoder");

    /* img2img and inpainting with strength < 1 start part-way down the schedule. */
    int begin = 0;
    int partial = s.init_image && p->strength < 1.0f;
    if (partial) {
        int init_steps = (int)(p->steps * p->strength);
        if (init_steps < 1) {
            st = md_fail(err, MD_ERR_INVALID,
                         "strength %g with %d steps runs no step: raise --strength or --steps",
                         p->strength, p->steps);
            goto done;
        }
        begin = p->steps - init_steps;
        md_sampler_set_begin(smp, begin);
    }
    const float *timesteps = md_sampler_timesteps(smp);
    emit(&s, "timesteps", -1, timesteps + begin, (size_t)(p->steps - begin));

    if (s.init_image && (st = encode_init_image(&s, err)) != MD_OK)
        goto done;
    if (s.mask)
        make_mask_latent(&s);
    draw_noise(&s, MD_NOISE_INITIAL, 0, s.noise, s.n);
    if (partial) {
        md_sampler_add_noise(smp, begin, s.image_latents, s.noise, s.latents, s.n);
        emit(&s, "latents_init", -1, s.latents, s.n);
    } else {
        float sigma0 = md_sampler_init_noise_sigma(smp);
        emit(&s, "init_noise_sigma", -1, &sigma0, 1);
        for (size_t k = 0; k < s.n; k++)
            s.latents[k] = s.noise[k] * sigma0;
    }

    for (int i = begin; i < p->steps; i++) {
        int step = i - begin;
        md_moe_controls_step(&s.moe_ctl, i, p->steps, &s.moe);
        md_unet_state_set_moe(s.unet, &s.moe);
        if ((st = run_unet(&s, smp, i, err)) != MD_OK)
            goto done;
        emit(&s, "noise_pred", step, s.guided, s.n);
        if (md_sampler_needs_noise(smp))
            draw_noise(&s, MD_NOISE_STEP, step, s.step_noise, s.n);
        st = md_sampler_step(smp, i, s.guided, s.latents, s.step_noise, s.next, s.n, err);
        if (st != MD_OK)
            goto done;
        char stage[48];
        snprintf(stage, sizeof stage, "the sampler at step %d", i + 1);
        if ((st = check_finite(s.next, s.n, err, stage)) != MD_OK)
            goto done;
        memcpy(s.latents, s.next, sizeof(float) * s.n);
        if (s.mask) {
            /* Keep the unmasked area on the init image's noisy trajectory. */
            const float *proper = s.image_latents;
            if (i + 1 < p->steps) {
                md_sampler_add_noise(smp, i + 1, s.image_latents, s.noise, s.next, s.n);
                proper = s.next;
            }
            for (size_t k = 0; k < s.n; k++)
                s.latents[k] = (1.0f - s.mask_latent[k]) * proper[k] + s.mask_latent[k] * s.latents[k];
        }
        emit(&s, "latents", step, s.latents, s.n);
        if (hooks && hooks->progress && hooks->progress(hooks->user, step + 1, p->steps - begin)) {
            st = md_fail(err, MD_ERR_CANCELLED, "cancelled at step %d of %d", step + 1,
                         p->steps - begin);
            goto done;
        }
    }
    emit(&s, "final_latents", -1, s.latents, s.n);
    md_unet_state_drop_kv(s.unet); /* the text's keys and values are done with: the VAE gets the room */
    md_model_release_pages(m, "unet");

    float inv = 1.0f / m->vae_cfg.scaling_factor;
    for (size_t k = 0; k < s.n; k++)
        s.latents[k] *= inv;
    size_t npix = (size_t)p->width * p->height;
    decoded = malloc(sizeof(float) * (size_t)m->vae_cfg.out_channels * npix);
    if (!decoded) {
        st = md_fail(err, MD_ERR_NOMEM, "out of memory decoding the image");
        goto done;
    }
    st = p->vae_tile > 0 ? md_vae_decode_tiled(m->vae, s.be, s.latents, s.lat_h, s.lat_w,
                                               p->vae_tile, decoded, err)
                         : md_vae_decode(m->vae, s.be, s.latents, 1, s.lat_h, s.lat_w, decoded, err);
    if (st != MD_OK) {
        md_fail_context(err, "decoding the latents: ");
        goto done;
    }
    if ((st = check_finite(decoded, 3 * npix, err, "the VAE decoder")) != MD_OK)
        goto done;
    for (size_t k = 0; k < 3 * npix; k++) {
        float v = decoded[k] * 0.5f + 0.5f;
        image[k] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    }
    emit(&s, "image", -1, image, 3 * npix);
done:
    free(decoded);
    md_sampler_free(smp);
    free_state(&s);
    if (s.unet) { /* the routes are freed below: the state must not point at them */
        s.moe.routes = NULL;
        md_unet_state_set_moe(s.unet, &s.moe);
        md_unet_state_drop_kv(s.unet); /* its backend may be a LoRA wrapper freed below */
    }
    md_unet_state_free(owned);
    md_moe_controls_close(&s.moe_ctl);
    md_lora_set_free(lora_set);
    md_request_loras_free(&loras);
    return st;
}
