/* CLIP text transformer: pre-LayerNorm blocks with causal self-attention,
 * every step through the backend's ops. */
#include "text_encoder.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../config/config_validate.h"
#include "../nn/nn.h"
#include "tokenizer.h"

typedef struct te_layer {
    md_nn_norm ln1, ln2;
    md_nn_linear q, k, v, o, fc1, fc2;
} te_layer;

struct md_text_encoder {
    md_clip_config cfg;
    md_backend *be;
    md_tensor *tok_emb, *pos_emb;
    md_nn_norm final_ln;
    md_tensor *proj; /* [projection_dim, hidden] or NULL */
    te_layer *layers;
};

static md_status load_layer(md_text_encoder *te, md_weights *w, int i, md_error *err)
{
    const int d = te->cfg.hidden_size, f = te->cfg.intermediate_size;
    md_backend *be = te->be;
    te_layer *l = &te->layers[i];
    char p[128];
#define LAYER_NAME(part)                                                                           \
    MD_TRY(md_nn_name(p, sizeof p, err, "text_model.encoder.layers.%d." part, i))
    LAYER_NAME("layer_norm1");
    MD_TRY(md_nn_norm_load(&l->ln1, w, be, err, p, d));
    LAYER_NAME("self_attn.q_proj");
    MD_TRY(md_nn_linear_load(&l->q, w, be, err, p, d, d, 1));
    LAYER_NAME("self_attn.k_proj");
    MD_TRY(md_nn_linear_load(&l->k, w, be, err, p, d, d, 1));
    LAYER_NAME("self_attn.v_proj");
    MD_TRY(md_nn_linear_load(&l->v, w, be, err, p, d, d, 1));
    LAYER_NAME("self_attn.out_proj");
    MD_TRY(md_nn_linear_load(&l->o, w, be, err, p, d, d, 1));
    LAYER_NAME("layer_norm2");
    MD_TRY(md_nn_norm_load(&l->ln2, w, be, err, p, d));
    LAYER_NAME("mlp.fc1");
    MD_TRY(md_nn_linear_load(&l->fc1, w, be, err, p, d, f, 1));
    LAYER_NAME("mlp.fc2");
    MD_TRY(md_nn_linear_load(&l->fc2, w, be, err, p, f, d, 1));
#undef LAYER_NAME
    return MD_OK;
}

/* The projection is optional: configs of plain CLIPTextModel may name a
 * projection_dim the weights do not have, so an absent weight with
 * projection_dim from such a config is only an error when the config says
 * the model has one (projection_dim > 0 from CLIPTextModelWithProjection),
 * and a present one with projection_dim 0 sets it. */
static md_status load_projection(md_text_encoder *te, md_weights *w, md_error *err)
{
    const char *name = "text_projection.weight";
    md_tensor *t = md_weights_find(w, name);
    if (!t && te->cfg.projection_dim == 0)
        return MD_OK;
    int64_t rows = te->cfg.projection_dim;
    if (rows == 0)
        rows = t->ndim == 2 ? t->shape[0] : -1;
    md_status st = md_nn_weight(&te->proj, w, te->be, err, 2,
                                (int64_t[]){rows, te->cfg.hidden_size}, "%s", name);
    if (st == MD_OK)
        te->cfg.projection_dim = (int)rows;
    return st;
}

md_status md_text_encoder_load(md_text_encoder **out, const md_clip_config *cfg, md_weights *w,
                               md_backend *be, md_error *err)
{
    *out = NULL;
    if (!cfg || !w || !be)
        return md_fail(err, MD_ERR_INVALID, "text encoder: invalid argument");
    const char *label = md_weights_label(w);
    md_status st = md_clip_config_validate(cfg, label, err);
    if (st != MD_OK)
        return st;
    if (cfg->max_positions < MD_CLIP_CONTEXT)
        return md_fail(err, MD_ERR_INVALID, "%s: max_position_embeddings %d is below %d", label,
                       cfg->max_positions, MD_CLIP_CONTEXT);
    if (cfg->act != MD_ACT_QUICK_GELU && cfg->act != MD_ACT_GELU && cfg->act != MD_ACT_GELU_TANH)
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: unsupported activation %d", label,
                       (int)cfg->act);
    md_text_encoder *te = calloc(1, sizeof *te);
    if (te)
        te->layers = calloc((size_t)cfg->num_layers, sizeof *te->layers);
    if (!te || !te->layers) {
        md_text_encoder_free(te);
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", label);
    }
    te->cfg = *cfg;
    te->be = be;
    const int64_t d = cfg->hidden_size;
    st = md_nn_weight(&te->tok_emb, w, be, err, 2, (int64_t[]){cfg->vocab_size, d},
                      "text_model.embeddings.token_embedding.weight");
    if (st == MD_OK)
        st = md_nn_weight(&te->pos_emb, w, be, err, 2, (int64_t[]){cfg->max_positions, d},
                          "text_model.embeddings.position_embedding.weight");
    for (int i = 0; i < cfg->num_layers && st == MD_OK; i++)
        st = load_layer(te, w, i, err);
    if (st == MD_OK)
        st = md_nn_norm_load(&te->final_ln, w, be, err, "text_model.final_layer_norm", d);
    if (st == MD_OK)
        st = load_projection(te, w, err);
    if (st != MD_OK) {
        md_text_encoder_free(te);
        return st;
    }
    *out = te;
    return MD_OK;
}

