/* Renaming the single-file golden checkpoints must give exactly the
 * tensors of the matching diffusers folders: the same names, the same
 * shapes, the same values (float16 widened to float32 is exact). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_json.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "models/ldm_names.h"
#include "test_support.h"

static int same_values(const md_tensor *a, const md_tensor *b)
{
    size_t n = (size_t)md_tensor_numel(a);
    float *x = malloc(n * sizeof *x + 1), *y = malloc(n * sizeof *y + 1);
    md_widen_to_f32(a->dtype, a->data, x, n);
    md_widen_to_f32(b->dtype, b->data, y, n);
    int same = 1;
    for (size_t i = 0; i < n && same; i++)
        same = x[i] == y[i];
    free(x);
    free(y);
    return same;
}

/* The renamed map must hold exactly the tensors of the reference file. */
static void compare(const md_weights *w, const char *ref_rel)
{
    md_safetensors *ref = md_test_open_golden_safetensors(ref_rel);
    if (!ref)
        return;
    size_t n = md_safetensors_count(ref);
    CHECK(md_weights_count(w) == n, "%s: %zu renamed weights, %zu in the reference", ref_rel,
          md_weights_count(w), n);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = md_safetensors_name(ref, i);
        const md_tensor *r = md_safetensors_tensor(ref, i);
        const md_tensor *t = md_weights_find(w, name);
        if (!t) {
            if (bad++ < 10)
                fprintf(stderr, "%s: '%s' missing after renaming\n", ref_rel, name);
            continue;
        }
        int same_shape = t->ndim == r->ndim;
        for (int d = 0; same_shape && d < r->ndim; d++)
            same_shape = t->shape[d] == r->shape[d];
        char a[64], b[64];
        if (!same_shape) {
            if (bad++ < 10)
                fprintf(stderr, "%s: '%s' has shape %s, reference %s\n", ref_rel, name,
                        md_shape_str(t, a, sizeof a), md_shape_str(r, b, sizeof b));
            continue;
        }
        if (!same_values(t, r) && bad++ < 10)
            fprintf(stderr, "%s: '%s' values differ\n", ref_rel, name);
    }
    CHECK(!bad, "%s: %d mismatching weights", ref_rel, bad);
    md_safetensors_close(ref);
}

typedef struct arch {
    cJSON *json;
    md_unet_config unet;
    md_vae_config vae;
} arch;

static int load_arch(const char *rel, arch *a)
{
    a->json = md_test_load_golden_config(rel);
    if (!a->json)
        return 0;
    md_error err = {0};
    const cJSON *ar = cJSON_GetObjectItemCaseSensitive(a->json, "architecture");
    if (md_unet_config_from_json(cJSON_GetObjectItem(ar, "unet"), rel, &a->unet, &err) != MD_OK ||
        md_vae_config_from_json(cJSON_GetObjectItem(ar, "vae"), rel, &a->vae, &err) != MD_OK) {
        FAIL("%s", err.msg);
        return 0;
    }
    return 1;
}

