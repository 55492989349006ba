/* Conditioning with AUTOMATIC1111's prompt syntax: emphasis weights and
 * prompts of any length up to MD_PROMPT_MAX_CHUNKS chunks of 75 tokens, each
 * chunk encoded on its own and the results laid end to end (context length
 * 77 x chunks). Per chunk, every token's embedding is multiplied by its
 * weight and the chunk is rescaled so that its mean stays what it was
 * unweighted. The per-family hidden-state choices are md_encode_prompt's. */
#include <stdlib.h>
#include <string.h>

#include "../text/prompt_weights.h"
#include "pipeline.h"

static int needs_two_encoders(const md_model *m)
{
    return m->family == MD_FAMILY_SDXL;
}

md_status md_prompt_chunk_count(const md_model *m, const char *text, int *chunks, md_error *err)
{
    md_prompt_chunks *c = malloc(sizeof *c);
    if (!c)
        return md_fail(err, MD_ERR_NOMEM, "out of memory tokenizing the prompt");
    md_status st = md_prompt_tokenize(m->tokenizer, text, m->pad_id, c, err);
    if (st == MD_OK)
        *chunks = c->count;
    if (st == MD_OK && needs_two_encoders(m)) {
        st = md_prompt_tokenize(m->tokenizer2, text, m->pad_id2, c, err);
        if (st == MD_OK && c->count > *chunks)
            *chunks = c->count;
    }
    free(c);
    return st;
}

/* out [77, dim] = one encoder's conditioning rows for one chunk of ids. */
static md_status encode_chunk(const md_text_encoder *te, md_backend *be, const int32_t *ids,
                              int skip, int final_ln, float *out, float *pooled, md_error *err)
{
    md_text_outputs o = {.pooled_projected = pooled};
    if (skip == 0) {
        o.last_hidden = out;
    } else {
        o.skipped_hidden = out;
        o.skip = skip;
        o.skipped_final_ln = final_ln;
    }
    return md_text_encoder_forward(te, be, ids, 1, &o, err);
}

/* A1111: z *= w per token, then z *= mean(z before) / mean(z after). */
static void apply_weights(float *z, const float *w, int dim)
{
    double before = 0, after = 0;
    for (int t = 0; t < MD_CLIP_CONTEXT; t++)
        for (int k = 0; k < dim; k++) {
            float v = z[(size_t)t * dim + k];
            before += v;
            z[(size_t)t * dim + k] = v * w[t];
            after += v * w[t];
        }
    if (after == 0)
        return; /* all weights zero: nothing sensible to rescale */
    float r = (float)(before / after);
    for (size_t i = 0; i < (size_t)MD_CLIP_CONTEXT * dim; i++)
        z[i] *= r;
}

/* Lays out chunk `i` of `c`, or an empty prompt's chunk past its end. */
static const int32_t *chunk_ids(const md_prompt_chunks *c, const md_prompt_chunks *empty, int i,
                                const float **w)
{
    const md_prompt_chunks *src = i < c->count ? c : empty;
    int k = i < c->count ? i : 0;
    *w = src->weights[k];
    return src->ids[k];
}

md_status md_encode_prompt_weighted(const md_model *m, md_backend *be, const char *text,
                                    int clip_skip, int chunks, float *embeds, float *pooled,
                                    md_error *err)
{
    const int sdxl = needs_two_encoders(m);
    const int d1 = m->te_cfg.hidden_size, d2 = sdxl ? m->te2_cfg.hidden_size : 0, dim = d1 + d2;
    if (clip_skip < 0 || clip_skip >= m->te_cfg.num_layers ||
        (sdxl && clip_skip + 1 >= m->te2_cfg.num_layers))
        return md_fail(err, MD_ERR_INVALID, "clip skip %d is out of range (0..%d for this model)",
                       clip_skip, m->te_cfg.num_layers - (sdxl ? 2 : 1));
    if (chunks < 1 || chunks > MD_PROMPT_MAX_CHUNKS)
        return md_fail(err, MD_ERR_INVALID, "%d prompt chunks asked for (1..%d)", chunks,
                       MD_PROMPT_MAX_CHUNKS);
    /* [0], [1]: the prompt per encoder; [2], [3]: the empty prompt that pads */
    md_prompt_chunks *c = malloc(4 * sizeof *c);
    float *h = malloc(sizeof(float) * MD_CLIP_CONTEXT * (size_t)dim);
    md_status st =
        (c && h) ? MD_OK : md_fail(err, MD_ERR_NOMEM, "out of memory encoding the prompt");
    if (st == MD_OK)
        st = md_prompt_tokenize(m->tokenizer, text, m->pad_id, &c[0], err);
    if (st == MD_OK)
        st = md_prompt_tokenize(m->tokenizer, "", m->pad_id, &c[2], err);
    if (st == MD_OK && sdxl)
        st = md_prompt_tokenize(m->tokenizer2, text, m->pad_id2, &c[1], err);
    if (st == MD_OK && sdxl)
        st = md_prompt_tokenize(m->tokenizer2, "", m->pad_id2, &c[3], err);
    if (st == MD_OK && (c[0].count > chunks || (sdxl && c[1].count > chunks)))
        st = md_fail(err, MD_ERR_INVALID, "the prompt needs more than %d chunks", chunks);
    for (int i = 0; i < chunks && st == MD_OK; i++) {
        const float *w1, *w2 = NULL;
        const int32_t *ids1 = chunk_ids(&c[0], &c[2], i, &w1);
        /* SD1/SD2 clip skip: diffusers' earlier layer through the final LN;
         * SDXL: penultimate layer (skip 1) and clip_skip more, no final LN. */
        if (!sdxl) {
            st = encode_chunk(m->te, be, ids1, clip_skip, 1, h, NULL, err);
        } else {
            const int32_t *ids2 = chunk_ids(&c[1], &c[3], i, &w2);
            float *h2 = h + (size_t)MD_CLIP_CONTEXT * d1;
            st = encode_chunk(m->te, be, ids1, 1 + clip_skip, 0, h, NULL, err);
            if (st == MD_OK)
                st = encode_chunk(m->te2, be, ids2, 1 + clip_skip, 0, h2, i == 0 ? pooled : NULL,
                                  err);
        }
        if (st != MD_OK)
            break;
        float *z = embeds + (size_t)i * MD_CLIP_CONTEXT * dim;
        if (!sdxl) {
            memcpy(z, h, sizeof(float) * MD_CLIP_CONTEXT * (size_t)dim);
        } else {
            for (int t = 0; t < MD_CLIP_CONTEXT; t++) {
                memcpy(z + (size_t)t * dim, h + (size_t)t * d1, sizeof(float) * d1);
                memcpy(z + (size_t)t * dim + d1, h + (size_t)MD_CLIP_CONTEXT * d1 + (size_t)t * d2,
                       sizeof(float) * d2);
            }
        }
        /* The two tokenizers agree on tokens; te1's weights stand for both. */
        if (i < c[0].count && c[0].weighted)
            apply_weights(z, w1, dim);
    }
    free(c);
    free(h);
    return st;
}
