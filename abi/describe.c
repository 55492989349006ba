/* Feature "model.describe": the text `moe-diffuse info` prints. Parameter
 * counts come from the weight maps; the memory figure is an estimate of the
 * peak at the native size with classifier-free guidance. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi_internal.h"

typedef struct param_count {
    double total[4];    /* unet, text encoders, vae, other */
    double expert;      /* routed expert weights (inside total[0]) */
    double bytes;       /* stored weight bytes */
    double by_dtype[8]; /* elements per md_dtype */
    int moe_layers;     /* gates */
} param_count;

static int component(const char *label)
{
    if (!strcmp(label, "unet"))
        return 0;
    if (!strncmp(label, "text_encoder", 12))
        return 1;
    if (!strcmp(label, "vae"))
        return 2;
    return 3;
}

/* Routed experts are named "<layer>.experts.<n>.<...>"; a shared expert is
 * not routed and counts in full. */
static int is_routed_expert(const char *name)
{
    const char *p = strstr(name, ".experts.");
    return p && p[9] >= '0' && p[9] <= '9';
}

static void count_params(const md_model *m, param_count *c)
{
    memset(c, 0, sizeof *c);
    for (int w = 0; w < m->nweights; w++) {
        int comp = component(md_weights_label(m->weights[w]));
        for (size_t i = 0; i < md_weights_count(m->weights[w]); i++) {
            const md_tensor *t = md_weights_tensor(m->weights[w], i);
            const char *name = md_weights_name(m->weights[w], i);
            double n = (double)md_tensor_numel(t);
            c->total[comp] += n;
            c->bytes += n * (double)md_dtype_size(t->dtype);
            if ((int)t->dtype >= 0 && (int)t->dtype < 8)
                c->by_dtype[t->dtype] += n;
            if (comp == 0 && is_routed_expert(name))
                c->expert += n;
            size_t len = strlen(name);
            if (comp == 0 && len > 12 && !strcmp(name + len - 12, ".gate.weight"))
                c->moe_layers++;
        }
    }
}

static const char *human(double v, char *buf, size_t cap)
{
    if (v >= 1e9)
        snprintf(buf, cap, "%.2f B", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, cap, "%.1f M", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, cap, "%.1f K", v / 1e3);
    else
        snprintf(buf, cap, "%.0f", v);
    return buf;
}

static const char *bytes_h(double v, char *buf, size_t cap)
{
    if (v >= 1024.0 * 1024 * 1024)
        snprintf(buf, cap, "%.2f GiB", v / (1024.0 * 1024 * 1024));
    else if (v >= 1024.0 * 1024)
        snprintf(buf, cap, "%.1f MiB", v / (1024.0 * 1024));
    else
        snprintf(buf, cap, "%.1f KiB", v / 1024.0);
    return buf;
}

/* Peak activation memory of a generation at the native size with CFG
 * (batch 2), in bytes: the U-Net's skip connections plus the working set
 * of its largest level (resnet buffers, the GEGLU feed-forward at 8x the
 * channels), or the VAE decoder at full resolution, whichever is larger. */
static double activation_estimate(const md_model *m)
{
    const md_unet_config *u = &m->unet_cfg;
    const double batch = 2, f32 = 4;
    double skips = 0, work = 0;
    int hw = u->sample_size;
    skips += (double)u->block_out_channels[0] * hw * hw;
    for (int l = 0; l < u->levels; l++) {
        double ch = u->block_out_channels[l], n = (double)hw * hw;
        skips += u->layers_per_block * ch * n;
        double level_work = ch * n * (u->down_has_attn[l] ? 14 : 6);
        if (level_work > work)
            work = level_work;
        hw = (hw + 1) / 2;
        if (l + 1 < u->levels)
            skips += ch * hw * hw;
    }
    double unet = batch * f32 * (skips + work);
    double pixels = (double)u->sample_size * md_vae_factor(m->vae);
    pixels *= pixels;
    double vae = f32 * 4 * m->vae_cfg.block_out_channels[0] * pixels;
    return unet > vae ? unet : vae;
}

static const char *family_name(md_family f)
{
    switch (f) {
    case MD_FAMILY_SD1: return "Stable Diffusion 1.x";
    case MD_FAMILY_SD2: return "Stable Diffusion 2.x";
    case MD_FAMILY_SDXL: return "Stable Diffusion XL";
    }
    return "unknown";
}

static void print_ints(FILE *f, const char *label, const int *v, int n)
{
    fprintf(f, "%s", label);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%d", i ? " " : "", v[i]);
}

