/* End to end: the same prompt, seed and sampler through the CPU and the
 * Vulkan backends give the same image (max |difference| <= 1e-4 on [0, 1]
 * floats, before 8-bit quantisation), for a dense SD model, a per-token MoE
 * model and a SegMoE SDXL model from ../shared/golden. Validation layers on,
 * and silent. Exit 77 (skipped) when there is no Vulkan device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "pipeline/pipeline.h"
#include "runtime/vulkan_api.h"

/* The validation layer (C++) leaks inside its own allocations, which
 * LeakSanitizer would report; sanitizer builds check this code's memory,
 * release builds check the API usage. */
#if defined(__SANITIZE_ADDRESS__)
#define MD_TEST_VALIDATION 0
#else
#define MD_TEST_VALIDATION 1
#endif

#define MD_E2E_TOL 1e-4

static float *generate(md_backend *be, const char *dir, int *w, int *h, md_error *err)
{
    md_model *m = NULL;
    md_model_options opt = {.backend = be};
    if (md_model_load(dir, &opt, &m, err) != MD_OK)
        return NULL;
    md_gen_params p;
    md_gen_params_init(&p);
    p.prompt = "a red circle on a blue background";
    p.negative_prompt = "blurry";
    p.steps = 3;
    p.sampler = MD_SAMPLER_EULER_A; /* fresh noise each step: the host RNG path too */
    p.seed = 42;
    int f = md_vae_factor(m->vae);
    p.width = *w = 12 * f; /* not square, not a power of two */
    p.height = *h = 8 * f;
    float *img = malloc(sizeof(float) * 3 * (size_t)p.width * (size_t)p.height);
    if (!img || md_generate(m, &p, NULL, img, err) != MD_OK) {
        free(img);
        img = NULL;
    }
    md_model_free(m);
    return img;
}

int main(void)
{
    const char *golden = getenv("MD_GOLDEN_DIR");
    if (!golden) {
        printf("FAIL: MD_GOLDEN_DIR is not set\n");
        return 1;
    }
    md_error err = {0};
    md_backend *vk = NULL, *cpu = NULL;
    md_vulkan_options opt = {.device = -1, .allow_cpu = 1, .validation = MD_TEST_VALIDATION};
    md_status s = md_backend_vulkan_create(&vk, &opt, &err);
    if (s != MD_OK) {
        md_vulkan_device_info info;
        int n = 0;
        md_error lerr = {0};
        md_vulkan_list_devices(&info, 1, &n, &lerr);
        printf("%s: %s\n", n == 0 ? "SKIP: no Vulkan device" : "FAIL", err.msg);
        return n == 0 ? 77 : 1;
    }
    if (md_backend_cpu_create(&cpu, 2, &err) != MD_OK) {
        printf("FAIL: %s\n", err.msg);
        return 1;
    }
    printf("on %s\n", md_vulkan_device_name(vk));

    static const char *const cases[] = {"tiny-sd-dense", "tiny-sd-moe", "tiny-segmoe-sdxl"};
    int failures = 0;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char dir[2048];
        snprintf(dir, sizeof dir, "%s/%s", golden, cases[c]);
        int w = 0, h = 0;
        float *a = generate(cpu, dir, &w, &h, &err);
        float *b = a ? generate(vk, dir, &w, &h, &err) : NULL;
        if (!b && vk->sync)
            vk->sync(vk, &err);
        if (!a || !b) {
            printf("FAIL %s: %s\n", cases[c], err.msg);
            failures++;
            free(a);
            continue;
        }
        double maxdiff = 0, lo = 1, hi = 0;
        size_t n = 3 * (size_t)w * (size_t)h;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)a[i] - (double)b[i]);
            if (!(d <= maxdiff))
                maxdiff = isnan(d) ? INFINITY : d;
            lo = a[i] < lo ? a[i] : lo;
            hi = a[i] > hi ? a[i] : hi;
        }
        int ok = maxdiff <= MD_E2E_TOL && hi > lo; /* a flat image would prove little */
        printf("%s %-18s %dx%d  max |cpu - vulkan| = %.3e (tolerance %.0e)\n", ok ? "ok  " : "FAIL",
               cases[c], w, h, maxdiff, MD_E2E_TOL);
        failures += !ok;
        free(a);
        free(b);
    }
    if (vk->sync(vk, &err) != MD_OK) {
        printf("FAIL: %s\n", err.msg);
        failures++;
    }
    char first[512];
    uint64_t msgs = md_vulkan_validation_messages(vk, first, sizeof first);
    if (msgs) {
        printf("FAIL: %llu validation messages; first: %s\n", (unsigned long long)msgs, first);
        failures++;
    }
    md_backend_destroy(vk);
    md_backend_destroy(cpu);
    return failures ? 1 : 0;
}
