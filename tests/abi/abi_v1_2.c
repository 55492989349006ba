/* What ABI 1.2 added: backend choice, SDXL micro-conditioning, the prompt
 * syntax, inpainting paste-back, the family's guidance in model_info, and
 * the features "moe.router_trace", "model.describe", "backend.devices" and
 * "backend.profile". */
#include <stddef.h>

#include "abi_test.h"

static mdiff_context *open_ctx(const mdiff_api *api, const char *model, const char *backend,
                               int device, int *rc, char *msg, size_t cap)
{
    mdiff_context_params cp;
    api->context_params_init(&cp, sizeof cp);
    cp.model_path = test_model(model);
    cp.threads = 2;
    cp.backend = backend;
    cp.device = device;
    mdiff_context *ctx = NULL;
    *rc = api->context_create(&cp, &ctx, msg, cap);
    return ctx;
}

static int generate(const mdiff_api *api, mdiff_context *ctx, const mdiff_gen_params *p,
                    mdiff_image *out)
{
    char msg[512];
    api->image_init(out, sizeof *out);
    int rc = api->generate(ctx, p, out, msg, sizeof msg);
    if (rc != MDIFF_OK)
        fprintf(stderr, "generate: %s: %s\n", api->status_name(rc), msg);
    return rc;
}

static void test_backend_choice(const mdiff_api *api)
{
    mdiff_context_params cp;
    api->context_params_init(&cp, sizeof cp);
    CHECK(cp.struct_size == sizeof cp && cp.backend == NULL && cp.device == -1 && cp.flags == 0,
          "1.2 context defaults (device %d)", cp.device);
    char msg[512];
    int rc;
    mdiff_context *ctx = open_ctx(api, "tiny-sd-dense", "quantum", -1, &rc, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_INVALID && !ctx && strstr(msg, "quantum"),
          "unknown backend named: %d '%s'", rc, msg);
    ctx = open_ctx(api, "tiny-sd-dense", "cpu", -2, &rc, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_INVALID && !ctx, "device -2 refused: %d '%s'", rc, msg);
    ctx = open_ctx(api, "tiny-sd-dense", "cpu", -1, &rc, msg, sizeof msg);
    CHECK(rc == MDIFF_OK && ctx, "explicit cpu: %s", msg);
    const mdiff_profile_api *pa = api->get_feature(MDIFF_FEATURE_PROFILE);
    CHECK(pa && pa->struct_size >= sizeof *pa, "profile feature");
    if (ctx && pa) {
        char name[64];
        CHECK(pa->backend_name(ctx, name, sizeof name) == 3 && !strcmp(name, "cpu"),
              "backend name '%s'", name);
        CHECK(pa->report(ctx, name, sizeof name) == MDIFF_ERR_UNSUPPORTED,
              "no profile on a CPU context");
    }
    api->context_destroy(ctx);
    /* A host built against 1.0/1.1 runs on the CPU, as it always did. */
    api->context_params_init(&cp, offsetof(mdiff_context_params, backend));
    cp.model_path = test_model("tiny-sd-dense");
    mdiff_context *old = NULL;
    rc = api->context_create(&cp, &old, msg, sizeof msg);
    if (old && pa) {
        char name[64];
        pa->backend_name(old, name, sizeof name);
        CHECK(!strcmp(name, "cpu"), "a 1.1-sized context runs on the CPU: '%s'", name);
    }
    CHECK(rc == MDIFF_OK, "a 1.1-sized context loads: %s", msg);
    api->context_destroy(old);
    /* "auto" never takes a CPU-type Vulkan device: in CI (lavapipe only) it
     * must run on the CPU; with a GPU it may take it. */
    ctx = open_ctx(api, "tiny-sd-dense", NULL, -1, &rc, msg, sizeof msg);
    CHECK(rc == MDIFF_OK && ctx, "auto backend: %s", msg);
    if (ctx && pa) {
        char name[400];
        pa->backend_name(ctx, name, sizeof name);
        CHECK(!strstr(name, "(cpu)"), "auto did not pick a CPU-type Vulkan device: '%s'", name);
    }
    api->context_destroy(ctx);
}

static void test_devices(const mdiff_api *api)
{
    const mdiff_devices_api *da = api->get_feature(MDIFF_FEATURE_DEVICES);
    CHECK(da && da->struct_size >= sizeof *da, "devices feature");
    if (!da)
        return;
    mdiff_device_info dev[8];
    for (int i = 0; i < 8; i++)
        dev[i].struct_size = sizeof dev[i];
    char msg[256];
    int n = da->list(dev, 8, msg, sizeof msg);
    CHECK(n >= 0, "list: %d '%s'", n, msg);
    CHECK(n > 0 || msg[0], "no device comes with a reason");
    for (int i = 0; i < n && i < 8; i++) {
        CHECK(dev[i].index == i && dev[i].name[0] && dev[i].type >= 0 && dev[i].type <= 4,
              "device %d: '%s' type %d", i, dev[i].name, dev[i].type);
        CHECK(dev[i].usable || dev[i].why_not[0], "device %d unusable without a reason", i);
    }
    CHECK(da->list(NULL, 0, NULL, 0) == n, "counting only gives the same number");
    dev[0].struct_size = 8;
    CHECK(da->list(dev, 1, msg, sizeof msg) == MDIFF_ERR_INVALID, "small struct refused");
}

