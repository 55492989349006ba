/* md-test-moe-split MODEL [ROUTING...]: how many MoE layers change the
 * experts the positive (conditional) half chose at step 0 when only the
 * negative prompt changes. For each routing (default: sequence
 * sequence-split) and each of a few prompts and seeds, one step is run
 * with two negative prompts, and every layer's step-0 choice of the first
 * conditional row is compared. Prints "ROUTING changed C of L". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moediffuse.h"

enum { MAX_LAYERS = 256, MAX_K = 16 };

typedef struct seen {
    int n;
    int32_t choice[MAX_LAYERS][MAX_K];
    int k[MAX_LAYERS];
} seen;

static void on_event(void *user, const mdiff_router_event *ev)
{
    seen *s = user;
    if (ev->step != 0 || s->n >= MAX_LAYERS || ev->top_k > MAX_K)
        return;
    int64_t row = ev->groups == 2 ? ev->rows / 2 : 0; /* the first conditional row */
    memcpy(s->choice[s->n], ev->choice + row * ev->top_k, sizeof(int32_t) * (size_t)ev->top_k);
    s->k[s->n++] = ev->top_k;
}

static int run(const mdiff_api *api, mdiff_context *ctx, const mdiff_router_trace_api *tr,
               int routing, const char *prompt, const char *neg, uint64_t seed, seen *out)
{
    mdiff_gen_params p;
    api->gen_params_init(&p, sizeof p);
    p.prompt = prompt;
    p.negative_prompt = neg;
    p.seed = seed;
    p.steps = 1;
    p.guidance = 7.5f;
    p.moe_routing = routing;
    mdiff_image img;
    api->image_init(&img, sizeof img);
    char msg[512];
    memset(out, 0, sizeof *out);
    tr->set(ctx, on_event, out);
    int rc = api->generate(ctx, &p, &img, msg, sizeof msg);
    tr->set(ctx, NULL, NULL);
    api->image_free(&img);
    if (rc != MDIFF_OK)
        fprintf(stderr, "md-test-moe-split: %s\n", msg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: md-test-moe-split MODEL [sequence|sequence-split|token ...]\n");
        return 2;
    }
    const mdiff_api *api = moediffuse_get_api(MOEDIFFUSE_ABI_MAJOR, MOEDIFFUSE_ABI_MINOR);
    mdiff_context_params cp;
    api->context_params_init(&cp, sizeof cp);
    cp.model_path = argv[1];
    cp.backend = "cpu";
    mdiff_context *ctx = NULL;
    char msg[512];
    if (api->context_create(&cp, &ctx, msg, sizeof msg) != MDIFF_OK) {
        fprintf(stderr, "md-test-moe-split: %s\n", msg);
        return 1;
    }
    const mdiff_router_trace_api *tr = api->get_feature(MDIFF_FEATURE_ROUTER_TRACE);
    static const char *const prompts[] = {"a red circle", "a lighthouse at dusk",
                                          "a small blue star on the left", "a cat"};
    static const char *const names[] = {"sequence", "token", "sequence-split"};
    static const int codes[] = {MDIFF_ROUTING_SEQUENCE, MDIFF_ROUTING_TOKEN,
                                MDIFF_ROUTING_SEQUENCE_SPLIT};
    const char *def[] = {"sequence", "sequence-split"};
    char **want = argc > 2 ? argv + 2 : (char **)def;
    int nwant = argc > 2 ? argc - 2 : 2, rc = 0;
    static seen a, b;
    for (int w = 0; w < nwant && rc == 0; w++) {
        int code = -1;
        for (int i = 0; i < 3; i++)
            if (!strcmp(want[w], names[i]))
                code = codes[i];
        if (code < 0) {
            fprintf(stderr, "md-test-moe-split: unknown routing %s\n", want[w]);
            rc = 2;
            break;
        }
        int changed = 0, layers = 0;
        for (int i = 0; i < 4 && rc == 0; i++)
            for (uint64_t seed = 1; seed <= 2 && rc == 0; seed++) {
                rc = run(api, ctx, tr, code, prompts[i], "", seed, &a) ||
                     run(api, ctx, tr, code, prompts[i], "blurry, dark, low quality", seed, &b);
                for (int l = 0; rc == 0 && l < a.n && l < b.n; l++) {
                    layers++;
                    changed += a.k[l] != b.k[l] ||
                               memcmp(a.choice[l], b.choice[l], sizeof(int32_t) * (size_t)a.k[l]);
                }
            }
        printf("%s changed %d of %d\n", want[w], changed, layers);
    }
    api->context_destroy(ctx);
    return rc;
}
