/* The capture wrapper (gate_capture.h). */
#include "gate_capture.h"

#include <stdlib.h>
#include <string.h>

typedef struct capture_be {
    md_backend base; /* first: the md_backend * is the wrapper */
    md_backend *inner;
    const md_tensor **w;
    float **mean; /* per watched weight, [in], NULL until seen */
    int *dim;
    int n;
    int armed;
    int failed; /* a capture could not allocate: reported as never seen */
    float *scratch;
    size_t scratch_n;
} capture_be;

static void record(capture_be *c, int i, const md_tensor *x)
{
    const int64_t in = x->shape[x->ndim - 1];
    const int64_t batch = x->ndim >= 3 ? x->shape[0] : 1;
    const size_t total = (size_t)md_tensor_numel(x);
    const int64_t seq = (int64_t)(total / (size_t)in) / batch;
    if (total > c->scratch_n) {
        float *grown = realloc(c->scratch, sizeof(float) * total);
        if (!grown) {
            c->failed = 1;
            return;
        }
        c->scratch = grown;
        c->scratch_n = total;
    }
    if (!c->mean[i] && !(c->mean[i] = malloc(sizeof(float) * (size_t)in))) {
        c->failed = 1;
        return;
    }
    c->inner->download(c->inner, x, c->scratch);
    const float *last = c->scratch + (size_t)(batch - 1) * (size_t)(seq * in);
    for (int64_t d = 0; d < in; d++) {
        double s = 0;
        for (int64_t r = 0; r < seq; r++)
            s += last[r * in + d];
        c->mean[i][d] = (float)(s / (double)seq);
    }
    c->dim[i] = (int)in;
}

static void capture_linear(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                           const md_tensor *b)
{
    capture_be *c = (capture_be *)be;
    if (c->armed)
        for (int i = 0; i < c->n; i++)
            if (c->w[i] == w)
                record(c, i, x);
    c->inner->linear(c->inner, y, x, w, b);
}

static void capture_destroy(md_backend *be)
{
    capture_be *c = (capture_be *)be;
    for (int i = 0; i < c->n; i++)
        free(c->mean[i]);
    free(c->mean);
    free(c->dim);
    free(c->w);
    free(c->scratch);
    free(c);
}

md_status md_capture_new(md_backend *inner, const md_tensor *const *weights, int n,
                         md_backend **out, md_error *err)
{
    *out = NULL;
    capture_be *c = calloc(1, sizeof *c);
    if (c) {
        c->w = calloc((size_t)n + 1, sizeof *c->w);
        c->mean = calloc((size_t)n + 1, sizeof *c->mean);
        c->dim = calloc((size_t)n + 1, sizeof *c->dim);
    }
    if (!c || !c->w || !c->mean || !c->dim) {
        if (c)
            free(c->w), free(c->mean), free(c->dim);
        free(c);
        return md_fail(err, MD_ERR_NOMEM, "merge: out of memory for the gate capture");
    }
    memcpy(c->w, weights, sizeof *c->w * (size_t)n);
    c->n = n;
    c->inner = inner;
    c->base = *inner;
    c->base.linear = capture_linear;
    c->base.destroy = capture_destroy;
    c->base.weights_of = inner->weights_of ? inner->weights_of : inner;
    *out = &c->base;
    return MD_OK;
}

void md_capture_arm(md_backend *be, int on)
{
    ((capture_be *)be)->armed = on;
}

const float *md_capture_mean(const md_backend *be, int i, int *dim)
{
    const capture_be *c = (const capture_be *)be;
    if (c->failed || i < 0 || i >= c->n || !c->mean[i])
        return NULL;
    *dim = c->dim[i];
    return c->mean[i];
}