static void test_describe(const mdiff_api *api, mdiff_context *ctx)
{
    const mdiff_describe_api *d = api->get_feature(MDIFF_FEATURE_DESCRIBE);
    CHECK(d && d->struct_size >= sizeof *d, "describe feature");
    if (!d)
        return;
    char text[4096];
    int n = d->describe(ctx, text, sizeof text);
    CHECK(n > 100 && (size_t)n < sizeof text && strstr(text, "U-Net") &&
              strstr(text, "4 experts per layer, top-2") && strstr(text, "parameters"),
          "description (%d bytes): %s", n, text);
    char small[16];
    CHECK(d->describe(ctx, small, sizeof small) == n && strlen(small) == 15,
          "a short buffer gets the start and the full length");
}

typedef struct trace_log {
    int events, bad, max_step;
    int64_t rows;
    char first[160];
    int first_count;
} trace_log;

static void on_event(void *user, const mdiff_router_event *ev)
{
    trace_log *t = user;
    if (t->events == 0)
        snprintf(t->first, sizeof t->first, "%s", ev->layer_name);
    if (!strcmp(ev->layer_name, t->first))
        t->first_count++;
    t->events++;
    t->rows += ev->rows;
    t->max_step = ev->step > t->max_step ? ev->step : t->max_step;
    if (ev->struct_size < sizeof *ev || ev->num_experts != 4 || ev->top_k != 2 || ev->rows < 1)
        t->bad++;
    for (int64_t r = 0; r < ev->rows; r++) {
        for (int k = 0; k < ev->top_k; k++) {
            int e = ev->choice[r * ev->top_k + k];
            if (e < 0 || e >= ev->num_experts)
                t->bad++;
        }
        for (int e = 0; e < ev->num_experts; e++)
            if (!(ev->logits[r * ev->num_experts + e] == ev->logits[r * ev->num_experts + e]))
                t->bad++; /* NaN */
    }
}

static void test_router_trace(const mdiff_api *api, mdiff_context *ctx)
{
    const mdiff_router_trace_api *ta = api->get_feature(MDIFF_FEATURE_ROUTER_TRACE);
    CHECK(ta && ta->struct_size >= sizeof *ta, "router trace feature");
    if (!ta)
        return;
    mdiff_model_info info = {.struct_size = sizeof info};
    api->model_info(ctx, &info);
    trace_log t = {0};
    CHECK(ta->set(ctx, on_event, &t) == MDIFF_OK, "trace on");
    mdiff_gen_params p;
    api->gen_params_init(&p, sizeof p);
    p.prompt = "a red circle";
    p.steps = 3;
    mdiff_image out;
    CHECK(generate(api, ctx, &p, &out) == MDIFF_OK, "generate traced");
    api->image_free(&out);
    /* One U-Net call per step (guidance batched), each through every MoE layer. */
    CHECK(t.events == 3 * info.moe_layers && t.first_count == 3 && t.bad == 0 && t.max_step == 2,
          "events %d (want %d), first layer %d times, bad %d, last step %d", t.events,
          3 * info.moe_layers, t.first_count, t.bad, t.max_step);
    CHECK(ta->set(ctx, NULL, NULL) == MDIFF_OK, "trace off");
    int before = t.events;
    CHECK(generate(api, ctx, &p, &out) == MDIFF_OK, "generate untraced");
    api->image_free(&out);
    CHECK(t.events == before, "no events once off");
}

static void test_sdxl(const mdiff_api *api)
{
    char msg[512];
    int rc;
    mdiff_context *ctx = open_ctx(api, "tiny-sdxl", "cpu", -1, &rc, msg, sizeof msg);
    CHECK(rc == MDIFF_OK, "load tiny-sdxl: %s", msg);
    if (!ctx)
        return;
    mdiff_model_info info = {.struct_size = sizeof info};
    api->model_info(ctx, &info);
    CHECK(info.family == MDIFF_FAMILY_SDXL && info.default_guidance == 5.0f &&
              info.text_encoders == 2,
          "SDXL info: family %d, guidance %g, %d encoders", info.family, info.default_guidance,
          info.text_encoders);
    mdiff_gen_params p;
    api->gen_params_init(&p, sizeof p);
    CHECK(p.prompt_syntax == MDIFF_PROMPT_WEIGHTED && p.original_width == 0 && p.crop_top == 0,
          "1.2 generation defaults");
    p.prompt = "a lighthouse";
    p.steps = 2;
    p.seed = 5;
    mdiff_image a, b, c;
    generate(api, ctx, &p, &a);
    p.original_width = p.original_height = 4096;
    generate(api, ctx, &p, &b);
    p.original_width = p.original_height = 0;
    p.crop_top = 64;
    generate(api, ctx, &p, &c);
    CHECK(a.data && b.data && c.data && image_hash(&a) != image_hash(&b) &&
              image_hash(&a) != image_hash(&c) && image_hash(&b) != image_hash(&c),
          "original size and crop change the image");
    api->image_free(&a);
    api->image_free(&b);
    api->image_free(&c);
    p.crop_top = -1;
    CHECK(api->generate(ctx, &p, &a, msg, sizeof msg) == MDIFF_ERR_INVALID && strstr(msg, "crop"),
          "negative crop refused: '%s'", msg);
    api->context_destroy(ctx);
}

