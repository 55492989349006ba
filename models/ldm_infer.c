/* Component configs of single-file checkpoints, from tensor shapes. */
#include "ldm_infer.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../config/config_json.h"
#include "ldm_names.h"

/* Looks up printf-formatted name; NULL when absent. */
static const md_tensor *findf(const md_safetensors *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const md_tensor *findf(const md_safetensors *st, const char *fmt, ...)
{
    char name[320];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof name)
        return NULL;
    return md_safetensors_find(st, name);
}

static int has_prefix(const md_safetensors *st, const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < md_safetensors_count(st); i++)
        if (!strncmp(md_safetensors_name(st, i), prefix, n))
            return 1;
    return 0;
}

md_status md_ldm_detect_family(const md_safetensors *st, md_family *out, md_error *err)
{
    const char *path = md_safetensors_path(st);
    if (!has_prefix(st, MD_LDM_UNET_PREFIX))
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: no %s* weights: not a Stable Diffusion single-file checkpoint", path,
                       MD_LDM_UNET_PREFIX);
    if (has_prefix(st, "conditioner.embedders.") ||
        md_safetensors_find(st, MD_LDM_UNET_PREFIX "label_emb.0.0.weight"))
        *out = MD_FAMILY_SDXL;
    else if (has_prefix(st, MD_LDM_SD2_TE_PREFIX))
        *out = MD_FAMILY_SD2;
    else if (has_prefix(st, MD_LDM_SD1_TE_PREFIX))
        *out = MD_FAMILY_SD1;
    else
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: no text encoder weights (cond_stage_model.* or conditioner.*); "
                       "U-Net-only files are not supported",
                       path);
    return MD_OK;
}

#define U MD_LDM_UNET_PREFIX

/* Number of transformer blocks of the attention under block prefix bp. */
static int transformer_depth(const md_safetensors *st, const char *bp)
{
    int d = 0;
    while (findf(st, U "%stransformer_blocks.%d.norm1.weight", bp, d))
        d++;
    return d;
}

static void attention_facts(const md_safetensors *st, const char *bp, md_unet_config *c)
{
    const md_tensor *p = findf(st, U "%sproj_in.weight", bp);
    if (p)
        c->use_linear_projection = p->ndim == 2;
    const md_tensor *k = findf(st, U "%stransformer_blocks.0.attn2.to_k.weight", bp);
    if (!k) /* an MoE projection: every expert has the plain shape */
        k = findf(st, U "%stransformer_blocks.0.attn2.to_k.experts.0.weight", bp);
    if (k && k->ndim == 2)
        c->cross_attention_dim = (int)k->shape[1];
}

