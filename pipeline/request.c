#include "request.h"

#include <stddef.h>
#include <string.h>

#include "../runtime/mem_available.h"
#include "../sampling/sampler.h"
#include "../vae/vae_tiled.h"
#include "moe_controls.h"
#include "request_loras.h"

#define MAX_SIDE 8192
#define MAX_MICRO 65536 /* SDXL original/crop/target values */

void md_request_defaults(mdiff_gen_params *p, size_t host_size)
{
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->prompt = "";
    p->steps = 20;
    p->strength = 0.75f;
    /* Hosts built before 1.3 had 7.5 as the default and no way to ask for
     * the model's own. */
    size_t v13 = offsetof(mdiff_gen_params, moe_routing) + sizeof p->moe_routing;
    p->guidance = host_size >= v13 ? MDIFF_GUIDANCE_MODEL : 7.5f;
}

/* What needs no model. */
static md_status check_alone(const mdiff_gen_params *p, int parse_texts, md_error *err)
{
    if (!p->prompt)
        return md_fail(err, MD_ERR_INVALID, "prompt is NULL");
    if (strlen(p->prompt) > MDIFF_PROMPT_MAX ||
        (p->negative_prompt && strlen(p->negative_prompt) > MDIFF_PROMPT_MAX))
        return md_fail(err, MD_ERR_INVALID, "a prompt is longer than %d bytes",
                    MDIFF_PROMPT_MAX);
    if (p->sampler && md_sampler_from_name(p->sampler) < 0)
        return md_fail(err, MD_ERR_INVALID,
                    "unknown sampler '%.100s' (ddim, euler, euler_a, dpmpp_2m, euler_karras, "
                    "dpmpp_2m_karras)",
                    p->sampler);
    if (p->steps < 1 || p->steps > 1000)
        return md_fail(err, MD_ERR_INVALID, "steps must be 1..1000 (got %d)", p->steps);
    if (p->guidance != MDIFF_GUIDANCE_MODEL && !(p->guidance >= 0.0f && p->guidance <= 100.0f))
        return md_fail(err, MD_ERR_INVALID, "guidance (cfg scale) must be 0..100 (got %g)",
                    (double)p->guidance);
    if (p->mask && !p->init_image)
        return md_fail(err, MD_ERR_INVALID, "a mask needs an init_image");
    if (p->init_image) {
        if (!(p->strength > 0.0f && p->strength <= 1.0f))
            return md_fail(err, MD_ERR_INVALID, "strength must be in (0, 1] (got %g)",
                        (double)p->strength);
        if ((int)(p->steps * p->strength) < 1)
            return md_fail(err, MD_ERR_INVALID,
                        "strength %g with %d steps runs no denoising step; raise either",
                        (double)p->strength, p->steps);
    }
    if (p->width < 0 || p->height < 0 || p->width > MAX_SIDE || p->height > MAX_SIDE)
        return md_fail(err, MD_ERR_INVALID, "image size %dx%d is out of range (1..%d)",
                    p->width, p->height, MAX_SIDE);
    if (p->clip_skip < 0 || p->clip_skip > 64)
        return md_fail(err, MD_ERR_INVALID, "clip_skip must be 0..64 (got %d)",
                    p->clip_skip);
    if (p->preview_interval < 0)
        return md_fail(err, MD_ERR_INVALID, "preview_interval must be >= 0");
    if (p->prompt_syntax != MDIFF_PROMPT_WEIGHTED && p->prompt_syntax != MDIFF_PROMPT_PLAIN)
        return md_fail(err, MD_ERR_INVALID, "unknown prompt_syntax %d", p->prompt_syntax);
    const int32_t micro[6] = {p->original_width, p->original_height, p->crop_top,
                              p->crop_left,      p->target_width,    p->target_height};
    for (int i = 0; i < 6; i++)
        if (micro[i] < 0 || micro[i] > MAX_MICRO)
            return md_fail(err, MD_ERR_INVALID,
                        "SDXL original/crop/target values must be 0..%d", MAX_MICRO);
    if (p->moe_top_k < 0 || p->moe_top_k > MDIFF_MAX_TOP_K)
        return md_fail(err, MD_ERR_INVALID, "moe_top_k must be 0..%d (got %d)",
                    MDIFF_MAX_TOP_K, p->moe_top_k);
    if (p->moe_routing != MDIFF_ROUTING_MODEL && p->moe_routing != MDIFF_ROUTING_SEQUENCE &&
        p->moe_routing != MDIFF_ROUTING_TOKEN && p->moe_routing != MDIFF_ROUTING_SEQUENCE_SPLIT)
        return md_fail(err, MD_ERR_INVALID,
                       "unknown moe_routing %d (sequence 1, token 2, sequence-split 3)",
                       p->moe_routing);
    if (p->vae_tile != 0 && p->vae_tile != MDIFF_VAE_TILE_OFF &&
        (p->vae_tile < MD_VAE_TILE_MIN || p->vae_tile > MAX_SIDE))
        return md_fail(err, MD_ERR_INVALID,
                       "vae_tile must be 0 (automatic), -1 (never) or a tile side of %d..%d "
                       "pixels (got %d)", MD_VAE_TILE_MIN, MAX_SIDE, p->vae_tile);
    md_request_loras loras;
    MD_TRY(md_request_loras_collect(p, &loras, err));
    md_request_loras_free(&loras);
    return md_moe_controls_check_alone(p, parse_texts, err);
}

