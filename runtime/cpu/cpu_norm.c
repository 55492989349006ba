/* Group norm and layer norm. Statistics are accumulated in double: SD
 * activations reach magnitudes where float sums of squares lose digits. */
#include <math.h>

#include "cpu_internal.h"
#include "cpu_vmath.h"

/* Mean and 1/sqrt(var + eps) in one pass. Sums are taken around the first
 * value, so a large mean next to a small spread does not cancel away the
 * variance; var is clamped at 0 against rounding. The mean comes back as
 * shift + delta: x - shift is exact for values near the mean, and keeping
 * delta apart keeps the digits a float mean would round off. */
struct moments {
    float shift, delta, rstd;
};

static struct moments stats(const float *x, int64_t n, float eps)
{
    double shift = x[0];
    /* Four partial sums break the dependency chain of one accumulator. */
    double s[4] = {0}, q[4] = {0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) {
            double v = (double)x[i + k] - shift;
            s[k] += v;
            q[k] += v * v;
        }
    for (; i < n; i++) {
        double v = (double)x[i] - shift;
        s[0] += v;
        q[0] += v * v;
    }
    double ms = ((s[0] + s[1]) + (s[2] + s[3])) / (double)n;
    double var = ((q[0] + q[1]) + (q[2] + q[3])) / (double)n - ms * ms;
    if (var < 0.0)
        var = 0.0;
    struct moments m = {x[0], (float)ms, (float)(1.0 / sqrt(var + (double)eps))};
    return m;
}

struct gn_job {
    int simd;
    float *y;
    const float *x;
    const float *gamma; /* NULL: 1 */
    const float *beta;  /* NULL: 0 */
    int64_t channels, groups, spatial;
    float eps;
    int silu;
};

/* One item is one (batch, group): its channels are contiguous. */
static void gn_range(void *ctx, int64_t begin, int64_t end)
{
    struct gn_job *j = ctx;
    int64_t cpg = j->channels / j->groups;
    int64_t n = cpg * j->spatial;
    for (int64_t bg = begin; bg < end; bg++) {
        const float *x = j->x + bg * n;
        float *y = j->y + bg * n;
        struct moments m = stats(x, n, j->eps);
        int64_t c0 = (bg % j->groups) * cpg;
        for (int64_t c = 0; c < cpg; c++) {
            float g = j->gamma ? j->gamma[c0 + c] : 1.0f;
            float b = j->beta ? j->beta[c0 + c] : 0.0f;
            /* ((x - shift) - delta) * rstd * g + b as one multiply-add */
            float a = m.rstd * g;
            md_vm_affine(j->simd, y + c * j->spatial, x + c * j->spatial, j->spatial, m.shift, a,
                         b - m.delta * a, j->silu);
        }
    }
}

void md_cpu_group_norm(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *gamma,
                       const md_tensor *beta, int groups, float eps, int fuse_silu)
{
    md_cpu *c = md_cpu_of(be);
    int64_t batch = x->shape[0], channels = x->shape[1];
    int64_t numel = md_tensor_numel(x);
    if (numel <= 0 || groups <= 0)
        return;
    size_t mark = md_arena_mark(&c->arena);
    const float *g = gamma ? md_cpu_weight_f32(c, gamma) : NULL;
    const float *b = beta ? md_cpu_weight_f32(c, beta) : NULL;
    if ((gamma && !g) || (beta && !b)) {
        md_cpu_poison(y);
    } else {
        struct gn_job j = {c->simd, y->data, x->data, g, b, channels, groups,
                           numel / (batch * channels), eps, fuse_silu != 0};
        md_cpu_for(c, batch * groups, 4 * (channels / groups) * j.spatial, gn_range, &j);
    }
    md_arena_reset(&c->arena, mark);
}

struct ln_job {
    float *y;
    const float *x;
    const float *gamma;
    const float *beta;
    int64_t d;
    float eps;
};

static void ln_range(void *ctx, int64_t begin, int64_t end)
{
    struct ln_job *j = ctx;
    for (int64_t r = begin; r < end; r++) {
        const float *x = j->x + r * j->d;
        float *y = j->y + r * j->d;
        struct moments m = stats(x, j->d, j->eps);
        for (int64_t i = 0; i < j->d; i++) {
            float g = j->gamma ? j->gamma[i] : 1.0f;
            float b = j->beta ? j->beta[i] : 0.0f;
            y[i] = ((x[i] - m.shift) - m.delta) * m.rstd * g + b;
        }
    }
}

void md_cpu_layer_norm(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *gamma,
                       const md_tensor *beta, float eps)
{
    md_cpu *c = md_cpu_of(be);
    int64_t d = md_cpu_last_dim(x);
    if (d <= 0)
        return;
    size_t mark = md_arena_mark(&c->arena);
    const float *g = gamma ? md_cpu_weight_f32(c, gamma) : NULL;
    const float *b = beta ? md_cpu_weight_f32(c, beta) : NULL;
    if ((gamma && !g) || (beta && !b)) {
        md_cpu_poison(y);
    } else {
        struct ln_job j = {y->data, x->data, g, b, d, eps};
        md_cpu_for(c, md_cpu_rows(x), 6 * d, ln_range, &j);
    }
    md_arena_reset(&c->arena, mark);
}
