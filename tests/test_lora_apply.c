/* Applying LoRAs: the fused weight of a linear and a 3x3 conv against a
 * plain loop, two LoRAs adding up, the backend wrapper's linear, conv2d
 * and 1x1 conv2d (fused copies and side products) against the same
 * reference. Whole models: test_lora_model.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora_backend.h"
#include "test_support.h"

enum { OUT = 5, IN = 3, K = 3, RANK = 2, LIN_OUT = 6, LIN_IN = 4 };

typedef struct fixture {
    md_test_rng rng;
    float conv_w[OUT * IN * K * K], lin_w[LIN_OUT * LIN_IN];
    md_tensor conv, lin;
    md_tensor *conv_t, *lin_t; /* the model's weights: as the map holds them */
    md_weights *map;
    /* two LoRAs, each on both weights; stored F16 like most files */
    uint16_t down[2][2][RANK * IN * K * K], up[2][2][OUT * RANK + LIN_OUT * RANK];
    md_lora_entry entries[2][2];
    md_lora_file files[2];
    md_tensor tdown[2][2], tup[2][2];
} fixture;

static float uni(fixture *f)
{
    return (float)(2.0 * md_test_uniform(&f->rng) - 1.0);
}

static void setup(fixture *f)
{
    f->rng.state = 42;
    for (int i = 0; i < OUT * IN * K * K; i++)
        f->conv_w[i] = uni(f);
    for (int i = 0; i < LIN_OUT * LIN_IN; i++)
        f->lin_w[i] = uni(f);
    f->conv = (md_tensor){.dtype = MD_F32, .ndim = 4, .shape = {OUT, IN, K, K}, .data = f->conv_w};
    f->lin = (md_tensor){.dtype = MD_F32, .ndim = 2, .shape = {LIN_OUT, LIN_IN}, .data = f->lin_w};
    f->map = md_weights_new("unet");
    md_weights_add(f->map, "conv.weight", &f->conv, "model", NULL);
    md_weights_add(f->map, "lin.weight", &f->lin, "model", NULL);
    /* The map holds its own descriptors: the identity a binding keys on. */
    f->conv_t = md_weights_find(f->map, "conv.weight");
    f->lin_t = md_weights_find(f->map, "lin.weight");
    for (int l = 0; l < 2; l++) {
        for (int m = 0; m < 2; m++) { /* m 0: conv, 1: linear */
            int in = m ? LIN_IN : IN * K * K, out = m ? LIN_OUT : OUT;
            for (int i = 0; i < RANK * in; i++)
                f->down[l][m][i] = md_f32_to_f16(uni(f));
            for (int i = 0; i < out * RANK; i++)
                f->up[l][m][i] = md_f32_to_f16(uni(f));
            f->tdown[l][m] = m ? (md_tensor){MD_F16, 2, {RANK, LIN_IN}, f->down[l][m]}
                               : (md_tensor){MD_F16, 4, {RANK, IN, K, K}, f->down[l][m]};
            f->tup[l][m] = m ? (md_tensor){MD_F16, 2, {LIN_OUT, RANK}, f->up[l][m]}
                             : (md_tensor){MD_F16, 4, {OUT, RANK, 1, 1}, f->up[l][m]};
            md_lora_entry *e = &f->entries[l][m];
            *e = (md_lora_entry){.part = MD_LORA_UNET, .down = &f->tdown[l][m],
                                 .up = &f->tup[l][m], .alpha = l ? 2.0f : 1.5f, .rank = RANK};
            snprintf(e->module, sizeof e->module, "%s", m ? "lin" : "conv");
            snprintf(e->key, sizeof e->key, "lora%d.%s", l, m ? "lin" : "conv");
        }
        snprintf(f->files[l].path, sizeof f->files[l].path, "lora%d", l);
        f->files[l].entries = f->entries[l];
        f->files[l].count = 2;
    }
}

static const float SCALES[2] = {0.7f, -0.4f};

