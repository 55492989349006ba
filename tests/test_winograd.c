/* Winograd convolution (F(2x2,3x3), F(4x4,3x3) and the automatic choice)
 * against a plain double-precision direct-convolution loop: odd sizes that
 * are not multiples of the tile, 1x1 images, batch 2, with and without
 * bias, F32, F16 and BF16 weights, input channels that do not fill the vector
 * lanes, tile bands of one row, 1 and 3 threads, portable and AVX2
 * kernels. Also the MD_CPU_WINOGRAD switch and the per-shape choice. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/backend.h"
#include "runtime/cpu/cpu_internal.h"
#include "test_support.h"

#define TOL 1e-5

static uint64_t rng_state = 0x5eed;

static float uniform(float lo, float hi)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)((z >> 40) * (1.0 / 16777216.0));
}

/* y = conv(x, w) + b with 3x3 filters, stride 1, pad 1, in doubles. */
static void reference(double *y, const float *x, const float *w, const float *b, int64_t batch,
                      int64_t cin, int64_t cout, int64_t h, int64_t wd)
{
    for (int64_t n = 0; n < batch; n++)
        for (int64_t co = 0; co < cout; co++)
            for (int64_t oy = 0; oy < h; oy++)
                for (int64_t ox = 0; ox < wd; ox++) {
                    double s = b ? b[co] : 0.0;
                    for (int64_t ci = 0; ci < cin; ci++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                int64_t iy = oy - 1 + ky, ix = ox - 1 + kx;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= wd)
                                    continue;
                                s += (double)x[((n * cin + ci) * h + iy) * wd + ix] *
                                     w[((co * cin + ci) * 3 + ky) * 3 + kx];
                            }
                    y[((n * cout + co) * h + oy) * wd + ox] = s;
                }
}

/* mode: 2 or 4 forces that tile size, MD_CPU_WINOGRAD_AUTO lets it choose.
 * banded: bands of one tile row and filter blocks of a few output channels. */
