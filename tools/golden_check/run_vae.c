/* vae.decode.output, vae.encode.mean / logvar. */
#include <stdio.h>
#include <stdlib.h>

#include "gc.h"

void gc_run_vae(gc_case *c)
{
    if (!gc_has(c, "vae.decode.latent") && !gc_has(c, "vae.encode.image"))
        return;
    md_model *m = gc_model(c);
    if (!m)
        return;
    md_error err = {0};
    int f = md_vae_factor(m->vae);
    const md_tensor *lt = md_safetensors_find(c->gold, "vae.decode.latent");
    if (lt) {
        size_t n = 0;
        float *z = gc_gold_f32(c, "vae.decode.latent", &n);
        int b = (int)lt->shape[0], h = (int)lt->shape[2], w = (int)lt->shape[3];
        size_t nout = (size_t)b * m->vae_cfg.out_channels * h * f * w * f;
        float *img = malloc(sizeof(float) * nout);
        if (z && img) {
            for (size_t i = 0; i < n; i++)
                z[i] /= m->vae_cfg.scaling_factor;
            if (md_vae_decode(m->vae, c->be, z, b, h, w, img, &err) == MD_OK)
                gc_put(c, "vae.decode.output", img, nout, 0);
            else
                fprintf(stderr, "golden-check: vae decode: %s\n", err.msg);
        }
        free(z);
        free(img);
    }
    const md_tensor *it = md_safetensors_find(c->gold, "vae.encode.image");
    if (it) {
        size_t n = 0;
        float *img = gc_gold_f32(c, "vae.encode.image", &n);
        int b = (int)it->shape[0], H = (int)it->shape[2], W = (int)it->shape[3];
        size_t nl = (size_t)b * m->vae_cfg.latent_channels * (H / f) * (W / f);
        float *mean = malloc(sizeof(float) * nl), *logvar = malloc(sizeof(float) * nl);
        if (img && mean && logvar) {
            if (md_vae_encode(m->vae, c->be, img, b, H, W, mean, logvar, &err) == MD_OK) {
                gc_put(c, "vae.encode.mean", mean, nl, 0);
                gc_put(c, "vae.encode.logvar", logvar, nl, 0);
            } else {
                fprintf(stderr, "golden-check: vae encode: %s\n", err.msg);
            }
        }
        free(img);
        free(mean);
        free(logvar);
    }
}
