/* A backend that computes as if LoRAs were fused into the model, without
 * changing the model: it hands every entry to an inner backend, except
 * linear and conv2d on a weight the binding modifies.
 *  - MD_LORA_FUSED: those calls use a fused copy of the weight
 *    (md_lora_fused_weight, f32, made when the wrapper is created and
 *    put on the inner backend: weights_load where it has it, else
 *    prepare_weight). Needs the inner backend's weights in
 *    host memory (CPU), since the fused copy is computed from them.
 *  - MD_LORA_SIDE: the call runs on the model's weight, then adds the
 *    low-rank product factor * up(down(x)) (down and up put on the inner
 *    backend as f32 copies, like the fused ones). Works on any backend.
 * Both give W' x up to rounding. The wrapper owns its copies and frees them
 * when destroyed; it does not own the inner backend or the binding, which
 * must outlive it. MoE layers are routed on the host through it (no
 * moe_routed entry) so that each expert's linear call sees the LoRA. */
#ifndef MD_LORA_BACKEND_H
#define MD_LORA_BACKEND_H

#include "../runtime/backend.h"
#include "lora_bind.h"

typedef enum md_lora_apply {
    MD_LORA_FUSED = 0,
    MD_LORA_SIDE = 1
} md_lora_apply;

md_status md_lora_backend_new(md_backend *inner, const md_lora_binding *b, md_lora_apply how,
                              md_backend **out, md_error *err);

#endif