/* W' of weight m (0 conv, 1 linear) with LoRAs [0, nloras), plain loops. */
static void reference_fused(const fixture *f, int m, int nloras, double *out)
{
    int out_dim = m ? LIN_OUT : OUT, in = m ? LIN_IN : IN * K * K;
    const float *w = m ? f->lin_w : f->conv_w;
    for (int o = 0; o < out_dim; o++)
        for (int i = 0; i < in; i++) {
            double v = w[o * in + i];
            for (int l = 0; l < nloras; l++) {
                double s = 0;
                for (int r = 0; r < RANK; r++)
                    s += (double)md_f16_to_f32(f->up[l][m][o * RANK + r]) *
                         md_f16_to_f32(f->down[l][m][r * in + i]);
                v += SCALES[l] * f->entries[l][m].alpha / RANK * s;
            }
            out[o * in + i] = v;
        }
}

static double max_rel(const float *a, const double *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        m = fmax(m, fabs(b[i]));
    }
    return m > 0 ? d / m : d;
}

static void bind(fixture *f, md_lora_binding *b, int nloras)
{
    md_weights *maps[1] = {f->map};
    for (int l = 0; l < nloras; l++) {
        md_error err = {0};
        CHECK(md_lora_bind_maps(b, maps, 1, NULL, &f->files[l], SCALES[l], 0, &err) == MD_OK, "%s",
              err.msg);
    }
}

static void test_fusion(fixture *f)
{
    for (int nloras = 1; nloras <= 2; nloras++) {
        md_lora_binding b = {0};
        bind(f, &b, nloras);
        CHECK(b.count == 2 * nloras, "%d targets", b.count);
        for (int m = 0; m < 2; m++) {
            const md_tensor *w = m ? f->lin_t : f->conv_t;
            size_t n = (size_t)md_tensor_numel(w);
            float got[OUT * IN * K * K];
            double want[OUT * IN * K * K];
            md_error err = {0};
            CHECK(md_lora_fused_weight(&b, w, NULL, got, &err) == MD_OK, "%s", err.msg);
            reference_fused(f, m, nloras, want);
            double e = max_rel(got, want, n);
            CHECK(e < 1e-6, "%s with %d LoRA(s): max rel err %g", m ? "linear" : "conv 3x3",
                  nloras, e);
        }
        md_lora_binding_clear(&b);
    }
}

/* The wrapper's conv2d (stride 2, pad 1) and linear against x * W'. */
static void test_wrapper(fixture *f, md_backend *cpu, md_lora_apply how)
{
    md_lora_binding b = {0};
    bind(f, &b, 2);
    md_backend *be = NULL;
    md_error err = {0};
    REQUIRE(md_lora_backend_new(cpu, &b, how, &be, &err) == MD_OK, "%s", err.msg);
    double wf[OUT * IN * K * K], wl[LIN_OUT * LIN_IN];
    reference_fused(f, 0, 2, wf);
    reference_fused(f, 1, 2, wl);
    size_t mark = be->arena_mark(be);
    enum { H = 5, HO = 3, ROWS = 7 };
    md_tensor x = be->new_tensor(be, 4, (int64_t[]){1, IN, H, H});
    md_tensor y = be->new_tensor(be, 4, (int64_t[]){1, OUT, HO, HO});
    md_tensor xl = be->new_tensor(be, 2, (int64_t[]){ROWS, LIN_IN});
    md_tensor yl = be->new_tensor(be, 2, (int64_t[]){ROWS, LIN_OUT});
    float *xv = x.data, *xlv = xl.data;
    for (int i = 0; i < IN * H * H; i++)
        xv[i] = uni(f);
    for (int i = 0; i < ROWS * LIN_IN; i++)
        xlv[i] = uni(f);
    be->conv2d(be, &y, &x, f->conv_t, NULL, 2, 1);
    be->linear(be, &yl, &xl, f->lin_t, NULL);
    double want[OUT * HO * HO], wantl[ROWS * LIN_OUT];
    for (int o = 0; o < OUT; o++)
        for (int oy = 0; oy < HO; oy++)
            for (int ox = 0; ox < HO; ox++) {
                double s = 0;
                for (int i = 0; i < IN; i++)
                    for (int ky = 0; ky < K; ky++)
                        for (int kx = 0; kx < K; kx++) {
                            int iy = oy * 2 - 1 + ky, ix = ox * 2 - 1 + kx;
                            if (iy >= 0 && iy < H && ix >= 0 && ix < H)
                                s += wf[((o * IN + i) * K + ky) * K + kx] * xv[(i * H + iy) * H + ix];
                        }
                want[(o * HO + oy) * HO + ox] = s;
            }
    for (int r = 0; r < ROWS; r++)
        for (int o = 0; o < LIN_OUT; o++) {
            double s = 0;
            for (int i = 0; i < LIN_IN; i++)
                s += wl[o * LIN_IN + i] * xlv[r * LIN_IN + i];
            wantl[r * LIN_OUT + o] = s;
        }
    const char *name = how == MD_LORA_FUSED ? "fused" : "side";
    double ec = max_rel(y.data, want, OUT * HO * HO), el = max_rel(yl.data, wantl, ROWS * LIN_OUT);
    CHECK(ec < 1e-5, "%s conv2d: max rel err %g", name, ec);
    CHECK(el < 1e-5, "%s linear: max rel err %g", name, el);
    be->arena_reset(be, mark);
    md_backend_destroy(be);
    md_lora_binding_clear(&b);
}

