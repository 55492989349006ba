#include "nn.h"

#include <stdarg.h>
#include <stdio.h>

md_status md_nn_name(char *buf, size_t cap, md_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap)
        return md_fail(err, MD_ERR_INVALID, "weight name too long: %s...", buf);
    return MD_OK;
}

md_status md_nn_tensor(md_backend *be, md_tensor *t, md_error *err, int ndim, const int64_t *shape)
{
    *t = be->new_tensor(be, ndim, shape);
    if (!t->data) {
        char buf[96];
        md_tensor desc = {.dtype = MD_F32, .ndim = ndim};
        for (int i = 0; i < ndim; i++)
            desc.shape[i] = shape[i];
        return md_fail(err, MD_ERR_NOMEM, "%s backend: out of memory for an activation %s",
                       be->name, md_shape_str(&desc, buf, sizeof(buf)));
    }
    return MD_OK;
}

md_tensor md_nn_view(const md_tensor *t, int ndim, const int64_t *shape)
{
    md_tensor v = *t;
    v.ndim = ndim;
    for (int i = 0; i < MD_MAX_DIMS; i++)
        v.shape[i] = i < ndim ? shape[i] : 0;
    return v;
}

static md_status weight_v(md_tensor **out, md_weights *w, md_backend *be, md_error *err, int ndim,
                          const int64_t *shape, int optional, const char *fmt, va_list ap)
{
    char name[256];
    int n = vsnprintf(name, sizeof(name), fmt, ap);
    if (n < 0 || (size_t)n >= sizeof(name))
        return md_fail(err, MD_ERR_INVALID, "%s: weight name too long (%s...)", md_weights_label(w),
                       name);
    *out = NULL;
    if (optional && !md_weights_find(w, name))
        return MD_OK;
    MD_TRY(md_weights_get(w, name, ndim, shape, out, err));
    md_status s = be->prepare_weight(be, *out, err);
    if (s != MD_OK)
        return md_fail_context(err, "%s: preparing %s: ", md_weights_label(w), name);
    return MD_OK;
}

md_status md_nn_weight(md_tensor **out, md_weights *w, md_backend *be, md_error *err, int ndim,
                       const int64_t *shape, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    md_status s = weight_v(out, w, be, err, ndim, shape, 0, fmt, ap);
    va_end(ap);
    return s;
}

md_status md_nn_weight_opt(md_tensor **out, md_weights *w, md_backend *be, md_error *err, int ndim,
                           const int64_t *shape, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    md_status s = weight_v(out, w, be, err, ndim, shape, 1, fmt, ap);
    va_end(ap);
    return s;
}

md_status md_nn_linear_load(md_nn_linear *l, md_weights *w, md_backend *be, md_error *err,
                            const char *prefix, int in, int out, int has_bias)
{
    l->in = in;
    l->out = out;
    l->b = NULL;
    MD_TRY(md_nn_weight(&l->w, w, be, err, 2, (int64_t[]){out, in}, "%s.weight", prefix));
    if (has_bias > 0)
        MD_TRY(md_nn_weight(&l->b, w, be, err, 1, (int64_t[]){out}, "%s.bias", prefix));
    else if (has_bias < 0)
        MD_TRY(md_nn_weight_opt(&l->b, w, be, err, 1, (int64_t[]){out}, "%s.bias", prefix));
    return MD_OK;
}

md_status md_nn_linear_load_1x1(md_nn_linear *l, md_weights *w, md_backend *be, md_error *err,
                                const char *prefix, int in, int out)
{
    l->in = in;
    l->out = out;
    MD_TRY(md_nn_weight(&l->w, w, be, err, 4, (int64_t[]){out, in, 1, 1}, "%s.weight", prefix));
    MD_TRY(md_nn_weight(&l->b, w, be, err, 1, (int64_t[]){out}, "%s.bias", prefix));
    return MD_OK;
}

md_status md_nn_conv_load(md_nn_conv *c, md_weights *w, md_backend *be, md_error *err,
                          const char *prefix, int cin, int cout, int k)
{
    c->cin = cin;
    c->cout = cout;
    c->k = k;
    MD_TRY(md_nn_weight(&c->w, w, be, err, 4, (int64_t[]){cout, cin, k, k}, "%s.weight", prefix));
    MD_TRY(md_nn_weight(&c->b, w, be, err, 1, (int64_t[]){cout}, "%s.bias", prefix));
    return MD_OK;
}

md_status md_nn_norm_load(md_nn_norm *n, md_weights *w, md_backend *be, md_error *err,
                          const char *prefix, int channels)
{
    MD_TRY(md_nn_weight(&n->g, w, be, err, 1, (int64_t[]){channels}, "%s.weight", prefix));
    MD_TRY(md_nn_weight(&n->b, w, be, err, 1, (int64_t[]){channels}, "%s.bias", prefix));
    return MD_OK;
}

void md_nn_linear_forward(md_backend *be, md_tensor *y, const md_tensor *x, const md_nn_linear *l)
{
    be->linear(be, y, x, l->w, l->b);
}
