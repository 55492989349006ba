/* A LoRA .safetensors file: key layouts, alphas, down/up shapes, then
 * binding to a small model (kohya names resolved, shapes checked, MoE
 * experts expanded) and fusing every bound weight, which reads each down
 * and up matrix in full: a shape the checks let through that does not fit
 * its weight is an ASan report. */
#include <stdint.h>

#include "fuzz_file.h"
#include "lora/lora_bind.h"

static float zeros[4 * 2 * 3 * 3];

static md_weights *map_of(const char *label, const char *const *names, const md_tensor *shapes,
                          int n)
{
    md_weights *w = md_weights_new(label);
    for (int i = 0; w && i < n; i++) {
        md_tensor t = shapes[i];
        t.data = zeros;
        md_weights_add(w, names[i], &t, "model", NULL);
    }
    return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const unet_names[] = {"a.to_q.weight", "b.conv.weight",
                                             "a.ff.experts.0.net.2.weight",
                                             "a.ff.experts.1.net.2.weight"};
    static const md_tensor unet_shapes[] = {{MD_F32, 2, {4, 4}, 0}, {MD_F32, 4, {4, 2, 3, 3}, 0},
                                            {MD_F32, 2, {4, 4}, 0}, {MD_F32, 2, {4, 4}, 0}};
    static const char *const te_names[] = {"text_model.encoder.layers.0.mlp.fc1.weight"};
    static const md_tensor te_shapes[] = {{MD_F32, 2, {4, 4}, 0}};
    const char *path = md_fuzz_file(data, size, ".safetensors");
    if (!path)
        return 0;
    md_lora_file *f = NULL;
    md_error err = {0};
    if (md_lora_file_open(path, &f, &err) != MD_OK)
        return 0;
    md_weights *maps[2] = {map_of("unet", unet_names, unet_shapes, 4),
                           map_of("text_encoder", te_names, te_shapes, 1)};
    md_lora_binding b = {0};
    if (maps[0] && maps[1] && md_lora_bind_maps(&b, maps, 2, NULL, f, 0.5f, 1, &err) == MD_OK) {
        float out[4 * 2 * 3 * 3];
        for (int i = 0; i < b.count; i++)
            if (md_lora_fused_weight(&b, b.targets[i].w, NULL, out, &err) != MD_OK)
                break;
    }
    md_lora_binding_clear(&b);
    md_weights_free(maps[0]);
    md_weights_free(maps[1]);
    md_lora_file_free(f);
    return 0;
}
