/* The generation request (mdiff_gen_params): its defaults and its one
 * validation. gen_params_init, resolve_params and generate all come here,
 * so a host, the CLI, batch mode and the plug-ins get the same answers. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../sampling/sampler.h"
#include "abi_internal.h"
#include "image_convert.h"

#define MAX_SIDE 8192
#define MAX_MICRO 65536 /* SDXL original/crop/target values */

void abi_gen_params_defaults(mdiff_gen_params *p, size_t host_size)
{
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->prompt = "";
    p->steps = 20;
    p->strength = 0.75f;
    /* Hosts built before 1.3 had 7.5 as the default and no way to ask for
     * the model's own. */
    p->guidance = host_size >= ABI_1_3_GEN_PARAMS_SIZE ? MDIFF_GUIDANCE_MODEL : 7.5f;
}

static int fail(char *msg, size_t cap, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *msg, size_t cap, int status, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    abi_message(msg, cap, buf);
    return status;
}

/* What needs no model. */
static int check_alone(const mdiff_gen_params *p, char *msg, size_t cap)
{
    if (!p->prompt)
        return fail(msg, cap, MDIFF_ERR_INVALID, "prompt is NULL");
    if (strlen(p->prompt) > MDIFF_PROMPT_MAX ||
        (p->negative_prompt && strlen(p->negative_prompt) > MDIFF_PROMPT_MAX))
        return fail(msg, cap, MDIFF_ERR_INVALID, "a prompt is longer than %d bytes",
                    MDIFF_PROMPT_MAX);
    if (p->sampler && md_sampler_from_name(p->sampler) < 0)
        return fail(msg, cap, MDIFF_ERR_INVALID,
                    "unknown sampler '%.100s' (ddim, euler, euler_a, dpmpp_2m, euler_karras, "
                    "dpmpp_2m_karras)",
                    p->sampler);
    if (p->steps < 1 || p->steps > 1000)
        return fail(msg, cap, MDIFF_ERR_INVALID, "steps must be 1..1000 (got %d)", p->steps);
    if (p->guidance != MDIFF_GUIDANCE_MODEL && !(p->guidance >= 0.0f && p->guidance <= 100.0f))
        return fail(msg, cap, MDIFF_ERR_INVALID, "guidance (cfg scale) must be 0..100 (got %g)",
                    (double)p->guidance);
    const mdiff_image *imgs[2] = {p->init_image, p->mask};
    const char *names[2] = {"init_image", "mask"};
    for (int i = 0; i < 2; i++) {
        const char *why = imgs[i] ? abi_image_problem(imgs[i]) : NULL;
        if (why)
            return fail(msg, cap, MDIFF_ERR_INVALID, "%s: %s", names[i], why);
    }
    if (p->mask && !p->init_image)
        return fail(msg, cap, MDIFF_ERR_INVALID, "a mask needs an init_image");
    if (p->init_image) {
        if (!(p->strength > 0.0f && p->strength <= 1.0f))
            return fail(msg, cap, MDIFF_ERR_INVALID, "strength must be in (0, 1] (got %g)",
                        (double)p->strength);
        if ((int)(p->steps * p->strength) < 1)
            return fail(msg, cap, MDIFF_ERR_INVALID,
                        "strength %g with %d steps runs no denoising step; raise either",
                        (double)p->strength, p->steps);
    }
    if (p->width < 0 || p->height < 0 || p->width > MAX_SIDE || p->height > MAX_SIDE)
        return fail(msg, cap, MDIFF_ERR_INVALID, "image size %dx%d is out of range (1..%d)",
                    p->width, p->height, MAX_SIDE);
    if (p->clip_skip < 0 || p->clip_skip > 64)
        return fail(msg, cap, MDIFF_ERR_INVALID, "clip_skip must be 0..64 (got %d)",
                    p->clip_skip);
    if (p->preview_interval < 0)
        return fail(msg, cap, MDIFF_ERR_INVALID, "preview_interval must be >= 0");
    if (p->prompt_syntax != MDIFF_PROMPT_WEIGHTED && p->prompt_syntax != MDIFF_PROMPT_PLAIN)
        return fail(msg, cap, MDIFF_ERR_INVALID, "unknown prompt_syntax %d", p->prompt_syntax);
    const int32_t micro[6] = {p->original_width, p->original_height, p->crop_top,
                              p->crop_left,      p->target_width,    p->target_height};
    for (int i = 0; i < 6; i++)
        if (micro[i] < 0 || micro[i] > MAX_MICRO)
            return fail(msg, cap, MDIFF_ERR_INVALID,
                        "SDXL original/crop/target values must be 0..%d", MAX_MICRO);
    if (p->moe_top_k < 0 || p->moe_top_k > MDIFF_MAX_TOP_K)
        return fail(msg, cap, MDIFF_ERR_INVALID, "moe_top_k must be 0..%d (got %d)",
                    MDIFF_MAX_TOP_K, p->moe_top_k);
    if (p->moe_routing != MDIFF_ROUTING_MODEL && p->moe_routing != MDIFF_ROUTING_SEQUENCE &&
        p->moe_routing != MDIFF_ROUTING_TOKEN)
        return fail(msg, cap, MDIFF_ERR_INVALID, "unknown moe_routing %d", p->moe_routing);
    return MDIFF_OK;
}

