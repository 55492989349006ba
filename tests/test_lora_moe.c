/* A LoRA on an MoE U-Net (tiny-sd-moe): a kohya key on a dense path binds
 * to every expert of the MoE layer that path became, and a generation
 * through the LoRA backend (fused copies and side products, MoE layers
 * routed on the host) changes the image, the two agreeing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora_backend.h"
#include "pipeline/pipeline.h"
#include "test_support.h"

#define ATTN "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"

static md_weights *unet_map(const md_model *m)
{
    for (int i = 0; i < m->nweights; i++)
        if (strcmp(md_weights_label(m->weights[i]), "unet") == 0)
            return m->weights[i];
    return NULL;
}

/* Writes a rank-2 kohya LoRA on ATTN shaped like its expert 0. */
static int write_lora(const md_model *m, const char *path)
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

static md_status generate(const md_model *m, md_backend *be, float *image, md_error *err)
{
    mdiff_gen_params p;
    md_request_defaults(&p, sizeof p);
    p.prompt = "a red bicycle";
    p.steps = 2;
    p.seed = 11;
    p.width = p.height = m->default_size;
    md_gen_run run = {.backend = be};
    return md_generate(m, &run, &p, NULL, NULL, image, err);
}

int main(void)
{
    char model_dir[4096], tmp[256], path[512];
    md_backend *cpu = md_test_cpu_backend(2);
    if (!cpu || !md_test_golden_path(model_dir, sizeof model_dir, "tiny-sd-moe") ||
        !md_test_make_temp_dir(tmp, sizeof tmp, "md-lora-moe-")) {
        fprintf(stderr, "test_lora_moe: needs MD_GOLDEN_DIR and a temporary folder\n");
        return 2;
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
        !write_lora(m, path))
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
    md_backend_destroy(cpu);
    md_test_remove_tree(tmp);
    return md_test_finish("test_lora_moe");
}
