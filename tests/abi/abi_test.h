/* Shared helpers of the ABI tests: checks that count, the test models, and
 * small image utilities. Tests use the public header only. */
#ifndef MD_ABI_TEST_H
#define MD_ABI_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moediffuse.h"

static int test_passes, test_failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            test_passes++;                                                                         \
        } else {                                                                                   \
            test_failures++;                                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static inline int test_report(const char *name)
{
    printf("%s: %d checks passed, %d failed\n", name, test_passes, test_failures);
    return test_failures ? 1 : 0;
}

/* A case folder of the reference set ($MD_GOLDEN_DIR), e.g. "tiny-sd-dense". */
static inline const char *test_model(const char *name)
{
    static char path[1024];
    const char *dir = getenv("MD_GOLDEN_DIR");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "../shared/golden", name);
    return path;
}

static inline const mdiff_api *test_api(void)
{
    const mdiff_api *api = moediffuse_get_api(MOEDIFFUSE_ABI_MAJOR, MOEDIFFUSE_ABI_MINOR);
    if (!api) {
        fprintf(stderr, "FAIL: moediffuse_get_api(%d, %d) returned NULL\n", MOEDIFFUSE_ABI_MAJOR,
                MOEDIFFUSE_ABI_MINOR);
        exit(1);
    }
    return api;
}

/* The bundled demo model (token routing, 4 experts, top 2): models/demo
 * of $MD_SOURCE_DIR. */
static inline const char *test_demo_model(void)
{
    static char path[1024];
    const char *src = getenv("MD_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/models/demo", src ? src : ".");
    return path;
}

/* A context on the model at `path` on `backend` (NULL = "auto"); exits on
 * failure. */
static inline mdiff_context *test_context_at(const mdiff_api *api, const char *path,
                                             const char *backend)
{
    mdiff_context_params cp;
    api->context_params_init(&cp, sizeof cp);
    cp.model_path = path;
    cp.backend = backend;
    cp.threads = 2;
    char msg[512];
    mdiff_context *ctx = NULL;
    int rc = api->context_create(&cp, &ctx, msg, sizeof msg);
    if (rc != MDIFF_OK) {
        fprintf(stderr, "FAIL: cannot load %s: %s: %s\n", cp.model_path, api->status_name(rc), msg);
        exit(1);
    }
    return ctx;
}

static inline mdiff_context *test_context(const mdiff_api *api, const char *model)
{
    return test_context_at(api, test_model(model), NULL);
}

/* FNV-1a over an image's pixels (row by row, so stride padding is left out). */
static inline uint64_t image_hash(const mdiff_image *img)
{
    uint64_t h = 1469598103934665603ULL;
    size_t row = (size_t)img->width * img->channels;
    size_t stride = img->stride ? (size_t)img->stride : row;
    for (int y = 0; y < img->height; y++)
        for (size_t i = 0; i < row; i++)
            h = (h ^ img->data[(size_t)y * stride + i]) * 1099511628211ULL;
    return h;
}

/* Smallest and largest byte of the colour channels. */
static inline void image_range(const mdiff_image *img, int *lo, int *hi)
{
    size_t stride = img->stride ? (size_t)img->stride : (size_t)img->width * img->channels;
    *lo = 255;
    *hi = 0;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++)
            for (int c = 0; c < 3 && c < img->channels; c++) {
                int v = img->data[(size_t)y * stride + (size_t)x * img->channels + c];
                *lo = v < *lo ? v : *lo;
                *hi = v > *hi ? v : *hi;
            }
}

/* Generates and returns the image's hash (0, and a failed check, on error). */
static inline uint64_t test_generate_hash(const mdiff_api *api, mdiff_context *ctx,
                                          const mdiff_gen_params *p)
{
    mdiff_image img;
    api->image_init(&img, sizeof img);
    char msg[512];
    int rc = api->generate(ctx, p, &img, msg, sizeof msg);
    CHECK(rc == MDIFF_OK, "generate: %s", msg);
    uint64_t h = rc == MDIFF_OK ? image_hash(&img) : 0;
    api->image_free(&img);
    return h;
}

/* The MoE layers' names in call order: a router trace callback that keeps
 * the first step's layer names. */
typedef struct test_layers {
    int n;
    char name[64][160];
} test_layers;

static inline void test_on_layer(void *user, const mdiff_router_event *ev)
{
    test_layers *l = user;
    if (ev->step == 0 && l->n < 64)
        snprintf(l->name[l->n++], sizeof l->name[0], "%s", ev->layer_name);
}

/* A routes text (4-expert layers, guidance on) choosing experts a and b for
 * both halves of every layer at each of `steps` steps; its length, or -1
 * when it does not fit cap. */
static inline int test_pinned_routes(const test_layers *l, int steps, int a, int b, char *text,
                                     size_t cap)
{
    size_t n = (size_t)snprintf(text, cap,
                                "{\"format\": \"moe-diffuse-routes\", \"version\": 1, "
                                "\"steps\": %d, \"first_step\": 0, \"groups\": 2, \"layers\": [",
                                steps);
    for (int i = 0; i < l->n && n < cap; i++)
        n += (size_t)snprintf(text + n, cap - n, "%s{\"name\": \"%s\", \"experts\": 4}",
                              i ? ", " : "", l->name[i]);
    if (n < cap)
        n += (size_t)snprintf(text + n, cap - n, "], \"routes\": [");
    for (int s = 0; s < steps && n < cap; s++) {
        n += (size_t)snprintf(text + n, cap - n, "%s[", s ? ", " : "");
        for (int i = 0; i < l->n && n < cap; i++)
            n += (size_t)snprintf(text + n, cap - n,
                                  "%s{\"experts\": [[%d, %d], [%d, %d]]}", i ? ", " : "", a, b,
                                  a, b);
        if (n < cap)
            n += (size_t)snprintf(text + n, cap - n, "]");
    }
    if (n < cap)
        n += (size_t)snprintf(text + n, cap - n, "]}");
    return n < cap ? (int)n : -1;
}

#endif
