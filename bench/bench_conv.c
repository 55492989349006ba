/* bench-conv [MODEL] [--size N] [--runs R] [--reps R] [--no-shapes] [--threads T]
 *
 * Winograd against im2col convolution on the CPU backend, in one process:
 *  - per layer shape of SD1.5 (U-Net at batch 2, VAE decoder at batch 1):
 *    time of im2col, F(2x2,3x3) and F(4x4,3x3), the per-call cost of the
 *    filter transform, and the error of each against a double-precision
 *    direct convolution on sampled outputs (plus Winograd against im2col
 *    over the whole output);
 *  - with MODEL: a whole U-Net step (CFG, batch 2) and a VAE decode, each
 *    with the convolutions on im2col and on the automatic Winograd choice,
 *    `--runs` times, with the time spent in conv2d.
 * The backends are made with MD_CPU_WINOGRAD=0, 2, 4 and unset, the switch
 * the CLI honours. Every time is the best of `--reps` calls. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/model.h"
#include "pipeline/pipeline.h"
#include "sampling/rng.h"
#include "sgemm_baseline.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void print_load(const char *when)
{
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[128] = "?";
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            strcpy(buf, "?\n");
        fclose(f);
    }
    printf("load average %s: %s", when, buf);
}

/* mode NULL: the automatic choice ("1"). */
static md_backend *make_backend(const char *mode, int threads)
{
    setenv("MD_CPU_WINOGRAD", mode ? mode : "1", 1);
    md_backend *be = NULL;
    md_error err = {0};
    if (md_backend_cpu_create(&be, threads, &err) != MD_OK) {
        fprintf(stderr, "bench-conv: %s\n", err.msg);
        exit(1);
    }
    unsetenv("MD_CPU_WINOGRAD");
    return be;
}

/* ---- per-shape table ---- */

typedef struct shape {
    const char *where;
    int64_t batch, cin, cout, side;
} shape;

static const shape SHAPES[] = {
    {"unet", 2, 320, 320, 64},    {"unet", 2, 640, 320, 64},    {"unet", 2, 640, 640, 32},
    {"unet", 2, 1280, 640, 32},   {"unet", 2, 1280, 1280, 16},  {"unet", 2, 2560, 1280, 16},
    {"unet", 2, 1280, 1280, 8},   {"unet", 2, 2560, 1280, 8},   {"vae", 1, 512, 512, 64},
    {"vae", 1, 512, 512, 128},    {"vae", 1, 512, 512, 256},    {"vae", 1, 512, 256, 256},
    {"vae", 1, 256, 256, 256},    {"vae", 1, 256, 256, 512},    {"vae", 1, 256, 128, 512},
    {"vae", 1, 128, 128, 512},
};

/* Best of reps calls of be->conv2d, in seconds. */
static double time_conv(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                        const md_tensor *b, int reps)
{
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        be->conv2d(be, y, x, w, b, 1, 1);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    return best;
}

/* Direct convolution in doubles at one output point. */
static double direct_at(const float *x, const float *w, const float *b, const shape *s,
                        int64_t n, int64_t co, int64_t oy, int64_t ox)
{
    int64_t hw = s->side;
    double acc = b[co];
    for (int64_t ci = 0; ci < s->cin; ci++)
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
                int64_t iy = oy - 1 + ky, ix = ox - 1 + kx;
                if (iy < 0 || iy >= hw || ix < 0 || ix >= hw)
                    continue;
                acc += (double)x[((n * s->cin + ci) * hw + iy) * hw + ix] *
                       w[((co * s->cin + ci) * 3 + ky) * 3 + kx];
            }
    return acc;
}

