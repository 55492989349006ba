/* The smallest complete host of libmoediffuse, for integrators to copy:
 * dlopen, version check, a progress bar, Ctrl-C cancels, a binary PPM out.
 *   usage: moediffuse-example MODEL PROMPT OUT.ppm [STEPS [SEED]]
 * The library is $MOEDIFFUSE_LIB, else libmoediffuse.so.1 from the search path. */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "moediffuse.h"
#include "example_output.h"

static const mdiff_api *api;
static mdiff_context *ctx;

static void on_sigint(int sig)
{
    (void)sig;
    api->cancel(ctx); /* a lock-free atomic store: safe in a signal handler */
}

static int on_progress(void *user, const mdiff_progress *p)
{
    (void)user;
    if (p->stage != MDIFF_STAGE_DENOISE || p->total <= 0)
        return 0;
    int done = p->step * 30 / p->total;
    fprintf(stderr, "\r[%.*s%*s] %d/%d", done, "##############################", 30 - done, "",
            p->step, p->total);
    return 0; /* non-zero would cancel */
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL PROMPT OUT.ppm [STEPS [SEED]]\n", argv[0]);
        return 2;
    }
    const char *lib = getenv("MOEDIFFUSE_LIB") ? getenv("MOEDIFFUSE_LIB") : "libmoediffuse.so.1";
    void *so = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    moediffuse_get_api_fn get = so ? (moediffuse_get_api_fn)dlsym(so, MOEDIFFUSE_ENTRY) : NULL;
    api = get ? get(MOEDIFFUSE_ABI_MAJOR, MOEDIFFUSE_ABI_MINOR) : NULL;
    if (!api) {
        fprintf(stderr, "%s: no ABI %d here (%s)\n", lib, MOEDIFFUSE_ABI_MAJOR,
                so ? "major not served" : dlerror());
        return 1;
    }
    fprintf(stderr, "libmoediffuse %s, ABI %d.%d\n", api->version(), api->abi_major, api->abi_minor);

    char msg[512];
    mdiff_context_params cp;
    api->context_params_init(&cp, sizeof cp);
    cp.model_path = argv[1];
    cp.progress = on_progress;
    /* The library's worker threads inherit this mask: SIGINT then reaches
     * the main thread only. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &old);
    int rc = api->context_create(&cp, &ctx, msg, sizeof msg);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (rc != MDIFF_OK) {
        fprintf(stderr, "%s: %s\n", api->status_name(rc), msg);
        return 3;
    }
    signal(SIGINT, on_sigint);

    mdiff_gen_params gp;
    api->gen_params_init(&gp, sizeof gp);
    gp.prompt = argv[2];
    gp.steps = argc > 4 ? atoi(argv[4]) : 20;
    gp.seed = argc > 5 ? strtoull(argv[5], NULL, 10) : 42;
    mdiff_image img;
    api->image_init(&img, sizeof img); /* data NULL: the library allocates */
    rc = api->generate(ctx, &gp, &img, msg, sizeof msg);
    signal(SIGINT, SIG_DFL);
    fputc('\n', stderr);
    rc = example_deliver(api, rc, &img, argv[3], msg);
    api->context_destroy(ctx);
    dlclose(so);
    return rc == MDIFF_OK ? 0 : rc == MDIFF_ERR_CANCELLED ? 130 : 1;
}
