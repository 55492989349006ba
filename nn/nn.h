/* The layer kit shared by the text encoder, VAE, U-Net and MoE code:
 * activation allocation that reports failure, weight lookup that also
 * prepares the weight for the backend, and the small layer descriptors
 * (linear, conv, norm) with their loaders. */
#ifndef MD_NN_H
#define MD_NN_H

#include "../io/weights.h"
#include "../runtime/backend.h"

typedef struct md_nn_linear {
    md_tensor *w, *b; /* w [out, in] (a [out, in, 1, 1] conv weight also works); b may be NULL */
    int in, out;
} md_nn_linear;

typedef struct md_nn_conv {
    md_tensor *w, *b; /* w [cout, cin, k, k] */
    int cin, cout, k;
} md_nn_conv;

typedef struct md_nn_norm {
    md_tensor *g, *b;
} md_nn_norm;

/* printf into buf; MD_ERR_INVALID when the name does not fit. */
md_status md_nn_name(char *buf, size_t cap, md_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* An F32 activation from the backend arena; MD_ERR_NOMEM when it fails. */
md_status md_nn_tensor(md_backend *be, md_tensor *t, md_error *err, int ndim, const int64_t *shape);
/* The same storage seen with another shape of equal element count. */
md_tensor md_nn_view(const md_tensor *t, int ndim, const int64_t *shape);

/* Looks a weight up, checks its shape and prepares it for the backend. */
md_status md_nn_weight(md_tensor **out, md_weights *w, md_backend *be, md_error *err, int ndim,
                       const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* As md_nn_weight, but an absent weight gives *out == NULL and MD_OK. */
md_status md_nn_weight_opt(md_tensor **out, md_weights *w, md_backend *be, md_error *err, int ndim,
                           const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* `prefix`.weight [out, in] and, when has_bias, `prefix`.bias [out]
 * (has_bias < 0: bias optional). */
md_status md_nn_linear_load(md_nn_linear *l, md_weights *w, md_backend *be, md_error *err,
                            const char *prefix, int in, int out, int has_bias);
/* As md_nn_linear_load but the weight is stored as a [out, in, 1, 1] conv. */
md_status md_nn_linear_load_1x1(md_nn_linear *l, md_weights *w, md_backend *be, md_error *err,
                                const char *prefix, int in, int out);
md_status md_nn_conv_load(md_nn_conv *c, md_weights *w, md_backend *be, md_error *err,
                          const char *prefix, int cin, int cout, int k);
md_status md_nn_norm_load(md_nn_norm *n, md_weights *w, md_backend *be, md_error *err,
                          const char *prefix, int channels);

/* y = linear(x) where x is [..., in] and y [..., out]. */
void md_nn_linear_forward(md_backend *be, md_tensor *y, const md_tensor *x, const md_nn_linear *l);

#endif
