/* diffusers names -> SGM (SDXL single-file) keys: the inverse of
 * models/ldm_names_*.c, written out independently from the SGM layout so
 * that a single file made here checks the engine's renaming rather than
 * mirroring it. */
#include <stdio.h>
#include <string.h>

#include "sgm_names.h"

static int eat(const char **p, const char *lit)
{
    size_t n = strlen(lit);
    if (strncmp(*p, lit, n) != 0)
        return 0;
    *p += n;
    return 1;
}

/* "N." -> N */
static int eat_int(const char **p, int *v)
{
    int n = 0;
    if (sscanf(*p, "%d.%n", v, &n) != 1 || n == 0)
        return 0;
    *p += n;
    return 1;
}

static int put(char *out, size_t cap, const char *fmt1, const char *a, const char *b)
{
    int n = snprintf(out, cap, fmt1, a, b);
    return n > 0 && (size_t)n < cap;
}

/* ResnetBlock2D parameter names inside a U-Net resnet. */
static const char *unet_resnet(const char *sub, char *buf, size_t cap)
{
    static const char *const map[][2] = {
        {"norm1.", "in_layers.0."},         {"conv1.", "in_layers.2."},
        {"time_emb_proj.", "emb_layers.1."}, {"norm2.", "out_layers.0."},
        {"conv2.", "out_layers.3."},        {"conv_shortcut.", "skip_connection."},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        const char *q = sub;
        if (eat(&q, map[i][0]))
            return put(buf, cap, "%s%s", map[i][1], q) ? buf : NULL;
    }
    return NULL;
}

int rm_sgm_unet_key(const md_unet_config *c, const char *name, char *out, size_t cap)
{
    static const char *const direct[][2] = {
        {"conv_in.", "input_blocks.0.0."},      {"time_embedding.linear_1.", "time_embed.0."},
        {"time_embedding.linear_2.", "time_embed.2."}, {"add_embedding.linear_1.", "label_emb.0.0."},
        {"add_embedding.linear_2.", "label_emb.0.2."}, {"conv_norm_out.", "out.0."},
        {"conv_out.", "out.2."},
    };
    const char *p = name;
    char blk[64], sub[160];
    int per = c->layers_per_block + 1, l, j;
    for (size_t i = 0; i < sizeof direct / sizeof direct[0]; i++)
        if (eat(&p, direct[i][0]))
            return put(out, cap, MD_LDM_UNET_PREFIX "%s%s", direct[i][1], p);
    if (eat(&p, "down_blocks.") && eat_int(&p, &l)) {
        if (eat(&p, "resnets.") && eat_int(&p, &j) && unet_resnet(p, sub, sizeof sub)) {
            snprintf(blk, sizeof blk, "input_blocks.%d.0.", 1 + l * per + j);
            return put(out, cap, MD_LDM_UNET_PREFIX "%s%s", blk, sub);
        }
        if (eat(&p, "attentions.") && eat_int(&p, &j)) {
            snprintf(blk, sizeof blk, "input_blocks.%d.1.", 1 + l * per + j);
            return put(out, cap, MD_LDM_UNET_PREFIX "%s%s", blk, p);
        }
        if (eat(&p, "downsamplers.0.conv.")) {
            snprintf(blk, sizeof blk, "input_blocks.%d.0.op.", 1 + l * per + c->layers_per_block);
            return put(out, cap, MD_LDM_UNET_PREFIX "%s%s", blk, p);
        }
        return 0;
    }
    p = name;
    if (eat(&p, "mid_block.")) {
        const char *q = p;
        if (eat(&q, "attentions.0."))
            return put(out, cap, MD_LDM_UNET_PREFIX "%s%s", "middle_block.1.", q);
        if (eat(&p, "resnets.") && eat_int(&p, &j) && j < 2 && unet_resnet(p, sub, sizeof sub)) {
            snprintf(blk, sizeof blk, "middle_block.%d.", j == 0 ? 0 : c->mid_has_attn ? 2 : 1);
            return put(out, cap, MD_LDM_UNET_PREFIX "%s%s", blk, sub);
        }
        return 0;
    }
    p = name;
    if (eat(&p, "up_blocks.") && eat_int(&p, &l) && l < c->levels) {
        if (eat(&p, "resnets.") && eat_int(&p, &j) && unet_resnet(p, sub, sizeof sub)) {
            snprintf(blk, sizeof blk, "output_blocks.%d.0.", l * per + j);
            return put(out, cap, MD_LDM_UNET_PREFIX "%s%s", blk, sub);
        }
        if (eat(&p, "attentions.") && eat_int(&p, &j)) {
            snprintf(blk, sizeof blk, "output_blocks.%d.1.", l * per + j);
            return put(out, cap, MD_LDM_UNET_PREFIX "%s%s", blk, p);
        }
        if (eat(&p, "upsamplers.0.conv.")) {
            /* after the last resnet's attention, when the block has one */
            snprintf(blk, sizeof blk, "output_blocks.%d.%d.conv.", l * per + c->layers_per_block,
                     c->up_has_attn[l] ? 2 : 1);
            return put(out, cap, MD_LDM_UNET_PREFIX "%s%s", blk, p);
        }
    }
    return 0;
}

