/* A LoRA on SDXL as kohya writes one: both text encoders (lora_te1_,
 * lora_te2_) and U-Net keys in the original SGM names
 * (lora_unet_input_blocks_..., including a LoCon 3x3 convolution), on
 * tiny-sdxl. Every key binds to the weight it names, and a generation
 * whose request carries the LoRA changes the image the same way with fused
 * copies and side products. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora_backend.h"
#include "models/ldm_names.h"
#include "pipeline/pipeline.h"
#include "test_support.h"

enum { RANK = 2, NT = 5 };

typedef struct target {
    const char *map;  /* the weight map's label */
    char weight[256]; /* the diffusers / HF weight name */
    char key[320];    /* the kohya key stem */
} target;

static md_weights *map_of(const md_model *m, const char *label)
{
    for (int i = 0; i < m->nweights; i++)
        if (!strcmp(md_weights_label(m->weights[i]), label))
            return m->weights[i];
    return NULL;
}

/* The first U-Net weight whose name ends with `suffix` (and has `ndim`
 * dimensions), and its kohya key from its SGM name. */
static int unet_target(const md_model *m, const char *suffix, int ndim, target *t)
{
    md_weights *w = map_of(m, "unet");
    for (size_t i = 0; w && i < md_weights_count(w); i++) {
        const char *name = md_weights_name(w, i);
        size_t n = strlen(name), k = strlen(suffix);
        char ldm[320];
        if (n < k || strcmp(name + n - k, suffix) || md_weights_tensor(w, i)->ndim != ndim ||
            !md_ldm_unet_key(&m->unet_cfg, name, ldm, sizeof ldm))
            continue;
        t->map = "unet";
        snprintf(t->weight, sizeof t->weight, "%s", name);
        size_t p = strlen(MD_LDM_UNET_PREFIX), e = strlen(ldm) - strlen(".weight");
        snprintf(t->key, sizeof t->key, "lora_unet_%.*s", (int)(e - p), ldm + p);
        for (char *c = t->key + strlen("lora_unet_"); *c; c++)
            *c = *c == '.' ? '_' : *c;
        return 1;
    }
    return 0;
}

static int write_lora(const md_model *m, const target *t, const char *path, md_error *err)
{
    md_safetensors_entry e[2 * NT];
    char names[2 * NT][400];
    float *data[2 * NT] = {0};
    int ok = 1;
    for (int i = 0; i < NT && ok; i++) {
        const md_tensor *w = md_weights_find(map_of(m, t[i].map), t[i].weight);
        if (!w)
            return 0;
        md_tensor down = *w, up = *w;
        down.shape[0] = RANK; /* [r, in] or [r, in, kh, kw] */
        up.ndim = w->ndim;    /* [out, r] or [out, r, 1, 1] */
        up.shape[1] = RANK;
        if (w->ndim == 4)
            up.shape[2] = up.shape[3] = 1;
        down.dtype = up.dtype = MD_F32;
        size_t nd = (size_t)md_tensor_numel(&down), nu = (size_t)md_tensor_numel(&up);
        data[2 * i] = malloc(nd * sizeof(float));
        data[2 * i + 1] = malloc(nu * sizeof(float));
        ok = data[2 * i] && data[2 * i + 1];
        for (size_t k = 0; ok && k < nd; k++)
            data[2 * i][k] = (float)((k * 7919 + i * 31) % 17) / 17.0f - 0.5f;
        for (size_t k = 0; ok && k < nu; k++)
            data[2 * i + 1][k] = (float)((k * 104729 + i * 13) % 23) / 23.0f - 0.5f;
        down.data = data[2 * i];
        up.data = data[2 * i + 1];
        snprintf(names[2 * i], sizeof names[0], "%s.lora_down.weight", t[i].key);
        snprintf(names[2 * i + 1], sizeof names[0], "%s.lora_up.weight", t[i].key);
        e[2 * i] = (md_safetensors_entry){names[2 * i], down};
        e[2 * i + 1] = (md_safetensors_entry){names[2 * i + 1], up};
    }
    ok = ok && md_safetensors_write(path, e, 2 * NT, err) == MD_OK;
    for (int i = 0; i < 2 * NT; i++)
        free(data[i]);
    return ok;
}

