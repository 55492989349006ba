/* UNet2DConditionModel: time embedding, conv_in, down blocks, mid block,
 * up blocks with skip connections, GroupNorm+SiLU, conv_out. */
#include "unet.h"

#include <stdlib.h>
#include <string.h>

#include "unet_internal.h"

/* Read-only after loading: per-call state is in md_unet_state. */
struct md_unet {
    md_unet_config cfg;
    md_backend *be; /* the backend the weights were prepared on */
    md_time_embed temb;
    md_nn_conv conv_in, conv_out;
    md_nn_norm norm_out;
    md_unet_block down[MD_MAX_LEVELS], up[MD_MAX_LEVELS], mid;
    int has_mid;
    int skip_cap;
    int nmoe; /* MoE layers, numbered by number_moe() */
    md_moe_layer **moe_list; /* by index (moe_cap entries allocated) */
    int moe_cap;
    md_expert_cache *experts; /* NULL without MoE layers */
    int nkv;                  /* cross-attentions whose K/V a run state caches */
    int *kv_dim;              /* their widths, by kv_index */
};

static md_status check_config(const md_unet_config *c, const char *label, md_error *err)
{
    if (c->levels < 1 || c->levels > MD_MAX_LEVELS)
        return md_fail(err, MD_ERR_INVALID, "%s: %d levels (1..%d supported)", label, c->levels,
                       MD_MAX_LEVELS);
    if (c->in_channels < 1 || c->out_channels < 1 || c->layers_per_block < 1 ||
        c->norm_groups < 1 || c->cross_attention_dim < 1)
        return md_fail(err, MD_ERR_INVALID,
                       "%s: bad config (in %d, out %d, layers_per_block %d, groups %d, "
                       "cross_attention_dim %d)",
                       label, c->in_channels, c->out_channels, c->layers_per_block, c->norm_groups,
                       c->cross_attention_dim);
    for (int l = 0; l < c->levels; l++) {
        if (c->block_out_channels[l] < 1 || c->block_out_channels[l] % c->norm_groups != 0)
            return md_fail(err, MD_ERR_INVALID,
                           "%s: block_out_channels[%d] = %d is not a multiple of %d groups", label,
                           l, c->block_out_channels[l], c->norm_groups);
        int attn = c->down_has_attn[l] || c->up_has_attn[c->levels - 1 - l] ||
                   (l == c->levels - 1 && c->mid_has_attn);
        if (attn && (c->heads[l] < 1 || c->transformer_layers[l] < 1))
            return md_fail(err, MD_ERR_INVALID, "%s: level %d: %d heads, %d transformer layers",
                           label, l, c->heads[l], c->transformer_layers[l]);
    }
    if (c->conv_in_kernel % 2 == 0 || c->conv_out_kernel % 2 == 0 || c->conv_in_kernel < 1 ||
        c->conv_out_kernel < 1)
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: conv_in/conv_out kernels %d/%d must be odd",
                       label, c->conv_in_kernel, c->conv_out_kernel);
    return MD_OK;
}

static md_status unet_load(md_unet *u, md_weights *w, md_error *err)
{
    const md_unet_config *c = &u->cfg;
    md_backend *be = u->be;
    const char *label = md_weights_label(w);
    MD_TRY(check_config(c, label, err));
    MD_TRY(md_time_embed_load(&u->temb, w, be, err, c));
    MD_TRY(md_nn_conv_load(&u->conv_in, w, be, err, "conv_in", c->in_channels,
                           c->block_out_channels[0], c->conv_in_kernel));

    /* Channel counts of the skip stack, as the down path will push it. */
    u->skip_cap = 1 + c->levels * (c->layers_per_block + 1);
    int *skip_ch = calloc((size_t)u->skip_cap, sizeof(int));
    if (!skip_ch)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", label);
    int nskip = 0, ch = c->block_out_channels[0];
    skip_ch[nskip++] = ch;
    md_status s = MD_OK;
    for (int l = 0; l < c->levels && s == MD_OK; l++) {
        s = md_down_block_load(&u->down[l], w, be, err, c, l, ch);
        ch = c->block_out_channels[l];
        for (int j = 0; j < u->down[l].nres + u->down[l].has_resample; j++)
            skip_ch[nskip++] = ch;
    }
    if (s == MD_OK) {
        if (c->mid_has_attn) {
            u->has_mid = 1;
            s = md_mid_block_load(&u->mid, w, be, err, c);
        } else if (md_weights_has_prefix(w, "mid_block.")) {
            s = md_fail(err, MD_ERR_UNSUPPORTED,
                        "%s: a mid block without cross-attention is not supported", label);
        }
    }
    for (int i = 0; i < c->levels && s == MD_OK; i++) {
        s = md_up_block_load(&u->up[i], w, be, err, c, i, ch, skip_ch, &nskip);
        ch = c->block_out_channels[c->levels - 1 - i];
    }
    free(skip_ch);
    MD_TRY(s);
    MD_TRY(md_nn_norm_load(&u->norm_out, w, be, err, "conv_norm_out", ch));
    MD_TRY(md_nn_conv_load(&u->conv_out, w, be, err, "conv_out", ch, c->out_channels,
                           c->conv_out_kernel));
    return MD_OK;
}

