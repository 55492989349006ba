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

#endif
