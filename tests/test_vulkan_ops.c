/* Every Vulkan backend op against the CPU backend on small odd shapes
 * (weights F32, F16 and BF16), whole MoE layers routed on the device
 * against the CPU's host routing, plus views at unaligned offsets, the
 * barrier tracking, the arena, error reporting and the profile; with the
 * validation layers (synchronization validation included) on, asserting
 * that they report nothing. Exit 77 (ctest: skipped) only when there is no
 * Vulkan device at all. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/weights.h"
#include "moe/moe.h"
#include "runtime/backend.h"
#include "runtime/vulkan_api.h"
#include "test_support.h"

/* The validation layer (C++) leaks inside its own allocations, which
 * LeakSanitizer would report; sanitizer builds check this code's memory,
 * release builds check the API usage. */
#if defined(__SANITIZE_ADDRESS__)
#define MD_TEST_VALIDATION 0
#else
#define MD_TEST_VALIDATION 1
#endif

typedef struct rng {
    uint64_t s;
} rng;

static float uniform(rng *r, float lo, float hi)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)((z >> 40) * (1.0 / 16777216.0));
}

typedef struct ctx {
    md_backend *cpu, *vk;
    rng rng;
    int failures, checks;
    md_test_bag bag; /* host buffers freed after each case */
} ctx;

/* The same tensor on both backends. */
typedef struct pair {
    md_tensor c, v;
} pair;

static void *bag_alloc(ctx *t, size_t bytes)
{
    return md_test_bag_alloc(&t->bag, bytes);
}

static void bag_clear(ctx *t)
{
    md_test_bag_clear(&t->bag);
}

/* An activation on both backends holding the same random values. */
static pair act(ctx *t, int ndim, const int64_t *shape, float lo, float hi)
{
    pair p = {t->cpu->new_tensor(t->cpu, ndim, shape), t->vk->new_tensor(t->vk, ndim, shape)};
    if (!p.c.data || !p.v.data) {
        fprintf(stderr, "test: activation allocation failed\n");
        exit(2);
    }
    int64_t n = md_test_numel(ndim, shape);
    float *h = bag_alloc(t, (size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        h[i] = uniform(&t->rng, lo, hi);
    t->cpu->upload(t->cpu, &p.c, h);
    t->vk->upload(t->vk, &p.v, h);
    return p;
}

/* A weight stored as dt, prepared on both backends. */
static pair weight(ctx *t, md_dtype dt, int ndim, const int64_t *shape, float lo, float hi)
{
    int64_t n = md_test_numel(ndim, shape);
    pair p;
    memset(&p, 0, sizeof p);
    p.c.dtype = dt;
    p.c.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        p.c.shape[i] = shape[i];
    if (dt == MD_F32) {
        float *h = bag_alloc(t, (size_t)n * 4);
        for (int64_t i = 0; i < n; i++)
            h[i] = uniform(&t->rng, lo, hi);
        p.c.data = h;
    } else {
        uint16_t *h = bag_alloc(t, (size_t)n * 2);
        for (int64_t i = 0; i < n; i++) {
            float f = uniform(&t->rng, lo, hi);
            if (dt == MD_F16) {
                h[i] = md_f32_to_f16(f);
            } else {
                uint32_t u;
                memcpy(&u, &f, 4);
                h[i] = (uint16_t)(u >> 16);
            }
        }
        p.c.data = h;
    }
    p.v = p.c;
    md_error err = {0};
    if (t->cpu->prepare_weight(t->cpu, &p.c, &err) != MD_OK ||
        t->vk->prepare_weight(t->vk, &p.v, &err) != MD_OK) {
        fprintf(stderr, "test: prepare_weight: %s\n", err.msg);
        exit(2);
    }
    return p;
}

/* max|vk - cpu| / max|cpu| (infinite when a NaN appears) */
static double rel_err(ctx *t, const pair *y)
{
    int64_t n = md_tensor_numel(&y->c);
    float *a = malloc((size_t)(n ? n : 1) * 4), *b = malloc((size_t)(n ? n : 1) * 4);
    if (!a || !b) {
        fprintf(stderr, "test: out of memory\n");
        exit(2);
    }
    t->cpu->download(t->cpu, &y->c, a);
    t->vk->download(t->vk, &y->v, b);
    double maxdiff = 0, maxref = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= maxdiff))
            maxdiff = isnan(d) ? INFINITY : d;
        maxref = fmax(maxref, fabs(a[i]));
    }
    free(a);
    free(b);
    return maxref > 0 ? maxdiff / maxref : maxdiff;
}

/* rel_err <= tol */
static void check(ctx *t, const char *what, const pair *y, double tol)
{
    double err = rel_err(t, y);
    t->checks++;
    if (!(err <= tol)) {
        t->failures++;
        printf("FAIL %-44s rel err %.3e > %.1e\n", what, err, tol);
    }
}

static pair out(ctx *t, int ndim, const int64_t *shape)
{
    return act(t, ndim, shape, -1, 1); /* garbage the op must overwrite */
}

static void begin_case(ctx *t, size_t *mc, size_t *mv)
{
    *mc = t->cpu->arena_mark(t->cpu);
    *mv = t->vk->arena_mark(t->vk);
}

static void end_case(ctx *t, size_t mc, size_t mv)
{
    t->cpu->arena_reset(t->cpu, mc);
    t->vk->arena_reset(t->vk, mv);
    bag_clear(t);
}

static const md_dtype dtypes[3] = {MD_F32, MD_F16, MD_BF16};

