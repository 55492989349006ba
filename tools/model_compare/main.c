/* model-compare A B [--size N] [--threads T]
 *
 * Loads two models (diffusers folders or single files, no architecture
 * override) one after the other and runs each on the same fixed inputs: the
 * text conditioning of one prompt, one U-Net call (batch 1, N x N pixels,
 * random latent, context and SDXL conditioning) and a VAE decode. Prints
 * per part whether the outputs are bit-identical and their largest
 * difference, plus the settings a single file's shapes cannot tell. Exit 0
 * when everything matches, 1 when something differs, 2 usage, 3 when a
 * model does not load or run. Checks that a converted or single-file
 * checkpoint is the same model as its diffusers folder. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "pipeline/pipeline.h"
#include "sampling/rng.h"

enum { P_EMBEDS, P_POOLED, P_UNET, P_VAE, P_COUNT };
static const char *const part_names[P_COUNT] = {"text embeddings", "pooled text", "unet",
                                                "vae decode"};

typedef struct run_result {
    float *out[P_COUNT];
    size_t n[P_COUNT];
    md_family family;
    int native, ctx_dim, pooled_dim;
    float scaling, cfg;
    int force_upcast, spacing, prediction, pad_id, pad_id2;
} run_result;

static void result_free(run_result *r)
{
    for (int p = 0; p < P_COUNT; p++)
        free(r->out[p]);
}

static float *randn(uint64_t stream, size_t n, float scale)
{
    float *v = malloc(sizeof(float) * (n ? n : 1));
    if (v) {
        md_randn(1234, stream, 0, v, n);
        for (size_t i = 0; i < n; i++)
            v[i] *= scale;
    }
    return v;
}

static md_status run_model(const char *path, int size, md_backend *be, run_result *r,
                           md_error *err)
{
    md_model *m = NULL;
    md_model_options mo = {.backend = be};
    md_status st = md_model_load(path, &mo, &m, err);
    if (st != MD_OK)
        return st;
    const md_unet_config *u = &m->unet_cfg;
    int f = md_vae_factor(m->vae), lh = size / f;
    r->family = m->family;
    r->native = m->default_size;
    r->cfg = m->default_cfg;
    r->ctx_dim = u->cross_attention_dim;
    r->pooled_dim = m->family == MD_FAMILY_SDXL ? m->te2_cfg.projection_dim : 0;
    r->scaling = m->vae_cfg.scaling_factor;
    r->force_upcast = m->vae_cfg.force_upcast;
    r->spacing = m->sched_cfg.timestep_spacing;
    r->prediction = (int)m->sched_cfg.prediction_type;
    r->pad_id = m->pad_id;
    r->pad_id2 = m->pad_id2;
    size_t lat = (size_t)u->in_channels * lh * lh;
    r->n[P_EMBEDS] = (size_t)77 * r->ctx_dim;
    r->n[P_POOLED] = (size_t)r->pooled_dim;
    r->n[P_UNET] = (size_t)u->out_channels * lh * lh;
    r->n[P_VAE] = (size_t)3 * size * size;
    for (int p = 0; p < P_COUNT; p++)
        r->out[p] = malloc(sizeof(float) * (r->n[p] ? r->n[p] : 1));
    /* fixed U-Net inputs, independent of the text encoders */
    float *x = randn(1, lat, 1.0f), *ctx = randn(2, r->n[P_EMBEDS], 1.0f);
    float *pooled = randn(3, r->n[P_POOLED], 1.0f);
    float *z = randn(4, (size_t)m->vae_cfg.latent_channels * lh * lh, 1.0f);
    float t = 500.0f, ids[6] = {(float)size, (float)size, 0, 0, (float)size, (float)size};
    int ok = x && ctx && pooled && z;
    for (int p = 0; p < P_COUNT; p++)
        ok = ok && r->out[p];
    if (!ok)
        st = md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    if (st == MD_OK)
        st = md_encode_prompt(m, be, "a lighthouse on a cliff at dusk, oil painting", 0,
                              r->out[P_EMBEDS], r->pooled_dim ? r->out[P_POOLED] : NULL, err);
    if (st == MD_OK) {
        int xl = m->family == MD_FAMILY_SDXL;
        md_unet_inputs in = {.batch = 1, .height = lh, .width = lh, .sample = x, .timesteps = &t,
                             .context = ctx, .context_len = 77,
                             .text_embeds = xl ? pooled : NULL, .time_ids = xl ? ids : NULL};
        md_unet_state *state = NULL;
        st = md_unet_state_new(m->unet, &state, err);
        if (st == MD_OK)
            st = md_unet_forward(m->unet, state, be, &in, r->out[P_UNET], err);
        md_unet_state_free(state);
    }
    if (st == MD_OK)
        st = md_vae_decode(m->vae, be, z, 1, lh, lh, r->out[P_VAE], err);
    free(x);
    free(ctx);
    free(pooled);
    free(z);
    md_model_free(m);
    return st;
}

