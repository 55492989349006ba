/* Prompt -> U-Net conditioning, per model family:
 *  SD1/SD2: last hidden state of the text encoder (clip skip k: the state k
 *           layers earlier, through the final LayerNorm, as diffusers does);
 *  SDXL:    penultimate states of both encoders side by side (clip skip k:
 *           k layers earlier still, no final LayerNorm) and the pooled,
 *           projected output of the second. */
#include "pipeline.h"

#include <stdlib.h>
#include <string.h>

static md_status encode_one(const md_text_encoder *te, md_backend *be, const md_tokenizer *tok,
                            int32_t pad, const char *text, md_text_outputs *out, md_error *err)
{
    int32_t ids[MD_CLIP_CONTEXT];
    int64_t n = md_tokenizer_encode_77(tok, text, pad, ids, err);
    if (n < 0)
        return (md_status)n;
    return md_text_encoder_forward(te, be, ids, 1, out, err);
}

md_status md_encode_prompt(const md_model *m, md_backend *be, const char *text, int clip_skip,
                           float *embeds, float *pooled, md_error *err)
{
    if (clip_skip < 0 || clip_skip >= m->te_cfg.num_layers)
        return md_fail(err, MD_ERR_INVALID, "clip skip %d is out of range (0..%d for this model)",
                       clip_skip, m->te_cfg.num_layers - 1);
    if (m->family != MD_FAMILY_SDXL) {
        md_text_outputs out = {0};
        if (clip_skip == 0) {
            out.last_hidden = embeds;
        } else {
            out.skipped_hidden = embeds;
            out.skip = clip_skip;
            out.skipped_final_ln = 1;
        }
        return encode_one(m->te, be, m->tokenizer, m->pad_id, text, &out, err);
    }

    const int d1 = m->te_cfg.hidden_size, d2 = m->te2_cfg.hidden_size;
    if (clip_skip + 1 >= m->te2_cfg.num_layers)
        return md_fail(err, MD_ERR_INVALID, "clip skip %d is out of range for this model", clip_skip);
    float *h1 = malloc(sizeof(float) * MD_CLIP_CONTEXT * (size_t)(d1 + d2));
    if (!h1)
        return md_fail(err, MD_ERR_NOMEM, "out of memory encoding the prompt");
    float *h2 = h1 + (size_t)MD_CLIP_CONTEXT * d1;
    md_text_outputs o1 = {.skipped_hidden = h1, .skip = 1 + clip_skip};
    md_text_outputs o2 = {.skipped_hidden = h2, .skip = 1 + clip_skip, .pooled_projected = pooled};
    md_status st = encode_one(m->te, be, m->tokenizer, m->pad_id, text, &o1, err);
    if (st == MD_OK)
        st = encode_one(m->te2, be, m->tokenizer2, m->pad_id2, text, &o2, err);
    if (st == MD_OK) {
        for (int t = 0; t < MD_CLIP_CONTEXT; t++) {
            memcpy(embeds + (size_t)t * (d1 + d2), h1 + (size_t)t * d1, sizeof(float) * d1);
            memcpy(embeds + (size_t)t * (d1 + d2) + d1, h2 + (size_t)t * d2, sizeof(float) * d2);
        }
    }
    free(h1);
    return st;
}
