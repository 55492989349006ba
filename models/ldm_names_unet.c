/* LDM / SGM U-Net keys -> diffusers UNet2DConditionModel names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldm_names.h"

typedef enum block_kind {
    KIND_DIRECT,     /* weight/bias, name unchanged below the prefix */
    KIND_RESNET,     /* in_layers/emb_layers/out_layers/skip_connection */
    KIND_ATTN,       /* SpatialTransformer: same names in both layouts */
    KIND_DOWNSAMPLE, /* op -> conv */
    KIND_UPSAMPLE    /* conv -> conv */
} block_kind;

typedef struct block_map {
    char ldm[48];
    char diff[64];
    block_kind kind;
} block_map;

/* Enough for 8 levels of up to 8 layers plus the fixed entries. */
#define MAX_MAPS 512

typedef struct map_list {
    block_map m[MAX_MAPS];
    int n;
} map_list;

static void add_map(map_list *l, block_kind kind, const char *ldm, const char *diff)
{
    if (l->n >= MAX_MAPS)
        return;
    block_map *b = &l->m[l->n++];
    snprintf(b->ldm, sizeof b->ldm, "%s", ldm);
    snprintf(b->diff, sizeof b->diff, "%s", diff);
    b->kind = kind;
}

/* The original LDM numbering: input_blocks.0 is conv_in, then per level its
 * resnets (each followed by an attention at index .1 when the level has
 * one) and a downsampler block; output_blocks run the up blocks in order,
 * layers_per_block + 1 resnets each, the upsampler after the attention of
 * the last one. */
static int build_maps(const md_unet_config *c, map_list *l)
{
    char a[48], b[64];
    l->n = 0;
    if (c->layers_per_block < 1 || c->layers_per_block > 8 || c->levels < 1 ||
        c->levels > MD_MAX_LEVELS)
        return 0;
    add_map(l, KIND_DIRECT, "input_blocks.0.0.", "conv_in.");
    add_map(l, KIND_DIRECT, "time_embed.0.", "time_embedding.linear_1.");
    add_map(l, KIND_DIRECT, "time_embed.2.", "time_embedding.linear_2.");
    add_map(l, KIND_DIRECT, "label_emb.0.0.", "add_embedding.linear_1.");
    add_map(l, KIND_DIRECT, "label_emb.0.2.", "add_embedding.linear_2.");
    add_map(l, KIND_DIRECT, "out.0.", "conv_norm_out.");
    add_map(l, KIND_DIRECT, "out.2.", "conv_out.");
    int idx = 1;
    for (int lv = 0; lv < c->levels; lv++) {
        for (int j = 0; j < c->layers_per_block; j++, idx++) {
            snprintf(a, sizeof a, "input_blocks.%d.0.", idx);
            snprintf(b, sizeof b, "down_blocks.%d.resnets.%d.", lv, j);
            add_map(l, KIND_RESNET, a, b);
            if (c->down_has_attn[lv]) {
                snprintf(a, sizeof a, "input_blocks.%d.1.", idx);
                snprintf(b, sizeof b, "down_blocks.%d.attentions.%d.", lv, j);
                add_map(l, KIND_ATTN, a, b);
            }
        }
        if (lv + 1 < c->levels) {
            snprintf(a, sizeof a, "input_blocks.%d.0.", idx++);
            snprintf(b, sizeof b, "down_blocks.%d.downsamplers.0.", lv);
            add_map(l, KIND_DOWNSAMPLE, a, b);
        }
    }
    add_map(l, KIND_RESNET, "middle_block.0.", "mid_block.resnets.0.");
    if (c->mid_has_attn) {
        add_map(l, KIND_ATTN, "middle_block.1.", "mid_block.attentions.0.");
        add_map(l, KIND_RESNET, "middle_block.2.", "mid_block.resnets.1.");
    } else {
        add_map(l, KIND_RESNET, "middle_block.1.", "mid_block.resnets.1.");
    }
    idx = 0;
    for (int i = 0; i < c->levels; i++) {
        for (int j = 0; j <= c->layers_per_block; j++, idx++) {
            snprintf(a, sizeof a, "output_blocks.%d.0.", idx);
            snprintf(b, sizeof b, "up_blocks.%d.resnets.%d.", i, j);
            add_map(l, KIND_RESNET, a, b);
            int sub = 1;
            if (c->up_has_attn[i]) {
                snprintf(a, sizeof a, "output_blocks.%d.1.", idx);
                snprintf(b, sizeof b, "up_blocks.%d.attentions.%d.", i, j);
                add_map(l, KIND_ATTN, a, b);
                sub = 2;
            }
            if (j == c->layers_per_block && i + 1 < c->levels) {
                snprintf(a, sizeof a, "output_blocks.%d.%d.", idx, sub);
                snprintf(b, sizeof b, "up_blocks.%d.upsamplers.0.", i);
                add_map(l, KIND_UPSAMPLE, a, b);
            }
        }
    }
    return l->n < MAX_MAPS;
}

