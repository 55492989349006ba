/* The LoRA backend wrapper (lora_backend.h). Every entry but linear and
 * conv2d forwards to the inner backend. */
#include "lora_backend.h"

#include <stdlib.h>
#include <string.h>

/* One modified weight: its fused copy (FUSED), or the low-rank pair of
 * each update bound to it (SIDE). */
typedef struct lora_pair {
    md_tensor down, up; /* f32 copies; up already multiplied by the factor */
} lora_pair;

typedef struct lora_slot {
    const md_tensor *w;  /* the model's weight: the key */
    md_tensor fused;     /* FUSED */
    lora_pair *pairs;    /* SIDE */
    int npairs;
} lora_slot;

typedef struct lora_be {
    md_backend base; /* first: the md_backend * is the wrapper */
    md_backend *inner;
    md_lora_apply how;
    lora_slot *slots; /* sorted by w */
    int nslots;
    void **host; /* host buffers of the copies, freed at destroy */
    int nhost;
    void *device_copies; /* weights_load's handle (backends that have it) */
} lora_be;

#define IN(be) (((lora_be *)(be))->inner)

static int cmp_slot(const void *a, const void *b)
{
    const md_tensor *x = ((const lora_slot *)a)->w, *y = ((const lora_slot *)b)->w;
    return x < y ? -1 : x > y;
}

static const lora_slot *find_slot(const lora_be *l, const md_tensor *w)
{
    lora_slot key = {.w = w};
    return l->nslots ? bsearch(&key, l->slots, (size_t)l->nslots, sizeof key, cmp_slot) : NULL;
}

/* ---- the two entries that see the LoRA ---- */

/* y += up(down(x)) for each pair; temporaries from the arena, released. */
static void side_products(lora_be *l, const lora_slot *s, md_tensor *y, const md_tensor *x,
                          int conv, int stride, int pad)
{
    md_backend *in = l->inner;
    for (int i = 0; i < s->npairs; i++) {
        size_t mark = in->arena_mark(in);
        int64_t mid_shape[MD_MAX_DIMS];
        memcpy(mid_shape, y->shape, sizeof mid_shape);
        mid_shape[conv ? 1 : y->ndim - 1] = s->pairs[i].down.shape[0];
        md_tensor mid = in->new_tensor(in, y->ndim, mid_shape);
        md_tensor add = in->new_tensor(in, y->ndim, y->shape);
        if (mid.data && add.data) {
            if (conv) {
                in->conv2d(in, &mid, x, &s->pairs[i].down, NULL, stride, pad);
                in->conv2d(in, &add, &mid, &s->pairs[i].up, NULL, 1, 0);
            } else {
                in->linear(in, &mid, x, &s->pairs[i].down, NULL);
                in->linear(in, &add, &mid, &s->pairs[i].up, NULL);
            }
            in->add(in, y, y, &add);
        }
        in->arena_reset(in, mark);
    }
}

static void lora_linear(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                        const md_tensor *b)
{
    lora_be *l = (lora_be *)be;
    const lora_slot *s = find_slot(l, w);
    if (s && l->how == MD_LORA_FUSED) {
        l->inner->linear(l->inner, y, x, &s->fused, b);
        return;
    }
    l->inner->linear(l->inner, y, x, w, b);
    if (s)
        side_products(l, s, y, x, 0, 1, 0);
}

static void lora_conv2d(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                        const md_tensor *b, int stride, int pad)
{
    lora_be *l = (lora_be *)be;
    const lora_slot *s = find_slot(l, w);
    if (s && l->how == MD_LORA_FUSED) {
        l->inner->conv2d(l->inner, y, x, &s->fused, b, stride, pad);
        return;
    }
    l->inner->conv2d(l->inner, y, x, w, b, stride, pad);
    if (s)
        side_products(l, s, y, x, 1, stride, pad);
}

/* ---- forwarding ---- */

