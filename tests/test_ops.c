/* Every CPU backend op against a plain double-precision reference loop, on
 * odd shapes, with weights stored as F32, F16 and BF16. Run twice: 1 thread
 * with the portable kernels (no AVX2, no F16C), then 3 threads (more than
 * the cores on purpose: it exercises the pool's chunking) with whatever
 * the CPU offers. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/backend.h"
#include "runtime/cpu/cpu_internal.h"
#include "test_support.h"

/* ---- test scaffolding ---- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_uniform(rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)((rng_next(r) >> 40) * (1.0 / 16777216.0));
}

typedef struct ctx {
    md_backend *be;
    rng rng;
    int failures;
    int checks;
    md_test_bag bag; /* host buffers freed after each case */
} ctx;

static void *bag_alloc(ctx *t, size_t bytes)
{
    return md_test_bag_alloc(&t->bag, bytes);
}

static void bag_clear(ctx *t)
{
    md_test_bag_clear(&t->bag);
}

/* An activation on the backend plus its host copy. */
typedef struct act {
    md_tensor t;
    float *h;
    int64_t n;
} act;

static act act_new(ctx *t, int ndim, const int64_t *shape)
{
    act a;
    a.t = t->be->new_tensor(t->be, ndim, shape);
    if (!a.t.data) {
        fprintf(stderr, "test: new_tensor failed\n");
        exit(2);
    }
    a.n = md_test_numel(ndim, shape);
    a.h = bag_alloc(t, (size_t)a.n * sizeof(float));
    return a;
}

static act act_rand(ctx *t, int ndim, const int64_t *shape, float lo, float hi)
{
    act a = act_new(t, ndim, shape);
    for (int64_t i = 0; i < a.n; i++)
        a.h[i] = rng_uniform(&t->rng, lo, hi);
    t->be->upload(t->be, &a.t, a.h);
    return a;
}

/* Reads the backend result into the host copy. */
static void act_pull(ctx *t, act *a)
{
    t->be->download(t->be, &a->t, a->h);
}

/* A weight stored as `dt`; vals holds the exact values it widens to. */
typedef struct wt {
    md_tensor t;
    float *vals;
    int64_t n;
} wt;

static uint16_t to_bf16(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    b += 0x7fff + ((b >> 16) & 1);
    return (uint16_t)(b >> 16);
}

static wt wt_rand(ctx *t, md_dtype dt, int ndim, const int64_t *shape, float lo, float hi)
{
    wt w;
    memset(&w.t, 0, sizeof w.t);
    w.t.dtype = dt;
    w.t.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        w.t.shape[i] = shape[i];
    w.n = md_test_numel(ndim, shape);
    w.vals = bag_alloc(t, (size_t)w.n * sizeof(float));
    w.t.data = bag_alloc(t, (size_t)w.n * md_dtype_size(dt));
    for (int64_t i = 0; i < w.n; i++) {
        float v = rng_uniform(&t->rng, lo, hi);
        if (dt == MD_F32) {
            ((float *)w.t.data)[i] = v;
        } else if (dt == MD_F16) {
            uint16_t h = md_f32_to_f16(v);
            ((uint16_t *)w.t.data)[i] = h;
            v = md_f16_to_f32(h);
        } else {
            uint16_t h = to_bf16(v);
            ((uint16_t *)w.t.data)[i] = h;
            v = md_bf16_to_f32(h);
        }
        w.vals[i] = v;
    }
    md_error err;
    if (t->be->prepare_weight(t->be, &w.t, &err) != MD_OK) {
        fprintf(stderr, "test: prepare_weight: %s\n", err.msg);
        exit(2);
    }
    return w;
}

/* Max |got - ref| relative to max |ref| (absolute when ref is ~0). */
static void check(ctx *t, const char *name, const float *got, const double *ref, int64_t n,
                  double tol)
{
    double maxref = 0.0, maxerr = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(ref[i]) > maxref)
            maxref = fabs(ref[i]);
        double e = fabs((double)got[i] - ref[i]);
        if (!(e <= maxerr)) /* NaN counts as infinitely wrong */
            maxerr = isnan(e) ? INFINITY : e;
    }
    double rel = maxerr / (maxref > 1.0 ? maxref : 1.0);
    t->checks++;
    int ok = rel <= tol;
    if (!ok)
        t->failures++;
    printf("  %-56s max err %.3g%s\n", name, rel, ok ? "" : "  FAIL");
}