static void shape_table(md_backend *modes[3], int reps, int only)
{
    static const char *names[3] = {"im2col", "F(2x2)", "F(4x4)"};
    printf("\nper layer shape (f16 weights, random inputs; times best of %d; GFLOP counts the "
           "direct 3x3 products)\n",
           reps);
    printf("%-5s %5s %5s %4s %4s %8s | %8s %8s %8s | %7s %7s | %9s %9s %9s | %9s %9s\n", "where",
           "batch", "cin", "cout", "side", "GFLOP", "im2col s", "F2 s", "F4 s", "F2 x", "F4 x",
           "im2col re", "F2 rel", "F4 rel", "F2 filt s", "F4 filt s");
    for (size_t si = 0; si < sizeof SHAPES / sizeof SHAPES[0]; si++) {
        if (only >= 0 && (size_t)only != si)
            continue;
        const shape *s = &SHAPES[si];
        int64_t nx = s->batch * s->cin * s->side * s->side, nw = s->cout * s->cin * 9;
        int64_t ny = s->batch * s->cout * s->side * s->side;
        float *xh = malloc(sizeof(float) * (size_t)nx), *wv = malloc(sizeof(float) * (size_t)nw);
        uint16_t *wh = malloc(sizeof(uint16_t) * (size_t)nw);
        float *bv = malloc(sizeof(float) * (size_t)s->cout);
        uint16_t *bh = malloc(sizeof(uint16_t) * (size_t)s->cout);
        float *out[3];
        md_randn(11, (uint64_t)si, 0, xh, (size_t)nx);
        md_randn(12, (uint64_t)si, 0, wv, (size_t)nw);
        md_randn(13, (uint64_t)si, 0, bv, (size_t)s->cout);
        /* weights scaled so outputs stay around unit size, stored as f16 */
        float scale = 1.0f / sqrtf(9.0f * (float)s->cin);
        for (int64_t i = 0; i < nw; i++) {
            wh[i] = md_f32_to_f16(wv[i] * scale);
            wv[i] = md_f16_to_f32(wh[i]);
        }
        for (int64_t i = 0; i < s->cout; i++) {
            bh[i] = md_f32_to_f16(bv[i] * 0.1f);
            bv[i] = md_f16_to_f32(bh[i]);
        }
        md_tensor w = {.dtype = MD_F16, .ndim = 4, .shape = {s->cout, s->cin, 3, 3}, .data = wh};
        md_tensor b = {.dtype = MD_F16, .ndim = 1, .shape = {s->cout}, .data = bh};
        /* The three run in turn, `reps` rounds, best of each: on a shared
         * machine a burst of load then hits all of them alike. */
        double t[3] = {1e30, 1e30, 1e30}, filt[3] = {0, 1e30, 1e30}, err_ref[3];
        md_tensor x[3], y[3], x1[3], y1[3];
        size_t mark[3];
        for (int mi = 0; mi < 3; mi++) {
            md_backend *be = modes[mi];
            mark[mi] = be->arena_mark(be);
            x[mi] = be->new_tensor(be, 4, (const int64_t[]){s->batch, s->cin, s->side, s->side});
            y[mi] = be->new_tensor(be, 4, (const int64_t[]){s->batch, s->cout, s->side, s->side});
            x1[mi] = be->new_tensor(be, 4, (const int64_t[]){1, s->cin, 1, 1});
            y1[mi] = be->new_tensor(be, 4, (const int64_t[]){1, s->cout, 1, 1});
            if (!x[mi].data || !y[mi].data || !x1[mi].data || !y1[mi].data) {
                fprintf(stderr, "bench-conv: out of memory\n");
                exit(1);
            }
            be->upload(be, &x[mi], xh);
            be->upload(be, &x1[mi], xh);
        }
        for (int r = 0; r < reps; r++)
            for (int mi = 0; mi < 3; mi++) {
                t[mi] = fmin(t[mi], time_conv(modes[mi], &y[mi], &x[mi], &w, &b, 1));
                /* per-call filter transform: the same layer on a 1x1 image
                 * (its one-tile GEMMs included, so an upper bound) */
                if (mi)
                    filt[mi] = fmin(filt[mi], time_conv(modes[mi], &y1[mi], &x1[mi], &w, &b, 1));
            }
        for (int mi = 0; mi < 3; mi++) {
            out[mi] = malloc(sizeof(float) * (size_t)ny);
            modes[mi]->download(modes[mi], &y[mi], out[mi]);
            modes[mi]->arena_reset(modes[mi], mark[mi]);
        }
        /* against doubles on 2048 sampled outputs (the corners included) */
        double maxref = 0, maxe[3] = {0};
        for (int k = 0; k < 2048; k++) {
            uint64_t r = (uint64_t)k * 0x9e3779b97f4a7c15ull + si;
            r ^= r >> 29;
            uint64_t side = (uint64_t)s->side;
            int64_t n = (int64_t)(r % (uint64_t)s->batch);
            int64_t co = (int64_t)((r >> 8) % (uint64_t)s->cout);
            int64_t oy = k < 4 ? (k & 1) * (s->side - 1) : (int64_t)((r >> 24) % side);
            int64_t ox = k < 4 ? (k >> 1) * (s->side - 1) : (int64_t)((r >> 40) % side);
            double ref = direct_at(xh, wv, bv, s, n, co, oy, ox);
            int64_t idx = ((n * s->cout + co) * s->side + oy) * s->side + ox;
            maxref = fmax(maxref, fabs(ref));
            for (int mi = 0; mi < 3; mi++)
                maxe[mi] = fmax(maxe[mi], fabs(out[mi][idx] - ref));
        }
        for (int mi = 0; mi < 3; mi++)
            err_ref[mi] = maxe[mi] / maxref;
        double gflop = 2.0 * (double)ny * s->cin * 9 / 1e9;
        printf("%-5s %5lld %5lld %4lld %4lld %8.1f | %8.3f %8.3f %8.3f | %7.2f %7.2f | %9.2e "
               "%9.2e %9.2e | %9.4f %9.4f\n",
               s->where, (long long)s->batch, (long long)s->cin, (long long)s->cout,
               (long long)s->side, gflop, t[0], t[1], t[2], t[0] / t[1], t[0] / t[2], err_ref[0],
               err_ref[1], err_ref[2], filt[1], filt[2]);
        /* Winograd against im2col over the whole output */
        for (int mi = 1; mi < 3; mi++) {
            double ma = 0, mr = 0;
            for (int64_t i = 0; i < ny; i++) {
                ma = fmax(ma, fabs(out[mi][i] - out[0][i]));
                mr = fmax(mr, fabs(out[0][i]));
            }
            printf("      %s vs im2col, whole output: max abs %.3g, relative to max |y| %.3g\n",
                   names[mi], ma, ma / mr);
        }
        for (int mi = 0; mi < 3; mi++)
            free(out[mi]);
        free(xh);
        free(wv);
        free(wh);
        free(bv);
        free(bh);
        fflush(stdout);
    }
}