/* What the loaded model decides: native size, guidance, clip layers, experts. */
static int resolve_with_model(mdiff_context *ctx, mdiff_gen_params *p, char *msg, size_t cap)
{
    const md_model *m = ctx->model;
    int factor = md_vae_factor(m->vae);
    int native = m->unet_cfg.sample_size * factor;
    if (p->width == 0)
        p->width = p->init_image ? p->init_image->width : native;
    if (p->height == 0)
        p->height = p->init_image ? p->init_image->height : native;
    if (p->width > MAX_SIDE || p->height > MAX_SIDE)
        return fail(msg, cap, MDIFF_ERR_INVALID, "image size %dx%d is out of range (1..%d)",
                    p->width, p->height, MAX_SIDE);
    /* The U-Net takes any latent size (odd sizes are upsampled to the skip
     * connections' sizes); the VAE needs whole latent pixels. */
    if (p->width % factor || p->height % factor)
        return fail(msg, cap, MDIFF_ERR_INVALID,
                    "image size %dx%d must be a multiple of %d for this model", p->width,
                    p->height, factor);
    if (p->guidance == MDIFF_GUIDANCE_MODEL)
        p->guidance = m->default_cfg;
    int te_layers = m->te_cfg.num_layers;
    if (p->clip_skip >= te_layers)
        return fail(msg, cap, MDIFF_ERR_INVALID, "clip_skip must be 0..%d (got %d)",
                    te_layers - 1, p->clip_skip);
    const md_moe_config *moe = &m->unet_cfg.moe;
    if (!moe->enabled) {
        p->moe_top_k = 0;
        p->moe_routing = MDIFF_ROUTING_MODEL;
        return MDIFF_OK;
    }
    if (p->moe_top_k == 0)
        p->moe_top_k = ctx->top_k ? ctx->top_k : moe->top_k;
    if (p->moe_top_k > moe->num_experts)
        return fail(msg, cap, MDIFF_ERR_INVALID,
                    "moe_top_k %d: the model has %d experts per layer", p->moe_top_k,
                    moe->num_experts);
    if (p->moe_routing == MDIFF_ROUTING_MODEL)
        p->moe_routing = moe->routing == MD_ROUTE_TOKEN_TOPK ? MDIFF_ROUTING_TOKEN
                                                             : MDIFF_ROUTING_SEQUENCE;
    return MDIFF_OK;
}

int abi_resolve_request(mdiff_context *ctx, const mdiff_gen_params *in, mdiff_gen_params *out,
                        char *msg, size_t cap)
{
    *out = *in;
    out->struct_size = sizeof *out;
    int rc = check_alone(out, msg, cap);
    if (rc == MDIFF_OK && !out->sampler)
        out->sampler = md_sampler_name(MD_SAMPLER_DPMPP_2M_KARRAS);
    if (rc == MDIFF_OK && ctx)
        rc = resolve_with_model(ctx, out, msg, cap);
    return rc;
}

/* The host's struct read over the defaults, as generate and resolve_params
 * take it. */
int abi_read_gen_params(const mdiff_gen_params *host, mdiff_gen_params *p)
{
    abi_gen_params_defaults(p, host->struct_size);
    if (abi_read_struct(p, sizeof *p, host, ABI_1_0_GEN_PARAMS_SIZE) != MDIFF_OK)
        return MDIFF_ERR_INVALID;
    /* Hosts built before 1.2 got plain prompts truncated at 75 tokens. */
    if (host->struct_size < offsetof(mdiff_gen_params, prompt_syntax) + sizeof p->prompt_syntax)
        p->prompt_syntax = MDIFF_PROMPT_PLAIN;
    return MDIFF_OK;
}

int abi_resolve_params(mdiff_context *ctx, const mdiff_gen_params *params, mdiff_gen_params *out,
                       char *msg, size_t msg_cap)
{
    abi_message(msg, msg_cap, "");
    if (!params || !out || out->struct_size < ABI_1_0_GEN_PARAMS_SIZE)
        return fail(msg, msg_cap, MDIFF_ERR_INVALID,
                    "resolve_params: params and out (struct_size set) are required");
    mdiff_gen_params p, r;
    if (abi_read_gen_params(params, &p) != MDIFF_OK)
        return fail(msg, msg_cap, MDIFF_ERR_INVALID,
                    "resolve_params: params struct_size too small (use gen_params_init)");
    if (ctx && abi_enter(ctx) != MDIFF_OK)
        return fail(msg, msg_cap, MDIFF_ERR_BUSY, "resolve_params: the context is busy");
    int rc = abi_resolve_request(ctx, &p, &r, msg, msg_cap);
    if (ctx)
        abi_leave(ctx);
    if (rc != MDIFF_OK)
        return rc;
    size_t size = out->struct_size;
    memcpy(out, &r, size < sizeof r ? size : sizeof r);
    out->struct_size = size;
    return MDIFF_OK;
}