/* ResnetBlock of the LDM autoencoder: same names but nin_shortcut. */
static const char *vae_resnet(const char *sub, char *buf, size_t cap)
{
    const char *q = sub;
    if (eat(&q, "conv_shortcut."))
        return put(buf, cap, "%s%s", "nin_shortcut.", q) ? buf : NULL;
    return put(buf, cap, "%s%s", sub, "") ? buf : NULL;
}

int rm_sgm_vae_key(const md_vae_config *c, const char *name, char *out, size_t cap,
                   int *unsqueeze)
{
    const char *p = name;
    char blk[64], sub[160];
    int i, j;
    *unsqueeze = 0;
    if (eat(&p, "quant_conv.") || eat(&p, "post_quant_conv."))
        return put(out, cap, MD_LDM_VAE_PREFIX "%s%s", name, "");
    const char *part = eat(&p, "encoder.") ? "encoder." : eat(&p, "decoder.") ? "decoder." : NULL;
    if (!part)
        return 0;
    const char *q = p;
    if (eat(&q, "conv_in.") || eat(&q, "conv_out."))
        return put(out, cap, MD_LDM_VAE_PREFIX "%s%s", part, p);
    if (eat(&q, "conv_norm_out.")) {
        snprintf(blk, sizeof blk, "%snorm_out.", part);
        return put(out, cap, MD_LDM_VAE_PREFIX "%s%s", blk, q);
    }
    q = p;
    if (part[0] == 'e' && eat(&q, "down_blocks.") && eat_int(&q, &i)) {
        if (eat(&q, "resnets.") && eat_int(&q, &j) && vae_resnet(q, sub, sizeof sub)) {
            snprintf(blk, sizeof blk, "encoder.down.%d.block.%d.", i, j);
            return put(out, cap, MD_LDM_VAE_PREFIX "%s%s", blk, sub);
        }
        if (eat(&q, "downsamplers.0.conv.")) {
            snprintf(blk, sizeof blk, "encoder.down.%d.downsample.conv.", i);
            return put(out, cap, MD_LDM_VAE_PREFIX "%s%s", blk, q);
        }
        return 0;
    }
    q = p;
    if (part[0] == 'd' && eat(&q, "up_blocks.") && eat_int(&q, &i) && i < c->levels) {
        int lv = c->levels - 1 - i; /* decoder.up counts resolution levels */
        if (eat(&q, "resnets.") && eat_int(&q, &j) && vae_resnet(q, sub, sizeof sub)) {
            snprintf(blk, sizeof blk, "decoder.up.%d.block.%d.", lv, j);
            return put(out, cap, MD_LDM_VAE_PREFIX "%s%s", blk, sub);
        }
        if (eat(&q, "upsamplers.0.conv.")) {
            snprintf(blk, sizeof blk, "decoder.up.%d.upsample.conv.", lv);
            return put(out, cap, MD_LDM_VAE_PREFIX "%s%s", blk, q);
        }
        return 0;
    }
    q = p;
    if (eat(&q, "mid_block.resnets.") && eat_int(&q, &j) && j < 2 &&
        vae_resnet(q, sub, sizeof sub)) {
        snprintf(blk, sizeof blk, "%smid.block_%d.", part, j + 1);
        return put(out, cap, MD_LDM_VAE_PREFIX "%s%s", blk, sub);
    }
    q = p;
    if (eat(&q, "mid_block.attentions.0.")) {
        static const char *const attn[][2] = {
            {"group_norm.", "norm."}, {"to_q.", "q."}, {"to_k.", "k."},
            {"to_v.", "v."},          {"to_out.0.", "proj_out."},
        };
        for (size_t a = 0; a < sizeof attn / sizeof attn[0]; a++) {
            const char *r = q;
            if (eat(&r, attn[a][0])) {
                /* the LDM attention projections are 1x1 convs */
                *unsqueeze = a > 0 && !strcmp(r, "weight");
                snprintf(blk, sizeof blk, "%smid.attn_1.%s", part, attn[a][1]);
                return put(out, cap, MD_LDM_VAE_PREFIX "%s%s", blk, r);
            }
        }
    }
    return 0;
}

