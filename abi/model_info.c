/* Model information: sizes, MoE shape and parameter counts, counted from
 * the weight maps (diffusers naming: MoE layers are `P.gate.weight` beside
 * `P.experts.{e}.*`). */
#include <string.h>

#include "abi_internal.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int abi_model_info(mdiff_context *ctx, mdiff_model_info *info)
{
    if (!ctx || !info || info->struct_size < sizeof(size_t))
        return MDIFF_ERR_INVALID;
    if (abi_enter(ctx) != MDIFF_OK)
        return MDIFF_ERR_BUSY;
    const md_model *m = ctx->model;
    const md_unet_config *u = &m->unet_cfg;
    int factor = md_vae_factor(m->vae);
    mdiff_model_info r = {.struct_size = sizeof r};
    r.family = m->family == MD_FAMILY_SDXL ? MDIFF_FAMILY_SDXL
               : m->family == MD_FAMILY_SD2 ? MDIFF_FAMILY_SD2
                                            : MDIFF_FAMILY_SD1;
    r.native_width = r.native_height = u->sample_size * factor;
    r.size_multiple = factor; /* the U-Net takes any latent size; the VAE needs whole latents */
    r.unet_levels = u->levels;
    r.default_guidance = m->default_cfg;
    r.text_encoders = m->te2 ? 2 : 1;
    r.shared_expert = u->moe.enabled && u->moe.shared_expert;
    if (u->moe.enabled) {
        r.num_experts = u->moe.num_experts;
        r.top_k = ctx->top_k ? ctx->top_k : u->moe.top_k; /* what requests get by default */
        r.routing = u->moe.routing == MD_ROUTE_TOKEN_TOPK ? MDIFF_ROUTING_TOKEN
                                                          : MDIFF_ROUTING_SEQUENCE;
    }
    uint64_t experts = 0; /* parameters inside routed experts */
    for (int i = 0; i < m->nweights; i++) {
        const md_weights *w = m->weights[i];
        int is_unet = !strcmp(md_weights_label(w), "unet");
        for (size_t t = 0; t < md_weights_count(w); t++) {
            uint64_t n = (uint64_t)md_tensor_numel(md_weights_tensor(w, t));
            const char *name = md_weights_name(w, t);
            r.params_total += n;
            if (!is_unet)
                continue;
            r.params_unet += n;
            if (strstr(name, ".experts."))
                experts += n;
            if (strstr(name, "transformer_blocks.") && ends_with(name, ".norm1.weight"))
                r.transformer_blocks++;
            if (u->moe.enabled && ends_with(name, ".gate.weight"))
                r.moe_layers++;
        }
    }
    /* Each layer runs top_k of its num_experts equally sized experts. */
    uint64_t idle = r.num_experts ? experts / (uint64_t)r.num_experts *
                                        (uint64_t)(r.num_experts - r.top_k)
                                  : 0;
    r.params_active = r.params_total - idle;
    md_expert_cache *cache = md_unet_expert_cache(m->unet);
    if (cache) {
        md_expert_memory mem;
        md_expert_cache_memory(cache, &mem);
        r.expert_memory = mem.total;
        r.expert_memory_minimum = mem.minimum;
    }
    abi_write_struct(info, &r, sizeof r);
    abi_leave(ctx);
    return MDIFF_OK;
}