static const char *dt_name(md_dtype dt)
{
    return md_dtype_name(dt);
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define TOL 1e-5

/* ---- dense ops ---- */

static void test_linear(ctx *t, md_dtype dt, int with_bias, int w4d)
{
    const int64_t in = 37, out = 19;
    act x = act_rand(t, 3, SHAPE(2, 7, in), -1, 1);
    wt w = w4d ? wt_rand(t, dt, 4, SHAPE(out, in, 1, 1), -0.5f, 0.5f)
               : wt_rand(t, dt, 2, SHAPE(out, in), -0.5f, 0.5f);
    wt b = wt_rand(t, dt, 1, SHAPE(out), -1, 1);
    act y = act_new(t, 3, SHAPE(2, 7, out));
    t->be->linear(t->be, &y.t, &x.t, &w.t, with_bias ? &b.t : NULL);
    act_pull(t, &y);
    double *ref = bag_alloc(t, (size_t)y.n * sizeof(double));
    for (int64_t r = 0; r < 14; r++)
        for (int64_t o = 0; o < out; o++) {
            double s = with_bias ? b.vals[o] : 0.0;
            for (int64_t i = 0; i < in; i++)
                s += (double)x.h[r * in + i] * w.vals[o * in + i];
            ref[r * out + o] = s;
        }
    char name[96];
    snprintf(name, sizeof name, "linear %s%s%s", dt_name(dt), with_bias ? " +bias" : "",
             w4d ? " [o,i,1,1]" : "");
    check(t, name, y.h, ref, y.n, TOL);
}

static void test_conv(ctx *t, md_dtype dt, int64_t cin, int64_t cout, int64_t h, int64_t w,
                      int k, int stride, int pad, int bias, int64_t budget)
{
    md_cpu *c = md_cpu_of(t->be);
    int64_t saved = c->col_budget;
    if (budget)
        c->col_budget = budget;
    const int64_t B = 2;
    int64_t ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
    act x = act_rand(t, 4, SHAPE(B, cin, h, w), -1, 1);
    wt wg = wt_rand(t, dt, 4, SHAPE(cout, cin, k, k), -0.5f, 0.5f);
    wt bs = wt_rand(t, dt, 1, SHAPE(cout), -1, 1);
    act y = act_new(t, 4, SHAPE(B, cout, ho, wo));
    t->be->conv2d(t->be, &y.t, &x.t, &wg.t, bias ? &bs.t : NULL, stride, pad);
    c->col_budget = saved;
    act_pull(t, &y);
    double *ref = bag_alloc(t, (size_t)y.n * sizeof(double));
    for (int64_t n = 0; n < B; n++)
        for (int64_t co = 0; co < cout; co++)
            for (int64_t oy = 0; oy < ho; oy++)
                for (int64_t ox = 0; ox < wo; ox++) {
                    double s = bias ? bs.vals[co] : 0.0;
                    for (int64_t ci = 0; ci < cin; ci++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                    continue;
                                s += (double)x.h[((n * cin + ci) * h + iy) * w + ix] *
                                     wg.vals[((co * cin + ci) * k + ky) * k + kx];
                            }
                    ref[((n * cout + co) * ho + oy) * wo + ox] = s;
                }
    char name[96];
    snprintf(name, sizeof name, "conv %s c%lld->%lld %lldx%lld k%d s%d p%d%s%s", dt_name(dt),
             (long long)cin, (long long)cout, (long long)h, (long long)w, k, stride, pad,
             bias ? " +b" : "", budget ? " banded" : "");
    check(t, name, y.h, ref, y.n, TOL);
}

static void test_group_norm(ctx *t, md_dtype dt, int ndim, const int64_t *shape, int groups,
                            int silu, int inplace, int affine, float offset)
{
    const int64_t B = shape[0], C = shape[1];
    act x = act_rand(t, ndim, shape, offset - 2.0f, offset + 2.0f);
    int64_t S = x.n / (B * C);
    wt g = wt_rand(t, dt, 1, SHAPE(C), 0.5f, 1.5f);
    wt b = wt_rand(t, dt, 1, SHAPE(C), -0.5f, 0.5f);
    double *ref = bag_alloc(t, (size_t)x.n * sizeof(double));
    const float eps = 1e-5f;
    int64_t cpg = C / groups;
    for (int64_t n = 0; n < B; n++)
        for (int64_t gi = 0; gi < groups; gi++) {
            const float *xs = x.h + (n * C + gi * cpg) * S;
            double mean = 0.0, var = 0.0;
            for (int64_t i = 0; i < cpg * S; i++)
                mean += xs[i];
            mean /= (double)(cpg * S);
            for (int64_t i = 0; i < cpg * S; i++)
                var += (xs[i] - mean) * (xs[i] - mean);
            var /= (double)(cpg * S);
            for (int64_t c = 0; c < cpg; c++)
                for (int64_t s = 0; s < S; s++) {
                    int64_t ch = gi * cpg + c;
                    double v = (xs[c * S + s] - mean) / sqrt(var + eps);
                    if (affine)
                        v = v * g.vals[ch] + b.vals[ch];
                    if (silu)
                        v = v / (1.0 + exp(-v));
                    ref[(n * C + ch) * S + s] = v;
                }
        }
    act y = inplace ? x : act_new(t, ndim, shape);
    t->be->group_norm(t->be, &y.t, &x.t, affine ? &g.t : NULL, affine ? &b.t : NULL, groups,
                      eps, silu);
    act_pull(t, &y);
    char name[96];
    snprintf(name, sizeof name, "group_norm %s %dd g%d%s%s%s%s", dt_name(dt), ndim, groups,
             silu ? " silu" : "", inplace ? " inplace" : "", affine ? "" : " noaffine",
             offset != 0.0f ? " offset" : "");
    check(t, name, y.h, ref, y.n, TOL);
}

static void test_layer_norm(ctx *t, md_dtype dt, int64_t rows, int64_t d, int inplace,
                            float offset)
{
    act x = act_rand(t, 2, SHAPE(rows, d), offset - 3.0f, offset + 3.0f);
    wt g = wt_rand(t, dt, 1, SHAPE(d), 0.5f, 1.5f);
    wt b = wt_rand(t, dt, 1, SHAPE(d), -0.5f, 0.5f);
    double *ref = bag_alloc(t, (size_t)x.n * sizeof(double));
    const float eps = 1e-5f;
    for (int64_t r = 0; r < rows; r++) {
        const float *xs = x.h + r * d;
        double mean = 0.0, var = 0.0;
        for (int64_t i = 0; i < d; i++)
            mean += xs[i];
        mean /= (double)d;
        for (int64_t i = 0; i < d; i++)
            var += (xs[i] - mean) * (xs[i] - mean);
        var /= (double)d;
        for (int64_t i = 0; i < d; i++)
            ref[r * d + i] = (xs[i] - mean) / sqrt(var + eps) * g.vals[i] + b.vals[i];
    }
    act y = inplace ? x : act_new(t, 2, SHAPE(rows, d));
    t->be->layer_norm(t->be, &y.t, &x.t, &g.t, &b.t, eps);
    act_pull(t, &y);
    char name[96];
    snprintf(name, sizeof name, "layer_norm %s %lldx%lld%s%s", dt_name(dt), (long long)rows,
             (long long)d, inplace ? " inplace" : "", offset != 0.0f ? " offset" : "");
    check(t, name, y.h, ref, y.n, TOL);
}

static double ref_act(md_act a, double x)
{
    switch (a) {
    case MD_ACT_SILU: return x / (1.0 + exp(-x));
    case MD_ACT_GELU: return 0.5 * x * erfc(-x / sqrt(2.0));
    case MD_ACT_GELU_TANH: {
        /* 0.5 x (1 + tanh u) written as x sigmoid(2u): the same function,
         * without 1 + tanh cancelling to 0 in double for x << 0. */
        double u = sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x);
        return x / (1.0 + exp(-2.0 * u));
    }
    case MD_ACT_QUICK_GELU: return x / (1.0 + exp(-1.702 * x));
    default: return x;
    }
}