static void case_conv(md_backend *be, int mode, md_dtype dt, int64_t cin, int64_t cout,
                      int64_t h, int64_t wd, int bias, int banded)
{
    md_cpu *c = md_cpu_of(be);
    const int64_t batch = 2;
    int64_t nx = batch * cin * h * wd, nw = cout * cin * 9, ny = batch * cout * h * wd;
    float *xh = malloc(sizeof(float) * (size_t)nx), *wv = malloc(sizeof(float) * (size_t)nw);
    float *bv = malloc(sizeof(float) * (size_t)cout), *yh = malloc(sizeof(float) * (size_t)ny);
    double *ref = malloc(sizeof(double) * (size_t)ny);
    void *wraw = malloc((size_t)nw * 4), *braw = malloc((size_t)cout * 4);
    for (int64_t i = 0; i < nx; i++)
        xh[i] = uniform(-1, 1);
    /* weights as stored (F32 or F16) and the exact values they widen to */
    for (int64_t i = 0; i < nw + cout; i++) {
        float v = uniform(-0.5f, 0.5f);
        void *raw = i < nw ? wraw : braw;
        int64_t k = i < nw ? i : i - nw;
        if (dt == MD_F16) {
            ((uint16_t *)raw)[k] = md_f32_to_f16(v);
            v = md_f16_to_f32(((uint16_t *)raw)[k]);
        } else if (dt == MD_BF16) {
            uint32_t bits;
            memcpy(&bits, &v, 4);
            ((uint16_t *)raw)[k] = (uint16_t)(bits >> 16); /* truncation: exact either way */
            v = md_bf16_to_f32(((uint16_t *)raw)[k]);
        } else {
            ((float *)raw)[k] = v;
        }
        (i < nw ? wv : bv)[k] = v;
    }
    md_tensor w = {.dtype = dt, .ndim = 4, .shape = {cout, cin, 3, 3}, .data = wraw};
    md_tensor b = {.dtype = dt, .ndim = 1, .shape = {cout}, .data = braw};
    size_t mark = be->arena_mark(be);
    md_tensor x = be->new_tensor(be, 4, (const int64_t[]){batch, cin, h, wd});
    md_tensor y = be->new_tensor(be, 4, (const int64_t[]){batch, cout, h, wd});
    REQUIRE(x.data && y.data);
    be->upload(be, &x, xh);

    int saved_mode = c->winograd;
    int64_t saved_budget = c->wino_budget, saved_fbudget = c->wino_filter_budget;
    c->winograd = mode;
    if (banded) {
        c->wino_budget = 1;                        /* one tile row per band */
        c->wino_filter_budget = 36 * cin * 3 + 1; /* 3 (m = 4) or 6 output channels */
    }
    int picked = md_cpu_winograd_pick(c, &y, &x, &w, 1, 1);
    be->conv2d(be, &y, &x, &w, bias ? &b : NULL, 1, 1);
    c->winograd = saved_mode;
    c->wino_budget = saved_budget;
    c->wino_filter_budget = saved_fbudget;
    be->download(be, &y, yh);
    be->arena_reset(be, mark);

    reference(ref, xh, wv, bias ? bv : NULL, batch, cin, cout, h, wd);
    double maxref = 0, maxerr = 0;
    for (int64_t i = 0; i < ny; i++) {
        maxref = fmax(maxref, fabs(ref[i]));
        double e = fabs(yh[i] - ref[i]);
        maxerr = isnan(e) ? INFINITY : fmax(maxerr, e);
    }
    double rel = maxerr / (maxref > 1 ? maxref : 1);
    printf("  F(%d) %s c%lld->%lld %lldx%lld%s%s  max err %.3g\n", picked, md_dtype_name(dt),
           (long long)cin, (long long)cout, (long long)h, (long long)wd, bias ? " +b" : "",
           banded ? " banded" : "", rel);
    if (mode == 2 || mode == 4)
        CHECK(picked == mode, "forced F(%d) picked %d", mode, picked);
    CHECK(rel <= TOL, "F(%d) c%lld->%lld %lldx%lld: error %.3g", picked, (long long)cin,
          (long long)cout, (long long)h, (long long)wd, rel);
    free(xh);
    free(wv);
    free(bv);
    free(yh);
    free(ref);
    free(wraw);
    free(braw);
}

static void run_cases(md_backend *be)
{
    static const int64_t shapes[][4] = {
        /* cin, cout, h, w */
        {3, 5, 7, 5},   {17, 9, 1, 1},  {8, 16, 9, 13}, {20, 12, 2, 3},
        {33, 7, 11, 10}, {9, 24, 6, 17}, {16, 16, 8, 8}, /* auto: F(2x2) */
        {16, 20, 31, 32},                                  /* auto: F(4x4) */
    };
    static const int modes[] = {2, 4, MD_CPU_WINOGRAD_AUTO};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int mi = 0; mi < 3; mi++)
            for (int bias = 0; bias < 2; bias++)
                case_conv(be, modes[mi], (s + (size_t)bias) % 2 ? MD_F16 : MD_F32, shapes[s][0],
                          shapes[s][1], shapes[s][2], shapes[s][3], bias, 0);
    /* bands of one tile row, crossing from one batch element to the next */
    case_conv(be, 2, MD_F32, 12, 10, 9, 7, 1, 1);
    case_conv(be, 4, MD_F16, 12, 10, 9, 7, 1, 1);
    case_conv(be, 4, MD_F32, 40, 8, 13, 21, 0, 1);
    case_conv(be, 2, MD_BF16, 11, 9, 5, 6, 1, 0);
    case_conv(be, 4, MD_BF16, 11, 9, 5, 6, 1, 0);
}

