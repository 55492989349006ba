/* One host, compiled twice: against the frozen ABI 1.0 header
 * (tests/abi_v1_0/moediffuse.h) and against the current one. Both builds
 * must work against today's library and print the same image hash: an old
 * host keeps working after fields were appended. Uses only what 1.0 has.
 *   usage: compat-host MODEL */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moediffuse.h"

static int steps_seen;

static int on_progress(void *user, const mdiff_progress *p)
{
    (void)user;
    steps_seen += p->stage == MDIFF_STAGE_DENOISE;
    return 0;
}

static uint64_t hash(const mdiff_image *img)
{
    uint64_t h = 1469598103934665603ULL;
    for (int y = 0; y < img->height; y++)
        for (int i = 0; i < img->width * img->channels; i++)
            h = (h ^ img->data[(size_t)y * img->stride + i]) * 1099511628211ULL;
    return h;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    const mdiff_api *api = moediffuse_get_api(MOEDIFFUSE_ABI_MAJOR, MOEDIFFUSE_ABI_MINOR);
    if (!api || api->abi_minor < MOEDIFFUSE_ABI_MINOR)
        return 1;
    char msg[512];
    mdiff_context_params *cp = malloc(sizeof *cp); /* exactly this header's size */
    api->context_params_init(cp, sizeof *cp);
    cp->model_path = argv[1];
    cp->progress = on_progress;
    mdiff_context *ctx = NULL;
    int rc = api->context_create(cp, &ctx, msg, sizeof msg);
    free(cp);
    if (rc != MDIFF_OK) {
        fprintf(stderr, "context_create: %s\n", msg);
        return 1;
    }
    mdiff_gen_params *p = malloc(sizeof *p); /* ASan flags any read past it */
    api->gen_params_init(p, sizeof *p);
    p->prompt = "an old host";
    p->steps = 5;
    p->seed = 99;
    p->sampler = "euler_a";
    mdiff_image *img = malloc(sizeof *img);
    api->image_init(img, sizeof *img);
    rc = api->generate(ctx, p, img, msg, sizeof msg);
    mdiff_model_info *info = malloc(sizeof *info);
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
    int irc = api->model_info(ctx, info);
    if (rc == MDIFF_OK && irc == MDIFF_OK && steps_seen == 5 && img->width == info->native_width)
        printf("header %d.%d, params %zu bytes, library %d.%d, hash %016llx\n", MOEDIFFUSE_ABI_MAJOR,
               MOEDIFFUSE_ABI_MINOR, sizeof *p, api->abi_major, api->abi_minor,
               (unsigned long long)hash(img));
    else
        fprintf(stderr, "generate: %d '%s', model_info %d, %d steps\n", rc, msg, irc, steps_seen);
    api->image_free(img);
    free(img);
    free(info);
    free(p);
    api->context_destroy(ctx);
    return rc == MDIFF_OK && irc == MDIFF_OK && steps_seen == 5 ? 0 : 1;
}
