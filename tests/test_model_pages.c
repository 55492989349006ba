/* md_model_release_pages: after it, a component's weight file is no longer
 * resident in this process (its mapping's Rss in /proc/self/smaps), other
 * components' files are, and the weights read back unchanged. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "models/model.h"
#include "test_support.h"

/* Rss in KiB of the mappings of files whose path ends in `suffix`; -1 when
 * smaps cannot be read. */
static long mapped_rss_kib(const char *suffix)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return -1;
    char line[4096];
    long total = 0;
    int in = 0;
    size_t ls = strlen(suffix);
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        long kib;
        if (sscanf(line, "%lx-%lx", &a, &b) == 2 && strchr(line, ' ')) {
            size_t l = strcspn(line, "\n");
            line[l] = '\0';
            in = l >= ls && !strcmp(line + l - ls, suffix);
        } else if (in && sscanf(line, "Rss: %ld kB", &kib) == 1) {
            total += kib;
        }
    }
    fclose(f);
    return total;
}

/* Reads every byte of the component's weights (a checksum, so the reads
 * are not optimised away). */
static uint64_t touch(const md_model *m, const char *label)
{
    uint64_t sum = 0;
    for (int i = 0; i < m->nweights; i++) {
        if (strcmp(md_weights_label(m->weights[i]), label))
            continue;
        for (size_t k = 0; k < md_weights_count(m->weights[i]); k++) {
            const md_tensor *t = md_weights_tensor(m->weights[i], k);
            const unsigned char *p = t->data;
            for (size_t b = 0; b < md_tensor_nbytes(t); b++)
                sum = sum * 31 + p[b];
        }
    }
    return sum;
}

int main(void)
{
    if (!md_test_golden_dir_required())
        return 1;
    md_backend *be = md_test_cpu_backend(1);
    char path[1024];
    md_test_golden_path(path, sizeof path, "tiny-sd-dense");
    md_model_options opt = {.backend = be};
    md_model *m = NULL;
    md_error err = {0};
    if (!CHECK(md_model_load(path, &opt, &m, &err) == MD_OK, "loading %s: %s", path, err.msg))
        return md_test_finish("test_model_pages");

    const char *unet_file = "/unet/diffusion_pytorch_model.safetensors";
    const char *vae_file = "/vae/diffusion_pytorch_model.safetensors";
    uint64_t unet_sum = touch(m, "unet"), vae_sum = touch(m, "vae");
    long unet_before = mapped_rss_kib(unet_file), vae_before = mapped_rss_kib(vae_file);
    /* The tiny U-Net file is 3.1 MB: read whole, most of it is resident. */
    CHECK(unet_before > 2500, "U-Net mapping resident after reading it: %ld KiB", unet_before);
    CHECK(vae_before > 0, "VAE mapping resident after reading it: %ld KiB", vae_before);

    md_model_release_pages(m, "unet");
    long unet_after = mapped_rss_kib(unet_file), vae_after = mapped_rss_kib(vae_file);
    CHECK(unet_after < 64, "U-Net mapping after release: %ld KiB (before %ld)", unet_after,
          unet_before);
    CHECK(vae_after == vae_before, "VAE mapping untouched: %ld KiB, was %ld", vae_after,
          vae_before);
    CHECK(touch(m, "unet") == unet_sum, "U-Net weights read back unchanged");
    CHECK(mapped_rss_kib(unet_file) > 2500, "reading again maps the pages again");

    md_model_release_pages(m, "vae");
    CHECK(mapped_rss_kib(vae_file) < 64, "VAE mapping after release: %ld KiB",
          mapped_rss_kib(vae_file));
    CHECK(touch(m, "vae") == vae_sum, "VAE weights read back unchanged");
    /* A prefix matching no map releases nothing. */
    long unet_again = mapped_rss_kib(unet_file);
    md_model_release_pages(m, "no_such_component");
    CHECK(mapped_rss_kib(unet_file) == unet_again, "unmatched label releases nothing");

    md_model_free(m);
    md_backend_destroy(be);
    return md_test_finish("test_model_pages");
}
