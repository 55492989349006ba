/* Binding LoRA entries to the weights of a loaded model, and the fused
 * weight W' = W + scale * (alpha / rank) * up @ down (a conv's down
 * [r, in, kh, kw] is flattened to [r, in*kh*kw], its up [out, r, 1, 1] to
 * [out, r], and the product has W's shape). The model is never changed:
 * a binding only names which of its weight tensors a LoRA modifies and how.
 *
 * Which weights a module path P modifies, in the weight map of its part
 * ("unet", "text_encoder", "text_encoder_2"):
 *  - `P.weight` when the model has it (a dense layer);
 *  - on an MoE U-Net, every expert of the layer P became: a linear MoE
 *    layer P has `P.experts.{e}.weight`; an MoE feed-forward `X.ff` has
 *    `X.ff.experts.{e}.net.0.proj.weight` and `.net.2.weight`, which a
 *    LoRA on the dense `X.ff.net.0.proj` / `X.ff.net.2` modifies. In both,
 *    dropping ".experts.{e}" from the expert's name gives P, which is the
 *    rule used here: every expert gets the same low-rank update.
 * Kohya paths ('_' for '.') are matched against the same names with '.'
 * written '_'. A kohya U-Net path that matches none of them is then
 * matched against the original LDM / SGM names of the same weights
 * (input_blocks / middle_block / output_blocks, as kohya writes SDXL
 * LoRAs; models/ldm_names.h), given the U-Net's config. */
#ifndef MD_LORA_BIND_H
#define MD_LORA_BIND_H

#include "../io/weights.h"
#include "../models/model.h"
#include "lora_file.h"

typedef struct md_lora_target {
    md_tensor *w;                 /* the model's weight tensor (by identity) */
    char name[MD_LORA_NAME_MAX];  /* its name in the weight map */
    const md_lora_entry *entry;   /* down / up in the LoRA file */
    float factor;                 /* scale * alpha / rank */
} md_lora_target;

typedef struct md_lora_binding {
    md_lora_target *targets;
    int count, cap;
} md_lora_binding;

/* Adds the targets of every entry of `f` at `scale`; a binding may hold
 * several files, whose updates then add up. The maps are found by label
 * (md_weights_label); unet_cfg (NULL: none) enables the LDM names. An
 * entry that matches no weight is an error listing
 * the keys, unless allow_unmatched; an entry whose shapes do not fit its
 * weight, or for a part the model lacks (text_encoder_2 on SD 1.x), is an
 * error naming the file and key. On error the binding is unchanged. */
md_status md_lora_bind_maps(md_lora_binding *b, md_weights *const *maps, int nmaps,
                            const md_unet_config *unet_cfg, const md_lora_file *f, float scale,
                            int allow_unmatched, md_error *err);
md_status md_lora_bind(md_lora_binding *b, const md_model *m, const md_lora_file *f, float scale,
                       int allow_unmatched, md_error *err);
void md_lora_binding_clear(md_lora_binding *b);

/* out (numel of w floats) = w widened to f32 plus every bound update of w,
 * from host values `w_host` (w's stored data; NULL: w->data, which must
 * then still be host memory). Sums run in double. */
md_status md_lora_fused_weight(const md_lora_binding *b, const md_tensor *w, const void *w_host,
                               float *out, md_error *err);

/* The target weight of a map name, or NULL when the binding does not
 * modify it. */
md_tensor *md_lora_bound_weight(const md_lora_binding *b, const char *name);

#endif
