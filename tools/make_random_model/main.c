/* make-random-model: see usage() and README.md beside this file. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/config_json.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "random_model.h"
#include "sampling/rng.h"
#include "text/text_encoder.h"
#include "unet/unet.h"
#include "vae/vae.h"

typedef struct synth_state {
    const rm_options *o;
    uint64_t stream; /* one RNG stream per tensor; the component index in the high bits */
} synth_state;

/* Scale like the usual initialisers so activations stay O(1): norms one,
 * biases small, matrices N(0, 1/fan_in). */
static int synthesize(void *user, const char *name, int ndim, const int64_t *shape, md_tensor *out)
{
    synth_state *s = user;
    int64_t n = 1, fan_in = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    for (int i = 1; i < ndim; i++)
        fan_in *= shape[i];
    float *v = malloc(sizeof(float) * (size_t)n);
    if (!v)
        return 0;
    int is_norm_weight = ndim == 1 && strstr(name, "norm") && strstr(name, ".weight");
    if (is_norm_weight) {
        for (int64_t i = 0; i < n; i++)
            v[i] = 1.0f;
    } else {
        md_randn(s->o->seed, s->stream++, 0, v, (size_t)n);
        float scale = ndim == 1 ? 0.02f : 1.0f / sqrtf((float)(ndim == 2 && strstr(name, "embedding") ? 64 : fan_in));
        for (int64_t i = 0; i < n; i++)
            v[i] *= scale;
    }
    out->ndim = ndim;
    memcpy(out->shape, shape, sizeof(int64_t) * (size_t)ndim);
    if (s->o->f16) {
        /* only the f16 copy is kept: a model's f32 weights may not fit */
        uint16_t *h = malloc(sizeof(uint16_t) * (size_t)n);
        if (!h) {
            free(v);
            return 0;
        }
        for (int64_t i = 0; i < n; i++)
            h[i] = md_f32_to_f16(v[i]);
        free(v);
        out->dtype = MD_F16;
        out->data = h;
    } else {
        out->dtype = MD_F32;
        out->data = v;
    }
    return 1;
}

static int write_text(const char *path, const cJSON *j)
{
    char *text = cJSON_Print(j);
    FILE *f = fopen(path, "w");
    int ok = f && text && fputs(text, f) >= 0;
    if (f)
        ok = (fclose(f) == 0) && ok;
    free(text);
    return ok;
}

static int write_json(const char *dir, const char *sub, const char *file, const cJSON *j)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return 0;
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, file);
    return write_text(path, j);
}

static int write_weights(const char *dir, const char *sub, const char *file, md_weights *w,
                         md_error *err)
{
    size_t n = md_weights_count(w);
    md_safetensors_entry *e = calloc(n ? n : 1, sizeof *e);
    if (!e)
        return 0;
    for (size_t i = 0; i < n; i++) {
        e[i].name = md_weights_name(w, i);
        e[i].tensor = *md_weights_tensor(w, i);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, file);
    int ok = md_safetensors_write(path, e, n, err) == MD_OK;
    free(e);
    return ok;
}

static int write_index(const char *dir, const rm_configs *cfg)
{
    cJSON *index = cJSON_CreateObject();
    cJSON_AddStringToObject(index, "_class_name",
                            cfg->sdxl ? "StableDiffusionXLPipeline" : "StableDiffusionPipeline");
    const char *sched = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cfg->scheduler, "_class_name"));
    const char *parts[][3] = {{"unet", "diffusers", "UNet2DConditionModel"},
                              {"vae", "diffusers", "AutoencoderKL"},
                              {"text_encoder", "transformers", "CLIPTextModel"},
                              {"scheduler", "diffusers", sched},
                              {"text_encoder_2", "transformers", "CLIPTextModelWithProjection"}};
    for (size_t i = 0; i < (cfg->sdxl ? 5u : 4u); i++)
        cJSON_AddItemToObject(index, parts[i][0],
                              cJSON_CreateStringArray((const char *[]){parts[i][1], parts[i][2]}, 2));
    if (cfg->sdxl)
        cJSON_AddBoolToObject(index, "force_zeros_for_empty_prompt", 1);
    char path[4096];
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    int ok = write_text(path, index);
    cJSON_Delete(index);
    return ok;
}

enum { C_TE, C_TE2, C_VAE, C_UNET, C_COUNT };

typedef struct component {
    const char *sub, *file;
    const cJSON *json;
    md_weights *w;
} component;

typedef struct parsed {
    md_clip_config te, te2;
    md_vae_config vae;
    md_unet_config unet;
} parsed;