int rm_sgm_open_clip_key(const char *name, char *out, size_t cap, int *qkv)
{
    static const char *const layer_map[][2] = {
        {"layer_norm1.", "ln_1."},         {"layer_norm2.", "ln_2."},
        {"mlp.fc1.", "mlp.c_fc."},         {"mlp.fc2.", "mlp.c_proj."},
        {"self_attn.out_proj.", "attn.out_proj."},
    };
    const char *p = name;
    int n;
    *qkv = -1;
    if (!strcmp(name, "text_model.embeddings.token_embedding.weight"))
        return put(out, cap, MD_LDM_SDXL_TE2_PREFIX "%s%s", "token_embedding.weight", "");
    if (!strcmp(name, "text_model.embeddings.position_embedding.weight"))
        return put(out, cap, MD_LDM_SDXL_TE2_PREFIX "%s%s", "positional_embedding", "");
    if (!strcmp(name, "text_projection.weight"))
        return put(out, cap, MD_LDM_SDXL_TE2_PREFIX "%s%s", "text_projection", "");
    if (eat(&p, "text_model.final_layer_norm."))
        return put(out, cap, MD_LDM_SDXL_TE2_PREFIX "%s%s", "ln_final.", p);
    p = name;
    if (!eat(&p, "text_model.encoder.layers.") || !eat_int(&p, &n))
        return 0;
    char blk[64];
    snprintf(blk, sizeof blk, "transformer.resblocks.%d.", n);
    static const char *const qkv_names[3] = {"self_attn.q_proj.", "self_attn.k_proj.",
                                             "self_attn.v_proj."};
    for (int k = 0; k < 3; k++) {
        const char *q = p;
        if (eat(&q, qkv_names[k])) {
            *qkv = k;
            return put(out, cap, MD_LDM_SDXL_TE2_PREFIX "%sattn.in_proj_%s", blk, q);
        }
    }
    for (size_t i = 0; i < sizeof layer_map / sizeof layer_map[0]; i++) {
        const char *q = p;
        if (eat(&q, layer_map[i][0])) {
            char tail[64];
            snprintf(tail, sizeof tail, "%s%s", layer_map[i][1], q);
            return put(out, cap, MD_LDM_SDXL_TE2_PREFIX "%s%s", blk, tail);
        }
    }
    return 0;
}