static void describe(FILE *f, const md_model *m)
{
    const md_unet_config *u = &m->unet_cfg;
    const md_moe_config *moe = &u->moe;
    char a[32], b[32], c[32];
    int factor = md_vae_factor(m->vae), native = u->sample_size * factor;
    fprintf(f, "model            %s\n", m->path);
    fprintf(f, "family           %s%s\n", family_name(m->family),
           moe->enabled ? " with Mixture-of-Experts U-Net" : "");
    print_ints(f, "U-Net            channels ", u->block_out_channels, u->levels);
    fprintf(f, " (%d levels), %d resnets per block\n", u->levels, u->layers_per_block);
    print_ints(f, "                 attention heads ", u->heads, u->levels);
    fprintf(f, ", context dim %d, latent channels %d\n", u->cross_attention_dim, u->in_channels);
    if (moe->enabled) {
        fprintf(f, "MoE              %d experts per layer, top-%d, %s routing%s\n", moe->num_experts,
               moe->top_k, moe->routing == MD_ROUTE_TOKEN_TOPK ? "per-token" : "sequence",
               moe->shared_expert ? ", plus a shared expert" : "");
        fprintf(f, "                 in %s%s%s; down blocks %d..%d, up blocks %d..%d\n",
               moe->moe_ff ? "feed-forwards" : "", moe->moe_ff && moe->moe_attn ? " + " : "",
               moe->moe_attn ? "attention q/k/v" : "", moe->down_start, moe->down_end - 1,
               moe->up_start, moe->up_end - 1);
    }
    fprintf(f, "text encoder     %d layers, width %d, %d heads", m->te_cfg.num_layers,
           m->te_cfg.hidden_size, m->te_cfg.num_heads);
    if (m->te2)
        fprintf(f, "; second: %d layers, width %d, %d heads", m->te2_cfg.num_layers,
               m->te2_cfg.hidden_size, m->te2_cfg.num_heads);
    fprintf(f, "\nVAE              factor %d, scaling %g; native size %dx%d (latent %dx%d)\n", factor,
           (double)m->vae_cfg.scaling_factor, native, native, u->sample_size, u->sample_size);

    param_count pc;
    count_params(m, &pc);
    double total = pc.total[0] + pc.total[1] + pc.total[2] + pc.total[3];
    double active = total;
    if (moe->enabled && moe->num_experts > 0)
        active -= pc.expert * (1.0 - (double)moe->top_k / moe->num_experts);
    char d[32];
    fprintf(f, "parameters       %s total: U-Net %s, text %s, VAE %s\n", human(total, a, sizeof a),
           human(pc.total[0], b, sizeof b), human(pc.total[1], c, sizeof c),
           human(pc.total[2], d, sizeof d));
    if (moe->enabled)
        fprintf(f, "active per token %s (U-Net %s of %s: top-%d of %d experts, %d MoE layers)\n",
               human(active, a, sizeof a), human(pc.total[0] - (total - active), b, sizeof b),
               human(pc.total[0], c, sizeof c), moe->top_k, moe->num_experts, pc.moe_layers);
    else
        fprintf(f, "active per token %s (dense: every parameter)\n", human(active, a, sizeof a));
    fprintf(f, "weights          ");
    const char *sep = "";
    for (int t = 0; t < 8; t++)
        if (pc.by_dtype[t] > 0) {
            fprintf(f, "%s%s %.0f%%", sep, md_dtype_name((md_dtype)t), 100.0 * pc.by_dtype[t] / total);
            sep = ", ";
        }
    double act = activation_estimate(m);
    fprintf(f, "; %s\n", bytes_h(pc.bytes, a, sizeof a));
    fprintf(f, "memory           about %s: weights %s + activations ~%s at %dx%d (CFG)\n",
           bytes_h(pc.bytes + act, a, sizeof a), bytes_h(pc.bytes, b, sizeof b),
           bytes_h(act, c, sizeof c), native, native);
}

int abi_text_out(char *out, size_t cap, const char *text)
{
    size_t n = strlen(text);
    if (out && cap > 0) {
        size_t k = n < cap - 1 ? n : cap - 1;
        memcpy(out, text, k);
        out[k] = '\0';
    }
    return n > 0x7fffffff ? 0x7fffffff : (int)n;
}

static int api_describe(mdiff_context *ctx, char *text, size_t cap)
{
    if (!ctx)
        return MDIFF_ERR_INVALID;
    if (abi_enter(ctx) != MDIFF_OK)
        return MDIFF_ERR_BUSY;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int rc = MDIFF_ERR_NOMEM;
    if (f) {
        describe(f, ctx->model);
        if (fclose(f) == 0 && buf)
            rc = abi_text_out(text, cap, buf);
    }
    free(buf);
    abi_leave(ctx);
    return rc;
}

static const mdiff_describe_api describe_api = {.struct_size = sizeof describe_api,
                                                .describe = api_describe};

const void *abi_describe_api(void)
{
    return &describe_api;
}
