/* "Paint with experts": a host of libmoediffuse that steers one expert of
 * every MoE layer onto a region of the image, through the router override
 * (feature "moe.router_override", ABI 1.5). At each MoE call it maps the
 * call's token grid onto the mask, adds `strength` to expert E's gate logit
 * on the tokens under the mask, and routes that call per token so each
 * token can take its own experts (also on a sequence-routed SegMoE model).
 *   usage: moediffuse-paint MODEL PROMPT OUT.ppm --expert E
 *                           (--mask MASK.pgm | --rect X,Y,W,H)
 *                           [--strength S] [--steps N] [--seed N]
 * The mask is a binary PGM (P5) of any size, stretched over the image, a
 * pixel >= 128 selecting; --rect is in image pixels. S defaults to 1e4,
 * which forces E into the masked tokens' choice; a few units only tip it.
 * The library is $MOEDIFFUSE_LIB, else libmoediffuse.so.1. */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moediffuse.h"
#include "example_output.h"

typedef struct paint {
    uint8_t *mask;     /* mask_w x mask_h, 1 = paint */
    int mask_w, mask_h;
    int expert;
    float strength;
    long calls, rows;  /* what was biased, for the summary */
} paint;

/* Reads a binary PGM (P5, maxval <= 255); NULL with a reason on failure. */
static uint8_t *read_pgm(const char *path, int *w, int *h, const char **why)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *why = "cannot open it";
        return NULL;
    }
    int v[3], n = 0, c;
    *why = "not a binary PGM (P5) with maxval <= 255";
    if (fgetc(f) != 'P' || fgetc(f) != '5')
        goto fail;
    while (n < 3 && (c = fgetc(f)) != EOF) {
        if (c == '#') { /* a comment runs to the end of its line */
            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
        } else if (c >= '0' && c <= '9') {
            ungetc(c, f);
            if (fscanf(f, "%9d", &v[n++]) != 1)
                goto fail;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            goto fail;
        }
    }
    if (n < 3 || v[0] < 1 || v[1] < 1 || v[0] > 16384 || v[1] > 16384 || v[2] < 1 ||
        v[2] > 255 || fgetc(f) == EOF)
        goto fail;
    size_t size = (size_t)v[0] * (size_t)v[1];
    uint8_t *px = malloc(size);
    if (!px || fread(px, 1, size, f) != size) {
        *why = px ? "the file ends early" : "out of memory";
        free(px);
        goto fail;
    }
    fclose(f);
    for (size_t i = 0; i < size; i++)
        px[i] = px[i] * 255 / v[2] >= 128;
    *w = v[0];
    *h = v[1];
    return px;
fail:
    fclose(f);
    return NULL;
}

/* A w x h mask with the rectangle set (clipped to the image). */
static uint8_t *rect_mask(const char *spec, int w, int h)
{
    int x, y, rw, rh;
    if (sscanf(spec, "%d,%d,%d,%d", &x, &y, &rw, &rh) != 4 || rw < 1 || rh < 1)
        return NULL;
    uint8_t *m = calloc((size_t)w * (size_t)h, 1);
    for (int j = y < 0 ? 0 : y; m && j < h && j < y + rh; j++)
        for (int i = x < 0 ? 0 : x; i < w && i < x + rw; i++)
            m[(size_t)j * w + i] = 1;
    return m;
}