/* The MoE feed-forward loader reads its width from expert 0 before asking
 * for weights (so a lookup would not synthesise it): create those first,
 * with diffusers' 4x GEGLU width, for every block the MoE config covers. */
static md_status seed_moe_ff(const md_unet_config *u, md_weights *w, md_error *err)
{
    const md_moe_config *m = &u->moe;
    if (!m->enabled || !m->moe_ff)
        return MD_OK;
    for (int up = 0; up < 2; up++) {
        int start = up ? m->up_start : m->down_start, end = up ? m->up_end : m->down_end;
        for (int b = start; b < end; b++) {
            int level = up ? u->levels - 1 - b : b; /* up_blocks[0] is the lowest resolution */
            if (!(up ? u->up_has_attn[b] : u->down_has_attn[b]))
                continue;
            int64_t c = u->block_out_channels[level];
            for (int j = 0; j < u->layers_per_block + up; j++) {
                for (int t = 0; t < u->transformer_layers[level]; t++) {
                    md_tensor *unused;
                    md_status s = md_weights_getf(
                        w, &unused, err, 2, (int64_t[]){8 * c, c},
                        "%s_blocks.%d.attentions.%d.transformer_blocks.%d.ff.experts.0.net.0.proj.weight",
                        up ? "up" : "down", b, j, t);
                    if (s != MD_OK)
                        return s;
                }
            }
        }
    }
    return MD_OK;
}

/* Has the engine's loader ask for every weight of component k (which
 * synthesises it), then drops the loaded object: the map keeps the data. */
static md_status synthesize_component(int k, component *c, parsed *p, md_backend *be,
                                      md_error *err)
{
    char label[64];
    snprintf(label, sizeof label, "%s/config.json", c->sub);
    md_status s;
    if (k == C_TE || k == C_TE2) {
        md_clip_config *cfg = k == C_TE ? &p->te : &p->te2;
        md_text_encoder *te = NULL;
        s = md_clip_config_from_json(c->json, label, cfg, err);
        if (s == MD_OK)
            s = md_text_encoder_load(&te, cfg, c->w, be, err);
        md_text_encoder_free(te);
    } else if (k == C_VAE) {
        md_vae *vae = NULL;
        s = md_vae_config_from_json(c->json, label, &p->vae, err);
        /* The VAE loads the halves it finds, so make both exist first. */
        int c0 = 0, cl = 0;
        if (s == MD_OK) {
            c0 = p->vae.block_out_channels[0];
            cl = p->vae.block_out_channels[p->vae.levels - 1];
        }
        md_tensor *seed_tensor;
        if (s == MD_OK)
            s = md_weights_get(c->w, "encoder.conv_in.weight", 4,
                               (int64_t[]){c0, p->vae.in_channels, 3, 3}, &seed_tensor, err);
        if (s == MD_OK)
            s = md_weights_get(c->w, "decoder.conv_in.weight", 4,
                               (int64_t[]){cl, p->vae.latent_channels, 3, 3}, &seed_tensor, err);
        if (s == MD_OK)
            s = md_vae_load(&vae, &p->vae, c->w, be, err);
        md_vae_free(vae);
    } else {
        md_unet *unet = NULL;
        s = md_unet_config_from_json(c->json, label, &p->unet, err);
        if (s == MD_OK)
            s = seed_moe_ff(&p->unet, c->w, err);
        if (s == MD_OK)
            s = md_unet_load(&unet, &p->unet, c->w, be, err);
        md_unet_free(unet);
    }
    return s;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: make-random-model [--preset PRESET] [--experts E] [--top-k K]\n"
            "       [--moe-layers ff|attn|all] [--routing sequence|token] [--shared-expert]\n"
            "       [--f32] [--seed N] [--single-file FILE.safetensors] [OUTDIR]\n"
            "presets: tiny sd15 sdxl sdxl-small segmoe-sd15-4x2 segmoe-sdxl-4x2\n"
            "  --experts E        make the preset MoE: SegMoE's segmoe_config (sequence\n"
            "                     routing), or moe_config with --routing token\n"
            "  --shared-expert    MoE layers also get an always-on shared expert\n"
            "e.g. an SD 1.5-size SegMoE 4x2 (f16, about 4 GB):\n"
            "  make-random-model --preset segmoe-sd15-4x2 OUTDIR\n");
    return 2;
}

