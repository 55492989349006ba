/* bench-vae MODEL --size N [--tile T|auto] [--out FILE] [--ref FILE] [--threads T]
 *
 * Decodes one random N x N latent image (Philox, seed 7) with the model's
 * VAE alone, whole or in tiles (`auto`: the choice a generation makes with
 * the memory available, $MOEDIFFUSE_MEM_AVAILABLE when set), and reports
 * the time and the process's peak RSS. --out writes the decoded image (f32,
 * CHW, [-1, 1]); --ref compares against such a file: PSNR over the value
 * range 2 and the largest difference, the seam error of tiling. One decode
 * per process, so the peak RSS is that decode's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "models/model.h"
#include "runtime/mem_available.h"
#include "sampling/rng.h"
#include "vae/vae_tiled.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int compare(const char *ref, const float *img, size_t n)
{
    FILE *f = fopen(ref, "rb");
    float *r = malloc(sizeof(float) * n);
    size_t got = f && r ? fread(r, sizeof(float), n, f) : 0;
    if (f)
        fclose(f);
    if (got != n) {
        fprintf(stderr, "bench-vae: %s: not a decode of this size\n", ref);
        free(r);
        return 1;
    }
    double se = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)img[i] - r[i]);
        se += d * d;
        worst = d > worst ? d : worst;
    }
    double mse = se / (double)n;
    printf("against %s: PSNR %.2f dB (range 2), max |diff| %.4f (%.1f of 255)\n", ref,
           mse > 0 ? 10 * log10(4.0 / mse) : INFINITY, worst, worst * 127.5);
    free(r);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *out = NULL, *ref = NULL;
    int size = 512, tile = -1, threads = 0; /* -1: whole */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tile") && i + 1 < argc) {
            i++;
            tile = !strcmp(argv[i], "auto") ? 0 : atoi(argv[i]);
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--ref") && i + 1 < argc)
            ref = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else
            path = argv[i];
    }
    if (!path || size <= 0) {
        fprintf(stderr, "usage: bench-vae MODEL --size N [--tile T|auto] [--out F] [--ref F]\n");
        return 2;
    }
    md_error err = {0};
    md_backend *be = NULL;
    md_model *m = NULL;
    md_model_options mo = {0};
    if (md_backend_cpu_create(&be, threads, &err) != MD_OK ||
        (mo.backend = be, md_model_load(path, &mo, &m, &err)) != MD_OK) {
        fprintf(stderr, "bench-vae: %s\n", err.msg);
        return 1;
    }
    const int f = md_vae_factor(m->vae), lh = size / f;
    const size_t n = (size_t)m->vae_cfg.latent_channels * lh * lh, npix = (size_t)size * size;
    if (tile == 0)
        tile = md_vae_auto_tile(m->vae, size, size, md_mem_available());
    float *z = malloc(sizeof(float) * n), *img = malloc(sizeof(float) * 3 * npix);
    if (!z || !img) {
        fprintf(stderr, "bench-vae: out of memory\n");
        return 1;
    }
    md_randn(7, 0, 0, z, n);
    double t0 = now();
    md_status st = tile > 0 ? md_vae_decode_tiled(m->vae, be, z, lh, lh, tile, img, &err)
                            : md_vae_decode(m->vae, be, z, 1, lh, lh, img, &err);
    double t = now() - t0;
    if (st != MD_OK) {
        fprintf(stderr, "bench-vae: %s\n", err.msg);
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("vae decode %dx%d, %s%.0d: %.2f s, peak RSS %.0f MiB (estimate of a whole decode's "
           "activations %.0f MiB)\n",
           size, size, tile > 0 ? "tile " : "whole", tile > 0 ? tile : 0, t,
           ru.ru_maxrss / 1024.0, md_vae_decode_bytes(m->vae, lh, lh) / 1048576.0);
    int rc = 0;
    if (out) {
        FILE *fo = fopen(out, "wb");
        rc = !fo || fwrite(img, sizeof(float), 3 * npix, fo) != 3 * npix;
        if (fo && fclose(fo) != 0)
            rc = 1;
        if (rc)
            fprintf(stderr, "bench-vae: %s: cannot write\n", out);
    }
    if (!rc && ref)
        rc = compare(ref, img, 3 * npix);
    free(z);
    free(img);
    md_model_free(m);
    md_backend_destroy(be);
    return rc;
}