static int is_param(const char *s)
{
    return !strcmp(s, "weight") || !strcmp(s, "bias");
}

/* Renames what follows a block prefix; NULL when it does not belong there. */
static const char *rename_sub(block_kind kind, const char *sub, char *buf, size_t cap)
{
    static const char *const resnet[][2] = {
        {"in_layers.0.", "norm1."},        {"in_layers.2.", "conv1."},
        {"emb_layers.1.", "time_emb_proj."}, {"out_layers.0.", "norm2."},
        {"out_layers.3.", "conv2."},       {"skip_connection.", "conv_shortcut."},
    };
    static const char *const attn[] = {"norm.", "proj_in.", "proj_out.", "transformer_blocks."};
    switch (kind) {
    case KIND_DIRECT:
        return is_param(sub) ? sub : NULL;
    case KIND_RESNET:
        for (size_t i = 0; i < sizeof resnet / sizeof resnet[0]; i++) {
            size_t n = strlen(resnet[i][0]);
            if (!strncmp(sub, resnet[i][0], n) && is_param(sub + n)) {
                snprintf(buf, cap, "%s%s", resnet[i][1], sub + n);
                return buf;
            }
        }
        return NULL;
    case KIND_ATTN:
        for (size_t i = 0; i < sizeof attn / sizeof attn[0]; i++)
            if (!strncmp(sub, attn[i], strlen(attn[i])))
                return sub;
        return NULL;
    case KIND_DOWNSAMPLE:
        if (!strncmp(sub, "op.", 3) && is_param(sub + 3)) {
            snprintf(buf, cap, "conv.%s", sub + 3);
            return buf;
        }
        return NULL;
    case KIND_UPSAMPLE:
        return (!strncmp(sub, "conv.", 5) && is_param(sub + 5)) ? sub : NULL;
    }
    return NULL;
}

/* "1,0,0" for the per-level attention flags, for messages. */
static void flags_text(const int *flags, int n, char buf[2 * MD_MAX_LEVELS + 1])
{
    if (n < 0 || n > MD_MAX_LEVELS)
        n = n < 0 ? 0 : MD_MAX_LEVELS;
    for (int i = 0; i < n; i++) {
        buf[2 * i] = flags[i] ? '1' : '0';
        buf[2 * i + 1] = ',';
    }
    buf[n > 0 ? 2 * n - 1 : 0] = '\0';
}