static void test_prompt_syntax(const mdiff_api *api, mdiff_context *ctx)
{
    mdiff_gen_params p;
    api->gen_params_init(&p, sizeof p);
    p.prompt = "a (red:1.6) circle";
    p.steps = 2;
    p.seed = 3;
    mdiff_image w, pl;
    generate(api, ctx, &p, &w);
    p.prompt_syntax = MDIFF_PROMPT_PLAIN;
    generate(api, ctx, &p, &pl);
    CHECK(w.data && pl.data && image_hash(&w) != image_hash(&pl),
          "emphasis is parsed by default and not in plain mode");
    api->image_free(&w);
    api->image_free(&pl);
    p.prompt_syntax = 7;
    char msg[256];
    CHECK(api->generate(ctx, &p, &w, msg, sizeof msg) == MDIFF_ERR_INVALID,
          "unknown syntax refused");
    /* 700 words: past the weighted syntax's 600-token limit. */
    size_t cap = 700 * 4 + 1;
    char *longp = malloc(cap);
    if (!longp)
        return;
    longp[0] = '\0';
    for (int i = 0; i < 700; i++)
        strcat(longp, "cat ");
    p.prompt = longp;
    p.prompt_syntax = MDIFF_PROMPT_WEIGHTED;
    int rc = api->generate(ctx, &p, &w, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_INVALID && strstr(msg, "token"), "too long a prompt: %d '%s'", rc, msg);
    p.prompt_syntax = MDIFF_PROMPT_PLAIN; /* plain truncates, as diffusers does */
    CHECK(generate(api, ctx, &p, &w) == MDIFF_OK, "plain truncates a long prompt");
    api->image_free(&w);
    /* A host built against 1.1 (88-byte params) keeps plain prompts. */
    p.prompt_syntax = MDIFF_PROMPT_WEIGHTED;
    p.struct_size = offsetof(mdiff_gen_params, prompt_syntax);
    CHECK(generate(api, ctx, &p, &w) == MDIFF_OK, "a 1.1 host's long prompt is truncated");
    api->image_free(&w);
    free(longp);
}

/* Inpainting keeps the init image outside the mask (away from the feathered edge). */
static void test_paste_back(const mdiff_api *api, mdiff_context *ctx)
{
    enum { S = 32 };
    static uint8_t init_px[S * S * 3], mask_px[S * S];
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            for (int c = 0; c < 3; c++)
                init_px[(y * S + x) * 3 + c] = (uint8_t)((x * 7 + y * 3 + c * 50) & 255);
            mask_px[y * S + x] = x < S / 2 ? 255 : 0;
        }
    mdiff_image init, mask;
    api->image_init(&init, sizeof init);
    api->image_init(&mask, sizeof mask);
    init.data = init_px;
    init.width = init.height = S;
    init.channels = 3;
    mask.data = mask_px;
    mask.width = mask.height = S;
    mask.channels = 1;
    mdiff_gen_params p;
    api->gen_params_init(&p, sizeof p);
    p.prompt = "a blue square";
    p.steps = 4;
    p.strength = 1.0f;
    p.init_image = &init;
    p.mask = &mask;
    mdiff_image out;
    if (generate(api, ctx, &p, &out) != MDIFF_OK || !out.data) {
        CHECK(0, "inpaint failed");
        return;
    }
    int kept = 1, changed = 0;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int c = 0; c < 3; c++) {
                int got = out.data[(y * S + x) * 3 + c], want = init_px[(y * S + x) * 3 + c];
                if (x >= S / 2 + 4 && got != want)
                    kept = 0;
                if (x < S / 2 - 4 && got != want)
                    changed = 1;
            }
    CHECK(kept && changed, "outside the mask exact (%d), inside repainted (%d)", kept, changed);
    api->image_free(&out);
}

int main(void)
{
    const mdiff_api *api = test_api();
    CHECK(api->abi_minor >= 2, "library serves 1.2 (minor %d)", api->abi_minor);
    test_backend_choice(api);
    test_devices(api);
    mdiff_context *moe = test_context(api, "tiny-sd-moe");
    test_describe(api, moe);
    test_router_trace(api, moe);
    test_prompt_syntax(api, moe);
    test_paste_back(api, moe);
    api->context_destroy(moe);
    test_sdxl(api);
    return test_report("abi_v1_2");
}