void md_text_encoder_free(md_text_encoder *te)
{
    if (!te)
        return;
    free(te->layers);
    free(te);
}

const md_clip_config *md_text_encoder_config(const md_text_encoder *te)
{
    return &te->cfg;
}

typedef struct te_scratch {
    md_tensor x, h, q, k, v, a, f;
} te_scratch;

static void run_layer(const md_text_encoder *te, md_backend *be, const te_layer *l, te_scratch *s)
{
    const md_clip_config *c = &te->cfg;
    const float scale = 1.0f / sqrtf((float)(c->hidden_size / c->num_heads));
    be->layer_norm(be, &s->h, &s->x, l->ln1.g, l->ln1.b, c->layer_norm_eps);
    md_nn_linear_forward(be, &s->q, &s->h, &l->q);
    md_nn_linear_forward(be, &s->k, &s->h, &l->k);
    md_nn_linear_forward(be, &s->v, &s->h, &l->v);
    be->attention(be, &s->a, &s->q, &s->k, &s->v, c->num_heads, scale, 1);
    md_nn_linear_forward(be, &s->h, &s->a, &l->o);
    be->add(be, &s->x, &s->x, &s->h);
    be->layer_norm(be, &s->h, &s->x, l->ln2.g, l->ln2.b, c->layer_norm_eps);
    md_nn_linear_forward(be, &s->f, &s->h, &l->fc1);
    be->activation(be, &s->f, &s->f, c->act);
    md_nn_linear_forward(be, &s->h, &s->f, &l->fc2);
    be->add(be, &s->x, &s->x, &s->h);
}

/* Checks the request and finds each row's pooling position (first EOS). */
static md_status check_request(const md_text_encoder *te, const int32_t *ids, int batch,
                               const md_text_outputs *out, int32_t *pool_rows, md_error *err)
{
    const md_clip_config *c = &te->cfg;
    if (!ids || !out || batch < 1)
        return md_fail(err, MD_ERR_INVALID, "text encoder: invalid argument (batch %d)", batch);
    if (out->skipped_hidden && (out->skip < 0 || out->skip > c->num_layers))
        return md_fail(err, MD_ERR_INVALID, "text encoder: skip %d is outside 0..%d layers",
                       out->skip, c->num_layers);
    if (out->pooled_projected && !te->proj)
        return md_fail(err, MD_ERR_INVALID,
                       "text encoder: a projected pooled output needs text_projection.weight, "
                       "which this model does not have");
    for (int b = 0; b < batch; b++) {
        const int32_t *row = ids + (size_t)b * MD_CLIP_CONTEXT;
        int eos = -1;
        for (int t = 0; t < MD_CLIP_CONTEXT; t++) {
            if (row[t] < 0 || row[t] >= c->vocab_size)
                return md_fail(err, MD_ERR_INVALID,
                               "text encoder: token id %d (row %d, position %d) is outside the "
                               "vocabulary of %d",
                               (int)row[t], b, t, c->vocab_size);
            if (eos < 0 && row[t] == c->eos_id)
                eos = t;
        }
        if (eos < 0 && (out->pooled || out->pooled_projected))
            return md_fail(err, MD_ERR_INVALID,
                           "text encoder: row %d holds no end-of-text id %d to pool at", b,
                           c->eos_id);
        if (pool_rows)
            pool_rows[b] = b * MD_CLIP_CONTEXT + eos;
        if (out->pool_index)
            out->pool_index[b] = eos;
    }
    return MD_OK;
}