static void test_activation(ctx *t, md_act a, int64_t n, int inplace)
{
    static const char *const names[] = {"none", "silu", "gelu", "gelu_tanh", "quick_gelu"};
    act x = act_rand(t, 1, SHAPE(n), -12, 12);
    double *ref = bag_alloc(t, (size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        ref[i] = ref_act(a, x.h[i]);
    act y = inplace ? x : act_new(t, 1, SHAPE(n));
    t->be->activation(t->be, &y.t, &x.t, a);
    act_pull(t, &y);
    /* Per element too: the tails (tiny outputs) must stay accurate. */
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(y.h[i] - ref[i]) / (fabs(ref[i]) + 1e-30);
        if (fabs(ref[i]) > 1e-30 && e > worst && fabs(x.h[i]) < 10.0)
            worst = e;
    }
    char name[96];
    snprintf(name, sizeof name, "activation %s n%lld%s", names[a], (long long)n,
             inplace ? " inplace" : "");
    check(t, name, y.h, ref, n, TOL);
    if (worst > 5e-5) {
        t->failures++;
        printf("  %-56s elementwise rel err %.3g  FAIL\n", name, worst);
    }
}

static void test_geglu(ctx *t)
{
    const int64_t rows = 2 * 13, h = 37;
    act x = act_rand(t, 3, SHAPE(2, 13, 2 * h), -5, 5);
    act y = act_new(t, 3, SHAPE(2, 13, h));
    t->be->geglu(t->be, &y.t, &x.t);
    act_pull(t, &y);
    double *ref = bag_alloc(t, (size_t)y.n * sizeof(double));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < h; i++)
            ref[r * h + i] = x.h[r * 2 * h + i] * ref_act(MD_ACT_GELU, x.h[r * 2 * h + h + i]);
    check(t, "geglu 2x13x74", y.h, ref, y.n, TOL);
}

