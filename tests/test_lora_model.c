/* LoRAs on whole models: kohya's LDM-named U-Net keys on tiny-sd-dense, a
 * generation with a LoRA (fused copies and side products) that leaves the
 * loaded model's weights byte-identical, and a LoRA on an MoE U-Net
 * (tiny-sd-moe) reaching every expert. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora_backend.h"
#include "pipeline/pipeline.h"
#include "test_support.h"

static size_t weight_bytes(const md_model *m, unsigned char *out)
{
    size_t n = 0;
    for (int i = 0; i < m->nweights; i++)
        for (size_t j = 0; j < md_weights_count(m->weights[i]); j++) {
            const md_tensor *t = md_weights_tensor(m->weights[i], j);
            if (out)
                memcpy(out + n, t->data, md_tensor_nbytes(t));
            n += md_tensor_nbytes(t);
        }
    return n;
}

static md_status generate(const md_model *m, md_backend *be, float *image, md_error *err)
{
    mdiff_gen_params p;
    md_request_defaults(&p, sizeof p);
    p.prompt = "a lighthouse on a cliff";
    p.steps = 2;
    p.seed = 3;
    p.width = p.height = m->default_size;
    md_gen_run run = {.backend = be};
    return md_generate(m, &run, &p, NULL, NULL, image, err);
}

/* kohya's LDM-named U-Net keys (as in SDXL LoRAs) bind to the same
 * weights as the diffusers names: input_blocks.1.1 is down_blocks.0's
 * first attention, middle_block.1 the mid-block attention. */
static void test_ldm_names(const md_model *m)
{
    static const char *const pairs[][2] = {
        {"lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q",
         "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"},
        {"lora_unet_middle_block_1_proj_in", "mid_block.attentions.0.proj_in.weight"}};
    enum { NP = sizeof pairs / sizeof *pairs, R = 2 };
    char dir[256], path[512], names[2 * NP][160];
    md_safetensors_entry e[2 * NP];
    float *ones = calloc(1 << 16, sizeof(float));
    if (!ones || !md_test_make_temp_dir(dir, sizeof dir, "md-lora-ldm-")) {
        FAIL("no temporary folder or memory");
        free(ones);
        return;
    }
    for (int i = 0; i < NP; i++) {
        const md_tensor *w = md_weights_find(m->weights[0], pairs[i][1]);
        for (int j = 1; !w && j < m->nweights; j++)
            w = md_weights_find(m->weights[j], pairs[i][1]);
        REQUIRE(w, "the model has no %s", pairs[i][1]);
        md_tensor down = *w, up = *w;
        down.shape[0] = R;
        up.ndim = 2;
        up.shape[1] = R;
        down.dtype = up.dtype = MD_F32;
        down.data = up.data = ones;
        snprintf(names[2 * i], sizeof names[0], "%s.lora_down.weight", pairs[i][0]);
        snprintf(names[2 * i + 1], sizeof names[0], "%s.lora_up.weight", pairs[i][0]);
        e[2 * i] = (md_safetensors_entry){names[2 * i], down};
        e[2 * i + 1] = (md_safetensors_entry){names[2 * i + 1], up};
    }
    snprintf(path, sizeof path, "%s/ldm.safetensors", dir);
    md_error err = {0};
    md_lora_file *f = NULL;
    md_lora_binding b = {0};
    if (CHECK(md_safetensors_write(path, e, 2 * NP, &err) == MD_OK &&
                  md_lora_file_open(path, &f, &err) == MD_OK &&
                  md_lora_bind(&b, m, f, 1.0f, 0, &err) == MD_OK,
              "%s", err.msg)) {
        CHECK(b.count == NP, "%d targets", b.count);
        for (int i = 0; i < NP; i++)
            CHECK(md_lora_bound_weight(&b, pairs[i][1]) != NULL, "%s did not bind to %s",
                  pairs[i][0], pairs[i][1]);
    }
    md_lora_binding_clear(&b);
    md_lora_file_free(f);
    md_test_remove_tree(dir);
    free(ones);
}