md_status md_ldm_infer_unet(const md_safetensors *st, md_family fam, md_unet_config *c,
                            md_error *err)
{
    const char *path = md_safetensors_path(st);
    memset(c, 0, sizeof *c);
    const md_tensor *cin = md_safetensors_find(st, U "input_blocks.0.0.weight");
    const md_tensor *cout = md_safetensors_find(st, U "out.2.weight");
    if (!cin || cin->ndim != 4 || !cout || cout->ndim != 4)
        return md_fail(err, MD_ERR_FORMAT, "%s: UNet conv_in/conv_out weights missing or not 4-D",
                       path);
    c->in_channels = (int)cin->shape[1];
    c->conv_in_kernel = (int)cin->shape[2];
    c->out_channels = (int)cout->shape[0];
    c->conv_out_kernel = (int)cout->shape[2];

    /* Walk input_blocks: resnets (with optional attention) and downsamplers. */
    int level = 0, per_level[MD_MAX_LEVELS] = {0};
    char bp[64];
    for (int idx = 1;; idx++) {
        if (findf(st, U "input_blocks.%d.0.op.weight", idx)) {
            if (++level >= MD_MAX_LEVELS)
                return md_fail(err, MD_ERR_UNSUPPORTED, "%s: more than %d UNet levels", path,
                               MD_MAX_LEVELS);
            continue;
        }
        const md_tensor *conv1 = findf(st, U "input_blocks.%d.0.in_layers.2.weight", idx);
        if (!conv1)
            break;
        c->block_out_channels[level] = (int)conv1->shape[0];
        per_level[level]++;
        snprintf(bp, sizeof bp, "input_blocks.%d.1.", idx);
        int depth = transformer_depth(st, bp);
        if (depth) {
            c->down_has_attn[level] = 1;
            c->transformer_layers[level] = depth;
            attention_facts(st, bp, c);
        }
    }
    c->levels = level + 1;
    c->layers_per_block = per_level[0];
    for (int l = 0; l < c->levels; l++) {
        if (per_level[l] != c->layers_per_block || per_level[l] == 0)
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "%s: UNet levels have different resnet counts (%d at level 0, %d at "
                           "level %d)",
                           path, per_level[0], per_level[l], l);
        if (!c->transformer_layers[l])
            c->transformer_layers[l] = 1;
    }
    int mid_depth = transformer_depth(st, "middle_block.1.");
    c->mid_has_attn = mid_depth > 0;
    if (mid_depth) {
        attention_facts(st, "middle_block.1.", c);
        /* diffusers' mid block takes the depth of the last level */
        if (c->down_has_attn[c->levels - 1] && c->transformer_layers[c->levels - 1] != mid_depth)
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "%s: mid-block transformer depth %d differs from the last level's %d",
                           path, mid_depth, c->transformer_layers[c->levels - 1]);
        c->transformer_layers[c->levels - 1] = mid_depth;
    }
    for (int i = 0; i < c->levels; i++) {
        snprintf(bp, sizeof bp, "output_blocks.%d.1.", i * (c->layers_per_block + 1));
        c->up_has_attn[i] = transformer_depth(st, bp) > 0;
        if (c->up_has_attn[i])
            attention_facts(st, bp, c);
    }
    const md_tensor *label = md_safetensors_find(st, U "label_emb.0.0.weight");
    if (label && label->ndim == 2) {
        c->text_time_embedding = 1;
        c->projection_class_embeddings_input_dim = (int)label->shape[1];
        c->addition_time_embed_dim = 256; /* SDXL's; the shapes only give the sum */
    }
    for (int l = 0; l < c->levels; l++)
        c->heads[l] = fam == MD_FAMILY_SD1 ? 8 : c->block_out_channels[l] / 64;
    c->sample_size = fam == MD_FAMILY_SDXL ? 128 : fam == MD_FAMILY_SD2 ? 96 : 64;
    c->norm_groups = 32;
    c->norm_eps = 1e-5f;
    c->flip_sin_to_cos = 1;
    c->freq_shift = 0.0f;
    c->downsample_padding = 1;
    return md_unet_config_validate(c, path, err);
}

#undef U
#define V MD_LDM_VAE_PREFIX

md_status md_ldm_infer_vae(const md_safetensors *st, md_family fam, md_vae_config *c,
                           md_error *err)
{
    const char *path = md_safetensors_path(st);
    memset(c, 0, sizeof *c);
    const md_tensor *ein = md_safetensors_find(st, V "encoder.conv_in.weight");
    const md_tensor *dout = md_safetensors_find(st, V "decoder.conv_out.weight");
    const md_tensor *din = md_safetensors_find(st, V "decoder.conv_in.weight");
    if (!ein || ein->ndim != 4 || !dout || dout->ndim != 4 || !din || din->ndim != 4)
        return md_fail(err, MD_ERR_FORMAT, "%s: VAE conv_in/conv_out weights missing or not 4-D",
                       path);
    c->in_channels = (int)ein->shape[1];
    c->out_channels = (int)dout->shape[0];
    c->latent_channels = (int)din->shape[1];
    const md_tensor *t;
    while (c->levels < MD_MAX_LEVELS &&
           (t = findf(st, V "encoder.down.%d.block.0.conv1.weight", c->levels)) != NULL)
        c->block_out_channels[c->levels++] = (int)t->shape[0];
    while (findf(st, V "encoder.down.0.block.%d.conv1.weight", c->layers_per_block))
        c->layers_per_block++;
    c->norm_groups = 32;
    c->norm_eps = 1e-6f;
    c->scaling_factor = fam == MD_FAMILY_SDXL ? 0.13025f : 0.18215f;
    c->sample_size = fam == MD_FAMILY_SDXL ? 1024 : fam == MD_FAMILY_SD2 ? 768 : 512;
    c->force_upcast = fam == MD_FAMILY_SDXL;
    return md_vae_config_validate(c, path, err);
}

