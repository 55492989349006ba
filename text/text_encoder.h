/* CLIP text transformer (HF CLIPTextModel / CLIPTextModelWithProjection
 * naming: text_model.*, text_projection.weight). */
#ifndef MD_TEXT_ENCODER_H
#define MD_TEXT_ENCODER_H

#include "../config/config.h"
#include "../io/weights.h"

typedef struct md_text_encoder md_text_encoder;

/* Validates every weight's shape against cfg. text_projection.weight is
 * required when cfg->projection_dim > 0; when it is 0 a present projection
 * is used anyway and md_text_encoder_config() reports its size. */
md_status md_text_encoder_load(md_text_encoder **out, const md_clip_config *cfg, md_weights *w,
                               md_backend *be, md_error *err);
void md_text_encoder_free(md_text_encoder *te);
const md_clip_config *md_text_encoder_config(const md_text_encoder *te);

/* What to compute for `batch` rows of 77 ids. Every output is optional
 * (NULL = not wanted), host memory, [batch, 77, hidden] unless noted. */
typedef struct md_text_outputs {
    float *last_hidden;        /* after final LayerNorm */
    /* hidden state after the first (num_layers - skip) layers: skip = 1 is
     * HF hidden_states[-2] ("penultimate"); optionally with final LayerNorm
     * (the SD1 clip-skip convention) */
    float *skipped_hidden;
    int skip;
    int skipped_final_ln;
    /* [batch, projection_dim]: final-LN state at the first EOS position times
     * text_projection^T (needs a projection; eos_first = first position whose
     * id is cfg->eos_id) */
    float *pooled_projected;
    /* [batch, hidden]: final-LN state at the pooling position, no projection */
    float *pooled;
    /* [batch]: the position pooled from (first EOS), -1 when a row has none */
    int32_t *pool_index;
} md_text_outputs;

/* The encoder is only read (it keeps nothing mutable after loading);
 * activations come from be's arena, reset on return. Threads may encode at
 * once with one encoder, each with its own backend, which must be able to
 * use the weights (md_backend_shares_weights; else MD_ERR_UNSUPPORTED). */
md_status md_text_encoder_forward(const md_text_encoder *te, md_backend *be, const int32_t *ids,
                                  int batch, md_text_outputs *out, md_error *err);

#endif