/* The layer gets the next index and its place in u->moe_list (grown as
 * needed; on out-of-memory the list stays short and md_unet_moe_layer
 * answers NULL past it). */
static void number_layer(md_unet *u, md_moe_layer *l, int *n)
{
    if (!l)
        return;
    if (*n == u->moe_cap) {
        int cap = u->moe_cap ? 2 * u->moe_cap : 16;
        md_moe_layer **p = realloc(u->moe_list, sizeof *p * (size_t)cap);
        if (p) {
            u->moe_list = p;
            u->moe_cap = cap;
        }
    }
    if (*n < u->moe_cap)
        u->moe_list[*n] = l;
    l->index = (*n)++;
}

/* Gives every MoE layer its index into the run state's scratch array, in
 * load order: down, mid, up blocks; within a transformer block attn1
 * q/k/v, attn2 q/k/v, then the feed-forward. */
static void number_block(md_unet *u, md_unet_block *b, int *n)
{
    for (int r = 0; b->attn && r < b->nres; r++) {
        md_transformer *t = &b->attn[r];
        for (int i = 0; i < t->nblocks; i++) {
            md_tblock *tb = &t->blocks[i];
            md_attention *a[2] = {&tb->attn1, &tb->attn2};
            for (int j = 0; j < 2; j++) {
                number_layer(u, a[j]->q.moe, n);
                number_layer(u, a[j]->k.moe, n);
                number_layer(u, a[j]->v.moe, n);
            }
            number_layer(u, tb->ff_moe, n);
        }
    }
}

/* Numbers the cross-attentions whose keys and values depend on the text
 * only (dense to_k / to_v: an MoE projection routes per call); with n NULL
 * the widths are recorded. */
static void number_kv_block(md_unet *u, md_unet_block *b, int *n)
{
    for (int r = 0; b->attn && r < b->nres; r++) {
        md_transformer *t = &b->attn[r];
        for (int i = 0; i < t->nblocks; i++) {
            md_attention *a = &t->blocks[i].attn2;
            if (a->k.moe || a->v.moe)
                continue;
            if (u->kv_dim)
                u->kv_dim[*n] = a->dim;
            a->kv_index = (*n)++;
        }
    }
}

static md_status number_kv(md_unet *u, md_error *err)
{
    for (int pass = 0; pass < 2; pass++) {
        int n = 0;
        for (int l = 0; l < u->cfg.levels; l++)
            number_kv_block(u, &u->down[l], &n);
        if (u->has_mid)
            number_kv_block(u, &u->mid, &n);
        for (int i = 0; i < u->cfg.levels; i++)
            number_kv_block(u, &u->up[i], &n);
        u->nkv = n;
        if (pass == 0 && !(u->kv_dim = calloc(n > 0 ? (size_t)n : 1, sizeof *u->kv_dim)))
            return md_fail(err, MD_ERR_NOMEM, "unet: out of memory");
    }
    return MD_OK;
}

int md_unet_kv_slots(const md_unet *u)
{
    return u->nkv;
}

static void number_moe(md_unet *u)
{
    int n = 0;
    for (int l = 0; l < u->cfg.levels; l++)
        number_block(u, &u->down[l], &n);
    if (u->has_mid)
        number_block(u, &u->mid, &n);
    for (int i = 0; i < u->cfg.levels; i++)
        number_block(u, &u->up[i], &n);
    u->nmoe = n;
}