static void test_linear(ctx *t)
{
    static const int64_t cases[][3] = {{1, 1, 1}, {7, 13, 5}, {65, 70, 67}, {130, 33, 129}, {3, 200, 2}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (int d = 0; d < 3; d++) {
            size_t mc, mv;
            begin_case(t, &mc, &mv);
            int64_t m = cases[c][0], k = cases[c][1], n = cases[c][2];
            int bias = (c + (size_t)d) % 2 == 0;
            pair x = act(t, 3, (int64_t[]){1, m, k}, -1, 1);
            pair w = weight(t, dtypes[d], 2, (int64_t[]){n, k}, -0.5f, 0.5f);
            pair b = weight(t, dtypes[d], 1, (int64_t[]){n}, -1, 1);
            pair y = out(t, 3, (int64_t[]){1, m, n});
            t->cpu->linear(t->cpu, &y.c, &x.c, &w.c, bias ? &b.c : NULL);
            t->vk->linear(t->vk, &y.v, &x.v, &w.v, bias ? &b.v : NULL);
            char what[96];
            snprintf(what, sizeof what, "linear %lldx%lld->%lld %s%s", (long long)m, (long long)k,
                     (long long)n, md_dtype_name(dtypes[d]), bias ? " +bias" : "");
            check(t, what, &y, 2e-6);
            end_case(t, mc, mv);
        }
}

static void test_conv(ctx *t)
{
    /* B, Cin, H, W, Cout, k, stride, pad */
    static const int cases[][8] = {{1, 3, 5, 7, 4, 3, 1, 1}, {2, 5, 9, 8, 6, 3, 2, 1},
                                   {1, 8, 6, 6, 70, 1, 1, 0}, {2, 4, 7, 5, 3, 4, 2, 1},
                                   {1, 17, 3, 3, 9, 3, 1, 0}, {1, 2, 11, 13, 65, 3, 1, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        size_t mc, mv;
        begin_case(t, &mc, &mv);
        const int *p = cases[c];
        int64_t ho = (p[2] + 2 * p[7] - p[5]) / p[6] + 1, wo = (p[3] + 2 * p[7] - p[5]) / p[6] + 1;
        md_dtype dt = dtypes[c % 3];
        pair x = act(t, 4, (int64_t[]){p[0], p[1], p[2], p[3]}, -1, 1);
        pair w = weight(t, dt, 4, (int64_t[]){p[4], p[1], p[5], p[5]}, -0.5f, 0.5f);
        pair b = weight(t, dt, 1, (int64_t[]){p[4]}, -1, 1);
        pair y = out(t, 4, (int64_t[]){p[0], p[4], ho, wo});
        int bias = c != 4;
        t->cpu->conv2d(t->cpu, &y.c, &x.c, &w.c, bias ? &b.c : NULL, p[6], p[7]);
        t->vk->conv2d(t->vk, &y.v, &x.v, &w.v, bias ? &b.v : NULL, p[6], p[7]);
        char what[96];
        snprintf(what, sizeof what, "conv2d %dx%d s%d p%d cin %d cout %d %s", p[5], p[5], p[6],
                 p[7], p[1], p[4], md_dtype_name(dt));
        check(t, what, &y, 2e-6);
        end_case(t, mc, mv);
    }
}

static void test_norms(ctx *t)
{
    /* B, C, H, W, groups */
    static const int gn[][5] = {{2, 6, 5, 3, 3}, {1, 32, 4, 4, 32}, {1, 8, 9, 7, 2}};
    for (size_t c = 0; c < 3; c++)
        for (int silu = 0; silu < 2; silu++) {
            size_t mc, mv;
            begin_case(t, &mc, &mv);
            const int *p = gn[c];
            int64_t shape[4] = {p[0], p[1], p[2], p[3]};
            pair x = act(t, 4, shape, 2.0f, 4.0f); /* a mean far from 0 */
            pair g = weight(t, dtypes[c], 1, (int64_t[]){p[1]}, 0.5f, 1.5f);
            pair b = weight(t, dtypes[c], 1, (int64_t[]){p[1]}, -1, 1);
            pair y = out(t, 4, shape);
            int affine = c != 2;
            t->cpu->group_norm(t->cpu, &y.c, &x.c, affine ? &g.c : NULL, affine ? &b.c : NULL,
                               p[4], 1e-5f, silu);
            t->vk->group_norm(t->vk, &y.v, &x.v, affine ? &g.v : NULL, affine ? &b.v : NULL,
                              p[4], 1e-5f, silu);
            check(t, silu ? "group_norm+silu" : "group_norm", &y, 1e-5);
            /* in place */
            t->cpu->group_norm(t->cpu, &x.c, &x.c, &g.c, &b.c, p[4], 1e-6f, silu);
            t->vk->group_norm(t->vk, &x.v, &x.v, &g.v, &b.v, p[4], 1e-6f, silu);
            check(t, "group_norm in place", &x, 1e-5);
            end_case(t, mc, mv);
        }
    static const int ln[][2] = {{5, 7}, {3, 300}, {1, 1}, {77, 32}};
    for (size_t c = 0; c < 4; c++) {
        size_t mc, mv;
        begin_case(t, &mc, &mv);
        int64_t shape[2] = {ln[c][0], ln[c][1]};
        pair x = act(t, 2, shape, -3.0f, 5.0f);
        pair g = weight(t, dtypes[c % 3], 1, (int64_t[]){ln[c][1]}, 0.5f, 1.5f);
        pair b = weight(t, dtypes[c % 3], 1, (int64_t[]){ln[c][1]}, -1, 1);
        pair y = out(t, 2, shape);
        t->cpu->layer_norm(t->cpu, &y.c, &x.c, &g.c, &b.c, 1e-5f);
        t->vk->layer_norm(t->vk, &y.v, &x.v, &g.v, &b.v, 1e-5f);
        check(t, "layer_norm", &y, 1e-5);
        t->cpu->layer_norm(t->cpu, &x.c, &x.c, NULL, NULL, 1e-5f);
        t->vk->layer_norm(t->vk, &x.v, &x.v, NULL, NULL, 1e-5f);
        check(t, "layer_norm in place, no affine", &x, 1e-5);
        end_case(t, mc, mv);
    }
}

static void test_activations(ctx *t)
{
    static const char *const names[] = {"identity", "silu", "gelu", "gelu_tanh", "quick_gelu"};
    for (int a = MD_ACT_NONE; a <= MD_ACT_QUICK_GELU; a++) {
        size_t mc, mv;
        begin_case(t, &mc, &mv);
        int64_t shape[2] = {7, 143};
        pair x = act(t, 2, shape, -8, 8);
        pair y = out(t, 2, shape);
        t->cpu->activation(t->cpu, &y.c, &x.c, (md_act)a);
        t->vk->activation(t->vk, &y.v, &x.v, (md_act)a);
        char what[64];
        snprintf(what, sizeof what, "activation %s", names[a]);
        check(t, what, &y, 2e-6);
        end_case(t, mc, mv);
    }
    size_t mc, mv;
    begin_case(t, &mc, &mv);
    pair x = act(t, 3, (int64_t[]){2, 5, 26}, -5, 5);
    pair y = out(t, 3, (int64_t[]){2, 5, 13});
    t->cpu->geglu(t->cpu, &y.c, &x.c);
    t->vk->geglu(t->vk, &y.v, &x.v);
    check(t, "geglu", &y, 2e-6);
    end_case(t, mc, mv);
}

/* Attention on both backends: p = {batch, nq, nk, q/k channels, v channels,
 * heads, causal}; random q, k in [-2, 2], v in [-1, 1]. */
static pair attention_pair(ctx *t, const int *p)
{
    pair q = act(t, 3, (int64_t[]){p[0], p[1], p[3]}, -2, 2);
    pair k = act(t, 3, (int64_t[]){p[0], p[2], p[3]}, -2, 2);
    pair v = act(t, 3, (int64_t[]){p[0], p[2], p[4]}, -1, 1);
    pair o = out(t, 3, (int64_t[]){p[0], p[1], p[4]});
    float scale = 1.0f / sqrtf((float)(p[3] / p[5]));
    t->cpu->attention(t->cpu, &o.c, &q.c, &k.c, &v.c, p[5], scale, p[6]);
    t->vk->attention(t->vk, &o.v, &q.v, &k.v, &v.v, p[5], scale, p[6]);
    return o;
}

static void test_attention(ctx *t)
{
    /* B, Nq, Nk, C, Cv, heads, causal */
    static const int cases[][7] = {{1, 5, 7, 8, 8, 2, 0},      {2, 33, 17, 64, 64, 1, 0},
                                   {1, 77, 77, 32, 32, 4, 1},  {2, 20, 9, 80, 40, 2, 0},
                                   {1, 17, 19, 160, 160, 1, 0}, {1, 3, 5, 6, 9, 3, 1},
                                   {1, 40, 77, 40, 40, 1, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        size_t mc, mv;
        begin_case(t, &mc, &mv);
        const int *p = cases[c];
        pair o = attention_pair(t, p);
        char what[96];
        snprintf(what, sizeof what, "attention nq %d nk %d d %d dv %d%s", p[1], p[2], p[3] / p[5],
                 p[4] / p[5], p[6] ? " causal" : "");
        check(t, what, &o, 5e-6);
        end_case(t, mc, mv);
    }
    /* no keys: zeros */
    size_t mc, mv;
    begin_case(t, &mc, &mv);
    pair q = act(t, 3, (int64_t[]){1, 4, 8}, -1, 1);
    pair k = act(t, 3, (int64_t[]){1, 1, 8}, -1, 1);
    k.c.shape[1] = k.v.shape[1] = 0;
    pair o = out(t, 3, (int64_t[]){1, 4, 8});
    t->cpu->attention(t->cpu, &o.c, &q.c, &k.c, &k.c, 2, 1.0f, 0);
    t->vk->attention(t->vk, &o.v, &q.v, &k.v, &k.v, 2, 1.0f, 0);
    check(t, "attention without keys", &o, 0);
    end_case(t, mc, mv);
}

static void test_elementwise(ctx *t)
{
    size_t mc, mv;
    begin_case(t, &mc, &mv);
    int64_t shape[4] = {2, 3, 5, 7};
    pair a = act(t, 4, shape, -1, 1), b = act(t, 4, shape, -1, 1), y = out(t, 4, shape);
    t->cpu->add(t->cpu, &y.c, &a.c, &b.c);
    t->vk->add(t->vk, &y.v, &a.v, &b.v);
    check(t, "add", &y, 0);
    t->cpu->axpy(t->cpu, &y.c, &y.c, &b.c, -0.37f);
    t->vk->axpy(t->vk, &y.v, &y.v, &b.v, -0.37f);
    check(t, "axpy in place", &y, 1e-6);
    t->cpu->scale(t->cpu, &a.c, &a.c, 3.5f);
    t->vk->scale(t->vk, &a.v, &a.v, 3.5f);
    check(t, "scale in place", &a, 0);
    t->cpu->copy(t->cpu, &y.c, &a.c);
    t->vk->copy(t->vk, &y.v, &a.v);
    check(t, "copy", &y, 0);
    t->cpu->fill(t->cpu, &b.c, -2.25f);
    t->vk->fill(t->vk, &b.v, -2.25f);
    check(t, "fill", &b, 0);
    pair bias = act(t, 2, (int64_t[]){2, 3}, -1, 1);
    t->cpu->add_channel_bias(t->cpu, &y.c, &a.c, &bias.c);
    t->vk->add_channel_bias(t->vk, &y.v, &a.v, &bias.v);
    check(t, "add_channel_bias", &y, 0);
    end_case(t, mc, mv);
}

static void test_layout(ctx *t)
{
    static const int up[][6] = {{1, 3, 4, 5, 8, 10}, {2, 2, 4, 5, 7, 9}, {1, 1, 1, 1, 2, 2}};
    for (int c = 0; c < 3; c++) {
        size_t mc, mv;
        begin_case(t, &mc, &mv);
        const int *p = up[c];
        pair x = act(t, 4, (int64_t[]){p[0], p[1], p[2], p[3]}, -1, 1);
        pair y = out(t, 4, (int64_t[]){p[0], p[1], p[4], p[5]});
        t->cpu->upsample_nearest2x(t->cpu, &y.c, &x.c);
        t->vk->upsample_nearest2x(t->vk, &y.v, &x.v);
        check(t, "upsample_nearest2x", &y, 0);
        end_case(t, mc, mv);
    }
    size_t mc, mv;
    begin_case(t, &mc, &mv);
    pair a = act(t, 4, (int64_t[]){2, 3, 4, 5}, -1, 1), b = act(t, 4, (int64_t[]){2, 5, 4, 5}, -1, 1);
    pair y = out(t, 4, (int64_t[]){2, 8, 4, 5});
    t->cpu->concat_channels(t->cpu, &y.c, &a.c, &b.c);
    t->vk->concat_channels(t->vk, &y.v, &a.v, &b.v);
    check(t, "concat_channels", &y, 0);
    pair la = act(t, 2, (int64_t[]){7, 3}, -1, 1), lb = act(t, 2, (int64_t[]){7, 11}, -1, 1);
    pair ly = out(t, 2, (int64_t[]){7, 14});
    t->cpu->concat_last(t->cpu, &ly.c, &la.c, &lb.c);
    t->vk->concat_last(t->vk, &ly.v, &la.v, &lb.v);
    check(t, "concat_last", &ly, 0);
    static const int tr[][4] = {{2, 5, 7, 9}, {1, 40, 33, 3}, {1, 1, 1, 1}};
    for (int c = 0; c < 3; c++) {
        const int *p = tr[c];
        pair x = act(t, 4, (int64_t[]){p[0], p[1], p[2], p[3]}, -1, 1);
        pair tok = out(t, 3, (int64_t[]){p[0], p[2] * p[3], p[1]});
        pair back = out(t, 4, (int64_t[]){p[0], p[1], p[2], p[3]});
        t->cpu->nchw_to_tokens(t->cpu, &tok.c, &x.c);
        t->vk->nchw_to_tokens(t->vk, &tok.v, &x.v);
        check(t, "nchw_to_tokens", &tok, 0);
        t->cpu->tokens_to_nchw(t->cpu, &back.c, &tok.c);
        t->vk->tokens_to_nchw(t->vk, &back.v, &tok.v);
        check(t, "tokens_to_nchw", &back, 0);
    }
    for (int d = 0; d < 3; d++) {
        pair table = weight(t, dtypes[d], 2, (int64_t[]){50, 9}, -1, 1);
        int32_t ids[6] = {0, 49, 7, -1, 50, 7};
        pair e = out(t, 2, (int64_t[]){6, 9});
        t->cpu->embedding(t->cpu, &e.c, &table.c, ids, 6);
        t->vk->embedding(t->vk, &e.v, &table.v, ids, 6);
        check(t, "embedding (ids out of range too)", &e, 0);
        pair pos = weight(t, dtypes[d], 2, (int64_t[]){7, 9}, -1, 1);
        pair ye = act(t, 3, (int64_t[]){2, 5, 9}, -1, 1);
        t->cpu->add_position(t->cpu, &ye.c, &pos.c);
        t->vk->add_position(t->vk, &ye.v, &pos.v);
        check(t, "add_position", &ye, 0);
    }
    end_case(t, mc, mv);
}

static void test_moe_rows(ctx *t)
{
    size_t mc, mv;
    begin_case(t, &mc, &mv);
    pair x = act(t, 2, (int64_t[]){9, 13}, -1, 1);
    int32_t rows[4] = {8, 0, 3, 4};
    float w[4] = {0.25f, -1.5f, 0.75f, 2.0f};
    pair g = out(t, 2, (int64_t[]){4, 13});
    t->cpu->gather_rows(t->cpu, &g.c, &x.c, rows, 4);
    t->vk->gather_rows(t->vk, &g.v, &x.v, rows, 4);
    check(t, "gather_rows", &g, 0);
    pair y = act(t, 2, (int64_t[]){9, 13}, -1, 1);
    t->cpu->scatter_add_rows(t->cpu, &y.c, &g.c, rows, w, 4);
    t->vk->scatter_add_rows(t->vk, &y.v, &g.v, rows, w, 4);
    check(t, "scatter_add_rows", &y, 1e-6);
    t->cpu->scatter_add_rows(t->cpu, &y.c, &g.c, rows, NULL, 3);
    t->vk->scatter_add_rows(t->vk, &y.v, &g.v, rows, NULL, 3);
    check(t, "scatter_add_rows without weights", &y, 1e-6);
    float rw[9] = {1, 2, 3, -1, 0.5f, 0, 7, 0.125f, -2};
    t->cpu->add_rows_weighted(t->cpu, &y.c, &x.c, rw);
    t->vk->add_rows_weighted(t->vk, &y.v, &x.v, rw);
    check(t, "add_rows_weighted", &y, 1e-6);
    end_case(t, mc, mv);
}

static int rand_int(ctx *t, int lo, int hi) /* inclusive */
{
    int v = lo + (int)uniform(&t->rng, 0.0f, (float)(hi - lo + 1));
    return v > hi ? hi : v;
}

/* Shapes drawn from the seeded generator (the same every run): sizes that
 * no hand-written case thought of, tile edges included. */
static void test_random_shapes(ctx *t)
{
    for (int i = 0; i < 6; i++) {
        size_t mc, mv;
        begin_case(t, &mc, &mv);
        int m = rand_int(t, 1, 150), k = rand_int(t, 1, 90), n = rand_int(t, 1, 150);
        md_dtype dt = dtypes[i % 3];
        pair x = act(t, 2, (int64_t[]){m, k}, -1, 1);
        pair w = weight(t, dt, 2, (int64_t[]){n, k}, -0.5f, 0.5f);
        pair b = weight(t, dt, 1, (int64_t[]){n}, -1, 1);
        pair y = out(t, 2, (int64_t[]){m, n});
        t->cpu->linear(t->cpu, &y.c, &x.c, &w.c, &b.c);
        t->vk->linear(t->vk, &y.v, &x.v, &w.v, &b.v);
        char what[96];
        snprintf(what, sizeof what, "random linear %dx%d->%d %s", m, k, n, md_dtype_name(dt));
        check(t, what, &y, 2e-6);
        end_case(t, mc, mv);
    }
    for (int i = 0; i < 4; i++) {
        size_t mc, mv;
        begin_case(t, &mc, &mv);
        int bt = rand_int(t, 1, 2), cin = rand_int(t, 1, 12), h = rand_int(t, 3, 12);
        int wd = rand_int(t, 3, 12), cout = rand_int(t, 1, 70), k = 1 + 2 * rand_int(t, 0, 1);
        int stride = rand_int(t, 1, 2), pad = k / 2;
        int ho = (h + 2 * pad - k) / stride + 1, wo = (wd + 2 * pad - k) / stride + 1;
        md_dtype dt = dtypes[i % 3];
        pair x = act(t, 4, (int64_t[]){bt, cin, h, wd}, -1, 1);
        pair w = weight(t, dt, 4, (int64_t[]){cout, cin, k, k}, -0.5f, 0.5f);
        pair b = weight(t, dt, 1, (int64_t[]){cout}, -1, 1);
        pair y = out(t, 4, (int64_t[]){bt, cout, ho, wo});
        t->cpu->conv2d(t->cpu, &y.c, &x.c, &w.c, &b.c, stride, pad);
        t->vk->conv2d(t->vk, &y.v, &x.v, &w.v, &b.v, stride, pad);
        char what[96];
        snprintf(what, sizeof what, "random conv2d %dx%d s%d [%d,%d,%d,%d]->%d", k, k, stride, bt,
                 cin, h, wd, cout);
        check(t, what, &y, 2e-6);
        end_case(t, mc, mv);
    }
    for (int i = 0; i < 4; i++) {
        size_t mc, mv;
        begin_case(t, &mc, &mv);
        int heads = rand_int(t, 1, 4), d = rand_int(t, 1, 48), dv = rand_int(t, 1, 48);
        int nq = rand_int(t, 1, 60), nk = rand_int(t, 1, 60), causal = i % 2;
        if (causal)
            nk = nq;
        pair q = act(t, 3, (int64_t[]){1, nq, heads * d}, -2, 2);
        pair k = act(t, 3, (int64_t[]){1, nk, heads * d}, -2, 2);
        pair v = act(t, 3, (int64_t[]){1, nk, heads * dv}, -1, 1);
        pair o = out(t, 3, (int64_t[]){1, nq, heads * dv});
        float scale = 1.0f / sqrtf((float)d);
        t->cpu->attention(t->cpu, &o.c, &q.c, &k.c, &v.c, heads, scale, causal);
        t->vk->attention(t->vk, &o.v, &q.v, &k.v, &v.v, heads, scale, causal);
        char what[96];
        snprintf(what, sizeof what, "random attention h%d d%d dv%d nq%d nk%d%s", heads, d, dv, nq,
                 nk, causal ? " causal" : "");
        check(t, what, &o, 5e-6);
        end_case(t, mc, mv);
    }
    for (int i = 0; i < 3; i++) {
        size_t mc, mv;
        begin_case(t, &mc, &mv);
        int groups = rand_int(t, 1, 6), cpg = rand_int(t, 1, 5), bt = rand_int(t, 1, 2);
        int h = rand_int(t, 1, 9), wd = rand_int(t, 1, 9);
        int64_t shape[4] = {bt, groups * cpg, h, wd};
        pair x = act(t, 4, shape, -1, 3);
        pair g = weight(t, dtypes[i], 1, (int64_t[]){groups * cpg}, 0.5f, 1.5f);
        pair b = weight(t, dtypes[i], 1, (int64_t[]){groups * cpg}, -1, 1);
        pair y = out(t, 4, shape);
        t->cpu->group_norm(t->cpu, &y.c, &x.c, &g.c, &b.c, groups, 1e-5f, i % 2);
        t->vk->group_norm(t->vk, &y.v, &x.v, &g.v, &b.v, groups, 1e-5f, i % 2);
        char what[96];
        snprintf(what, sizeof what, "random group_norm [%d,%d,%d,%d] g%d", bt, groups * cpg, h, wd,
                 groups);
        check(t, what, &y, 1e-5);
        end_case(t, mc, mv);
    }
}

/* Views: other shapes over the same data, and sub-ranges starting at an
 * offset that is no multiple of the binding alignment. */
static void test_views(ctx *t)
{
    size_t mc, mv;
    begin_case(t, &mc, &mv);
    pair big = act(t, 1, (int64_t[]){200}, -1, 1);
    pair y = out(t, 2, (int64_t[]){5, 7});
    pair a = big, b = big;
    a.c.ndim = a.v.ndim = b.c.ndim = b.v.ndim = 2;
    a.c.shape[0] = a.v.shape[0] = b.c.shape[0] = b.v.shape[0] = 5;
    a.c.shape[1] = a.v.shape[1] = b.c.shape[1] = b.v.shape[1] = 7;
    a.c.data = (float *)big.c.data + 3;
    a.v.data = (float *)big.v.data + 3;
    b.c.data = (float *)big.c.data + 101;
    b.v.data = (float *)big.v.data + 101;
    t->cpu->add(t->cpu, &y.c, &a.c, &b.c);
    t->vk->add(t->vk, &y.v, &a.v, &b.v);
    check(t, "add of two unaligned views", &y, 0);
    pair w = weight(t, MD_F16, 2, (int64_t[]){4, 7}, -1, 1);
    pair lin = out(t, 2, (int64_t[]){5, 4});
    /* a weight view starting at an odd half-float element */
    pair wv = w;
    wv.c.shape[0] = wv.v.shape[0] = 3;
    wv.c.shape[1] = wv.v.shape[1] = 7;
    wv.c.data = (uint16_t *)w.c.data + 7;
    wv.v.data = (uint16_t *)w.v.data + 7;
    lin.c.shape[1] = lin.v.shape[1] = 3;
    t->cpu->linear(t->cpu, &lin.c, &a.c, &wv.c, NULL);
    t->vk->linear(t->vk, &lin.v, &a.v, &wv.v, NULL);
    check(t, "linear on views (weight rows 1..3)", &lin, 2e-6);
    end_case(t, mc, mv);
}

static void expect(ctx *t, int ok, const char *what)
{
    t->checks++;
    if (!ok) {
        t->failures++;
        printf("FAIL %s\n", what);
    }
}

/* Independent ops get no barrier between them, dependent ones do. */
static void test_barriers(ctx *t)
{
    size_t mc, mv;
    begin_case(t, &mc, &mv);
    int64_t shape[1] = {1000};
    pair a = act(t, 1, shape, -1, 1), b = act(t, 1, shape, -1, 1);
    pair y1 = out(t, 1, shape), y2 = out(t, 1, shape), y3 = out(t, 1, shape);
    md_error err = {0};
    t->vk->sync(t->vk, &err);
    md_vulkan_stats s0, s1, s2, s3;
    md_vulkan_stats_get(t->vk, &s0);
    t->vk->add(t->vk, &y1.v, &a.v, &b.v);
    md_vulkan_stats_get(t->vk, &s1);
    t->vk->add(t->vk, &y2.v, &a.v, &b.v);
    md_vulkan_stats_get(t->vk, &s2);
    t->vk->add(t->vk, &y3.v, &y1.v, &y2.v);
    md_vulkan_stats_get(t->vk, &s3);
    expect(t, s2.barriers == s1.barriers, "no barrier between two independent adds");
    expect(t, s3.barriers == s2.barriers + 1, "one barrier before an add reading both results");
    expect(t, s3.submits == s0.submits, "no submission while recording");
    t->cpu->add(t->cpu, &y1.c, &a.c, &b.c);
    t->cpu->add(t->cpu, &y2.c, &a.c, &b.c);
    t->cpu->add(t->cpu, &y3.c, &y1.c, &y2.c);
    check(t, "add after add (barrier)", &y3, 0);
    end_case(t, mc, mv);
}

/* A second pass of the same shapes allocates nothing. */
static void test_arena(ctx *t)
{
    md_vulkan_stats s1, s2;
    for (int pass = 0; pass < 3; pass++) {
        size_t m = t->vk->arena_mark(t->vk);
        for (int i = 0; i < 6; i++) {
            md_tensor x = t->vk->new_tensor(t->vk, 2, (int64_t[]){1000, 1000 + i});
            expect(t, x.data != NULL, "arena allocation");
        }
        t->vk->arena_reset(t->vk, m);
        md_vulkan_stats_get(t->vk, pass == 1 ? &s1 : &s2);
    }
    expect(t, s1.arena_bytes == s2.arena_bytes && s1.arena_bytes >= 6 * 1000 * 1000 * 4,
           "arena: one block of the high-water size, reused");
}

static void test_errors(ctx *t, uint64_t max_binding)
{
    /* An activation the device cannot bind is refused at allocation, with
     * the reason kept for sync (only small limits are tested: lavapipe's
     * 128 MiB). */
    if (max_binding < ((uint64_t)1 << 30)) {
        md_tensor big = t->vk->new_tensor(t->vk, 1, (int64_t[]){(int64_t)(max_binding / 4) + 1});
        md_error e = {0};
        md_status s0 = t->vk->sync(t->vk, &e);
        expect(t, big.data == NULL && s0 != MD_OK && strstr(e.msg, "binding limit") != NULL,
               "a tensor over maxStorageBufferRange is refused with a clear error");
    }
    float host[4] = {1, 2, 3, 4};
    md_tensor bad = {.dtype = MD_F32, .ndim = 1, .shape = {4}, .data = host};
    md_tensor y = t->vk->new_tensor(t->vk, 1, (int64_t[]){4});
    t->vk->add(t->vk, &y, &bad, &bad);
    md_error err = {0};
    md_status s = t->vk->sync(t->vk, &err);
    expect(t, s != MD_OK && strstr(err.msg, "not in device memory") != NULL,
           "an op on host memory is reported by sync");
    s = t->vk->sync(t->vk, &err);
    expect(t, s == MD_OK, "the error is reported once");
}

/* ---- MoE layers routed on the device ----
 * md_moe_forward on the Vulkan backend (device routing: top-k, grouping,
 * grouped GEMMs, weighted sum, no host readback) against the CPU backend's
 * host-routed path, and the device's choice of experts against the host
 * router on the same logits. */

typedef struct moe_case {
    int rows, in, out, inner, E, k;
    md_routing mode;
    md_moe_kind kind;
    int shared;
    md_dtype dt;
    int exact;        /* values k/8: exact logits on both backends; gate rows 0 and 1 equal (ties) */
    int starve;       /* the last expert's gate loses by far: it gets no rows */
    int partial_bias; /* linear experts, expert 1 without a bias: no stacks, host routing */
    int lie;          /* also through a backend whose device choice disagrees (see below) */
} moe_case;

typedef struct moe_store {
    md_weights *w[2]; /* what the CPU and the Vulkan layer load from (same host data) */
    void *buf[200];
    int n;
} moe_store;

static float moe_value(ctx *t, int exact, float scale)
{
    if (exact)
        return (float)rand_int(t, -8, 8) / 8.0f;
    return uniform(&t->rng, -scale, scale);
}

static void moe_add_values(moe_store *s, const moe_case *c, const char *name, int64_t a,
                           int64_t b, const float *v)
{
    int64_t n = a * (b ? b : 1);
    void *d = calloc((size_t)n, c->dt == MD_F32 ? 4 : 2);
    if (!d || s->n == (int)(sizeof s->buf / sizeof *s->buf)) {
        fprintf(stderr, "test: out of memory\n");
        exit(2);
    }
    s->buf[s->n++] = d;
    for (int64_t i = 0; i < n; i++) {
        if (c->dt == MD_F32) {
            ((float *)d)[i] = v[i];
        } else if (c->dt == MD_F16) {
            ((uint16_t *)d)[i] = md_f32_to_f16(v[i]);
        } else {
            uint32_t u;
            memcpy(&u, &v[i], 4);
            ((uint16_t *)d)[i] = (uint16_t)(u >> 16);
        }
    }
    md_tensor tt = {.dtype = c->dt, .ndim = b ? 2 : 1, .shape = {a, b}, .data = d};
    md_error err = {0};
    for (int j = 0; j < 2; j++)
        if (md_weights_add(s->w[j], name, &tt, "test", &err) != MD_OK) {
            fprintf(stderr, "test: %s\n", err.msg);
            exit(2);
        }
}

static void moe_add(ctx *t, moe_store *s, const moe_case *c, const char *name, int64_t a,
                    int64_t b)
{
    int64_t n = a * (b ? b : 1);
    float *v = malloc((size_t)n * sizeof *v);
    if (!v)
        exit(2);
    for (int64_t i = 0; i < n; i++)
        v[i] = uniform(&t->rng, -0.5f, 0.5f);
    moe_add_values(s, c, name, a, b, v);
    free(v);
}

static void moe_add_expert(ctx *t, moe_store *s, const moe_case *c, const char *p, int bias)
{
    char n[96];
    if (c->kind == MD_MOE_LINEAR) {
        snprintf(n, sizeof n, "%s.weight", p);
        moe_add(t, s, c, n, c->out, c->in);
        snprintf(n, sizeof n, "%s.bias", p);
        if (bias)
            moe_add(t, s, c, n, c->out, 0);
        return;
    }
    snprintf(n, sizeof n, "%s.net.0.proj.weight", p);
    moe_add(t, s, c, n, 2 * c->inner, c->in);
    snprintf(n, sizeof n, "%s.net.0.proj.bias", p);
    moe_add(t, s, c, n, 2 * c->inner, 0);
    snprintf(n, sizeof n, "%s.net.2.weight", p);
    moe_add(t, s, c, n, c->out, c->inner);
    snprintf(n, sizeof n, "%s.net.2.bias", p);
    moe_add(t, s, c, n, c->out, 0);
}

/* The choice an observer saw (copied out of the trace). */
typedef struct moe_seen {
    int calls;
    int32_t *choice;
    int64_t n;
} moe_seen;

static void moe_observe(void *user, const md_moe_trace *tr)
{
    moe_seen *s = user;
    s->calls++;
    s->n = tr->rows * tr->plan->top_k;
    free(s->choice);
    s->choice = malloc((size_t)s->n * sizeof *s->choice);
    if (s->choice)
        memcpy(s->choice, tr->plan->choice, (size_t)s->n * sizeof *s->choice);
}

/* The device's own choice (the moe_routed entry called directly) must be
 * the host router's on the same logits, and the CPU backend's. */
static void moe_check_choice(ctx *t, const md_moe_layer *l, const pair *x, const moe_seen *cpu,
                             const char *what)
{
    md_backend *vk = t->vk;
    int64_t rows = md_tensor_numel(&x->v) / l->in_dim, n = rows * l->top_k;
    size_t mark = vk->arena_mark(vk);
    md_tensor lg = vk->new_tensor(vk, 2, (int64_t[]){rows, l->num_experts});
    md_tensor ch = vk->new_tensor(vk, 2, (int64_t[]){rows, l->top_k});
    md_tensor y = vk->new_tensor(vk, 2, (int64_t[]){rows, l->out_dim});
    md_moe_routed m = {.token_topk = l->routing == MD_ROUTE_TOKEN_TOPK,
                       .top_k = l->top_k,
                       .gate = l->gate,
                       .w1 = &l->stack_w1,
                       .b1 = l->stack_b1.data ? &l->stack_b1 : NULL,
                       .w2 = l->stack_w2.data ? &l->stack_w2 : NULL,
                       .b2 = l->stack_b2.data ? &l->stack_b2 : NULL};
    vk->moe_routed(vk, &y, &lg, &ch, &x->v, &m);
    float *lh = malloc((size_t)(rows * l->num_experts) * sizeof *lh);
    float *chh = malloc((size_t)n * sizeof *chh);
    md_route_plan *plan = md_route_plan_new(l->num_experts, l->top_k, rows);
    if (!lh || !chh || !plan) {
        fprintf(stderr, "test: out of memory\n");
        exit(2);
    }
    vk->download(vk, &lg, lh);
    vk->download(vk, &ch, chh);
    md_router_plan(plan, l->routing, lh, rows);
    int same_host = 1, same_cpu = cpu->n == n;
    for (int64_t i = 0; i < n; i++) {
        same_host &= plan->choice[i] == (int32_t)chh[i] && chh[i] == (float)(int32_t)chh[i];
        same_cpu = same_cpu && cpu->choice[i] == (int32_t)chh[i];
    }
    char msg[256];
    snprintf(msg, sizeof msg, "%s: device choice == host router on the device logits", what);
    expect(t, same_host, msg);
    snprintf(msg, sizeof msg, "%s: device choice == CPU backend's choice", what);
    expect(t, same_cpu, msg);
    md_route_plan_free(plan);
    free(lh);
    free(chh);
    vk->arena_reset(vk, mark);
}

/* The Vulkan backend, except that moe_routed reports a choice the host
 * router cannot agree with (-1) and leaves y NaN: with an observer the
 * layer must notice and run the experts again on the host's plan. */
typedef struct moe_liar {
    md_backend be; /* first member: the ops receive a pointer to it */
    md_backend *vk;
} moe_liar;

static void moe_liar_routed(md_backend *be, md_tensor *y, md_tensor *logits, md_tensor *choice,
                            const md_tensor *x, const md_moe_routed *m)
{
    moe_liar *l = (moe_liar *)be;
    l->vk->moe_routed(be, y, logits, choice, x, m);
    be->fill(be, choice, -1.0f);
    be->fill(be, y, NAN);
}

static void moe_check_liar(ctx *t, const md_moe_layer *lv, pair *x, pair *y, const moe_seen *cpu,
                           const char *what)
{
    moe_liar liar = {.be = *t->vk, .vk = t->vk};
    liar.be.moe_routed = moe_liar_routed;
    md_error err = {0};
    float first = 0;
    md_moe_scratch *sc = md_moe_scratch_new();
    md_status st = md_moe_forward(&liar.be, lv, sc, NULL, &y->v, &x->v, NULL, NULL, &err);
    md_tensor y0 = y->v;
    y0.ndim = 1;
    y0.shape[0] = 1;
    t->vk->download(t->vk, &y0, &first);
    char msg[256];
    snprintf(msg, sizeof msg, "%s: the lying backend is in effect", what);
    expect(t, st == MD_OK && isnan(first), msg);
    moe_seen sl = {0};
    st = md_moe_forward(&liar.be, lv, sc, NULL, &y->v, &x->v, moe_observe, &sl, &err);
    snprintf(msg, sizeof msg, "%s: a device choice that differs from the host's is redone", what);
    expect(t, st == MD_OK && sl.n == cpu->n && sl.choice &&
                  memcmp(sl.choice, cpu->choice, (size_t)sl.n * sizeof *sl.choice) == 0,
           msg);
    snprintf(msg, sizeof msg, "%s (redone on the host's plan)", what);
    check(t, msg, y, 2e-6);
    free(sl.choice);
    md_moe_scratch_free(sc);
}

static void moe_case_run(ctx *t, const moe_case *c)
{
    size_t mc, mv;
    begin_case(t, &mc, &mv);
    char what[160];
    snprintf(what, sizeof what, "moe %s %s rows %d in %d out %d E %d k %d%s %s%s%s%s",
             c->kind == MD_MOE_LINEAR ? "linear" : "geglu",
             c->mode == MD_ROUTE_TOKEN_TOPK ? "token" : "sequence", c->rows, c->in, c->out, c->E,
             c->k, c->shared ? " +shared" : "", md_dtype_name(c->dt), c->exact ? " ties" : "",
             c->starve ? " starved" : "", c->partial_bias ? " partial-bias" : "");
    moe_store s = {.n = 0};
    s.w[0] = md_weights_new("moe-cpu");
    s.w[1] = md_weights_new("moe-vulkan");
    float *gate = malloc((size_t)c->E * (size_t)c->in * sizeof *gate);
    float *xh = malloc((size_t)c->rows * (size_t)c->in * sizeof *xh);
    if (!s.w[0] || !s.w[1] || !gate || !xh)
        exit(2);
    for (int i = 0; i < c->E * c->in; i++)
        gate[i] = moe_value(t, c->exact, 0.5f);
    /* The last input feature is 1 in every row where a gate entry there
     * decides: the last expert loses by far (starve), or in sequence mode
     * experts 0 and 1 win the sums, so their tie decides the order. */
    int lever = c->starve || (c->exact && c->mode == MD_ROUTE_SEQUENCE_TOPK);
    if (c->exact && c->mode == MD_ROUTE_SEQUENCE_TOPK)
        gate[c->in - 1] = 16.0f;
    if (c->exact) /* experts 0 and 1 tie in every row and in every sum */
        memcpy(gate + c->in, gate, (size_t)c->in * sizeof *gate);
    if (c->starve)
        gate[(c->E - 1) * c->in + c->in - 1] = -64.0f;
    moe_add_values(&s, c, "m.gate.weight", c->E, c->in, gate);
    for (int e = 0; e < c->E; e++) {
        char p[64];
        snprintf(p, sizeof p, "m.experts.%d", e);
        moe_add_expert(t, &s, c, p, !(c->partial_bias && e == 1));
    }
    if (c->shared)
        moe_add_expert(t, &s, c, "m.shared_expert", 1);
    for (int i = 0; i < c->rows * c->in; i++)
        xh[i] = lever && i % c->in == c->in - 1 ? 1.0f : moe_value(t, c->exact, 1.0f);

    md_moe_config cfg = {.enabled = 1, .num_experts = c->E, .top_k = c->k, .routing = c->mode,
                         .shared_expert = c->shared};
    md_moe_layer lc, lv;
    md_error err = {0};
    if (md_moe_layer_load(&lc, c->kind, &cfg, s.w[0], "m", c->in, c->out, t->cpu, &err) != MD_OK ||
        md_moe_layer_load(&lv, c->kind, &cfg, s.w[1], "m", c->in, c->out, t->vk, &err) != MD_OK) {
        fprintf(stderr, "test: %s: loading: %s\n", what, err.msg);
        exit(2);
    }
    char msg[256];
    snprintf(msg, sizeof msg, "%s: routed on the %s", what,
             c->partial_bias ? "host (no stacks)" : "device");
    expect(t, lv.device_routed == !c->partial_bias && !lc.device_routed, msg);

    pair x = {t->cpu->new_tensor(t->cpu, 2, (int64_t[]){c->rows, c->in}),
              t->vk->new_tensor(t->vk, 2, (int64_t[]){c->rows, c->in})};
    t->cpu->upload(t->cpu, &x.c, xh);
    t->vk->upload(t->vk, &x.v, xh);
    pair y = out(t, 2, (int64_t[]){c->rows, c->out});
    moe_seen sc = {0}, sv = {0};
    md_moe_scratch *scratch_c = md_moe_scratch_new(), *scratch_v = md_moe_scratch_new();
    md_status st =
        md_moe_forward(t->cpu, &lc, scratch_c, NULL, &y.c, &x.c, moe_observe, &sc, &err);
    /* Without an observer the device path records only: no submission. */
    md_vulkan_stats s0, s1;
    md_error e2 = {0};
    t->vk->sync(t->vk, &e2);
    md_vulkan_stats_get(t->vk, &s0);
    md_status sv1 = md_moe_forward(t->vk, &lv, scratch_v, NULL, &y.v, &x.v, NULL, NULL, &err);
    md_vulkan_stats_get(t->vk, &s1);
    expect(t, st == MD_OK && sv1 == MD_OK, what);
    if (lv.device_routed) {
        snprintf(msg, sizeof msg, "%s: no queue submission inside the layer", what);
        expect(t, s1.submits == s0.submits, msg);
    }
    check(t, what, &y, 2e-6);
    if (lv.device_routed)
        moe_check_choice(t, &lv, &x, &sc, what);
    /* With an observer: the trace's plan is the CPU's, the output the same. */
    st = md_moe_forward(t->vk, &lv, scratch_v, NULL, &y.v, &x.v, moe_observe, &sv, &err);
    int same = st == MD_OK && sv.calls == 1 && sv.n == sc.n && sc.choice && sv.choice &&
               memcmp(sv.choice, sc.choice, (size_t)sc.n * sizeof *sc.choice) == 0;
    snprintf(msg, sizeof msg, "%s: observed plan equals the CPU's", what);
    expect(t, same, msg);
    snprintf(msg, sizeof msg, "%s (observed)", what);
    check(t, msg, &y, 2e-6);
    if (c->lie)
        moe_check_liar(t, &lv, &x, &y, &sc, what);

    free(sc.choice);
    free(sv.choice);
    md_moe_scratch_free(scratch_c);
    md_moe_scratch_free(scratch_v);
    md_moe_layer_free(&lc);
    md_moe_layer_free(&lv);
    md_weights_free(s.w[0]);
    md_weights_free(s.w[1]);
    for (int i = 0; i < s.n; i++)
        free(s.buf[i]);
    free(gate);
    free(xh);
    end_case(t, mc, mv);
}

static void test_moe_device(ctx *t, uint64_t limit)
{
    const md_routing TOK = MD_ROUTE_TOKEN_TOPK, SEQ = MD_ROUTE_SEQUENCE_TOPK;
    const md_moe_kind LIN = MD_MOE_LINEAR, FF = MD_MOE_GEGLU_FF;
    /* rows, in, out, inner, E, k, mode, kind, shared, dtype, exact, starve, partial_bias, lie */
    const moe_case cases[] = {
        {37, 13, 11, 0, 4, 2, TOK, LIN, 0, MD_F32, 0, 0, 0, 1},
        {70, 9, 20, 7, 5, 3, TOK, FF, 1, MD_F16, 0, 0, 0, 0},
        {300, 33, 17, 0, 8, 1, TOK, LIN, 1, MD_F16, 0, 1, 0, 0},
        {45, 16, 16, 12, 3, 2, SEQ, FF, 0, MD_F32, 0, 0, 0, 1},
        {66, 21, 10, 0, 6, 3, SEQ, LIN, 1, MD_BF16, 0, 0, 0, 0},
        {50, 13, 12, 5, 4, 2, TOK, FF, 0, MD_F16, 1, 0, 0, 0},
        {41, 11, 8, 0, 5, 1, TOK, LIN, 0, MD_F32, 1, 1, 0, 0},
        {40, 11, 8, 0, 5, 2, SEQ, LIN, 1, MD_F32, 1, 0, 0, 0},
        {29, 15, 9, 6, 3, 1, SEQ, FF, 1, MD_F16, 1, 0, 0, 0},
        {1, 7, 5, 3, 3, 3, TOK, FF, 0, MD_F32, 0, 0, 0, 0},
        {33, 10, 7, 0, 4, 2, TOK, LIN, 0, MD_F32, 0, 0, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        moe_case_run(t, &cases[i]);
    /* Shapes drawn from the seeded generator. */
    for (int i = 0; i < 4; i++) {
        moe_case c = {.rows = rand_int(t, 1, 150), .in = rand_int(t, 1, 40),
                      .out = rand_int(t, 1, 40), .inner = rand_int(t, 1, 24),
                      .E = rand_int(t, 3, 8), .mode = i % 2 ? SEQ : TOK,
                      .kind = i / 2 ? FF : LIN, .shared = rand_int(t, 0, 1),
                      .dt = i % 2 ? MD_F16 : MD_F32};
        c.k = rand_int(t, 1, 3);
        moe_case_run(t, &c);
    }
    /* A stack that one binding cannot hold is refused, nothing prepared
     * (the layer then routes on the host). */
    md_error err = {0};
    if (limit > 0 && limit < ((uint64_t)1 << 40)) {
        float small[4] = {0};
        md_tensor a = {.dtype = MD_F32, .ndim = 1, .shape = {(int64_t)(limit / 8) + 1}, .data = small};
        md_tensor b = a;
        md_tensor *ws[2] = {&a, &b};
        md_status st = t->vk->prepare_weight_stack(t->vk, ws, 2, &err);
        expect(t, st == MD_ERR_UNSUPPORTED && strstr(err.msg, "binding limit") &&
                      a.data == small && b.data == small,
               "a weight stack over maxStorageBufferRange is refused, nothing prepared");
    }
}

/* ---- fp16 arithmetic (docs/vulkan.md, "Precision") ----
 * linear, conv2d and attention through their fp16 variants (float16 tiles,
 * fp16 products, fp32 sums) on a second backend, against the CPU backend.
 * Tolerance: max|vk - cpu| / max|cpu| <= 8 u, u = 2^-11 the unit roundoff
 * of fp16. Every product carries at most three roundings (both operands to
 * fp16, the product), about u in all, and the fp32 sums of independent
 * errors grow as sqrt(K) like the result itself, so the ratio stays near u
 * whatever K (measured: at most about 2 u up to K = 3000). A wrong index
 * or a lost pair is off by O(1). */
#define FP16_TOL (8.0 / 2048.0)

/* Largest error seen per op in fp16, printed in units of u. */
static double fp16_worst[3];

static void fp16_check(ctx *t, int op, const char *what, const pair *y, double tol)
{
    double err = rel_err(t, y);
    if (tol == FP16_TOL && err > fp16_worst[op])
        fp16_worst[op] = err;
    t->checks++;
    if (!(err <= tol)) {
        t->failures++;
        printf("FAIL %-44s rel err %.3e > %.1e\n", what, err, tol);
    }
}

static void fp16_linear(ctx *t, int m, int k, int n, md_dtype dt, int bias, const char *tag)
{
    size_t mc, mv;
    begin_case(t, &mc, &mv);
    pair x = act(t, 2, (int64_t[]){m, k}, -1, 1);
    pair w = weight(t, dt, 2, (int64_t[]){n, k}, -0.5f, 0.5f);
    pair b = weight(t, dt, 1, (int64_t[]){n}, -1, 1);
    pair y = out(t, 2, (int64_t[]){m, n});
    t->cpu->linear(t->cpu, &y.c, &x.c, &w.c, bias ? &b.c : NULL);
    t->vk->linear(t->vk, &y.v, &x.v, &w.v, bias ? &b.v : NULL);
    char what[112];
    snprintf(what, sizeof what, "fp16 %slinear %dx%d->%d %s%s", tag, m, k, n, md_dtype_name(dt),
             bias ? " +bias" : "");
    /* outputs of 16 columns or fewer stay f32 (the MoE gates) */
    fp16_check(t, 0, what, &y, n <= 16 ? 2e-6 : FP16_TOL);
    end_case(t, mc, mv);
}

static void fp16_conv(ctx *t, const int *p, md_dtype dt, const char *tag)
{
    size_t mc, mv;
    begin_case(t, &mc, &mv);
    int64_t ho = (p[2] + 2 * p[7] - p[5]) / p[6] + 1, wo = (p[3] + 2 * p[7] - p[5]) / p[6] + 1;
    pair x = act(t, 4, (int64_t[]){p[0], p[1], p[2], p[3]}, -1, 1);
    pair w = weight(t, dt, 4, (int64_t[]){p[4], p[1], p[5], p[5]}, -0.5f, 0.5f);
    pair b = weight(t, dt, 1, (int64_t[]){p[4]}, -1, 1);
    pair y = out(t, 4, (int64_t[]){p[0], p[4], ho, wo});
    t->cpu->conv2d(t->cpu, &y.c, &x.c, &w.c, &b.c, p[6], p[7]);
    t->vk->conv2d(t->vk, &y.v, &x.v, &w.v, &b.v, p[6], p[7]);
    char what[112];
    snprintf(what, sizeof what, "fp16 %sconv2d %dx%d s%d p%d [%d,%d,%d,%d]->%d %s", tag, p[5], p[5],
             p[6], p[7], p[0], p[1], p[2], p[3], p[4], md_dtype_name(dt));
    fp16_check(t, 1, what, &y, FP16_TOL);
    end_case(t, mc, mv);
}

/* p: B, Nq, Nk, C, Cv, heads, causal */
static void fp16_attention(ctx *t, const int *p, const char *tag)
{
    size_t mc, mv;
    begin_case(t, &mc, &mv);
    pair o = attention_pair(t, p);
    char what[112];
    snprintf(what, sizeof what, "fp16 %sattention h%d nq %d nk %d d %d dv %d%s", tag, p[5], p[1],
             p[2], p[3] / p[5], p[4] / p[5], p[6] ? " causal" : "");
    fp16_check(t, 2, what, &o, FP16_TOL);
    end_case(t, mc, mv);
}

/* The fp16 variants ran: an f32 GEMM would agree with the CPU to ~1e-7. */
static void fp16_is_used(ctx *t)
{
    size_t mc, mv;
    begin_case(t, &mc, &mv);
    pair x = act(t, 2, (int64_t[]){40, 300}, -1, 1);
    pair w = weight(t, MD_F32, 2, (int64_t[]){50, 300}, -0.5f, 0.5f);
    pair y = out(t, 2, (int64_t[]){40, 50});
    t->cpu->linear(t->cpu, &y.c, &x.c, &w.c, NULL);
    t->vk->linear(t->vk, &y.v, &x.v, &w.v, NULL);
    expect(t, rel_err(t, &y) > 1e-5, "linear runs the fp16 variant (error above f32's)");
    end_case(t, mc, mv);
}

/* force_f32 (what the VAE uses): inputs beyond fp16's range overflow in
 * the fp16 variant and are exact again while f32 is forced. */
static void fp16_force_f32(ctx *t)
{
    size_t mc, mv;
    begin_case(t, &mc, &mv);
    pair x = act(t, 2, (int64_t[]){8, 40}, 7e4f, 9e4f);
    pair w = weight(t, MD_F32, 2, (int64_t[]){24, 40}, 0.5f, 1.0f);
    pair y = out(t, 2, (int64_t[]){8, 24});
    t->cpu->linear(t->cpu, &y.c, &x.c, &w.c, NULL);
    expect(t, t->vk->force_f32 != NULL, "the Vulkan backend can force f32");
    if (t->vk->force_f32) {
        t->vk->linear(t->vk, &y.v, &x.v, &w.v, NULL);
        expect(t, !(rel_err(t, &y) < 1e-2), "fp16 overflows on inputs past 65504");
        expect(t, t->vk->force_f32(t->vk, 1) == 0, "f32 was not forced before");
        t->vk->linear(t->vk, &y.v, &x.v, &w.v, NULL);
        expect(t, rel_err(t, &y) < 1e-6, "forced f32 computes them exactly");
        expect(t, t->vk->force_f32(t->vk, 0) == 1, "force_f32 returns the previous setting");
    }
    end_case(t, mc, mv);
}

static void test_fp16_ops(ctx *t)
{
    fp16_is_used(t);
    fp16_force_f32(t);
    /* m, k, n: tile edges, K over several steps of 32 and odd K (a pair
     * half past the end), K in the thousands, the narrow-output rule */
    static const int lin[][3] = {{1, 1, 17},    {7, 13, 17},    {64, 32, 64},  {65, 33, 65},
                                 {130, 99, 129}, {3, 2500, 40}, {33, 1023, 70}, {20, 300, 16}};
    for (size_t c = 0; c < sizeof lin / sizeof *lin; c++)
        fp16_linear(t, lin[c][0], lin[c][1], lin[c][2], dtypes[c % 3], c % 2 == 0, "");
    for (int i = 0; i < 8; i++)
        fp16_linear(t, rand_int(t, 1, 150), rand_int(t, 1, i < 5 ? 120 : 3000),
                    rand_int(t, 17, 150), dtypes[i % 3], i % 2, "random ");
    /* B, Cin, H, W, Cout, k, stride, pad */
    static const int conv[][8] = {{1, 3, 5, 7, 4, 3, 1, 1},     {2, 5, 9, 8, 6, 3, 2, 1},
                                  {1, 8, 6, 6, 70, 1, 1, 0},    {2, 4, 7, 5, 3, 4, 2, 1},
                                  {1, 17, 3, 3, 9, 3, 1, 0},    {1, 2, 11, 13, 65, 3, 1, 1},
                                  {1, 230, 4, 5, 33, 3, 1, 1}};
    for (size_t c = 0; c < sizeof conv / sizeof *conv; c++)
        fp16_conv(t, conv[c], dtypes[c % 3], "");
    for (int i = 0; i < 6; i++) {
        int kk = i == 5 ? 4 : 1 + 2 * rand_int(t, 0, 1);
        int cv[8] = {rand_int(t, 1, 2), rand_int(t, 1, i < 4 ? 12 : 150), rand_int(t, 3, 12),
                     rand_int(t, 3, 12), rand_int(t, 1, 70), kk, rand_int(t, 1, 2), kk / 2};
        if (kk == 4)
            cv[6] = 2, cv[7] = 1; /* the VAE's downsampling form */
        fp16_conv(t, cv, dtypes[i % 3], "random ");
    }
    static const int att[][7] = {{1, 5, 7, 8, 8, 2, 0},       {2, 33, 17, 64, 64, 1, 0},
                                 {1, 77, 77, 32, 32, 4, 1},   {2, 20, 9, 80, 40, 2, 0},
                                 {1, 17, 19, 160, 160, 1, 0}, {1, 3, 5, 6, 9, 3, 1},
                                 {1, 40, 300, 40, 40, 1, 0}};
    for (size_t c = 0; c < sizeof att / sizeof *att; c++)
        fp16_attention(t, att[c], "");
    for (int i = 0; i < 5; i++) {
        int heads = rand_int(t, 1, 4), d = rand_int(t, 1, 48), dv = rand_int(t, 1, 48);
        int nq = rand_int(t, 1, 60), nk = i % 2 ? nq : rand_int(t, 1, 200);
        int a[7] = {1, nq, nk, heads * d, heads * dv, heads, i % 2};
        fp16_attention(t, a, "random ");
    }
}

/* The precision choice: the default is f32, MD_VK_FP16=auto gives fp16
 * exactly where the device has it, MD_VK_FP16 overrides an open choice,
 * bad values are refused; then the fp16 ops on a backend that must run them. */
static void test_precision(ctx *t, int device_fp16)
{
    md_error err = {0};
    md_backend *be = NULL;
    md_vulkan_options opt = {.device = -1, .allow_cpu = 1};
    const char *env = getenv("MD_VK_FP16");
    if (!env || !*env) {
        md_status s = md_backend_vulkan_create(&be, &opt, &err);
        const char *prec = s == MD_OK ? md_vulkan_precision(be) : "none";
        expect(t, s == MD_OK && strcmp(prec, "fp32") == 0 &&
                      strstr(md_vulkan_device_name(be), prec) != NULL,
               "the default precision is f32, and named");
        if (be)
            md_backend_destroy(be);
        be = NULL;
        setenv("MD_VK_FP16", "auto", 1);
        s = md_backend_vulkan_create(&be, &opt, &err);
        prec = s == MD_OK ? md_vulkan_precision(be) : "none";
        expect(t, s == MD_OK && strcmp(prec, device_fp16 ? "fp16" : "fp32") == 0,
               "MD_VK_FP16=auto: fp16 exactly where the device supports it");
        if (be)
            md_backend_destroy(be);
        setenv("MD_VK_FP16", "0", 1);
        s = md_backend_vulkan_create(&be, &opt, &err);
        expect(t, s == MD_OK && strcmp(md_vulkan_precision(be), "fp32") == 0,
               "MD_VK_FP16=0 forces f32");
        if (be)
            md_backend_destroy(be);
        setenv("MD_VK_FP16", "yes", 1);
        s = md_backend_vulkan_create(&be, &opt, &err);
        expect(t, s == MD_ERR_INVALID && strstr(err.msg, "MD_VK_FP16"),
               "a bad MD_VK_FP16 is refused");
        if (s == MD_OK)
            md_backend_destroy(be);
        unsetenv("MD_VK_FP16");
    }
    opt.fp16 = 1;
    opt.validation = MD_TEST_VALIDATION;
    opt.profile = 1;
    md_status s = md_backend_vulkan_create(&be, &opt, &err);
    if (!device_fp16) {
        expect(t, s == MD_ERR_UNSUPPORTED && strstr(err.msg, "fp16"),
               "fp16 required on a device (or build) without it: refused");
        if (s == MD_OK)
            md_backend_destroy(be);
        printf("no fp16 on this device or build: fp16 checks skipped\n");
        return;
    }
    if (s != MD_OK) {
        expect(t, 0, "creating an fp16 backend");
        printf("  %s\n", err.msg);
        return;
    }
    ctx h = *t;
    h.vk = be;
    h.bag.n = 0;
    h.checks = h.failures = 0;
    h.rng.s = 4242;
    test_fp16_ops(&h);
    printf("fp16: largest rel err linear %.2fu, conv2d %.2fu, attention %.2fu (u = 2^-11, "
           "tolerance 8u)\n",
           fp16_worst[0] * 2048, fp16_worst[1] * 2048, fp16_worst[2] * 2048);
    char report[4096];
    expect(&h, md_vulkan_profile_report(be, report, sizeof report, &err) == MD_OK &&
                   strstr(report, "arithmetic: fp16"),
           "the profile names the fp16 arithmetic");
    char first[512];
    uint64_t msgs = md_vulkan_validation_messages(be, first, sizeof first);
    if (msgs)
        printf("  first validation message (fp16 backend): %s\n", first);
    expect(&h, msgs == 0, "no validation messages with the fp16 variants");
    md_backend_destroy(be);
    t->checks += h.checks;
    t->failures += h.failures;
}

int main(void)
{
    md_error err = {0};
    md_vulkan_device_info devs[8];
    int ndev = 0;
    md_vulkan_list_devices(devs, 8, &ndev, &err);
    if (ndev == 0) {
        printf("SKIP: no Vulkan device (%s)\n", err.msg[0] ? err.msg : "none listed");
        return 77;
    }
    for (int i = 0; i < ndev && i < 8; i++)
        printf("device %d: %s (%s)%s%s\n", devs[i].index, devs[i].name, devs[i].type,
               devs[i].usable ? "" : ", unusable: ", devs[i].usable ? "" : devs[i].why_not);

    ctx t;
    memset(&t, 0, sizeof t);
    t.rng.s = 12345;
    /* f32 arithmetic here (every tolerance below is f32's); the fp16
     * variants are checked on a backend of their own (test_precision). */
    md_vulkan_options opt = {.device = -1, .allow_cpu = 1, .validation = MD_TEST_VALIDATION,
                             .profile = 1, .fp16 = -1};
    if (md_backend_vulkan_create(&t.vk, &opt, &err) != MD_OK) {
        printf("FAIL: creating the Vulkan backend: %s\n", err.msg);
        return 1;
    }
    if (md_backend_cpu_create(&t.cpu, 2, &err) != MD_OK) {
        printf("FAIL: %s\n", err.msg);
        return 1;
    }
    printf("testing on %s\n", md_vulkan_device_name(t.vk));

    test_linear(&t);
    test_conv(&t);
    test_norms(&t);
    test_activations(&t);
    test_attention(&t);
    test_elementwise(&t);
    test_layout(&t);
    test_moe_rows(&t);
    test_random_shapes(&t);
    test_views(&t);
    test_barriers(&t);
    test_arena(&t);
    uint64_t max_binding = UINT64_MAX; /* of the device in use */
    for (int i = 0; i < ndev && i < 8; i++)
        if (strncmp(md_vulkan_device_name(t.vk), devs[i].name, strlen(devs[i].name)) == 0)
            max_binding = devs[i].max_binding;
    test_errors(&t, max_binding);
    test_moe_device(&t, max_binding);
    int device_fp16 = 0; /* of the device in use */
    for (int i = 0; i < ndev && i < 8; i++)
        if (strncmp(md_vulkan_device_name(t.vk), devs[i].name, strlen(devs[i].name)) == 0)
            device_fp16 = devs[i].fp16;
    test_precision(&t, device_fp16);

    char report[4096];
    expect(&t, md_vulkan_profile_report(t.vk, report, sizeof report, &err) == MD_OK &&
                   strstr(report, "attention") && strstr(report, "linear"),
           "the profile lists the ops that ran");
    md_vulkan_stats st;
    md_vulkan_stats_get(t.vk, &st);
    printf("%llu dispatches, %llu barriers, %llu submits\n", (unsigned long long)st.dispatches,
           (unsigned long long)st.barriers, (unsigned long long)st.submits);

    char first[512];
    uint64_t msgs = md_vulkan_validation_messages(t.vk, first, sizeof first);
    md_backend_destroy(t.vk);
    md_backend_destroy(t.cpu);
    t.checks++;
    if (msgs) {
        t.failures++;
        printf("FAIL validation layers reported %llu messages; first: %s\n",
               (unsigned long long)msgs, first);
    }
    printf("%d checks, %d failed\n", t.checks, t.failures);
    return t.failures ? 1 : 0;
}