static size_t f_arena_mark(md_backend *be) { return IN(be)->arena_mark(IN(be)); }
static void f_arena_reset(md_backend *be, size_t m) { IN(be)->arena_reset(IN(be), m); }
static md_tensor f_new_tensor(md_backend *be, int nd, const int64_t *sh)
{
    return IN(be)->new_tensor(IN(be), nd, sh);
}
static void f_upload(md_backend *be, md_tensor *d, const float *s) { IN(be)->upload(IN(be), d, s); }
static void f_download(md_backend *be, const md_tensor *s, float *d)
{
    IN(be)->download(IN(be), s, d);
}
static md_status f_prepare_weight(md_backend *be, md_tensor *w, md_error *err)
{
    return IN(be)->prepare_weight(IN(be), w, err);
}
static void f_group_norm(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *g,
                         const md_tensor *b, int groups, float eps, int silu)
{
    IN(be)->group_norm(IN(be), y, x, g, b, groups, eps, silu);
}
static void f_layer_norm(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *g,
                         const md_tensor *b, float eps)
{
    IN(be)->layer_norm(IN(be), y, x, g, b, eps);
}
static void f_activation(md_backend *be, md_tensor *y, const md_tensor *x, md_act a)
{
    IN(be)->activation(IN(be), y, x, a);
}
static void f_geglu(md_backend *be, md_tensor *y, const md_tensor *x) { IN(be)->geglu(IN(be), y, x); }
static void f_attention(md_backend *be, md_tensor *o, const md_tensor *q, const md_tensor *k,
                        const md_tensor *v, int heads, float scale, int causal)
{
    IN(be)->attention(IN(be), o, q, k, v, heads, scale, causal);
}
static void f_add(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b)
{
    IN(be)->add(IN(be), y, a, b);
}
static void f_add_channel_bias(md_backend *be, md_tensor *y, const md_tensor *x,
                               const md_tensor *bias)
{
    IN(be)->add_channel_bias(IN(be), y, x, bias);
}
static void f_scale(md_backend *be, md_tensor *y, const md_tensor *x, float s)
{
    IN(be)->scale(IN(be), y, x, s);
}
static void f_axpy(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b, float s)
{
    IN(be)->axpy(IN(be), y, a, b, s);
}
static void f_fill(md_backend *be, md_tensor *y, float v) { IN(be)->fill(IN(be), y, v); }
static void f_copy(md_backend *be, md_tensor *y, const md_tensor *x) { IN(be)->copy(IN(be), y, x); }
static void f_upsample(md_backend *be, md_tensor *y, const md_tensor *x)
{
    IN(be)->upsample_nearest2x(IN(be), y, x);
}
static void f_concat_channels(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b)
{
    IN(be)->concat_channels(IN(be), y, a, b);
}
static void f_concat_last(md_backend *be, md_tensor *y, const md_tensor *a, const md_tensor *b)
{
    IN(be)->concat_last(IN(be), y, a, b);
}
static void f_nchw_to_tokens(md_backend *be, md_tensor *y, const md_tensor *x)
{
    IN(be)->nchw_to_tokens(IN(be), y, x);
}
static void f_tokens_to_nchw(md_backend *be, md_tensor *y, const md_tensor *x)
{
    IN(be)->tokens_to_nchw(IN(be), y, x);
}
static void f_embedding(md_backend *be, md_tensor *y, const md_tensor *t, const int32_t *ids,
                        int64_t n)
{
    IN(be)->embedding(IN(be), y, t, ids, n);
}
static void f_add_position(md_backend *be, md_tensor *y, const md_tensor *pos)
{
    IN(be)->add_position(IN(be), y, pos);
}
static void f_gather_rows(md_backend *be, md_tensor *y, const md_tensor *x, const int32_t *rows,
                          int64_t n)
{
    IN(be)->gather_rows(IN(be), y, x, rows, n);
}
static void f_scatter_add_rows(md_backend *be, md_tensor *y, const md_tensor *x,
                               const int32_t *rows, const float *w, int64_t n)
{
    IN(be)->scatter_add_rows(IN(be), y, x, rows, w, n);
}
static void f_add_rows_weighted(md_backend *be, md_tensor *y, const md_tensor *x, const float *w)
{
    IN(be)->add_rows_weighted(IN(be), y, x, w);
}
static md_status f_weights_load(md_backend *be, const md_tensor *const *host, md_tensor *dev,
                                int n, void **handle, md_error *err)
{
    return IN(be)->weights_load(IN(be), host, dev, n, handle, err);
}
static void f_weights_unload(md_backend *be, void *handle)
{
    IN(be)->weights_unload(IN(be), handle);
}
static int f_force_f32(md_backend *be, int on) { return IN(be)->force_f32(IN(be), on); }
static md_status f_sync(md_backend *be, md_error *err) { return IN(be)->sync(IN(be), err); }