/* A tile side must be whole latent pixels; 0 becomes a tile when a whole
 * decode would take more than half of the memory available now (the
 * largest multiple of 64 pixels whose decode takes at most a quarter). */
static md_status resolve_vae_tile(const md_model *m, mdiff_gen_params *p, md_error *err)
{
    int f = md_vae_factor(m->vae);
    if (p->vae_tile > 0 && p->vae_tile % f)
        return md_fail(err, MD_ERR_INVALID, "vae_tile %d must be a multiple of %d for this model",
                       p->vae_tile, f);
    if (p->vae_tile != 0)
        return MD_OK;
    int tile = md_vae_auto_tile(m->vae, p->height, p->width, md_mem_available());
    if (tile > 0)
        p->vae_tile = tile;
    return MD_OK;
}

/* What the loaded model decides: native size, guidance, clip layers, experts. */
static md_status resolve_with_model(const md_request_context *rc, mdiff_gen_params *p,
                                    md_error *err)
{
    const md_model *m = rc->model;
    const int default_top_k = rc->top_k;
    int factor = md_vae_factor(m->vae);
    int native = m->unet_cfg.sample_size * factor;
    if (p->width == 0)
        p->width = p->init_image ? p->init_image->width : native;
    if (p->height == 0)
        p->height = p->init_image ? p->init_image->height : native;
    if (p->width > MAX_SIDE || p->height > MAX_SIDE)
        return md_fail(err, MD_ERR_INVALID, "image size %dx%d is out of range (1..%d)",
                    p->width, p->height, MAX_SIDE);
    /* The U-Net takes any latent size (odd sizes are upsampled to the skip
     * connections' sizes); the VAE needs whole latent pixels. */
    if (p->width % factor || p->height % factor)
        return md_fail(err, MD_ERR_INVALID,
                    "image size %dx%d must be a multiple of %d for this model", p->width,
                    p->height, factor);
    if (p->guidance == MDIFF_GUIDANCE_MODEL)
        p->guidance = m->default_cfg;
    MD_TRY(resolve_vae_tile(m, p, err));
    int te_layers = m->te_cfg.num_layers;
    if (p->clip_skip >= te_layers)
        return md_fail(err, MD_ERR_INVALID, "clip_skip must be 0..%d (got %d)",
                    te_layers - 1, p->clip_skip);
    const md_moe_config *moe = &m->unet_cfg.moe;
    if (!moe->enabled) {
        p->moe_top_k = 0;
        p->moe_routing = MDIFF_ROUTING_MODEL;
        p->max_expert_memory = 0;
        return MD_OK;
    }
    if (p->max_expert_memory == 0)
        p->max_expert_memory = rc->expert_budget;
    MD_TRY(md_expert_cache_check(md_unet_expert_cache(m->unet), p->max_expert_memory, err));
    if (p->moe_top_k == 0)
        p->moe_top_k = default_top_k ? default_top_k : moe->top_k;
    if (p->moe_top_k > moe->num_experts)
        return md_fail(err, MD_ERR_INVALID,
                    "moe_top_k %d is out of range 1..%d: the model has %d experts per layer",
                    p->moe_top_k,
                    moe->num_experts < MDIFF_MAX_TOP_K ? moe->num_experts : MDIFF_MAX_TOP_K,
                    moe->num_experts);
    if (p->moe_routing == MDIFF_ROUTING_MODEL)
        p->moe_routing = moe->routing == MD_ROUTE_TOKEN_TOPK ? MDIFF_ROUTING_TOKEN
                                                             : MDIFF_ROUTING_SEQUENCE;
    return md_moe_controls_check_model(m, p, err);
}

md_status md_request_resolve(const md_request_context *rc, const mdiff_gen_params *in,
                             mdiff_gen_params *out, md_error *err)
{
    const md_model *m = rc ? rc->model : NULL;
    if (out != in)
        *out = *in;
    out->struct_size = sizeof *out;
    /* an MoE model's check parses the schedule and routes itself */
    md_status st = check_alone(out, !m || !m->unet_cfg.moe.enabled, err);
    if (st == MD_OK && !out->sampler)
        out->sampler = md_sampler_name(MD_SAMPLER_DPMPP_2M_KARRAS);
    if (st == MD_OK && m)
        st = resolve_with_model(rc, out, err);
    return st;
}