static void test_attention(ctx *t, int64_t B, int64_t nq, int64_t nk, int64_t c, int64_t cv,
                           int heads, int causal, int64_t blk)
{
    md_cpu *mc = md_cpu_of(t->be);
    int64_t saved = mc->att_block;
    if (blk)
        mc->att_block = blk;
    act q = act_rand(t, 3, SHAPE(B, nq, c), -1, 1);
    act k = act_rand(t, 3, SHAPE(B, nk, c), -1, 1);
    act v = act_rand(t, 3, SHAPE(B, nk, cv), -1, 1);
    act o = act_new(t, 3, SHAPE(B, nq, cv));
    int64_t dh = c / heads, dv = cv / heads;
    float scale = 1.7f / sqrtf((float)dh);
    t->be->attention(t->be, &o.t, &q.t, &k.t, &v.t, heads, scale, causal);
    mc->att_block = saved;
    act_pull(t, &o);
    double *ref = bag_alloc(t, (size_t)o.n * sizeof(double));
    double *p = bag_alloc(t, (size_t)nk * sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int h = 0; h < heads; h++)
            for (int64_t i = 0; i < nq; i++) {
                double max = -INFINITY, sum = 0.0;
                int64_t valid = causal && i + 1 < nk ? i + 1 : nk;
                for (int64_t j = 0; j < valid; j++) {
                    double s = 0.0;
                    for (int64_t d = 0; d < dh; d++)
                        s += (double)q.h[(b * nq + i) * c + h * dh + d] *
                             k.h[(b * nk + j) * c + h * dh + d];
                    p[j] = scale * s;
                    if (p[j] > max)
                        max = p[j];
                }
                for (int64_t j = 0; j < valid; j++)
                    sum += (p[j] = exp(p[j] - max));
                for (int64_t d = 0; d < dv; d++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < valid; j++)
                        acc += p[j] * v.h[(b * nk + j) * cv + h * dv + d];
                    ref[(b * nq + i) * cv + h * dv + d] = acc / sum;
                }
            }
    char name[96];
    snprintf(name, sizeof name, "attention B%lld q%lld k%lld c%lld cv%lld h%d%s%s", (long long)B,
             (long long)nq, (long long)nk, (long long)c, (long long)cv, heads,
             causal ? " causal" : "", blk ? " small blocks" : "");
    check(t, name, o.h, ref, o.n, TOL);
}

/* ---- elementwise and layout ---- */