static void test_sd(void)
{
    arch a = {0};
    md_safetensors *st =
        md_test_open_golden_safetensors("tiny-sd-dense-singlefile/model.safetensors");
    if (!st || !load_arch("tiny-sd-dense-singlefile/golden.json", &a))
        goto out;
    md_weights *u = md_weights_new("unet"), *v = md_weights_new("vae"), *t = md_weights_new("te");
    md_error err = {0};
    CHECK(md_ldm_rename_unet(st, &a.unet, u, &err) == MD_OK);
    CHECK(md_ldm_rename_vae(st, &a.vae, v, &err) == MD_OK);
    CHECK(md_ldm_rename_clip(st, MD_LDM_SD1_TE_PREFIX, t, &err) == MD_OK);
    if (md_test_failures())
        fprintf(stderr, "%s\n", err.msg);
    compare(u, "tiny-sd-dense/unet/diffusion_pytorch_model.safetensors");
    compare(v, "tiny-sd-dense/vae/diffusion_pytorch_model.safetensors");
    compare(t, "tiny-sd-dense/text_encoder/model.safetensors");
    /* Every tensor of the file belongs to one of the three components. */
    CHECK(md_weights_count(u) + md_weights_count(v) + md_weights_count(t) ==
          md_safetensors_count(st));
    /* The inverse (named in errors) gives back every U-Net key: the renamed
     * weights are in the file's order. */
    size_t j = 0;
    int inverse_bad = 0;
    for (size_t i = 0; i < md_safetensors_count(st); i++) {
        const char *key = md_safetensors_name(st, i);
        if (strncmp(key, MD_LDM_UNET_PREFIX, strlen(MD_LDM_UNET_PREFIX)) != 0)
            continue;
        char back[320];
        if (j >= md_weights_count(u) ||
            !md_ldm_unet_key(&a.unet, md_weights_name(u, j++), back, sizeof back) ||
            strcmp(back, key) != 0)
            inverse_bad++;
    }
    CHECK(!inverse_bad && j == md_weights_count(u), "%d keys not given back", inverse_bad);
    char moe_key[320];
    CHECK(md_ldm_unet_key(&a.unet,
                          "up_blocks.1.attentions.1.transformer_blocks.0.ff.experts.3.net.2.bias",
                          moe_key, sizeof moe_key) &&
          !strcmp(moe_key, MD_LDM_UNET_PREFIX
                  "output_blocks.3.1.transformer_blocks.0.ff.experts.3.net.2.bias"));
    CHECK(!md_ldm_unet_key(&a.unet, "nowhere.weight", moe_key, sizeof moe_key));
    md_weights_free(u);
    md_weights_free(v);
    md_weights_free(t);

    /* A wrong architecture is reported with the key and the file. */
    md_unet_config wrong = a.unet;
    wrong.up_has_attn[1] = 0;
    u = md_weights_new("unet");
    CHECK(md_ldm_rename_unet(st, &wrong, u, &err) == MD_ERR_FORMAT);
    CHECK(strstr(err.msg, "model.safetensors") && strstr(err.msg, "output_blocks.2.1"));
    md_weights_free(u);
    wrong = a.unet;
    wrong.layers_per_block = 2;
    u = md_weights_new("unet");
    CHECK(md_ldm_rename_unet(st, &wrong, u, &err) == MD_ERR_FORMAT);
    md_weights_free(u);
    md_vae_config wv = a.vae;
    wv.levels = 1;
    v = md_weights_new("vae");
    CHECK(md_ldm_rename_vae(st, &wv, v, &err) == MD_ERR_FORMAT);
    CHECK(strstr(err.msg, "first_stage_model.") != NULL);
    md_weights_free(v);
out:
    cJSON_Delete(a.json);
    md_safetensors_close(st);
}

static void test_sdxl(void)
{
    arch a = {0};
    md_safetensors *st =
        md_test_open_golden_safetensors("tiny-sdxl-singlefile/model.safetensors");
    if (!st || !load_arch("tiny-sdxl-singlefile/golden.json", &a))
        goto out;
    md_weights *u = md_weights_new("unet"), *v = md_weights_new("vae");
    md_weights *t1 = md_weights_new("te"), *t2 = md_weights_new("te2");
    md_error err = {0};
    CHECK(md_ldm_rename_unet(st, &a.unet, u, &err) == MD_OK);
    CHECK(md_ldm_rename_vae(st, &a.vae, v, &err) == MD_OK);
    CHECK(md_ldm_rename_clip(st, MD_LDM_SDXL_TE1_PREFIX, t1, &err) == MD_OK);
    int layers = md_ldm_open_clip_layers(st, MD_LDM_SDXL_TE2_PREFIX);
    CHECK(layers == 3);
    CHECK(md_ldm_rename_open_clip(st, MD_LDM_SDXL_TE2_PREFIX, layers, 1, t2, &err) == MD_OK);
    if (md_test_failures())
        fprintf(stderr, "%s\n", err.msg);
    compare(u, "tiny-sdxl/unet/diffusion_pytorch_model.safetensors");
    compare(v, "tiny-sdxl/vae/diffusion_pytorch_model.safetensors");
    compare(t1, "tiny-sdxl/text_encoder/model.safetensors");
    compare(t2, "tiny-sdxl/text_encoder_2/model.safetensors");

    /* q/k/v are views into the mapped in_proj_weight, not copies. */
    const md_tensor *inproj = md_safetensors_find(
        st, MD_LDM_SDXL_TE2_PREFIX "transformer.resblocks.1.attn.in_proj_weight");
    const md_tensor *k = md_weights_find(t2, "text_model.encoder.layers.1.self_attn.k_proj.weight");
    CHECK(inproj && k && (const char *)k->data == (const char *)inproj->data + 16 * 16 * 2);
    md_weights_free(t2);

    /* SD 2.x style: drop the last resblock and the projection. */
    t2 = md_weights_new("te2");
    CHECK(md_ldm_rename_open_clip(st, MD_LDM_SDXL_TE2_PREFIX, layers - 1, 0, t2, &err) == MD_OK);
    CHECK(md_weights_find(t2, "text_projection.weight") == NULL);
    CHECK(md_weights_find(t2, "text_model.encoder.layers.1.mlp.fc1.weight") != NULL);
    CHECK(!md_weights_has_prefix(t2, "text_model.encoder.layers.2."));
    md_weights_free(u);
    md_weights_free(v);
    md_weights_free(t1);
    md_weights_free(t2);
out:
    cJSON_Delete(a.json);
    md_safetensors_close(st);
}

int main(void)
{
    if (!md_test_golden_dir_required())
        return 1;
    test_sd();
    test_sdxl();
    return md_test_finish("test_ldm_names");
}
