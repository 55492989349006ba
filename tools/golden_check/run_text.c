/* tokenizer.ids, tokenizer_2.ids and the text-encoder records. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gc.h"

static void tokenize_list(gc_case *c, const md_tokenizer *tok, const char *record,
                          const char *prompts_key, const char *pad_key)
{
    const cJSON *prompts = cJSON_GetObjectItem(c->golden_json, prompts_key);
    const cJSON *pad = cJSON_GetObjectItem(c->golden_json, pad_key);
    if (!tok || !cJSON_IsArray(prompts) || !cJSON_IsNumber(pad))
        return;
    int n = cJSON_GetArraySize(prompts);
    float *ids = malloc(sizeof(float) * (size_t)n * MD_CLIP_CONTEXT);
    if (!ids)
        return;
    for (int i = 0; i < n; i++) {
        int32_t row[MD_CLIP_CONTEXT];
        md_error err = {0};
        const cJSON *p = cJSON_GetArrayItem(prompts, i);
        if (md_tokenizer_encode_77(tok, p->valuestring, (int32_t)pad->valueint, row, &err) < 0) {
            fprintf(stderr, "golden-check: tokenizing prompt %d: %s\n", i, err.msg);
            free(ids);
            return;
        }
        for (int k = 0; k < MD_CLIP_CONTEXT; k++)
            ids[(size_t)i * MD_CLIP_CONTEXT + k] = (float)row[k];
    }
    gc_put(c, record, ids, (size_t)n * MD_CLIP_CONTEXT, 1);
    free(ids);
}

void gc_run_tokenizer(gc_case *c)
{
    if (!gc_has(c, "tokenizer.ids") && !gc_has(c, "tokenizer_2.ids"))
        return;
    md_model *m = gc_model(c);
    if (!m)
        return;
    tokenize_list(c, m->tokenizer, "tokenizer.ids", "prompts", "pad_token_id");
    tokenize_list(c, m->tokenizer2, "tokenizer_2.ids", "prompts_2", "pad_token_id_2");
}

static void run_encoder(gc_case *c, md_text_encoder *te, const char *prefix)
{
    char name[128];
    snprintf(name, sizeof name, "%s.ids", prefix);
    size_t n = 0;
    float *fids = gc_gold_f32(c, name, &n);
    if (!fids || !te)
        goto done;
    const md_clip_config *cfg = md_text_encoder_config(te);
    int batch = (int)(n / MD_CLIP_CONTEXT);
    size_t hs = (size_t)n * cfg->hidden_size;
    int32_t *ids = malloc(sizeof(int32_t) * n);
    float *last = malloc(sizeof(float) * hs), *pen = malloc(sizeof(float) * hs);
    float *pen_ln = malloc(sizeof(float) * hs);
    float *proj = malloc(sizeof(float) * (size_t)batch * (cfg->projection_dim + 1));
    float *eos = malloc(sizeof(float) * (size_t)batch);
    int32_t *pool_at = malloc(sizeof(int32_t) * (size_t)batch);
    if (!ids || !last || !pen || !pen_ln || !proj || !eos || !pool_at)
        goto free_all;
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)fids[i];
    md_error err = {0};
    md_text_outputs o1 = {.last_hidden = last, .skipped_hidden = pen, .skip = 1,
                          .pooled_projected = cfg->projection_dim ? proj : NULL,
                          .pool_index = pool_at};
    md_text_outputs o2 = {.skipped_hidden = pen_ln, .skip = 1, .skipped_final_ln = 1};
    if (md_text_encoder_forward(te, c->be, ids, batch, &o1, &err) != MD_OK ||
        md_text_encoder_forward(te, c->be, ids, batch, &o2, &err) != MD_OK) {
        fprintf(stderr, "golden-check: %s: %s\n", prefix, err.msg);
        goto free_all;
    }
    snprintf(name, sizeof name, "%s.last_hidden_state", prefix);
    gc_put(c, name, last, hs, 0);
    snprintf(name, sizeof name, "%s.penultimate_hidden_state", prefix);
    gc_put(c, name, pen, hs, 0);
    snprintf(name, sizeof name, "%s.penultimate_hidden_state_final_ln", prefix);
    gc_put(c, name, pen_ln, hs, 0);
    if (cfg->projection_dim) {
        snprintf(name, sizeof name, "%s.text_embeds", prefix);
        gc_put(c, name, proj, (size_t)batch * cfg->projection_dim, 0);
    }
    for (int b = 0; b < batch; b++)
        eos[b] = (float)pool_at[b];
    snprintf(name, sizeof name, "%s.eos_index", prefix);
    gc_put(c, name, eos, (size_t)batch, 1);
free_all:
    free(ids);
    free(last);
    free(pen);
    free(pen_ln);
    free(proj);
    free(eos);
    free(pool_at);
done:
    free(fids);
}

void gc_run_text_encoder(gc_case *c)
{
    if (!gc_has(c, "text_encoder.ids") && !gc_has(c, "text_encoder_2.ids"))
        return;
    md_model *m = gc_model(c);
    if (!m)
        return;
    run_encoder(c, m->te, "text_encoder");
    run_encoder(c, m->te2, "text_encoder_2");
}