static void test_elementwise(ctx *t, int64_t n)
{
    act a = act_rand(t, 1, SHAPE(n), -2, 2);
    act b = act_rand(t, 1, SHAPE(n), -2, 2);
    act y = act_new(t, 1, SHAPE(n));
    double *ref = bag_alloc(t, (size_t)n * sizeof(double));

    t->be->add(t->be, &y.t, &a.t, &b.t);
    act_pull(t, &y);
    for (int64_t i = 0; i < n; i++)
        ref[i] = (double)a.h[i] + b.h[i];
    check(t, "add", y.h, ref, n, 1e-7);

    t->be->axpy(t->be, &y.t, &a.t, &b.t, -0.37f);
    act_pull(t, &y);
    for (int64_t i = 0; i < n; i++)
        ref[i] = a.h[i] + -0.37 * b.h[i];
    check(t, "axpy", y.h, ref, n, 1e-6);

    t->be->scale(t->be, &y.t, &a.t, 3.25f);
    act_pull(t, &y);
    for (int64_t i = 0; i < n; i++)
        ref[i] = a.h[i] * 3.25;
    check(t, "scale", y.h, ref, n, 1e-7);

    t->be->fill(t->be, &y.t, 0.625f);
    act_pull(t, &y);
    for (int64_t i = 0; i < n; i++)
        ref[i] = 0.625;
    check(t, "fill", y.h, ref, n, 0);

    t->be->copy(t->be, &y.t, &b.t);
    act_pull(t, &y);
    for (int64_t i = 0; i < n; i++)
        ref[i] = b.h[i];
    check(t, "copy", y.h, ref, n, 0);

    /* aliasing forms the header allows: y == a, y == b */
    t->be->add(t->be, &b.t, &a.t, &b.t);
    t->be->axpy(t->be, &b.t, &b.t, &a.t, 2.0f);
    t->be->scale(t->be, &b.t, &b.t, 0.5f);
    act_pull(t, &b);
    for (int64_t i = 0; i < n; i++)
        ref[i] = (((double)y.h[i] + a.h[i]) + 2.0 * a.h[i]) * 0.5;
    check(t, "add/axpy/scale in place", b.h, ref, n, 1e-6);
}

static void test_channel_bias(ctx *t, int inplace)
{
    const int64_t B = 2, C = 5, S = 3 * 7;
    act x = act_rand(t, 4, SHAPE(B, C, 3, 7), -1, 1);
    act bias = act_rand(t, 2, SHAPE(B, C), -1, 1);
    double *ref = bag_alloc(t, (size_t)x.n * sizeof(double));
    for (int64_t i = 0; i < x.n; i++)
        ref[i] = (double)x.h[i] + bias.h[i / S];
    act y = inplace ? x : act_new(t, 4, SHAPE(B, C, 3, 7));
    t->be->add_channel_bias(t->be, &y.t, &x.t, &bias.t);
    act_pull(t, &y);
    check(t, inplace ? "add_channel_bias inplace" : "add_channel_bias", y.h, ref, y.n, 1e-7);
}

static void test_upsample(ctx *t)
{
    const int64_t B = 2, C = 3, H = 5, W = 7;
    act x = act_rand(t, 4, SHAPE(B, C, H, W), -1, 1);
    act y = act_new(t, 4, SHAPE(B, C, 2 * H, 2 * W));
    t->be->upsample_nearest2x(t->be, &y.t, &x.t);
    act_pull(t, &y);
    double *ref = bag_alloc(t, (size_t)y.n * sizeof(double));
    for (int64_t p = 0; p < B * C; p++)
        for (int64_t i = 0; i < 2 * H; i++)
            for (int64_t j = 0; j < 2 * W; j++)
                ref[(p * 2 * H + i) * 2 * W + j] = x.h[(p * H + i / 2) * W + j / 2];
    check(t, "upsample_nearest2x", y.h, ref, y.n, 0);
}

static void test_concat(ctx *t)
{
    const int64_t B = 2, Ca = 3, Cb = 4, S = 5 * 7;
    act a = act_rand(t, 4, SHAPE(B, Ca, 5, 7), -1, 1);
    act b = act_rand(t, 4, SHAPE(B, Cb, 5, 7), -1, 1);
    act y = act_new(t, 4, SHAPE(B, Ca + Cb, 5, 7));
    t->be->concat_channels(t->be, &y.t, &a.t, &b.t);
    act_pull(t, &y);
    double *ref = bag_alloc(t, (size_t)y.n * sizeof(double));
    for (int64_t n = 0; n < B; n++)
        for (int64_t c = 0; c < Ca + Cb; c++)
            for (int64_t s = 0; s < S; s++)
                ref[(n * (Ca + Cb) + c) * S + s] =
                    c < Ca ? a.h[(n * Ca + c) * S + s] : b.h[(n * Cb + c - Ca) * S + s];
    check(t, "concat_channels", y.h, ref, y.n, 0);

    const int64_t R = 13, Da = 3, Db = 8;
    act a2 = act_rand(t, 2, SHAPE(R, Da), -1, 1);
    act b2 = act_rand(t, 2, SHAPE(R, Db), -1, 1);
    act y2 = act_new(t, 2, SHAPE(R, Da + Db));
    t->be->concat_last(t->be, &y2.t, &a2.t, &b2.t);
    act_pull(t, &y2);
    double *ref2 = bag_alloc(t, (size_t)y2.n * sizeof(double));
    for (int64_t r = 0; r < R; r++)
        for (int64_t d = 0; d < Da + Db; d++)
            ref2[r * (Da + Db) + d] = d < Da ? a2.h[r * Da + d] : b2.h[r * Db + d - Da];
    check(t, "concat_last", y2.h, ref2, y2.n, 0);
}