static void lora_destroy(md_backend *be)
{
    lora_be *l = (lora_be *)be;
    if (l->device_copies)
        l->inner->weights_unload(l->inner, l->device_copies);
    for (int i = 0; i < l->nslots; i++)
        free(l->slots[i].pairs);
    free(l->slots);
    for (int i = 0; i < l->nhost; i++)
        free(l->host[i]);
    free(l->host);
    free(l);
}

/* ---- building the slots ---- */

/* An f32 tensor of `shape` over malloc'd `data` (kept until destroy);
 * place_copies() later puts it where the inner backend computes. */
static void host_f32(lora_be *l, md_tensor *t, int ndim, const int64_t *shape, float *data)
{
    l->host[l->nhost++] = data;
    memset(t, 0, sizeof *t);
    t->dtype = MD_F32;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    t->data = data;
}

/* Every copy to the inner backend: one allocation through weights_load
 * where it exists (freed with the wrapper; prepare_weight's device memory
 * would live as long as the inner backend), else prepare_weight. */
static md_status place_copies(lora_be *l, md_error *err)
{
    int n = 0;
    md_tensor **ts = calloc((size_t)l->nhost + 1, sizeof *ts);
    if (!ts)
        return md_fail(err, MD_ERR_NOMEM, "LoRA: out of memory");
    for (int i = 0; i < l->nslots; i++) {
        if (l->how == MD_LORA_FUSED)
            ts[n++] = &l->slots[i].fused;
        for (int j = 0; j < l->slots[i].npairs; j++) {
            ts[n++] = &l->slots[i].pairs[j].down;
            ts[n++] = &l->slots[i].pairs[j].up;
        }
    }
    md_status s = MD_OK;
    if (l->inner->weights_load && n) {
        md_tensor *dev = calloc((size_t)n, sizeof *dev);
        s = dev ? l->inner->weights_load(l->inner, (const md_tensor *const *)ts, dev, n,
                                         &l->device_copies, err)
                : md_fail(err, MD_ERR_NOMEM, "LoRA: out of memory");
        for (int i = 0; s == MD_OK && i < n; i++)
            *ts[i] = dev[i];
        free(dev);
    } else {
        for (int i = 0; s == MD_OK && i < n; i++)
            s = l->inner->prepare_weight(l->inner, ts[i], err);
    }
    free(ts);
    return s;
}

static md_status make_fused(lora_be *l, const md_lora_binding *b, lora_slot *s, md_error *err)
{
    float *data = malloc(sizeof(float) * (size_t)md_tensor_numel(s->w));
    if (!data)
        return md_fail(err, MD_ERR_NOMEM, "LoRA: out of memory for a fused weight");
    md_status st = md_lora_fused_weight(b, s->w, NULL, data, err);
    if (st != MD_OK) {
        free(data);
        return st;
    }
    host_f32(l, &s->fused, s->w->ndim, s->w->shape, data);
    return MD_OK;
}

static md_status make_pair(lora_be *l, const md_lora_target *t, lora_pair *p, md_error *err)
{
    const md_lora_entry *e = t->entry;
    size_t nd = (size_t)md_tensor_numel(e->down), nu = (size_t)md_tensor_numel(e->up);
    float *down = malloc(sizeof(float) * nd), *up = malloc(sizeof(float) * nu);
    if (!down || !up) {
        free(down), free(up);
        return md_fail(err, MD_ERR_NOMEM, "LoRA: out of memory for %s", t->name);
    }
    md_widen_to_f32(e->down->dtype, e->down->data, down, nd);
    md_widen_to_f32(e->up->dtype, e->up->data, up, nu);
    for (size_t i = 0; i < nu; i++)
        up[i] *= t->factor;
    /* A conv's up runs as a 1x1 conv: [out, r, 1, 1] whatever the file stored. */
    int64_t up_shape[4] = {e->up->shape[0], e->up->shape[1], 1, 1};
    /* A 4-d weight may run as a conv or (1x1) as a linear: 4-d copies serve both. */
    int conv = t->w->ndim == 4;
    int64_t down_shape[4] = {e->down->shape[0], e->down->shape[1],
                             e->down->ndim == 4 ? e->down->shape[2] : 1,
                             e->down->ndim == 4 ? e->down->shape[3] : 1};
    host_f32(l, &p->down, conv ? 4 : 2, down_shape, down);
    host_f32(l, &p->up, conv ? 4 : 2, up_shape, up);
    return MD_OK;
}