md_status md_unet_load_with(md_unet **out, const md_unet_config *cfg, md_weights *w,
                            md_backend *be, const md_unet_load_options *opt, md_error *err)
{
    *out = NULL;
    md_unet *u = calloc(1, sizeof(*u));
    if (!u)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", md_weights_label(w));
    u->cfg = *cfg;
    u->cfg.moe.defer_experts = opt && opt->defer_experts && be->weights_load != NULL;
    u->be = be;
    md_status s = unet_load(u, w, err);
    if (s == MD_OK)
        s = number_kv(u, err);
    if (s == MD_OK) {
        number_moe(u);
        if (u->nmoe > u->moe_cap)
            s = md_fail(err, MD_ERR_NOMEM, "%s: out of memory", md_weights_label(w));
        else if (u->nmoe > 0)
            s = md_expert_cache_new(&u->experts, u->moe_list, u->nmoe, be,
                                    u->cfg.moe.defer_experts, err);
    }
    if (s != MD_OK) {
        md_unet_free(u);
        return md_fail_context(err, "loading unet: ");
    }
    *out = u;
    return MD_OK;
}

md_status md_unet_load(md_unet **out, const md_unet_config *cfg, md_weights *w, md_backend *be,
                       md_error *err)
{
    return md_unet_load_with(out, cfg, w, be, NULL, err);
}

md_expert_cache *md_unet_expert_cache(const md_unet *u)
{
    return u->experts;
}

void md_unet_free(md_unet *u)
{
    if (!u)
        return;
    md_expert_cache_free(u->experts); /* before the layers its entries name */
    for (int l = 0; l < MD_MAX_LEVELS; l++) {
        md_unet_block_free(&u->down[l]);
        md_unet_block_free(&u->up[l]);
    }
    md_unet_block_free(&u->mid);
    free(u->moe_list);
    free(u->kv_dim);
    free(u);
}

const md_unet_config *md_unet_config_of(const md_unet *u)
{
    return &u->cfg;
}

int md_unet_moe_layers(const md_unet *u)
{
    return u->nmoe;
}

const md_moe_layer *md_unet_moe_layer(const md_unet *u, int index)
{
    return index >= 0 && index < u->nmoe && index < u->moe_cap ? u->moe_list[index] : NULL;
}

md_backend *md_unet_backend(const md_unet *u)
{
    return u->be;
}

int md_unet_skip_cap(const md_unet *u)
{
    return u->skip_cap;
}

static md_status check_inputs(const md_unet *u, const md_unet_inputs *in, md_error *err)
{
    const md_unet_config *c = &u->cfg;
    if (in->batch < 1 || in->height < 1 || in->width < 1 || in->context_len < 1 || !in->sample ||
        !in->timesteps || !in->context)
        return md_fail(err, MD_ERR_INVALID,
                       "unet: bad inputs (batch %d, %dx%d, context_len %d, or a NULL array)",
                       in->batch, in->height, in->width, in->context_len);
    if (c->text_time_embedding && (!in->text_embeds || !in->time_ids))
        return md_fail(err, MD_ERR_INVALID,
                       "unet: this model needs text_embeds and time_ids (SDXL conditioning)");
    return MD_OK;
}

/* Whether the state's cached keys and values fit this call (same backend,
 * same context byte for byte); if not, a new block for them is taken from
 * the arena before the call's own allocations and *fill is set. */
static md_status kv_prepare(const md_unet *u, md_unet_state *st, md_backend *be,
                            const md_unet_inputs *in, int *fill, md_error *err)
{
    *fill = 0;
    if (u->nkv == 0)
        return MD_OK;
    size_t n = (size_t)in->batch * (size_t)in->context_len * (size_t)u->cfg.cross_attention_dim;
    if (st->kv_valid && st->kv_be == be && st->kv_context_n == n &&
        st->kv[0].shape[0] == in->batch && st->kv[0].shape[1] == in->context_len &&
        memcmp(st->kv_context, in->context, n * sizeof(float)) == 0)
        return MD_OK;
    md_unet_state_drop_kv(st);
    if (n > st->kv_context_cap) {
        float *p = realloc(st->kv_context, n * sizeof(float));
        if (!p)
            return md_fail(err, MD_ERR_NOMEM, "unet: out of memory");
        st->kv_context = p;
        st->kv_context_cap = n;
    }
    memcpy(st->kv_context, in->context, n * sizeof(float));
    st->kv_context_n = n;
    st->kv_be = be;
    st->kv_mark = be->arena_mark(be);
    st->kv_held = 1;
    for (int i = 0; i < u->nkv; i++)
        for (int j = 0; j < 2; j++)
            MD_TRY(md_nn_tensor(be, &st->kv[2 * i + j], err, 3,
                                (int64_t[]){in->batch, in->context_len, u->kv_dim[i]}));
    st->kv_end = be->arena_mark(be);
    *fill = 1;
    return MD_OK;
}