static void test_tokens(ctx *t, int64_t B, int64_t C, int64_t H, int64_t W)
{
    int64_t S = H * W;
    act x = act_rand(t, 4, SHAPE(B, C, H, W), -1, 1);
    act y = act_new(t, 3, SHAPE(B, S, C));
    t->be->nchw_to_tokens(t->be, &y.t, &x.t);
    act_pull(t, &y);
    double *ref = bag_alloc(t, (size_t)y.n * sizeof(double));
    for (int64_t n = 0; n < B; n++)
        for (int64_t s = 0; s < S; s++)
            for (int64_t c = 0; c < C; c++)
                ref[(n * S + s) * C + c] = x.h[(n * C + c) * S + s];
    char name[96];
    snprintf(name, sizeof name, "nchw_to_tokens %lldx%lldx%lldx%lld", (long long)B, (long long)C,
             (long long)H, (long long)W);
    check(t, name, y.h, ref, y.n, 0);

    act back = act_new(t, 4, SHAPE(B, C, H, W));
    t->be->tokens_to_nchw(t->be, &back.t, &y.t);
    act_pull(t, &back);
    double *ref2 = bag_alloc(t, (size_t)x.n * sizeof(double));
    for (int64_t i = 0; i < x.n; i++)
        ref2[i] = x.h[i];
    snprintf(name, sizeof name, "tokens_to_nchw %lldx%lldx%lldx%lld", (long long)B, (long long)C,
             (long long)H, (long long)W);
    check(t, name, back.h, ref2, x.n, 0);
}