static md_status build_slots(lora_be *l, const md_lora_binding *b, md_error *err)
{
    l->slots = calloc((size_t)b->count + 1, sizeof *l->slots);
    l->host = calloc(2 * (size_t)b->count + 1, sizeof *l->host);
    if (!l->slots || !l->host)
        return md_fail(err, MD_ERR_NOMEM, "LoRA: out of memory");
    for (int i = 0; i < b->count; i++) {
        const md_tensor *w = b->targets[i].w;
        lora_slot *s = NULL;
        for (int j = 0; j < l->nslots && !s; j++)
            s = l->slots[j].w == w ? &l->slots[j] : NULL;
        if (!s) {
            s = &l->slots[l->nslots++];
            s->w = w;
            if (l->how == MD_LORA_FUSED)
                MD_TRY(make_fused(l, b, s, err));
        }
        if (l->how == MD_LORA_SIDE) {
            lora_pair *np = realloc(s->pairs, sizeof *np * (size_t)(s->npairs + 1));
            if (!np)
                return md_fail(err, MD_ERR_NOMEM, "LoRA: out of memory");
            s->pairs = np;
            MD_TRY(make_pair(l, &b->targets[i], &s->pairs[s->npairs++], err));
        }
    }
    qsort(l->slots, (size_t)l->nslots, sizeof *l->slots, cmp_slot);
    return place_copies(l, err);
}

md_status md_lora_backend_new(md_backend *inner, const md_lora_binding *b, md_lora_apply how,
                              md_backend **out, md_error *err)
{
    *out = NULL;
    if (how == MD_LORA_FUSED && !inner->host_weights)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "LoRA: fusing needs the model's weights in host memory; the %s backend "
                       "keeps them on the device (apply the LoRA as a side product instead)",
                       inner->name);
    lora_be *l = calloc(1, sizeof *l);
    if (!l)
        return md_fail(err, MD_ERR_NOMEM, "LoRA: out of memory");
    l->inner = inner;
    l->how = how;
    md_backend *be = &l->base;
    *be = (md_backend){
        .name = inner->name, .impl = l, .host_weights = inner->host_weights,
        .weights_of = inner->weights_of ? inner->weights_of : inner,
        .destroy = lora_destroy, .arena_mark = f_arena_mark, .arena_reset = f_arena_reset,
        .new_tensor = f_new_tensor, .upload = f_upload, .download = f_download,
        .prepare_weight = f_prepare_weight, .conv2d = lora_conv2d, .linear = lora_linear,
        .group_norm = f_group_norm, .layer_norm = f_layer_norm, .activation = f_activation,
        .geglu = f_geglu, .attention = f_attention, .add = f_add,
        .add_channel_bias = f_add_channel_bias, .scale = f_scale, .axpy = f_axpy, .fill = f_fill,
        .copy = f_copy, .upsample_nearest2x = f_upsample, .concat_channels = f_concat_channels,
        .concat_last = f_concat_last, .nchw_to_tokens = f_nchw_to_tokens,
        .tokens_to_nchw = f_tokens_to_nchw, .embedding = f_embedding,
        .add_position = f_add_position, .gather_rows = f_gather_rows,
        .scatter_add_rows = f_scatter_add_rows, .add_rows_weighted = f_add_rows_weighted,
        /* MoE layers route on the host so each expert's linear call comes here. */
        .prepare_weight_stack = NULL, .moe_routed = NULL,
        .weights_load = inner->weights_load ? f_weights_load : NULL,
        .weights_unload = inner->weights_unload ? f_weights_unload : NULL,
        .force_f32 = inner->force_f32 ? f_force_f32 : NULL,
        .sync = inner->sync ? f_sync : NULL,
    };
    md_status s = build_slots(l, b, err);
    if (s != MD_OK) {
        lora_destroy(be);
        return s;
    }
    *out = be;
    return MD_OK;
}