static int generate(const rm_options *o, const rm_configs *cfg, md_error *err)
{
    component comps[C_COUNT] = {
        {"text_encoder", "model.safetensors", cfg->text_encoder, NULL},
        {"text_encoder_2", "model.safetensors", cfg->text_encoder_2, NULL},
        {"vae", "diffusion_pytorch_model.safetensors", cfg->vae, NULL},
        {"unet", "diffusion_pytorch_model.safetensors", cfg->unet, NULL},
    };
    parsed p;
    memset(&p, 0, sizeof p);
    md_backend *be = NULL;
    int ok = md_backend_cpu_create(&be, 1, err) == MD_OK;
    synth_state ss[C_COUNT];
    /* One component at a time, written and dropped before the next, unless
     * the single file needs them all. */
    for (int k = 0; k < C_COUNT && ok; k++) {
        component *c = &comps[k];
        if (!c->json)
            continue;
        ss[k] = (synth_state){.o = o, .stream = (uint64_t)k << 32};
        c->w = md_weights_new(c->sub);
        ok = c->w != NULL;
        if (ok) {
            md_weights_set_synthesizer(c->w, synthesize, &ss[k]);
            ok = synthesize_component(k, c, &p, be, err) == MD_OK;
        }
        if (ok && o->out_dir) {
            ok = write_json(o->out_dir, c->sub, "config.json", c->json) &&
                 write_weights(o->out_dir, c->sub, c->file, c->w, err);
        }
        if (!o->single_file) {
            md_weights_free(c->w);
            c->w = NULL;
        }
    }
    if (ok && o->out_dir)
        ok = write_json(o->out_dir, "scheduler", "scheduler_config.json", cfg->scheduler) &&
             write_index(o->out_dir, cfg);
    if (ok && o->single_file) {
        ok = rm_write_sgm_file(o->single_file, &p.unet, &p.vae, comps[C_TE].w, comps[C_TE2].w,
                               comps[C_UNET].w, comps[C_VAE].w, err->msg, sizeof err->msg);
    }
    if (!ok && !err->msg[0])
        snprintf(err->msg, sizeof err->msg, "cannot write into %s",
                 o->out_dir ? o->out_dir : o->single_file);
    for (int k = 0; k < C_COUNT; k++)
        md_weights_free(comps[k].w);
    md_backend_destroy(be);
    return ok;
}

int main(int argc, char **argv)
{
    rm_options o = {.preset = "tiny", .top_k = 2, .moe_layers = "ff", .f16 = 1, .seed = 1};
    static const struct option longopts[] = {
        {"preset", required_argument, NULL, 'p'}, {"experts", required_argument, NULL, 'e'},
        {"top-k", required_argument, NULL, 'k'},  {"moe-layers", required_argument, NULL, 'l'},
        {"routing", required_argument, NULL, 'r'}, {"f32", no_argument, NULL, 'f'},
        {"seed", required_argument, NULL, 's'},   {"single-file", required_argument, NULL, 'o'},
        {"shared-expert", no_argument, NULL, 'x'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': o.preset = optarg; break;
        case 'e': o.experts = atoi(optarg); break;
        case 'k': o.top_k = atoi(optarg); break;
        case 'l': o.moe_layers = optarg; break;
        case 'r': o.token_routing = strcmp(optarg, "token") == 0; break;
        case 'f': o.f16 = 0; break;
        case 's': o.seed = strtoull(optarg, NULL, 10); break;
        case 'o': o.single_file = optarg; break;
        case 'x': o.shared_expert = 1; break;
        default: return usage();
        }
    }
    if (optind == argc - 1)
        o.out_dir = argv[optind];
    else if (optind != argc || !o.single_file)
        return usage();
    rm_configs cfg;
    if (!rm_preset(&o, &cfg)) {
        fprintf(stderr, "make-random-model: unknown preset '%s'\n", o.preset);
        return 2;
    }
    int ret = 0;
    if (o.single_file && (!cfg.sdxl || cJSON_GetObjectItemCaseSensitive(cfg.unet, "segmoe_config") ||
                          cJSON_GetObjectItemCaseSensitive(cfg.unet, "moe_config"))) {
        /* SGM files are what SDXL single files are; MoE models have none */
        fprintf(stderr, "make-random-model: --single-file needs a dense SDXL preset (sdxl, "
                        "sdxl-small)\n");
        ret = 2;
    } else if (o.out_dir && mkdir(o.out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "make-random-model: cannot create %s: %s\n", o.out_dir, strerror(errno));
        ret = 1;
    } else {
        md_error err = {0};
        if (!generate(&o, &cfg, &err)) {
            fprintf(stderr, "make-random-model: %s\n", err.msg[0] ? err.msg : "failed");
            ret = 1;
        }
    }
    cJSON_Delete(cfg.unet);
    cJSON_Delete(cfg.vae);
    cJSON_Delete(cfg.text_encoder);
    cJSON_Delete(cfg.text_encoder_2);
    cJSON_Delete(cfg.scheduler);
    return ret;
}
