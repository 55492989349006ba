/* One generation through libmoediffuse, reporting to GIMP's progress bar. */
#include <string.h>

#include "mdg.h"

void mdg_settings_defaults(mdg_settings *s)
{
    memset(s, 0, sizeof *s);
    const gchar *model = g_getenv("MOEDIFFUSE_MODEL");
    g_strlcpy(s->model, model ? model : "", sizeof s->model);
    g_strlcpy(s->sampler, "dpmpp_2m_karras", sizeof s->sampler);
    s->steps = 20;
    s->seed = -1;
    s->guidance = 7.5;
    s->strength = 0.75;
}

static int on_progress(void *user, const mdiff_progress *p)
{
    (void)user;
    switch (p->stage) {
    case MDIFF_STAGE_TEXT: gimp_progress_set_text("moe-diffuse: encoding the prompt"); break;
    case MDIFF_STAGE_ENCODE_IMAGE: gimp_progress_set_text("moe-diffuse: encoding the image"); break;
    case MDIFF_STAGE_DENOISE:
        if (p->step == 1)
            gimp_progress_set_text("moe-diffuse: denoising");
        if (p->total > 0)
            gimp_progress_update(0.95 * p->step / p->total);
        break;
    case MDIFF_STAGE_DECODE: gimp_progress_set_text("moe-diffuse: decoding"); break;
    }
    return 0; /* GIMP stops a cancelled plug-in itself */
}

static void to_image(const mdg_pixels *px, mdiff_image *img, const mdiff_api *api)
{
    api->image_init(img, sizeof *img);
    img->data = px->data;
    img->width = px->width;
    img->height = px->height;
    img->channels = px->channels;
}

GimpPDBStatusType mdg_generate(const mdg_settings *s, const mdg_pixels *init, const mdg_pixels *mask,
                               gint width, gint height, mdg_pixels *out, gchar *params,
                               gsize params_cap, gchar *msg, gsize msg_cap)
{
    const mdiff_api *api = moediffuse_get_api(MOEDIFFUSE_ABI_MAJOR, MOEDIFFUSE_ABI_MINOR);
    if (!api) {
        g_strlcpy(msg, "libmoediffuse does not serve this ABI major", msg_cap);
        return GIMP_PDB_EXECUTION_ERROR;
    }
    gimp_progress_init("moe-diffuse: loading the model");
    mdiff_context_params cp;
    api->context_params_init(&cp, sizeof cp);
    cp.model_path = s->model;
    cp.progress = on_progress;
    mdiff_context *ctx = NULL;
    int rc = api->context_create(&cp, &ctx, msg, msg_cap);
    if (rc != MDIFF_OK)
        return GIMP_PDB_EXECUTION_ERROR;

    /* The model wants sizes in whole latent pixels: generate at the size
     * rounded down to that, and the caller scales the layer back. */
    mdiff_model_info info = {.struct_size = sizeof info};
    api->model_info(ctx, &info);
    gint m = MAX(1, info.size_multiple);
    width = width > 0 ? MAX(m, width / m * m) : 0;
    height = height > 0 ? MAX(m, height / m * m) : 0;
    guint32 seed = (guint32)(s->seed >= 0 ? s->seed : g_random_int_range(0, G_MAXINT32));
    mdiff_gen_params p;
    api->gen_params_init(&p, sizeof p);
    p.prompt = s->prompt;
    p.negative_prompt = s->negative[0] ? s->negative : NULL;
    p.sampler = s->sampler[0] ? s->sampler : NULL;
    p.steps = s->steps;
    p.guidance = (float)s->guidance;
    p.seed = seed;
    p.width = width;
    p.height = height;
    mdiff_image init_img, mask_img;
    if (init) {
        to_image(init, &init_img, api);
        p.init_image = &init_img;
        p.strength = (float)s->strength;
    }
    if (mask) {
        to_image(mask, &mask_img, api);
        p.mask = &mask_img;
    }
    mdiff_image result;
    api->image_init(&result, sizeof result);
    rc = api->generate(ctx, &p, &result, msg, msg_cap);
    if (rc == MDIFF_OK) {
        out->width = result.width;
        out->height = result.height;
        out->channels = 3;
        out->data = g_malloc((gsize)result.width * result.height * 3);
        for (gint y = 0; y < result.height; y++)
            memcpy(out->data + (gsize)y * result.width * 3, result.data + (gsize)y * result.stride,
                   (gsize)result.width * 3);
        api->image_free(&result);
        /* AUTOMATIC1111's text, so other tools read it too. */
        gchar strength[64] = "";
        if (init)
            g_snprintf(strength, sizeof strength, ", Denoising strength: %g%s", s->strength,
                       mask ? ", Inpaint: selection" : "");
        g_snprintf(params, params_cap,
                   "%s\nNegative prompt: %s\nSteps: %d, Sampler: %s, CFG scale: %g, Seed: %u, "
                   "Size: %dx%d, Model: %s%s",
                   s->prompt, s->negative, s->steps, p.sampler ? p.sampler : "dpmpp_2m_karras",
                   s->guidance, seed, out->width, out->height, s->model, strength);
        gimp_progress_update(1.0);
    }
    api->context_destroy(ctx);
    return rc == MDIFF_OK ? GIMP_PDB_SUCCESS : GIMP_PDB_EXECUTION_ERROR;
}