static md_status unet_run(const md_unet *u, md_unet_state *st, md_backend *be,
                          const md_unet_inputs *in, int kv_fill, float *eps, md_error *err)
{
    const md_unet_config *c = &u->cfg;
    const int64_t B = in->batch, H = in->height, W = in->width;

    size_t need = (size_t)B * (size_t)(u->temb.in_dim > u->temb.add_in_dim ? u->temb.in_dim
                                                                           : u->temb.add_in_dim);
    if (need > st->host_cap) {
        float *p = realloc(st->host, need * sizeof(float));
        if (!p)
            return md_fail(err, MD_ERR_NOMEM, "unet: out of memory");
        st->host = p;
        st->host_cap = need;
    }

    md_tensor temb, ctx, x, h;
    MD_TRY(md_nn_tensor(be, &temb, err, 2, (int64_t[]){B, u->temb.dim}));
    MD_TRY(md_time_embed_forward(&u->temb, be, c, in, st->host, &temb, err));
    MD_TRY(md_nn_tensor(be, &ctx, err, 3, (int64_t[]){B, in->context_len, c->cross_attention_dim}));
    be->upload(be, &ctx, in->context);
    md_moe_options moe_opt = st->moe_opt;
    moe_opt.override = st->override;
    moe_opt.override_user = st->override_user;
    md_unet_run run = {.be = be,
                       .err = err,
                       .temb = &temb,
                       .context = &ctx,
                       .moe_scratch = st->moe,
                       .moe_opt = &moe_opt,
                       .observer = st->observer,
                       .observer_user = st->observer_user,
                       .kv = u->nkv ? st->kv : NULL,
                       .kv_fill = kv_fill};

    MD_TRY(md_nn_tensor(be, &x, err, 4, (int64_t[]){B, c->in_channels, H, W}));
    be->upload(be, &x, in->sample);
    MD_TRY(md_nn_tensor(be, &h, err, 4, (int64_t[]){B, u->conv_in.cout, H, W}));
    be->conv2d(be, &h, &x, u->conv_in.w, u->conv_in.b, 1, (c->conv_in_kernel - 1) / 2);

    md_skip_stack skips = {.t = st->skips, .n = 0, .cap = st->skip_cap};
    skips.t[skips.n++] = h;
    for (int l = 0; l < c->levels; l++)
        MD_TRY(md_down_block_forward(&run, &u->down[l], &h, &skips));
    if (u->has_mid)
        MD_TRY(md_mid_block_forward(&run, &u->mid, &h));
    for (int i = 0; i < c->levels; i++)
        MD_TRY(md_up_block_forward(&run, &u->up[i], &h, &skips));

    md_tensor y;
    MD_TRY(md_nn_tensor(be, &y, err, 4, (int64_t[]){B, c->out_channels, H, W}));
    be->group_norm(be, &h, &h, u->norm_out.g, u->norm_out.b, c->norm_groups, c->norm_eps, 1);
    be->conv2d(be, &y, &h, u->conv_out.w, u->conv_out.b, 1, (c->conv_out_kernel - 1) / 2);
    be->download(be, &y, eps);
    return MD_OK;
}

md_status md_unet_forward(const md_unet *u, md_unet_state *st, md_backend *be,
                          const md_unet_inputs *in, float *eps, md_error *err)
{
    if (!st || st->unet != u)
        return md_fail(err, MD_ERR_INVALID, "unet: the run state was not made for this model");
    if (!md_backend_shares_weights(u->be, be))
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "unet: weights prepared on backend %s cannot be used by another %s backend",
                       u->be->name, be->name);
    MD_TRY(check_inputs(u, in, err));
    int kv_fill = 0;
    md_status s = kv_prepare(u, st, be, in, &kv_fill, err);
    if (s != MD_OK) {
        md_unet_state_drop_kv(st);
        return s;
    }
    /* Everything of this call lives above the mark; resetting to it makes a
     * second call of the same shape allocation-free. */
    size_t mark = be->arena_mark(be);
    s = unet_run(u, st, be, in, kv_fill, eps, err);
    be->arena_reset(be, mark);
    if (s != MD_OK)
        md_unet_state_drop_kv(st); /* maybe half computed */
    else
        st->kv_valid = 1;
    return s;
}