/* Writes the state after `done` layers when that is the requested skip. */
static void emit_skipped(const md_text_encoder *te, md_backend *be, te_scratch *s, int done,
                         const md_text_outputs *out)
{
    if (!out->skipped_hidden || done != te->cfg.num_layers - out->skip)
        return;
    if (out->skipped_final_ln) {
        be->layer_norm(be, &s->h, &s->x, te->final_ln.g, te->final_ln.b, te->cfg.layer_norm_eps);
        be->download(be, &s->h, out->skipped_hidden);
    } else {
        be->download(be, &s->x, out->skipped_hidden);
    }
}

md_status md_text_encoder_forward(const md_text_encoder *te, md_backend *be, const int32_t *ids,
                                  int batch, md_text_outputs *out, md_error *err)
{
    if (!te || !be)
        return md_fail(err, MD_ERR_INVALID, "text encoder: invalid argument");
    if (!md_backend_shares_weights(te->be, be))
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "text encoder: weights prepared on backend %s cannot be used by another %s "
                       "backend",
                       te->be->name, be->name);
    const int want_pool = out && (out->pooled || out->pooled_projected);
    int32_t *pool_rows = want_pool && batch > 0 ? malloc((size_t)batch * sizeof *pool_rows) : NULL;
    if (want_pool && batch > 0 && !pool_rows)
        return md_fail(err, MD_ERR_NOMEM, "text encoder: out of memory");
    md_status st = check_request(te, ids, batch, out, pool_rows, err);
    if (st != MD_OK) {
        free(pool_rows);
        return st;
    }

    const md_clip_config *c = &te->cfg;
    const int64_t rows = (int64_t)batch * MD_CLIP_CONTEXT, d = c->hidden_size;
    const int64_t act_shape[3] = {batch, MD_CLIP_CONTEXT, d};
    const int64_t ff_shape[3] = {batch, MD_CLIP_CONTEXT, c->intermediate_size};
    size_t mark = be->arena_mark(be);
    te_scratch s;
    s.x = be->new_tensor(be, 3, act_shape);
    s.h = be->new_tensor(be, 3, act_shape);
    s.q = be->new_tensor(be, 3, act_shape);
    s.k = be->new_tensor(be, 3, act_shape);
    s.v = be->new_tensor(be, 3, act_shape);
    s.a = be->new_tensor(be, 3, act_shape);
    s.f = be->new_tensor(be, 3, ff_shape);
    md_tensor pooled = {0}, projected = {0};
    if (want_pool)
        pooled = be->new_tensor(be, 2, (int64_t[]){batch, d});
    if (out->pooled_projected)
        projected = be->new_tensor(be, 2, (int64_t[]){batch, c->projection_dim});
    if (!s.x.data || !s.h.data || !s.q.data || !s.k.data || !s.v.data || !s.a.data || !s.f.data ||
        (want_pool && !pooled.data) || (out->pooled_projected && !projected.data)) {
        be->arena_reset(be, mark);
        free(pool_rows);
        return md_fail(err, MD_ERR_NOMEM, "text encoder: out of backend memory for batch %d",
                       batch);
    }

    md_tensor x_rows = md_nn_view(&s.x, 2, (int64_t[]){rows, d});
    be->embedding(be, &x_rows, te->tok_emb, ids, rows);
    be->add_position(be, &s.x, te->pos_emb);
    for (int i = 0; i < c->num_layers; i++) {
        emit_skipped(te, be, &s, i, out);
        run_layer(te, be, &te->layers[i], &s);
    }
    emit_skipped(te, be, &s, c->num_layers, out);

    if (out->last_hidden || want_pool) {
        be->layer_norm(be, &s.h, &s.x, te->final_ln.g, te->final_ln.b, c->layer_norm_eps);
        if (out->last_hidden)
            be->download(be, &s.h, out->last_hidden);
    }
    if (want_pool) {
        md_tensor h_rows = md_nn_view(&s.h, 2, (int64_t[]){rows, d});
        be->gather_rows(be, &pooled, &h_rows, pool_rows, batch);
        if (out->pooled)
            be->download(be, &pooled, out->pooled);
        if (out->pooled_projected) {
            be->linear(be, &projected, &pooled, te->proj, NULL);
            be->download(be, &projected, out->pooled_projected);
        }
    }
    be->arena_reset(be, mark);
    free(pool_rows);
    return MD_OK;
}
