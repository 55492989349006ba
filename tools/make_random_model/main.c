/* make-random-model [--preset tiny|sd15] [--experts E --top-k K
 *   --moe-layers ff|attn|all --routing sequence|token] [--f32] [--seed N] OUTDIR */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/safetensors.h"
#include "io/weights.h"
#include "models/config_json.h"
#include "random_model.h"
#include "sampling/rng.h"
#include "text/text_encoder.h"
#include "unet/unet.h"
#include "vae/vae.h"

typedef struct synth_state {
    const rm_options *o;
    uint64_t stream; /* one RNG stream per tensor */
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

static int write_json(const char *dir, const char *sub, const char *file, const cJSON *j)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return 0;
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, file);
    char *text = cJSON_Print(j);
    FILE *f = fopen(path, "w");
    int ok = f && text && fputs(text, f) >= 0;
    if (f)
        ok = (fclose(f) == 0) && ok;
    free(text);
    return ok;
}

static int write_weights(const char *dir, const char *sub, const char *file, md_weights *w)
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
    md_error err = {0};
    int ok = md_safetensors_write(path, e, n, &err) == MD_OK;
    if (!ok)
        fprintf(stderr, "make-random-model: %s\n", err.msg);
    free(e);
    return ok;
}

static int usage(void)
{
    fprintf(stderr, "usage: make-random-model [--preset tiny|sd15] [--experts E] [--top-k K]\n"
                    "       [--moe-layers ff|attn|all] [--routing sequence|token] [--f32] [--seed N] OUTDIR\n");
    return 2;
}

int main(int argc, char **argv)
{
    rm_options o = {.preset = "tiny", .top_k = 2, .moe_layers = "ff", .f16 = 1, .seed = 1};
    static const struct option longopts[] = {
        {"preset", required_argument, NULL, 'p'}, {"experts", required_argument, NULL, 'e'},
        {"top-k", required_argument, NULL, 'k'},  {"moe-layers", required_argument, NULL, 'l'},
        {"routing", required_argument, NULL, 'r'}, {"f32", no_argument, NULL, 'f'},
        {"seed", required_argument, NULL, 's'},   {0, 0, 0, 0}};
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
        default: return usage();
        }
    }
    if (optind != argc - 1)
        return usage();
    o.out_dir = argv[optind];
    rm_configs cfg;
    if (!rm_preset(&o, &cfg)) {
        fprintf(stderr, "make-random-model: unknown preset '%s'\n", o.preset);
        return 2;
    }
    if (mkdir(o.out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "make-random-model: cannot create %s: %s\n", o.out_dir, strerror(errno));
        return 1;
    }

    md_error err = {0};
    md_backend *be = NULL;
    md_weights *wu = md_weights_new("unet"), *wv = md_weights_new("vae"),
               *wt = md_weights_new("text_encoder");
    synth_state ss = {.o = &o};
    md_unet_config ucfg;
    md_vae_config vcfg;
    md_clip_config tcfg;
    md_unet *unet = NULL;
    md_vae *vae = NULL;
    md_text_encoder *te = NULL;
    int ok = wu && wv && wt && md_backend_cpu_create(&be, 1, &err) == MD_OK;
    ok = ok && md_unet_config_from_json(cfg.unet, "unet/config.json", &ucfg, &err) == MD_OK &&
         md_vae_config_from_json(cfg.vae, "vae/config.json", &vcfg, &err) == MD_OK &&
         md_clip_config_from_json(cfg.text_encoder, "text_encoder/config.json", &tcfg, &err) == MD_OK;
    if (ok) {
        md_weights_set_synthesizer(wu, synthesize, &ss);
        md_weights_set_synthesizer(wv, synthesize, &ss);
        md_weights_set_synthesizer(wt, synthesize, &ss);
        /* The VAE loads the halves it finds, so make both exist first. */
        int c0 = vcfg.block_out_channels[0], cl = vcfg.block_out_channels[vcfg.levels - 1];
        md_tensor *seed_tensor;
        ok = md_weights_get(wv, "encoder.conv_in.weight", 4,
                            (int64_t[]){c0, vcfg.in_channels, 3, 3}, &seed_tensor, &err) == MD_OK &&
             md_weights_get(wv, "decoder.conv_in.weight", 4,
                            (int64_t[]){cl, vcfg.latent_channels, 3, 3}, &seed_tensor, &err) == MD_OK;
        ok = ok && md_unet_load(&unet, &ucfg, wu, be, &err) == MD_OK &&
             md_vae_load(&vae, &vcfg, wv, be, &err) == MD_OK &&
             md_text_encoder_load(&te, &tcfg, wt, be, &err) == MD_OK;
    }
    if (ok) {
        cJSON *index = cJSON_CreateObject();
        cJSON_AddStringToObject(index, "_class_name", "StableDiffusionPipeline");
        const char *parts[][2] = {{"unet", "UNet2DConditionModel"}, {"vae", "AutoencoderKL"},
                                  {"text_encoder", "CLIPTextModel"}, {"scheduler", "PNDMScheduler"}};
        for (size_t i = 0; i < 4; i++)
            cJSON_AddItemToObject(index, parts[i][0],
                                  cJSON_CreateStringArray((const char *[]){"diffusers", parts[i][1]}, 2));
        char path[4096];
        snprintf(path, sizeof path, "%s/model_index.json", o.out_dir);
        char *text = cJSON_Print(index);
        FILE *f = fopen(path, "w");
        ok = f && text && fputs(text, f) >= 0;
        if (f)
            ok = (fclose(f) == 0) && ok;
        free(text);
        cJSON_Delete(index);
        ok = ok && write_json(o.out_dir, "unet", "config.json", cfg.unet) &&
             write_json(o.out_dir, "vae", "config.json", cfg.vae) &&
             write_json(o.out_dir, "text_encoder", "config.json", cfg.text_encoder) &&
             write_json(o.out_dir, "scheduler", "scheduler_config.json", cfg.scheduler) &&
             write_weights(o.out_dir, "unet", "diffusion_pytorch_model.safetensors", wu) &&
             write_weights(o.out_dir, "vae", "diffusion_pytorch_model.safetensors", wv) &&
             write_weights(o.out_dir, "text_encoder", "model.safetensors", wt);
        if (!ok && !err.msg[0])
            snprintf(err.msg, sizeof err.msg, "cannot write into %s", o.out_dir);
    }
    if (!ok)
        fprintf(stderr, "make-random-model: %s\n", err.msg[0] ? err.msg : "failed");
    md_unet_free(unet);
    md_vae_free(vae);
    md_text_encoder_free(te);
    md_weights_free(wu);
    md_weights_free(wv);
    md_weights_free(wt);
    md_backend_destroy(be);
    cJSON_Delete(cfg.unet);
    cJSON_Delete(cfg.vae);
    cJSON_Delete(cfg.text_encoder);
    cJSON_Delete(cfg.scheduler);
    return ok ? 0 : 1;
}