static void test_generation(md_backend *cpu)
{
    char dir[4096], lora_path[4096];
    if (!md_test_golden_path(dir, sizeof dir, "tiny-sd-dense") ||
        !md_test_golden_path(lora_path, sizeof lora_path, "tiny-sd-lora/lora_kohya.safetensors")) {
        FAIL("MD_GOLDEN_DIR is not set");
        return;
    }
    md_model *m = NULL;
    md_lora_file *f = NULL;
    md_lora_binding b = {0};
    md_error err = {0};
    md_model_options opt = {.backend = cpu};
    REQUIRE(md_model_load(dir, &opt, &m, &err) == MD_OK, "%s", err.msg);
    size_t nbytes = weight_bytes(m, NULL), npix = 3 * (size_t)m->default_size * m->default_size;
    unsigned char *before = malloc(nbytes), *after = malloc(nbytes);
    float *plain = calloc(npix, sizeof(float)), *fused = calloc(npix, sizeof(float));
    float *side = calloc(npix, sizeof(float));
    md_backend *bf = NULL, *bs = NULL;
    if (!before || !after || !plain || !fused || !side) {
        FAIL("out of memory");
        goto done;
    }
    weight_bytes(m, before);
    test_ldm_names(m);
    if (!CHECK(md_lora_file_open(lora_path, &f, &err) == MD_OK &&
                   md_lora_bind(&b, m, f, 0.8f, 0, &err) == MD_OK &&
                   md_lora_backend_new(cpu, &b, MD_LORA_FUSED, &bf, &err) == MD_OK &&
                   md_lora_backend_new(cpu, &b, MD_LORA_SIDE, &bs, &err) == MD_OK,
               "%s", err.msg))
        goto done;
    CHECK(generate(m, cpu, plain, &err) == MD_OK, "%s", err.msg);
    CHECK(generate(m, bf, fused, &err) == MD_OK, "%s", err.msg);
    CHECK(generate(m, bs, side, &err) == MD_OK, "%s", err.msg);
    double moved = md_test_rel_err(plain, fused, npix), agree = md_test_rel_err(side, fused, npix);
    printf("%s model: the LoRA moved the image by %.3g (rel), fused vs side products %.3g\n",
           "dense", moved, agree);
    CHECK(moved > 1e-3, "the LoRA did not change the image (rel diff %g)", moved);
    CHECK(agree < 1e-4, "fused and side products differ: %g", agree);
    weight_bytes(m, after);
    CHECK(memcmp(before, after, nbytes) == 0, "a LoRA generation changed the model's weights");
    float *again = plain;
    CHECK(generate(m, cpu, again, &err) == MD_OK && md_test_rel_err(again, fused, npix) == moved,
          "the model without the LoRA no longer gives the same image");
done:
    md_backend_destroy(bf);
    md_backend_destroy(bs);
    md_lora_binding_clear(&b);
    md_lora_file_free(f);
    md_model_free(m);
    free(before), free(after), free(plain), free(fused), free(side);
}

#define ATTN "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"

static md_weights *unet_map(const md_model *m)
{
    for (int i = 0; i < m->nweights; i++)
        if (strcmp(md_weights_label(m->weights[i]), "unet") == 0)
            return m->weights[i];
    return NULL;
}

/* Writes a rank-2 kohya LoRA on ATTN shaped like its expert 0. */
static int write_moe_lora(const md_model *m, const char *path)
{
    const md_tensor *w = md_weights_find(unet_map(m), ATTN ".experts.0.weight");
    if (!CHECK(w != NULL, "tiny-sd-moe has no %s", ATTN ".experts.0.weight"))
        return 0;
    enum { R = 2 };
    static float down[R * 4096], up[4096 * R];
    md_test_rng rng = {7};
    for (int i = 0; i < R * 4096; i++) {
        down[i] = (float)(md_test_uniform(&rng) - 0.5);
        up[i] = (float)(md_test_uniform(&rng) - 0.5);
    }
    if (!CHECK(w->shape[0] * R <= 4096 && w->shape[1] * R <= 4096, "weight too large"))
        return 0;
    md_safetensors_entry e[2] = {
        {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight",
         {MD_F32, 2, {R, w->shape[1]}, down}},
        {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight",
         {MD_F32, 2, {w->shape[0], R}, up}}};
    md_error err = {0};
    return CHECK(md_safetensors_write(path, e, 2, &err) == MD_OK, "%s", err.msg);
}