static md_status generate(const md_model *m, md_backend *cpu, const char *lora, int apply,
                          float *image, md_error *err)
{
    mdiff_gen_params p;
    md_request_defaults(&p, sizeof p);
    p.prompt = "a lighthouse on a cliff";
    p.steps = 2;
    p.seed = 3;
    mdiff_lora l = {.struct_size = sizeof l, .path = lora, .weight = 0.7f};
    p.loras = lora ? &l : NULL;
    p.lora_count = lora ? 1 : 0;
    md_gen_run run = {.backend = cpu, .lora_apply = apply};
    return md_generate(m, &run, &p, NULL, NULL, image, err);
}

static void run(void)
{
    char dir[4096], tmp[256], path[512];
    md_error err = {0};
    md_backend *cpu = NULL;
    md_model *m = NULL;
    REQUIRE(md_test_golden_path(dir, sizeof dir, "tiny-sdxl"), "MD_GOLDEN_DIR is not set");
    REQUIRE(md_test_make_temp_dir(tmp, sizeof tmp, "md-lora-sdxl-"), "no temporary folder");
    REQUIRE(md_backend_cpu_create(&cpu, 2, &err) == MD_OK, "%s", err.msg);
    md_model_options opt = {.backend = cpu};
    REQUIRE(md_model_load(dir, &opt, &m, &err) == MD_OK, "%s", err.msg);
    target t[NT] = {
        {"text_encoder", "text_model.encoder.layers.0.self_attn.q_proj.weight",
         "lora_te1_text_model_encoder_layers_0_self_attn_q_proj"},
        {"text_encoder_2", "text_model.encoder.layers.0.mlp.fc1.weight",
         "lora_te2_text_model_encoder_layers_0_mlp_fc1"},
    };
    REQUIRE(unet_target(m, ".attn2.to_k.weight", 2, &t[2]) &&
                unet_target(m, ".ff.net.2.weight", 2, &t[3]) &&
                unet_target(m, ".conv1.weight", 4, &t[4]),
            "tiny-sdxl lacks an attention, feed-forward or resnet weight");
    snprintf(path, sizeof path, "%s/sdxl.safetensors", tmp);
    REQUIRE(write_lora(m, t, path, &err), "writing the LoRA: %s", err.msg);

    md_lora_file *f = NULL;
    md_lora_binding b = {0};
    if (CHECK(md_lora_file_open(path, &f, &err) == MD_OK &&
                  md_lora_bind(&b, m, f, 1.0f, 0, &err) == MD_OK,
              "%s", err.msg)) {
        CHECK(b.count == NT, "%d targets, want %d", b.count, NT);
        for (int i = 0; i < NT; i++) {
            const md_tensor *w = md_weights_find(map_of(m, t[i].map), t[i].weight);
            int bound = 0;
            for (int k = 0; k < b.count; k++)
                bound |= b.targets[k].w == w;
            CHECK(bound, "%s did not bind to %s's %s", t[i].key, t[i].map, t[i].weight);
        }
    }
    md_lora_binding_clear(&b);
    md_lora_file_free(f);

    size_t npix = 3 * (size_t)m->default_size * m->default_size;
    float *plain = calloc(npix, sizeof(float)), *side = calloc(npix, sizeof(float));
    float *fused = calloc(npix, sizeof(float));
    REQUIRE(plain && side && fused, "out of memory");
    CHECK(generate(m, cpu, NULL, 0, plain, &err) == MD_OK, "%s", err.msg);
    CHECK(generate(m, cpu, path, 0, side, &err) == MD_OK, "%s", err.msg);
    CHECK(generate(m, cpu, path, 1 + MD_LORA_FUSED, fused, &err) == MD_OK, "%s", err.msg);
    double moved = md_test_rel_err(plain, side, npix), agree = md_test_rel_err(side, fused, npix);
    printf("tiny-sdxl: the LoRA moved the image by %.3g (rel), side vs fused %.3g\n", moved, agree);
    CHECK(moved > 1e-3, "the LoRA did not change the image (rel diff %g)", moved);
    CHECK(agree < 1e-4, "fused and side products differ: %g", agree);
    free(plain);
    free(side);
    free(fused);
    md_model_free(m);
    md_backend_destroy(cpu);
    md_test_remove_tree(tmp);
}

int main(void)
{
    run();
    return md_test_finish("lora sdxl");
}