/* A 1x1 conv weight [4, 3, 1, 1] with a 2-d LoRA (kohya's conv_shortcut
 * form), run as a conv2d through both kinds of wrapper. */
static void test_pointwise(md_backend *cpu)
{
    enum { CO = 4, CI = 3, R = 2, HW = 4 };
    float w[CO * CI] = {0.5f, -1, 0.25f, 2, 0, 1, -0.5f, 1.5f, 0.75f, -2, 0.125f, 1};
    float down[R * CI] = {1, 2, -1, 0.5f, -0.5f, 1}, up[CO * R] = {1, -1, 0.5f, 2, -2, 0, 1, 1};
    md_tensor wt = {MD_F32, 4, {CO, CI, 1, 1}, w};
    md_tensor dt = {MD_F32, 2, {R, CI}, down}, ut = {MD_F32, 2, {CO, R}, up};
    md_weights *map = md_weights_new("unet");
    md_weights_add(map, "short.weight", &wt, "model", NULL);
    md_lora_entry e = {.part = MD_LORA_UNET, .module = "short", .key = "short", .down = &dt,
                       .up = &ut, .alpha = 1, .rank = R};
    md_lora_file file = {.path = "pointwise", .entries = &e, .count = 1};
    md_lora_binding b = {0};
    md_error err = {0};
    REQUIRE(md_lora_bind_maps(&b, &map, 1, NULL, &file, 0.5f, 0, &err) == MD_OK, "%s", err.msg);
    float x[CI * HW];
    double want[CO * HW];
    for (int i = 0; i < CI * HW; i++)
        x[i] = (float)(i % 5) - 2.0f;
    for (int o = 0; o < CO; o++)
        for (int p = 0; p < HW; p++) {
            double sum = 0;
            for (int i = 0; i < CI; i++) {
                double d = 0;
                for (int r = 0; r < R; r++)
                    d += (double)up[o * R + r] * down[r * CI + i];
                sum += (w[o * CI + i] + 0.5 * 0.5 * d) * x[i * HW + p];
            }
            want[o * HW + p] = sum;
        }
    for (int how = 0; how < 2; how++) {
        md_backend *be = NULL;
        if (!CHECK(md_lora_backend_new(cpu, &b, (md_lora_apply)how, &be, &err) == MD_OK, "%s",
                   err.msg))
            continue;
        size_t mark = be->arena_mark(be);
        md_tensor xt = be->new_tensor(be, 4, (int64_t[]){1, CI, 2, 2});
        md_tensor yt = be->new_tensor(be, 4, (int64_t[]){1, CO, 2, 2});
        memcpy(xt.data, x, sizeof x);
        be->conv2d(be, &yt, &xt, md_weights_find(map, "short.weight"), NULL, 1, 0);
        double e1 = max_rel(yt.data, want, CO * HW);
        CHECK(e1 < 1e-6, "1x1 conv, %s: max rel err %g", how ? "side" : "fused", e1);
        be->arena_reset(be, mark);
        md_backend_destroy(be);
    }
    md_lora_binding_clear(&b);
    md_weights_free(map);
}


int main(void)
{
    fixture *f = calloc(1, sizeof *f);
    md_backend *cpu = md_test_cpu_backend(2);
    if (!f || !cpu)
        return 2;
    setup(f);
    test_fusion(f);
    test_wrapper(f, cpu, MD_LORA_FUSED);
    test_wrapper(f, cpu, MD_LORA_SIDE);
    test_pointwise(cpu);
    md_weights_free(f->map);
    free(f);
    md_backend_destroy(cpu);
    return md_test_finish("test_lora_apply");
}