/* A LoRA on an MoE U-Net (tiny-sd-moe): a kohya key on a dense path binds
 * to every expert of the MoE layer that path became, and a generation
 * through the LoRA backend (fused copies and side products, MoE layers
 * routed on the host) changes the image, the two agreeing. */
static void test_moe(md_backend *cpu)
{
    char model_dir[4096], tmp[256], path[512];
    if (!md_test_golden_path(model_dir, sizeof model_dir, "tiny-sd-moe") ||
        !md_test_make_temp_dir(tmp, sizeof tmp, "md-lora-moe-")) {
        FAIL("needs MD_GOLDEN_DIR and a temporary folder");
        return;
    }
    snprintf(path, sizeof path, "%s/moe_lora.safetensors", tmp);
    md_model *m = NULL;
    md_lora_file *f = NULL;
    md_lora_binding b = {0};
    md_backend *fused = NULL, *side = NULL;
    md_error err = {0};
    md_model_options opt = {.backend = cpu};
    float *img[3] = {NULL, NULL, NULL};
    if (!CHECK(md_model_load(model_dir, &opt, &m, &err) == MD_OK, "%s", err.msg) ||
        !write_moe_lora(m, path))
        goto done;
    if (!CHECK(md_lora_file_open(path, &f, &err) == MD_OK &&
                   md_lora_bind(&b, m, f, 1.0f, 0, &err) == MD_OK,
               "%s", err.msg))
        goto done;
    int experts = 0;
    char name[256];
    for (;; experts++) {
        snprintf(name, sizeof name, ATTN ".experts.%d.weight", experts);
        if (!md_weights_find(unet_map(m), name))
            break;
        CHECK(md_lora_bound_weight(&b, name) != NULL, "%s not modified", name);
    }
    CHECK(experts > 1 && b.count == experts, "%d targets for %d experts", b.count, experts);
    CHECK(md_lora_bound_weight(&b, ATTN ".gate.weight") == NULL, "the gate was modified");

    size_t n = 3 * (size_t)m->default_size * m->default_size;
    for (int i = 0; i < 3; i++)
        img[i] = calloc(n, sizeof(float));
    if (!img[0] || !img[1] || !img[2] ||
        !CHECK(md_lora_backend_new(cpu, &b, MD_LORA_FUSED, &fused, &err) == MD_OK &&
                   md_lora_backend_new(cpu, &b, MD_LORA_SIDE, &side, &err) == MD_OK,
               "%s", err.msg))
        goto done;
    CHECK(generate(m, cpu, img[0], &err) == MD_OK, "%s", err.msg);
    CHECK(generate(m, fused, img[1], &err) == MD_OK, "%s", err.msg);
    CHECK(generate(m, side, img[2], &err) == MD_OK, "%s", err.msg);
    double moved = md_test_rel_err(img[0], img[1], n), agree = md_test_rel_err(img[2], img[1], n);
    printf("%s model: the LoRA moved the image by %.3g (rel), fused vs side products %.3g\n",
           "MoE", moved, agree);
    CHECK(moved > 1e-3, "the LoRA on the experts did not change the image (%g)", moved);
    CHECK(agree < 1e-4, "fused and side products differ: %g", agree);
done:
    for (int i = 0; i < 3; i++)
        free(img[i]);
    md_backend_destroy(fused);
    md_backend_destroy(side);
    md_lora_binding_clear(&b);
    md_lora_file_free(f);
    md_model_free(m);
    md_test_remove_tree(tmp);
}

int main(void)
{
    md_backend *cpu = md_test_cpu_backend(2);
    if (!cpu)
        return 2;
    test_generation(cpu);
    test_moe(cpu);
    md_backend_destroy(cpu);
    return md_test_finish("test_lora_model");
}
