/* bench-step MODEL [--size N] [--reps R] [--threads T]
 *
 * Times the parts of one generation separately: text encoding, one U-Net
 * denoising step with classifier-free guidance (batch 2), and the VAE
 * decode, and reports peak memory. The baseline, measured in the same run,
 * is OpenBLAS' sgemm rate on this machine: the U-Net's dense FLOPs (linear,
 * conv and attention products, counted by wrapping the backend table) per
 * second are reported as a fraction of it. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "models/model.h"
#include "pipeline/pipeline.h"
#include "sampling/rng.h"
#include "sgemm_baseline.h"

/* A copy of the CPU backend's table whose GEMM-like entries count FLOPs
 * before calling the originals. `table` comes first so an op's backend
 * pointer is also the counter's. */
typedef struct counting_backend {
    md_backend table;
    md_backend orig;
    double flops;
    double by_op[3]; /* linear, conv, attention */
} counting_backend;

static counting_backend *counter_of(md_backend *be) { return (counting_backend *)be; }

static void count_linear(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                         const md_tensor *b)
{
    int64_t in = w->shape[1], out = w->shape[0];
    double f = 2.0 * (double)(md_tensor_numel(x) / in) * in * out;
    counter_of(be)->flops += f;
    counter_of(be)->by_op[0] += f;
    counter_of(be)->orig.linear(be, y, x, w, b);
}

static void count_conv(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                       const md_tensor *b, int stride, int pad)
{
    double f = 2.0 * (double)md_tensor_numel(y) * w->shape[1] * w->shape[2] * w->shape[3];
    counter_of(be)->flops += f;
    counter_of(be)->by_op[1] += f;
    counter_of(be)->orig.conv2d(be, y, x, w, b, stride, pad);
}

static void count_attention(md_backend *be, md_tensor *o, const md_tensor *q, const md_tensor *k,
                            const md_tensor *v, int heads, float scale, int causal)
{
    double f = 2.0 * (double)q->shape[0] * q->shape[1] * k->shape[1] * (double)(q->shape[2] + v->shape[2]);
    counter_of(be)->flops += f;
    counter_of(be)->by_op[2] += f;
    counter_of(be)->orig.attention(be, o, q, k, v, heads, scale, causal);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds of the whole process (all threads): on a shared machine this
 * tells the work done apart from the time spent waiting for a core. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int size = 0, reps = 2, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else
            path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "usage: bench-step MODEL [--size N] [--reps R] [--threads T]\n");
        return 2;
    }
    md_error err = {0};
    md_backend *cpu = NULL;
    if (md_backend_cpu_create(&cpu, threads, &err) != MD_OK) {
        fprintf(stderr, "bench-step: %s\n", err.msg);
        return 1;
    }
    counting_backend counting = {.table = *cpu, .orig = *cpu};
    counting.table.linear = count_linear;
    counting.table.conv2d = count_conv;
    counting.table.attention = count_attention;
    md_backend *be = &counting.table;

    double gemm = md_bench_sgemm_gflops();
    double t0 = now();
    md_model *m = NULL;
    md_model_options mo = {.backend = be};
    if (md_model_load(path, &mo, &m, &err) != MD_OK) {
        fprintf(stderr, "bench-step: %s\n", err.msg);
        return 1;
    }
    double t_load = now() - t0;
    int f = md_vae_factor(m->vae);
    if (!size)
        size = m->unet_cfg.sample_size * f;
    int lh = size / f, lc = m->unet_cfg.in_channels, ctx = m->unet_cfg.cross_attention_dim;
    size_t n = (size_t)lc * lh * lh;

    float *embeds = calloc((size_t)2 * 77 * ctx, sizeof(float));
    float *pooled = calloc(2 * 1280, sizeof(float));
    t0 = now();
    double c0 = cpu_now();
    md_status st = md_encode_prompt(m, be, "a photo of an astronaut riding a horse on mars", 0,
                                    embeds + (size_t)77 * ctx, pooled + 1280, &err);
    double t_text = now() - t0, c_text = cpu_now() - c0;

    float *x = malloc(sizeof(float) * 2 * n), *eps = malloc(sizeof(float) * 2 * n);
    md_randn(7, 0, 0, x, 2 * n);
    float ts[2] = {500, 500};
    float time_ids[12] = {0};
    md_unet_inputs in = {.batch = 2, .height = lh, .width = lh, .sample = x, .timesteps = ts,
                         .context = embeds, .context_len = 77,
                         .text_embeds = m->family == MD_FAMILY_SDXL ? pooled : NULL,
                         .time_ids = m->family == MD_FAMILY_SDXL ? time_ids : NULL};
    double best = 1e30, first = 0, unet_flops = 0, unet_by_op[3] = {0}, c_unet = 0;
    md_unet_state *state = NULL;
    if (st == MD_OK)
        st = md_unet_state_new(m->unet, &state, &err);
    for (int r = 0; r < reps && st == MD_OK; r++) {
        counting.flops = 0;
        memset(counting.by_op, 0, sizeof counting.by_op);
        t0 = now();
        c0 = cpu_now();
        st = md_unet_forward(m->unet, state, be, &in, eps, &err);
        double t = now() - t0, c = cpu_now() - c0;
        c_unet = r == 0 || c < c_unet ? c : c_unet;
        if (r == 0) {
            first = t;
            unet_flops = counting.flops;
            memcpy(unet_by_op, counting.by_op, sizeof unet_by_op);
        }
        best = t < best ? t : best;
    }
    float *img = malloc(sizeof(float) * 3 * (size_t)size * size);
    t0 = now();
    c0 = cpu_now();
    if (st == MD_OK)
        st = md_vae_decode(m->vae, be, x, 1, lh, lh, img, &err);
    double t_vae = now() - t0, c_vae = cpu_now() - c0;
    if (st != MD_OK) {
        fprintf(stderr, "bench-step: %s\n", err.msg);
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("model %s, %dx%d, %d threads\n", path, size, size, threads);
    printf("sgemm baseline      %8.1f GFLOP/s\n", gemm);
    printf("load                %8.2f s\n", t_load);
    printf("text encode         %8.3f s (cpu %.3f s)\n", t_text, c_text);
    printf("unet step (cfg, b2) %8.3f s (first %.3f s; cpu %.3f s)\n", best, first, c_unet);
    printf("unet dense work     %8.1f GFLOP -> %.1f GFLOP/s = %.2f of the sgemm baseline\n",
           unet_flops / 1e9, unet_flops / best / 1e9, unet_flops / best / 1e9 / gemm);
    printf("  of which linear %.1f, conv %.1f, attention %.1f GFLOP\n", unet_by_op[0] / 1e9,
           unet_by_op[1] / 1e9, unet_by_op[2] / 1e9);
    printf("vae decode          %8.3f s (cpu %.3f s)\n", t_vae, c_vae);
    printf("peak RSS            %8.0f MiB\n", ru.ru_maxrss / 1024.0);
    free(embeds);
    free(pooled);
    free(x);
    free(eps);
    md_unet_state_free(state);
    free(img);
    md_model_free(m);
    md_backend_destroy(cpu);
    return 0;
}