/* ---- whole U-Net step and VAE decode ---- */

/* The auto backend's table with conv2d sent to either backend and timed.
 * `table` comes first so an op's backend pointer is also this struct's. */
typedef struct switching {
    md_backend table;
    md_backend *on, *off;
    int use_off;
    double conv_s, conv_flops, wino_flops;
    double filter_bytes[2]; /* transformed 3x3 filters if cached: F(2), F(4) */
    double weight_bytes;    /* the 3x3 filters as stored */
} switching;

static void switch_conv(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                        const md_tensor *b, int stride, int pad)
{
    switching *s = (switching *)be;
    md_backend *t = s->use_off ? s->off : s->on;
    double f = 2.0 * (double)md_tensor_numel(y) * w->shape[1] * w->shape[2] * w->shape[3];
    int wino = w->shape[2] == 3 && w->shape[3] == 3 && stride == 1 && pad == 1;
    double t0 = now();
    /* the auto backend's own table entry, with its own backend pointer */
    t->conv2d(t == s->on ? be : t, y, x, w, b, stride, pad);
    s->conv_s += now() - t0;
    s->conv_flops += f;
    if (wino) {
        double n = (double)w->shape[0] * w->shape[1];
        s->wino_flops += f;
        s->filter_bytes[0] += n * 16 * 4;
        s->filter_bytes[1] += n * 36 * 4;
        s->weight_bytes += n * 9 * md_dtype_size(w->dtype);
    }
}

