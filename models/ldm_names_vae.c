/* LDM first_stage_model keys -> diffusers AutoencoderKL names. */
#include <stdio.h>
#include <string.h>

#include "ldm_names.h"

static int eat(const char **p, const char *lit)
{
    size_t n = strlen(lit);
    if (strncmp(*p, lit, n) != 0)
        return 0;
    *p += n;
    return 1;
}

/* Digits followed by '.', e.g. "3." */
static int eat_index(const char **p, int *v)
{
    const char *s = *p;
    int x = 0, digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 6) {
        x = x * 10 + (*s - '0');
        s++;
        digits++;
    }
    if (!digits || *s != '.')
        return 0;
    *v = x;
    *p = s + 1;
    return 1;
}

static int is_param(const char *s)
{
    return !strcmp(s, "weight") || !strcmp(s, "bias");
}

/* ResnetBlock: norm1, conv1, norm2, conv2 keep their names; nin_shortcut
 * is diffusers' conv_shortcut. */
static int resnet_sub(const char *p, char *buf, size_t cap)
{
    static const char *const same[] = {"norm1.", "conv1.", "norm2.", "conv2."};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        const char *q = p;
        if (eat(&q, same[i]) && is_param(q))
            return snprintf(buf, cap, "%s%s", same[i], q) < (int)cap;
    }
    const char *q = p;
    if (eat(&q, "nin_shortcut.") && is_param(q))
        return snprintf(buf, cap, "conv_shortcut.%s", q) < (int)cap;
    return 0;
}

/* Returns 1 and the diffusers name, and sets *squeeze when the tensor is a
 * 1x1 conv weight that diffusers stores as a linear weight. */
static int rename_key(const char *rest, int levels, char *out, size_t cap, int *squeeze)
{
    const char *p = rest;
    char sub[96];
    int i, j;
    *squeeze = 0;
    if (eat(&p, "quant_conv.") || eat(&p, "post_quant_conv."))
        return is_param(p) && snprintf(out, cap, "%s", rest) < (int)cap;
    const char *part = NULL;
    if (eat(&p, "encoder."))
        part = "encoder";
    else if (eat(&p, "decoder."))
        part = "decoder";
    else
        return 0;
    const char *q = p;
    if ((eat(&q, "conv_in.") || eat(&q, "conv_out.")) && is_param(q))
        return snprintf(out, cap, "%s.%s", part, p) < (int)cap;
    q = p;
    if (eat(&q, "norm_out.") && is_param(q))
        return snprintf(out, cap, "%s.conv_norm_out.%s", part, q) < (int)cap;
    q = p;
    if (part[0] == 'e' && eat(&q, "down.") && eat_index(&q, &i) && i < levels) {
        const char *r = q;
        if (eat(&r, "block.") && eat_index(&r, &j) && resnet_sub(r, sub, sizeof sub))
            return snprintf(out, cap, "encoder.down_blocks.%d.resnets.%d.%s", i, j, sub) < (int)cap;
        r = q;
        if (eat(&r, "downsample.conv.") && is_param(r))
            return snprintf(out, cap, "encoder.down_blocks.%d.downsamplers.0.conv.%s", i, r) <
                   (int)cap;
        return 0;
    }
    q = p;
    if (part[0] == 'd' && eat(&q, "up.") && eat_index(&q, &i) && i < levels) {
        int ub = levels - 1 - i; /* decoder.up is numbered by resolution level */
        const char *r = q;
        if (eat(&r, "block.") && eat_index(&r, &j) && resnet_sub(r, sub, sizeof sub))
            return snprintf(out, cap, "decoder.up_blocks.%d.resnets.%d.%s", ub, j, sub) < (int)cap;
        r = q;
        if (eat(&r, "upsample.conv.") && is_param(r))
            return snprintf(out, cap, "decoder.up_blocks.%d.upsamplers.0.conv.%s", ub, r) <
                   (int)cap;
        return 0;
    }
    q = p;
    if (eat(&q, "mid.block_1.") && resnet_sub(q, sub, sizeof sub))
        return snprintf(out, cap, "%s.mid_block.resnets.0.%s", part, sub) < (int)cap;
    q = p;
    if (eat(&q, "mid.block_2.") && resnet_sub(q, sub, sizeof sub))
        return snprintf(out, cap, "%s.mid_block.resnets.1.%s", part, sub) < (int)cap;
    q = p;
    if (eat(&q, "mid.attn_1.")) {
        static const char *const attn[][2] = {
            {"norm.", "group_norm."}, {"q.", "to_q."}, {"k.", "to_k."},
            {"v.", "to_v."},          {"proj_out.", "to_out.0."},
        };
        for (size_t a = 0; a < sizeof attn / sizeof attn[0]; a++) {
            const char *r = q;
            if (eat(&r, attn[a][0]) && is_param(r)) {
                *squeeze = a > 0 && !strcmp(r, "weight");
                return snprintf(out, cap, "%s.mid_block.attentions.0.%s%s", part, attn[a][1], r) <
                       (int)cap;
            }
        }
    }
    return 0;
}

md_status md_ldm_rename_vae(const md_safetensors *st, const md_vae_config *cfg, md_weights *out,
                            md_error *err)
{
    const char *path = md_safetensors_path(st);
    const size_t plen = strlen(MD_LDM_VAE_PREFIX);
    for (size_t i = 0; i < md_safetensors_count(st); i++) {
        const char *key = md_safetensors_name(st, i);
        if (strncmp(key, MD_LDM_VAE_PREFIX, plen) != 0)
            continue;
        /* training-time discriminator weights some checkpoints carry */
        if (!strncmp(key + plen, "loss.", 5))
            continue;
        char name[256];
        int squeeze = 0;
        if (!rename_key(key + plen, cfg->levels, name, sizeof name, &squeeze))
            return md_fail(err, MD_ERR_FORMAT,
                           "%s: VAE weight '%s' does not fit the architecture (%d levels)", path,
                           key, cfg->levels);
        md_tensor t = *md_safetensors_tensor(st, i);
        if (squeeze) {
            /* [C, C, 1, 1] conv weight -> [C, C] linear weight (same bytes) */
            while (t.ndim > 2 && t.shape[t.ndim - 1] == 1)
                t.ndim--;
        }
        md_status s = md_weights_add(out, name, &t, path, err);
        if (s != MD_OK)
            return s;
    }
    return MD_OK;
}