#undef V

static md_status clip_common(const md_safetensors *st, const md_tensor *tok, const md_tensor *pos,
                             const md_tensor *fc1, md_clip_config *c, md_error *err)
{
    const char *path = md_safetensors_path(st);
    if (!tok || tok->ndim != 2 || !pos || pos->ndim != 2 || !fc1 || fc1->ndim != 2)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: text encoder embeddings or MLP weights missing or not 2-D", path);
    c->vocab_size = (int)tok->shape[0];
    c->hidden_size = (int)tok->shape[1];
    c->max_positions = (int)pos->shape[0];
    c->intermediate_size = (int)fc1->shape[0];
    c->num_heads = c->hidden_size / 64; /* CLIP-L, ViT-H and bigG all use 64-wide heads */
    c->layer_norm_eps = 1e-5f;
    c->bos_id = 49406;
    c->eos_id = 49407;
    c->pad_id = 49407;
    return md_clip_config_validate(c, path, err);
}

md_status md_ldm_infer_clip(const md_safetensors *st, const char *prefix, md_clip_config *c,
                            md_error *err)
{
    memset(c, 0, sizeof *c);
    /* transformers before 4.x saved no text_model. level */
    const char *tm = findf(st, "%stext_model.embeddings.token_embedding.weight", prefix)
                         ? "text_model."
                         : "";
    while (findf(st, "%s%sencoder.layers.%d.self_attn.q_proj.weight", prefix, tm, c->num_layers))
        c->num_layers++;
    c->act = MD_ACT_QUICK_GELU;
    const md_tensor *proj = findf(st, "%stext_projection.weight", prefix);
    if (proj && proj->ndim == 2)
        c->projection_dim = (int)proj->shape[0];
    return clip_common(st, findf(st, "%s%sembeddings.token_embedding.weight", prefix, tm),
                       findf(st, "%s%sembeddings.position_embedding.weight", prefix, tm),
                       findf(st, "%s%sencoder.layers.0.mlp.fc1.weight", prefix, tm), c, err);
}

md_status md_ldm_infer_open_clip(const md_safetensors *st, const char *prefix, int drop_last,
                                 int with_projection, md_clip_config *c, md_error *err)
{
    memset(c, 0, sizeof *c);
    c->num_layers = md_ldm_open_clip_layers(st, prefix) - (drop_last ? 1 : 0);
    c->act = MD_ACT_GELU;
    const md_tensor *proj = findf(st, "%stext_projection", prefix);
    if (with_projection) {
        if (!proj || proj->ndim != 2)
            return md_fail(err, MD_ERR_FORMAT, "%s: '%stext_projection' missing or not 2-D",
                           md_safetensors_path(st), prefix);
        c->projection_dim = (int)proj->shape[1];
    }
    md_status s = clip_common(st, findf(st, "%stoken_embedding.weight", prefix),
                              findf(st, "%spositional_embedding", prefix),
                              findf(st, "%stransformer.resblocks.0.mlp.c_fc.weight", prefix), c, err);
    /* OpenCLIP's tokenizer pads with 0 ('!'), not with the end token */
    c->pad_id = 0;
    return s;
}

void md_ldm_sched_defaults(md_family fam, md_sched_config *cfg)
{
    md_sched_config_default(cfg);
    if (fam == MD_FAMILY_SDXL)
        cfg->timestep_spacing = MD_SPACING_LEADING;
}