static void model_runs(const char *path, int size, int runs, int threads, double gemm)
{
    switching sw = {0};
    sw.on = make_backend(NULL, threads);
    sw.off = make_backend("0", threads);
    sw.table = *sw.on;
    sw.table.conv2d = switch_conv;
    md_backend *be = &sw.table;
    md_error err = {0};
    md_model *m = NULL;
    md_model_options mo = {.backend = be};
    if (md_model_load(path, &mo, &m, &err) != MD_OK) {
        fprintf(stderr, "bench-conv: %s\n", err.msg);
        exit(1);
    }
    int f = md_vae_factor(m->vae);
    if (!size)
        size = m->unet_cfg.sample_size * f;
    int lh = size / f, lc = m->unet_cfg.in_channels, ctx = m->unet_cfg.cross_attention_dim;
    size_t n = (size_t)lc * lh * lh;
    float *embeds = calloc((size_t)2 * 77 * ctx, sizeof(float));
    float *pooled = calloc(2 * 1280, sizeof(float));
    md_randn(3, 0, 0, embeds, (size_t)2 * 77 * ctx);
    float *x = malloc(sizeof(float) * 2 * n), *eps[2], *img[2];
    md_randn(7, 0, 0, x, 2 * n);
    float ts[2] = {500, 500}, time_ids[12] = {0};
    md_unet_inputs in = {.batch = 2, .height = lh, .width = lh, .sample = x, .timesteps = ts,
                         .context = embeds, .context_len = 77,
                         .text_embeds = m->family == MD_FAMILY_SDXL ? pooled : NULL,
                         .time_ids = m->family == MD_FAMILY_SDXL ? time_ids : NULL};
    md_unet_state *state = NULL;
    if (md_unet_state_new(m->unet, &state, &err) != MD_OK) {
        fprintf(stderr, "bench-conv: %s\n", err.msg);
        exit(1);
    }
    printf("\nmodel %s, %dx%d (latent %d), sgemm baseline %.1f GFLOP/s\n", path, size, size, lh,
           gemm);
    for (int i = 0; i < 2; i++) {
        eps[i] = malloc(sizeof(float) * 2 * n);
        img[i] = malloc(sizeof(float) * 3 * (size_t)size * size);
    }
    static const char *label[2] = {"winograd", "im2col  "};
    double stored[2] = {0}, cached[2][2] = {{0}}; /* per part: U-Net, VAE */
    for (int run = 0; run < runs; run++) {
        print_load("before run");
        for (int part = 0; part < 2; part++)
            for (int mode = 0; mode < 2; mode++) {
                sw.use_off = mode;
                sw.conv_s = sw.conv_flops = sw.wino_flops = sw.weight_bytes = 0;
                sw.filter_bytes[0] = sw.filter_bytes[1] = 0;
                double t0 = now();
                md_status st = part == 0
                                   ? md_unet_forward(m->unet, state, be, &in, eps[mode], &err)
                                   : md_vae_decode(m->vae, be, x, 1, lh, lh, img[mode], &err);
                double t = now() - t0;
                if (st != MD_OK) {
                    fprintf(stderr, "bench-conv: %s\n", err.msg);
                    exit(1);
                }
                printf("run %d %-10s %s: %7.2f s, conv2d %7.2f s (%.0f GFLOP, %.2f of sgemm "
                       "rate; 3x3 s1 %.0f GFLOP)\n",
                       run + 1, part ? "vae decode" : "unet step", label[mode], t, sw.conv_s,
                       sw.conv_flops / 1e9, sw.conv_flops / sw.conv_s / 1e9 / gemm,
                       sw.wino_flops / 1e9);
                fflush(stdout);
                stored[part] = sw.weight_bytes;
                cached[part][0] = sw.filter_bytes[0];
                cached[part][1] = sw.filter_bytes[1];
            }
        if (run == 0) {
            double da = 0, dm = 0, ia = 0, im = 0;
            for (size_t i = 0; i < 2 * n; i++) {
                da = fmax(da, fabs(eps[0][i] - eps[1][i]));
                dm = fmax(dm, fabs(eps[1][i]));
            }
            for (size_t i = 0; i < 3 * (size_t)size * size; i++) {
                ia = fmax(ia, fabs(img[0][i] - img[1][i]));
                im = fmax(im, fabs(img[1][i]));
            }
            printf("winograd vs im2col: unet output max abs %.3g (max |y| %.3g), decoded image "
                   "max abs %.3g (max |y| %.3g)\n",
                   da, dm, ia, im);
            for (int part = 0; part < 2; part++)
                printf("3x3 stride-1 filters of the %s: %.0f MiB stored; cached transformed f32 "
                       "%.0f MiB (F2) / %.0f MiB (F4)\n",
                       part ? "VAE decoder" : "U-Net", stored[part] / 1048576,
                       cached[part][0] / 1048576, cached[part][1] / 1048576);
        }
    }
    print_load("after runs");
    for (int i = 0; i < 2; i++) {
        free(eps[i]);
        free(img[i]);
    }
    free(x);
    free(embeds);
    free(pooled);
    md_unet_state_free(state);
    md_model_free(m);
    md_backend_destroy(sw.off);
    md_backend_destroy(sw.on);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int size = 0, runs = 2, reps = 2, shapes = 1, threads = 0, only = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc)
            only = atoi(argv[++i]); /* one row of the table (0-based) */
        else if (!strcmp(argv[i], "--no-shapes"))
            shapes = 0;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench-conv [MODEL] [--size N] [--runs R] [--reps R] "
                            "[--no-shapes] [--shape I] [--threads T]\n");
            return 2;
        } else
            path = argv[i];
    }
    print_load("at start");
    md_backend *modes[3] = {make_backend("0", threads), make_backend("2", threads),
                            make_backend("4", threads)};
    double gemm = md_bench_sgemm_gflops();
    printf("sgemm baseline %.1f GFLOP/s\n", gemm);
    if (shapes)
        shape_table(modes, reps, only);
    for (int i = 0; i < 3; i++)
        md_backend_destroy(modes[i]);
    if (path)
        model_runs(path, size, runs, threads, gemm);
    print_load("at end");
    return 0;
}