/* 1 when the settings match, else prints what differs. */
static int compare_settings(const run_result *a, const run_result *b)
{
    struct {
        const char *what;
        double x, y;
    } s[] = {
        {"family", a->family, b->family},
        {"native size", a->native, b->native},
        {"default guidance", a->cfg, b->cfg},
        {"cross-attention width", a->ctx_dim, b->ctx_dim},
        {"pooled width", a->pooled_dim, b->pooled_dim},
        {"VAE scaling factor", a->scaling, b->scaling},
        {"VAE force_upcast", a->force_upcast, b->force_upcast},
        {"timestep spacing", a->spacing, b->spacing},
        {"prediction type", a->prediction, b->prediction},
        {"pad id", a->pad_id, b->pad_id},
        {"pad id 2", a->pad_id2, b->pad_id2},
    };
    int same = 1;
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        if (s[i].x != s[i].y) {
            printf("setting %-22s differs: %g vs %g\n", s[i].what, s[i].x, s[i].y);
            same = 0;
        }
    }
    if (same)
        printf("settings              identical (family %d, native %d px, guidance %g, "
               "scaling %g)\n",
               a->family, a->native, a->cfg, a->scaling);
    return same;
}

static int compare_part(int p, const run_result *a, const run_result *b)
{
    if (a->n[p] != b->n[p]) {
        printf("%-21s differs in size: %zu vs %zu values\n", part_names[p], a->n[p], b->n[p]);
        return 0;
    }
    if (a->n[p] == 0)
        return 1;
    double maxd = 0, maxv = 0;
    for (size_t i = 0; i < a->n[p]; i++) {
        double d = fabs((double)a->out[p][i] - b->out[p][i]);
        maxd = d > maxd || d != d ? d : maxd;
        maxv = fmax(maxv, fabs((double)a->out[p][i]));
    }
    int same = memcmp(a->out[p], b->out[p], sizeof(float) * a->n[p]) == 0;
    printf("%-21s %s (%zu values, max |a| %.4g, max |a-b| %.3g)\n", part_names[p],
           same ? "bit-identical" : "DIFFER", a->n[p], maxv, maxd);
    return same;
}

int main(int argc, char **argv)
{
    const char *paths[2] = {NULL, NULL};
    int size = 256, threads = 0, np = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (np < 2 && argv[i][0] != '-')
            paths[np++] = argv[i];
        else
            np = 3;
    }
    if (np != 2 || size < 8 || size % 8) {
        fprintf(stderr, "usage: model-compare A B [--size N (multiple of 8)] [--threads T]\n");
        return 2;
    }
    md_error err = {0};
    md_backend *be = NULL;
    if (md_backend_cpu_create(&be, threads, &err) != MD_OK) {
        fprintf(stderr, "model-compare: %s\n", err.msg);
        return 3;
    }
    run_result r[2];
    memset(r, 0, sizeof r);
    int ret = 0;
    for (int k = 0; k < 2 && !ret; k++) {
        /* one model at a time: two SDXL-size models need not fit together */
        if (run_model(paths[k], size, be, &r[k], &err) != MD_OK) {
            fprintf(stderr, "model-compare: %s\n", err.msg);
            ret = 3;
        }
    }
    if (!ret) {
        int same = compare_settings(&r[0], &r[1]);
        for (int p = 0; p < P_COUNT; p++)
            same = compare_part(p, &r[0], &r[1]) && same;
        printf("%s\n", same ? "models are identical" : "models differ");
        ret = same ? 0 : 1;
    }
    result_free(&r[0]);
    result_free(&r[1]);
    md_backend_destroy(be);
    return ret;
}