/* The router override: the mask sampled at each grid cell's centre. */
static int on_call(void *user, mdiff_router_override_call *c)
{
    paint *p = user;
    if (c->grid_width <= 0 || c->grid_height <= 0 || p->expert >= c->num_experts)
        return 0; /* text tokens (cross-attention keys/values): not on the image */
    const int64_t cells = (int64_t)c->grid_width * c->grid_height;
    long biased = 0;
    for (int64_t r = 0; r < c->rows; r++) {
        int64_t cell = r % cells; /* every row group (CFG half) is the same image */
        int gx = (int)(cell % c->grid_width), gy = (int)(cell / c->grid_width);
        int mx = (int)((gx + 0.5) * p->mask_w / c->grid_width);
        int my = (int)((gy + 0.5) * p->mask_h / c->grid_height);
        if (p->mask[(size_t)my * p->mask_w + mx]) {
            c->bias[r * c->num_experts + p->expert] += p->strength;
            biased++;
        }
    }
    if (biased) {
        c->routing = MDIFF_ROUTING_TOKEN; /* each token takes its own experts */
        p->calls++;
        p->rows += biased;
    }
    return 0;
}

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s MODEL PROMPT OUT.ppm --expert E (--mask MASK.pgm | --rect X,Y,W,H)\n"
            "       [--strength S] [--steps N] [--seed N]\n",
            argv0);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return usage(argv[0]);
    const char *mask_path = NULL, *rect = NULL;
    paint p = {.expert = -1, .strength = 1e4f};
    int steps = 20;
    unsigned long long seed = 42;
    for (int i = 4; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!v)
            return usage(argv[0]);
        i++;
        if (!strcmp(a, "--mask") || !strcmp(a, "--rect")) {
            *(a[2] == 'm' ? &mask_path : &rect) = v;
            continue;
        }
        if (!strcmp(a, "--expert"))
            p.expert = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--strength"))
            p.strength = strtof(v, &end);
        else if (!strcmp(a, "--steps"))
            steps = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, &end, 10);
        else
            return usage(argv[0]);
        if (end == v || *end != '\0') {
            fprintf(stderr, "%s: bad value '%s'\n", a, v);
            return 2;
        }
    }
    if (p.expert < 0 || !isfinite(p.strength) || !mask_path == !rect) {
        fprintf(stderr, "need --expert E >= 0, a finite --strength and one of --mask, --rect\n");
        return 2;
    }

    const char *lib = getenv("MOEDIFFUSE_LIB") ? getenv("MOEDIFFUSE_LIB") : "libmoediffuse.so.1";
    void *so = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    moediffuse_get_api_fn get = so ? (moediffuse_get_api_fn)dlsym(so, MOEDIFFUSE_ENTRY) : NULL;
    const mdiff_api *api = get ? get(MOEDIFFUSE_ABI_MAJOR, MOEDIFFUSE_ABI_MINOR) : NULL;
    const mdiff_router_override_api *ov =
        api && api->abi_minor >= 5 ? api->get_feature(MDIFF_FEATURE_ROUTER_OVERRIDE) : NULL;
    if (!ov) {
        fprintf(stderr, "%s: no router override (ABI 1.5) here (%s)\n", lib,
                !so ? dlerror() : api ? "an older library" : "major not served");
        return 1;
    }

    char msg[512];
    mdiff_context_params cp;
    api->context_params_init(&cp, sizeof cp);
    cp.model_path = argv[1];
    mdiff_context *ctx = NULL;
    int rc = api->context_create(&cp, &ctx, msg, sizeof msg);
    mdiff_model_info info = {.struct_size = sizeof info};
    if (rc == MDIFF_OK && (rc = api->model_info(ctx, &info)) == MDIFF_OK &&
        p.expert >= info.num_experts) {
        snprintf(msg, sizeof msg, "expert %d: the model has %d experts per MoE layer%s",
                 p.expert, info.num_experts, info.num_experts ? "" : " (a dense model)");
        rc = MDIFF_ERR_INVALID;
    }
    mdiff_gen_params gp, res;
    api->gen_params_init(&gp, sizeof gp);
    gp.prompt = argv[2];
    gp.steps = steps;
    gp.seed = seed;
    res.struct_size = sizeof res;
    if (rc == MDIFF_OK)
        rc = api->resolve_params(ctx, &gp, &res, msg, sizeof msg);
    if (rc == MDIFF_OK) {
        const char *why = "bad --rect (want X,Y,W,H with W, H >= 1)";
        p.mask = mask_path ? read_pgm(mask_path, &p.mask_w, &p.mask_h, &why)
                           : rect_mask(rect, res.width, res.height);
        if (!mask_path) {
            p.mask_w = res.width;
            p.mask_h = res.height;
        }
        if (!p.mask) {
            snprintf(msg, sizeof msg, "%s: %s", mask_path ? mask_path : rect, why);
            rc = MDIFF_ERR_INVALID;
        }
    }
    if (rc == MDIFF_OK)
        rc = ov->set(ctx, on_call, &p);
    mdiff_image img;
    api->image_init(&img, sizeof img);
    if (rc == MDIFF_OK)
        rc = api->generate(ctx, &gp, &img, msg, sizeof msg);
    if (rc == MDIFF_OK)
        fprintf(stderr, "expert %d painted on %ld rows in %ld MoE calls\n", p.expert, p.rows,
                p.calls);
    rc = example_deliver(api, rc, &img, argv[3], msg);
    api->context_destroy(ctx);
    free(p.mask);
    dlclose(so);
    return rc == MDIFF_OK ? 0 : 1;
}
