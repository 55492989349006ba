/* Tiled VAE decoding on tiny-sd-dense's VAE: a tile covering the latent
 * is the whole decode bit for bit; smaller tiles on sides that are not
 * multiples of the tile (the last tile moved back to the edge) give finite
 * images close to the whole decode, the closer the larger the tile; a tile
 * that is not whole latent pixels is refused; and the memory estimate
 * grows with the image. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "sampling/rng.h"
#include "test_support.h"
#include "vae/vae_tiled.h"

static double psnr(const float *a, const float *b, size_t n)
{
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        se += d * d;
    }
    return se == 0 ? INFINITY : 10.0 * log10(4.0 / (se / (double)n)); /* range [-1, 1] */
}

static void run(void)
{
    char dir[4096];
    md_error err = {0};
    md_backend *cpu = NULL;
    md_model *m = NULL;
    REQUIRE(md_test_golden_path(dir, sizeof dir, "tiny-sd-dense"), "MD_GOLDEN_DIR is not set");
    REQUIRE(md_backend_cpu_create(&cpu, 2, &err) == MD_OK, "%s", err.msg);
    md_model_options opt = {.backend = cpu};
    REQUIRE(md_model_load(dir, &opt, &m, &err) == MD_OK, "%s", err.msg);
    const int f = md_vae_factor(m->vae), lc = m->vae_cfg.latent_channels;
    const int h = 23, w = 37; /* not multiples of any tile */
    size_t nz = (size_t)lc * h * w, npx = (size_t)3 * h * f * w * f;
    float *z = malloc(nz * sizeof(float)), *whole = malloc(npx * sizeof(float));
    float *tiled = malloc(npx * sizeof(float));
    REQUIRE(z && whole && tiled, "out of memory");
    md_randn(5, 0, 0, z, nz);
    REQUIRE(md_vae_decode(m->vae, cpu, z, 1, h, w, whole, &err) == MD_OK, "%s", err.msg);

    CHECK(md_vae_decode_tiled(m->vae, cpu, z, h, w, 64 * f, tiled, &err) == MD_OK &&
              memcmp(whole, tiled, npx * sizeof(float)) == 0,
          "a tile over the whole latent is the whole decode: %s", err.msg);
    double last = 0;
    const int tiles[] = {16, 24, 32}; /* latent pixels */
    for (int i = 0; i < 3; i++) {
        int t = tiles[i] * f;
        REQUIRE(md_vae_decode_tiled(m->vae, cpu, z, h, w, t, tiled, &err) == MD_OK, "%s",
                err.msg);
        int finite = 1;
        for (size_t k = 0; k < npx; k++)
            finite &= isfinite(tiled[k]) != 0;
        double p = psnr(whole, tiled, npx);
        printf("tile %d px on %dx%d: PSNR %.1f dB against the whole decode\n", t, w * f, h * f, p);
        CHECK(finite && p > 20.0, "tile %d: finite %d, PSNR %.1f dB", t, finite, p);
        CHECK(p >= last - 0.5, "tile %d: PSNR %.1f dB, below the smaller tile's %.1f", t, p, last);
        last = p;
    }
    CHECK(md_vae_decode_tiled(m->vae, cpu, z, h, w, f * 8 + 1, tiled, &err) == MD_ERR_INVALID,
          "a tile of %d pixels (not whole latent pixels) is refused", f * 8 + 1);
    CHECK(md_vae_decode_bytes(m->vae, 64, 64) > 3 * md_vae_decode_bytes(m->vae, 32, 32),
          "the estimate grows with the area");
    free(z);
    free(whole);
    free(tiled);
    md_model_free(m);
    md_backend_destroy(cpu);
}

int main(void)
{
    run();
    return md_test_finish("vae tiled");
}