/* The switch, and the shapes it leaves to im2col. */
static void test_choice(void)
{
    md_backend *be = NULL;
    md_error err;
    setenv("MD_CPU_WINOGRAD", "0", 1);
    REQUIRE(md_backend_cpu_create(&be, 1, &err) == MD_OK);
    CHECK(md_cpu_of(be)->winograd == MD_CPU_WINOGRAD_OFF);
    md_backend_destroy(be);
    setenv("MD_CPU_WINOGRAD", "2", 1);
    REQUIRE(md_backend_cpu_create(&be, 1, &err) == MD_OK);
    CHECK(md_cpu_of(be)->winograd == 2);
    md_backend_destroy(be);
    unsetenv("MD_CPU_WINOGRAD");
    REQUIRE(md_backend_cpu_create(&be, 1, &err) == MD_OK);
    CHECK(md_cpu_of(be)->winograd == MD_CPU_WINOGRAD_OFF, "off unless asked for");
    md_backend_destroy(be);
    setenv("MD_CPU_WINOGRAD", "1", 1);
    REQUIRE(md_backend_cpu_create(&be, 1, &err) == MD_OK);
    unsetenv("MD_CPU_WINOGRAD");
    md_cpu *c = md_cpu_of(be);
    CHECK(c->winograd == MD_CPU_WINOGRAD_AUTO);

    md_tensor x = {.dtype = MD_F32, .ndim = 4, .shape = {2, 320, 64, 64}};
    md_tensor y = x;
    md_tensor w = {.dtype = MD_F16, .ndim = 4, .shape = {320, 320, 3, 3}};
    CHECK(md_cpu_winograd_pick(c, &y, &x, &w, 1, 1) == 4, "SD1.5 64x64 320ch: F(4x4)");
    md_tensor x8 = {.dtype = MD_F32, .ndim = 4, .shape = {2, 1280, 8, 8}};
    md_tensor w8 = {.dtype = MD_F16, .ndim = 4, .shape = {1280, 1280, 3, 3}};
    CHECK(md_cpu_winograd_pick(c, &x8, &x8, &w8, 1, 1) == 2, "8x8 latents at batch 2: F(2x2)");
    x8.shape[0] = 1;
    CHECK(md_cpu_winograd_pick(c, &x8, &x8, &w8, 1, 1) == 0, "8x8 latents at batch 1: im2col");
    CHECK(md_cpu_winograd_pick(c, &y, &x, &w, 2, 1) == 0, "stride 2 stays on im2col");
    md_tensor w1 = {.dtype = MD_F16, .ndim = 4, .shape = {320, 320, 1, 1}};
    CHECK(md_cpu_winograd_pick(c, &y, &x, &w1, 1, 0) == 0, "1x1 stays on im2col");
    md_tensor xin = {.dtype = MD_F32, .ndim = 4, .shape = {2, 4, 64, 64}};
    md_tensor win = {.dtype = MD_F16, .ndim = 4, .shape = {320, 4, 3, 3}};
    md_tensor yin = {.dtype = MD_F32, .ndim = 4, .shape = {2, 320, 64, 64}};
    CHECK(md_cpu_winograd_pick(c, &yin, &xin, &win, 1, 1) == 0, "4 input channels: im2col");
    c->winograd = MD_CPU_WINOGRAD_OFF;
    CHECK(md_cpu_winograd_pick(c, &y, &x, &w, 1, 1) == 0, "switched off");
    md_backend_destroy(be);
}

int main(void)
{
    static const int thread_counts[] = {1, 3};
    for (int i = 0; i < 2; i++) {
        md_backend *be = NULL;
        md_error err;
        if (md_backend_cpu_create(&be, thread_counts[i], &err) != MD_OK) {
            fprintf(stderr, "cpu backend: %s\n", err.msg);
            return 1;
        }
        if (i == 0)
            md_cpu_of(be)->simd = 0; /* the portable kernels */
        printf("threads=%d simd=%d\n", thread_counts[i], md_cpu_of(be)->simd);
        run_cases(be);
        md_backend_destroy(be);
    }
    test_choice();
    return md_test_finish("test_winograd");
}