md_status md_ldm_rename_unet(const md_safetensors *st, const md_unet_config *cfg, md_weights *out,
                             md_error *err)
{
    const char *path = md_safetensors_path(st);
    map_list *maps = malloc(sizeof *maps);
    if (!maps)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    if (!build_maps(cfg, maps)) {
        free(maps);
        return md_fail(err, MD_ERR_INVALID, "%s: UNet architecture out of range for renaming", path);
    }
    const size_t plen = strlen(MD_LDM_UNET_PREFIX);
    md_status s = MD_OK;
    for (size_t i = 0; i < md_safetensors_count(st) && s == MD_OK; i++) {
        const char *key = md_safetensors_name(st, i);
        if (strncmp(key, MD_LDM_UNET_PREFIX, plen) != 0)
            continue;
        const char *rest = key + plen;
        const char *sub = NULL;
        const block_map *hit = NULL;
        char buf[160], name[256];
        for (int m = 0; m < maps->n && !hit; m++) {
            size_t n = strlen(maps->m[m].ldm);
            if (!strncmp(rest, maps->m[m].ldm, n)) {
                hit = &maps->m[m];
                sub = rename_sub(hit->kind, rest + n, buf, sizeof buf);
            }
        }
        if (!hit || !sub) {
            char down[2 * MD_MAX_LEVELS + 1], up[2 * MD_MAX_LEVELS + 1];
            flags_text(cfg->down_has_attn, cfg->levels, down);
            flags_text(cfg->up_has_attn, cfg->levels, up);
            s = md_fail(err, MD_ERR_FORMAT,
                        "%s: UNet weight '%s' does not fit the architecture (%d levels, %d layers "
                        "per block, attention in down blocks [%s], up blocks [%s], mid %d)",
                        path, key, cfg->levels, cfg->layers_per_block, down, up, cfg->mid_has_attn);
            break;
        }
        snprintf(name, sizeof name, "%s%s", hit->diff, sub);
        s = md_weights_add(out, name, md_safetensors_tensor(st, i), path, err);
    }
    free(maps);
    return s;
}

/* The inverse of rename_sub: what follows a block prefix in the file. */
static int unrename_sub(block_kind kind, const char *sub, char *buf, size_t cap)
{
    static const char *const resnet[][2] = {
        {"norm1.", "in_layers.0."},         {"conv1.", "in_layers.2."},
        {"time_emb_proj.", "emb_layers.1."}, {"norm2.", "out_layers.0."},
        {"conv2.", "out_layers.3."},        {"conv_shortcut.", "skip_connection."},
    };
    const char *rest = sub;
    switch (kind) {
    case KIND_DIRECT:
    case KIND_ATTN:
    case KIND_UPSAMPLE:
        break;
    case KIND_RESNET:
        for (size_t i = 0; i < sizeof resnet / sizeof resnet[0]; i++)
            if (!strncmp(sub, resnet[i][0], strlen(resnet[i][0]))) {
                int n = snprintf(buf, cap, "%s%s", resnet[i][1], sub + strlen(resnet[i][0]));
                return n > 0 && (size_t)n < cap;
            }
        return 0;
    case KIND_DOWNSAMPLE:
        if (strncmp(sub, "conv.", 5) != 0)
            return 0;
        {
            int n = snprintf(buf, cap, "op.%s", sub + 5);
            return n > 0 && (size_t)n < cap;
        }
    }
    int n = snprintf(buf, cap, "%s", rest);
    return n > 0 && (size_t)n < cap;
}

int md_ldm_unet_key(const md_unet_config *cfg, const char *name, char *out, size_t cap)
{
    map_list *maps = malloc(sizeof *maps);
    int ok = 0;
    if (!maps || !build_maps(cfg, maps)) {
        free(maps);
        return 0;
    }
    for (int m = 0; m < maps->n && !ok; m++) {
        size_t n = strlen(maps->m[m].diff);
        char sub[224];
        if (!strncmp(name, maps->m[m].diff, n) &&
            unrename_sub(maps->m[m].kind, name + n, sub, sizeof sub)) {
            int w = snprintf(out, cap, MD_LDM_UNET_PREFIX "%s%s", maps->m[m].ldm, sub);
            ok = w > 0 && (size_t)w < cap;
        }
    }
    free(maps);
    return ok;
}
