/* `moe-diffuse info MODEL`: what a model is and what it costs to run. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

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

static void print_ints(const char *label, const int *v, int n)
{
    printf("%s", label);
    for (int i = 0; i < n; i++)
        printf("%s%d", i ? " " : "", v[i]);
}

static void print_info(const md_model *m)
{
    const md_unet_config *u = &m->unet_cfg;
    const md_moe_config *moe = &u->moe;
    char a[32], b[32], c[32];
    int factor = md_vae_factor(m->vae), native = u->sample_size * factor;
    printf("model            %s\n", m->path);
    printf("family           %s%s\n", family_name(m->family),
           moe->enabled ? " with Mixture-of-Experts U-Net" : "");
    print_ints("U-Net            channels ", u->block_out_channels, u->levels);
    printf(" (%d levels), %d resnets per block\n", u->levels, u->layers_per_block);
    print_ints("                 attention heads ", u->heads, u->levels);
    printf(", context dim %d, latent channels %d\n", u->cross_attention_dim, u->in_channels);
    if (moe->enabled) {
        printf("MoE              %d experts per layer, top-%d, %s routing%s\n", moe->num_experts,
               moe->top_k, moe->routing == MD_ROUTE_TOKEN_TOPK ? "per-token" : "sequence",
               moe->shared_expert ? ", plus a shared expert" : "");
        printf("                 in %s%s%s; down blocks %d..%d, up blocks %d..%d\n",
               moe->moe_ff ? "feed-forwards" : "", moe->moe_ff && moe->moe_attn ? " + " : "",
               moe->moe_attn ? "attention q/k/v" : "", moe->down_start, moe->down_end - 1,
               moe->up_start, moe->up_end - 1);
    }
    printf("text encoder     %d layers, width %d, %d heads", m->te_cfg.num_layers,
           m->te_cfg.hidden_size, m->te_cfg.num_heads);
    if (m->te2)
        printf("; second: %d layers, width %d, %d heads", m->te2_cfg.num_layers,
               m->te2_cfg.hidden_size, m->te2_cfg.num_heads);
    printf("\nVAE              factor %d, scaling %g; native size %dx%d (latent %dx%d)\n", factor,
           (double)m->vae_cfg.scaling_factor, native, native, u->sample_size, u->sample_size);

    param_count pc;
    count_params(m, &pc);
    double total = pc.total[0] + pc.total[1] + pc.total[2] + pc.total[3];
    double active = total;
    if (moe->enabled && moe->num_experts > 0)
        active -= pc.expert * (1.0 - (double)moe->top_k / moe->num_experts);
    char d[32];
    printf("parameters       %s total: U-Net %s, text %s, VAE %s\n", human(total, a, sizeof a),
           human(pc.total[0], b, sizeof b), human(pc.total[1], c, sizeof c),
           human(pc.total[2], d, sizeof d));
    if (moe->enabled)
        printf("active per token %s (U-Net %s of %s: top-%d of %d experts, %d MoE layers)\n",
               human(active, a, sizeof a), human(pc.total[0] - (total - active), b, sizeof b),
               human(pc.total[0], c, sizeof c), moe->top_k, moe->num_experts, pc.moe_layers);
    else
        printf("active per token %s (dense: every parameter)\n", human(active, a, sizeof a));
    printf("weights          ");
    const char *sep = "";
    for (int t = 0; t < 8; t++)
        if (pc.by_dtype[t] > 0) {
            printf("%s%s %.0f%%", sep, md_dtype_name((md_dtype)t), 100.0 * pc.by_dtype[t] / total);
            sep = ", ";
        }
    double act = activation_estimate(m);
    printf("; %s\n", bytes_h(pc.bytes, a, sizeof a));
    printf("memory           about %s: weights %s + activations ~%s at %dx%d (CFG)\n",
           bytes_h(pc.bytes + act, a, sizeof a), bytes_h(pc.bytes, b, sizeof b),
           bytes_h(act, c, sizeof c), native, native);
}

int md_cli_info_main(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: moe-diffuse info MODEL\n"
               "Prints the architecture, parameter counts (total and active per token), the\n"
               "MoE layout, weight types and the memory a generation needs.\n");
        return MD_EXIT_OK;
    }
    if (argc != 2) {
        fprintf(stderr, "moe-diffuse: usage: moe-diffuse info MODEL\n");
        return MD_EXIT_USAGE;
    }
    md_error err = {0};
    md_backend *be = NULL;
    md_model *m = NULL;
    if (md_backend_cpu_create(&be, 1, &err) != MD_OK) {
        fprintf(stderr, "moe-diffuse: %s\n", err.msg);
        return MD_EXIT_FAILURE;
    }
    md_model_options mo = {.backend = be};
    if (md_model_load(argv[1], &mo, &m, &err) != MD_OK) {
        fprintf(stderr, "moe-diffuse: %s\n", err.msg);
        md_backend_destroy(be);
        return MD_EXIT_MODEL;
    }
    print_info(m);
    md_model_free(m);
    md_backend_destroy(be);
    return MD_EXIT_OK;
}