static void test_embedding(ctx *t, md_dtype dt)
{
    const int64_t vocab = 50, dim = 19, n = 11;
    wt table = wt_rand(t, dt, 2, SHAPE(vocab, dim), -1, 1);
    int32_t ids[11];
    for (int64_t i = 0; i < n; i++)
        ids[i] = (int32_t)(rng_next(&t->rng) % vocab);
    ids[3] = (int32_t)(vocab - 1);
    act y = act_new(t, 2, SHAPE(n, dim));
    t->be->embedding(t->be, &y.t, &table.t, ids, n);
    act_pull(t, &y);
    double *ref = bag_alloc(t, (size_t)y.n * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        for (int64_t d = 0; d < dim; d++)
            ref[i * dim + d] = table.vals[ids[i] * dim + d];
    char name[64];
    snprintf(name, sizeof name, "embedding %s", dt_name(dt));
    check(t, name, y.h, ref, y.n, 0);
}

static void test_add_position(ctx *t, md_dtype dt, int64_t d)
{
    const int64_t B = 2, N = 13, Nmax = 20;
    act y = act_rand(t, 3, SHAPE(B, N, d), -1, 1);
    wt pos = wt_rand(t, dt, 2, SHAPE(Nmax, d), -1, 1);
    double *ref = bag_alloc(t, (size_t)y.n * sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < N * d; i++)
            ref[b * N * d + i] = (double)y.h[b * N * d + i] + pos.vals[i];
    t->be->add_position(t->be, &y.t, &pos.t);
    act_pull(t, &y);
    char name[64];
    snprintf(name, sizeof name, "add_position %s d%lld", dt_name(dt), (long long)d);
    check(t, name, y.h, ref, y.n, 1e-7);
}

static void test_moe_rows(ctx *t, int64_t D)
{
    const int64_t R = 29, n = 11;
    act x = act_rand(t, 2, SHAPE(R, D), -1, 1);
    int32_t rows[11];
    float weights[11];
    /* distinct rows: a stride coprime with R */
    for (int64_t i = 0; i < n; i++) {
        rows[i] = (int32_t)((i * 7 + 3) % R);
        weights[i] = rng_uniform(&t->rng, 0, 1);
    }
    act g = act_new(t, 2, SHAPE(n, D));
    t->be->gather_rows(t->be, &g.t, &x.t, rows, n);
    act_pull(t, &g);
    double *ref = bag_alloc(t, (size_t)(R * D) * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        for (int64_t d = 0; d < D; d++)
            ref[i * D + d] = x.h[rows[i] * D + d];
    check(t, "gather_rows", g.h, ref, g.n, 0);

    act y = act_rand(t, 2, SHAPE(R, D), -1, 1);
    for (int64_t i = 0; i < R * D; i++)
        ref[i] = y.h[i];
    for (int64_t i = 0; i < n; i++)
        for (int64_t d = 0; d < D; d++)
            ref[rows[i] * D + d] += (double)weights[i] * g.h[i * D + d];
    t->be->scatter_add_rows(t->be, &y.t, &g.t, rows, weights, n);
    act_pull(t, &y);
    check(t, "scatter_add_rows", y.h, ref, y.n, 1e-6);

    float rw[29];
    for (int64_t r = 0; r < R; r++)
        rw[r] = rng_uniform(&t->rng, -1, 1);
    for (int64_t r = 0; r < R; r++)
        for (int64_t d = 0; d < D; d++)
            ref[r * D + d] = (double)y.h[r * D + d] + (double)rw[r] * x.h[r * D + d];
    t->be->add_rows_weighted(t->be, &y.t, &x.t, rw);
    act_pull(t, &y);
    check(t, "add_rows_weighted", y.h, ref, y.n, 1e-6);
}

/* ---- memory entries ---- */

static void test_memory(ctx *t)
{
    md_error err;
    md_tensor w = {MD_I64, 1, {4, 0, 0, 0}, NULL};
    int64_t storage[4] = {0};
    w.data = storage;
    md_status st = t->be->prepare_weight(t->be, &w, &err);
    t->checks++;
    if (st != MD_ERR_UNSUPPORTED || !strstr(err.msg, "I64")) {
        t->failures++;
        printf("  prepare_weight(I64) not rejected  FAIL\n");
    }
    /* a shape whose byte size overflows: reported as data == NULL */
    md_tensor huge = t->be->new_tensor(t->be, 2, SHAPE((int64_t)1 << 40, (int64_t)1 << 40));
    t->checks++;
    if (huge.data) {
        t->failures++;
        printf("  new_tensor(overflowing shape) returned data  FAIL\n");
    }
    md_tensor a = t->be->new_tensor(t->be, 2, SHAPE(3, 5));
    t->checks++;
    if (!a.data || a.dtype != MD_F32 || a.ndim != 2 || a.shape[1] != 5 ||
        ((uintptr_t)a.data & 63) != 0) {
        t->failures++;
        printf("  new_tensor(3x5) wrong  FAIL\n");
    }
}

/* Each case frees its activations and host buffers when it ends. */
#define CASE(call)                                                                           \
    do {                                                                                     \
        size_t mark_ = t->be->arena_mark(t->be);                                             \
        call;                                                                                \
        t->be->arena_reset(t->be, mark_);                                                    \
        bag_clear(t);                                                                        \
    } while (0)

static void run_all(ctx *t)
{
    static const md_dtype dts[] = {MD_F32, MD_F16, MD_BF16};
    for (int i = 0; i < 3; i++) {
        CASE(test_linear(t, dts[i], 1, 0));
        CASE(test_linear(t, dts[i], 0, i == 1));
    }
    for (int i = 0; i < 2; i++) {
        md_dtype dt = dts[i];
        for (int k = 1; k <= 3; k += 2)
            for (int s = 1; s <= 2; s++)
                for (int p = 0; p <= 1; p++)
                    CASE(test_conv(t, dt, 3, 4, 5, 7, k, s, p, (k + s + p) % 2, 0));
    }
    CASE(test_conv(t, MD_F32, 5, 6, 9, 11, 3, 1, 1, 1, 5 * 9 * 11 * 3)); /* bands of 3 rows, last partial */
    CASE(test_conv(t, MD_F16, 5, 6, 9, 11, 3, 2, 1, 1, 1));               /* one row per band */
    CASE(test_conv(t, MD_F32, 4, 3, 8, 6, 4, 2, 1, 1, 0));                /* general k=4 */
    CASE(test_conv(t, MD_F32, 16, 8, 24, 20, 3, 1, 1, 1, 0));             /* parallel im2col */

    CASE(test_group_norm(t, MD_F32, 4, SHAPE(2, 6, 5, 7), 3, 0, 0, 1, 0.0f));
    CASE(test_group_norm(t, MD_F16, 4, SHAPE(2, 6, 5, 7), 3, 1, 1, 1, 0.0f));
    CASE(test_group_norm(t, MD_F32, 3, SHAPE(2, 6, 35), 2, 1, 0, 0, 0.0f));
    CASE(test_group_norm(t, MD_BF16, 4, SHAPE(2, 32, 16, 17), 8, 1, 0, 1, 0.0f));
    CASE(test_group_norm(t, MD_F32, 4, SHAPE(1, 4, 9, 9), 2, 0, 0, 1, 300.0f));

    CASE(test_layer_norm(t, MD_F32, 13, 77, 0, 0.0f));
    CASE(test_layer_norm(t, MD_F16, 13, 77, 1, 0.0f));
    CASE(test_layer_norm(t, MD_F32, 300, 64, 0, 0.0f));
    CASE(test_layer_norm(t, MD_F32, 5, 33, 0, 500.0f));

    for (int a = MD_ACT_NONE; a <= MD_ACT_QUICK_GELU; a++) {
        CASE(test_activation(t, (md_act)a, 1003, 0));
        CASE(test_activation(t, (md_act)a, 70001, 1));
    }
    test_geglu(t);

    CASE(test_attention(t, 2, 13, 77, 12, 9, 3, 0, 0));
    CASE(test_attention(t, 2, 13, 77, 12, 9, 3, 1, 0));
    CASE(test_attention(t, 1, 77, 77, 24, 24, 2, 1, 0));
    CASE(test_attention(t, 2, 130, 77, 8, 16, 1, 0, 0));
    CASE(test_attention(t, 1, 150, 70, 6, 6, 2, 1, 16));  /* causal, Nq > Nk, partial last block */
    CASE(test_attention(t, 1, 40, 200, 10, 5, 5, 1, 7));  /* causal, Nq < Nk */
    CASE(test_attention(t, 2, 77, 77, 12, 12, 3, 1, 10)); /* causal, blocks straddle the diagonal */
    CASE(test_attention(t, 2, 300, 200, 64, 64, 8, 0, 0));

    CASE(test_elementwise(t, 1001));
    CASE(test_elementwise(t, 100003));
    CASE(test_channel_bias(t, 0));
    CASE(test_channel_bias(t, 1));
    test_upsample(t);
    test_concat(t);
    CASE(test_tokens(t, 2, 3, 5, 7));
    CASE(test_tokens(t, 2, 40, 9, 11));
    for (int i = 0; i < 3; i++)
        CASE(test_embedding(t, dts[i]));
    CASE(test_add_position(t, MD_F16, 24));
    CASE(test_add_position(t, MD_F32, 300));
    CASE(test_moe_rows(t, 19));
    CASE(test_moe_rows(t, 3000));
    test_memory(t);
}

int main(void)
{
    int failures = 0, checks = 0;
    static const int thread_counts[] = {1, 3};
    for (int i = 0; i < 2; i++) {
        ctx t;
        memset(&t, 0, sizeof t);
        t.rng.s = 12345 + (uint64_t)i;
        md_error err;
        if (md_backend_cpu_create(&t.be, thread_counts[i], &err) != MD_OK) {
            fprintf(stderr, "cpu backend: %s\n", err.msg);
            return 1;
        }
        if (i == 0) {
            md_cpu_of(t.be)->simd = 0;
            md_cpu_of(t.be)->f16c = 0;
        }
        printf("threads=%d simd=%d f16c=%d\n", thread_counts[i], md_cpu_of(t.be)->simd,
               md_cpu_of(t.be)->f16c);
        size_t mark = t.be->arena_mark(t.be);
        run_all(&t);
        t.be->arena_reset(t.be, mark);
        bag_clear(&t);
        md_backend_destroy(t.be);
        failures += t.failures;
        checks += t.checks;
    }
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
