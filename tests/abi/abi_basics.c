/* ABI basics: version refusal, defaults, struct sizes, errors with their
 * messages, model information, logging. */
#include <stddef.h>

#include "abi_test.h"

typedef struct log_capture {
    int count, errors;
    char last[1024];
} log_capture;

static void on_log(void *user, int level, const char *message)
{
    log_capture *c = user;
    c->count++;
    c->errors += level == MDIFF_LOG_ERROR;
    snprintf(c->last, sizeof c->last, "%s", message);
}

static void test_versions(void)
{
    CHECK(moediffuse_get_api(0, 0) == NULL, "major 0 must be refused");
    CHECK(moediffuse_get_api(2, 0) == NULL, "major 2 must be refused");
    CHECK(moediffuse_get_api(-1, 0) == NULL, "major -1 must be refused");
    const mdiff_api *a = moediffuse_get_api(1, 0), *b = moediffuse_get_api(1, 99);
    CHECK(a && a == b, "every minor of major 1 gets the same table");
    CHECK(a->abi_major == 1 && a->abi_minor == MOEDIFFUSE_ABI_MINOR, "table says %d.%d",
          a->abi_major, a->abi_minor);
    CHECK(a->struct_size == sizeof(mdiff_api), "table struct_size %zu", a->struct_size);
    CHECK(a->version() && *a->version(), "version string");
    CHECK(!strcmp(a->status_name(MDIFF_ERR_BUSY), "busy"), "status_name(BUSY)");
    CHECK(!strcmp(a->status_name(MDIFF_ERR_CANCELLED), "cancelled"), "status_name(CANCELLED)");
    CHECK(!strcmp(a->status_name(12345), "unknown status"), "status_name(unknown)");
    int n = 0;
    while (a->sampler_name(n))
        n++;
    CHECK(n == 6 && !strcmp(a->sampler_name(0), "ddim") && a->sampler_name(-1) == NULL,
          "6 samplers, ddim first (got %d)", n);
    CHECK(a->get_feature("no.such.feature") == NULL && a->get_feature(NULL) == NULL,
          "unknown feature -> NULL");
}

static void test_defaults(const mdiff_api *api)
{
    mdiff_gen_params p;
    memset(&p, 0xAB, sizeof p);
    api->gen_params_init(&p, sizeof p);
    /* 1.3: guidance defaults to the model's own; an older struct keeps 7.5 */
    mdiff_gen_params v12;
    api->gen_params_init(&v12, offsetof(mdiff_gen_params, moe_top_k));
    CHECK(v12.guidance == 7.5f, "a 1.2 struct defaults to guidance 7.5");
    CHECK(p.struct_size == sizeof p && p.steps == 20 && p.guidance == MDIFF_GUIDANCE_MODEL &&
              p.strength == 0.75f && p.moe_top_k == 0 && p.moe_routing == MDIFF_ROUTING_MODEL &&
              p.prompt && !*p.prompt && !p.negative_prompt && !p.sampler && !p.init_image &&
              p.clip_skip == 0 && p.reserved1 == 0,
          "gen_params_init defaults");
    /* An older, smaller struct: init writes only within its size. */
    unsigned char buf[sizeof(mdiff_gen_params) + 8];
    memset(buf, 0xCD, sizeof buf);
    size_t old = offsetof(mdiff_gen_params, clip_skip);
    api->gen_params_init((mdiff_gen_params *)buf, old);
    int untouched = 1;
    for (size_t i = old; i < sizeof buf; i++)
        untouched &= buf[i] == 0xCD;
    CHECK(untouched && ((mdiff_gen_params *)buf)->struct_size == old &&
              ((mdiff_gen_params *)buf)->steps == 20,
          "gen_params_init with a 1.0 size stays within it");
    mdiff_context_params cp;
    api->context_params_init(&cp, sizeof cp);
    CHECK(cp.struct_size == sizeof cp && cp.log_level == MDIFF_LOG_INFO && cp.threads == 0 &&
              !cp.model_path,
          "context_params_init defaults");
    mdiff_image img;
    memset(&img, 0x11, sizeof img);
    api->image_init(&img, sizeof img);
    CHECK(img.struct_size == sizeof img && !img.data && img.width == 0 && img.flags == 0,
          "image_init clears");
}

static void test_create_errors(const mdiff_api *api)
{
    char msg[512];
    mdiff_context *ctx = (mdiff_context *)&msg; /* must be reset to NULL on failure */
    mdiff_context_params cp;
    api->context_params_init(&cp, sizeof cp);
    int rc = api->context_create(&cp, &ctx, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_INVALID && ctx == NULL && strstr(msg, "model_path"),
          "no model path: %d '%s'", rc, msg);
    cp.model_path = "/nonexistent/model";
    log_capture log = {0};
    cp.log = on_log;
    cp.log_user = &log;
    rc = api->context_create(&cp, &ctx, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_IO && strstr(msg, "/nonexistent/model"), "missing model: %d '%s'", rc,
          msg);
    CHECK(log.errors == 1 && strstr(log.last, "/nonexistent/model"), "the error is logged too");
    mdiff_context_params small = cp;
    small.struct_size = 8;
    rc = api->context_create(&small, &ctx, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_INVALID && strstr(msg, "struct_size"), "tiny struct_size: '%s'", msg);
    cp.model_path = test_model("tiny-sd-dense");
    cp.moe_top_k = 1;
    rc = api->context_create(&cp, &ctx, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_UNSUPPORTED && strstr(msg, "no experts"), "top-k on a dense model: '%s'",
          msg);
    /* The message buffer is always terminated, however small. */
    char tiny[8];
    memset(tiny, 'x', sizeof tiny);
    cp.model_path = "/nonexistent/model";
    cp.moe_top_k = 0;
    rc = api->context_create(&cp, &ctx, tiny, sizeof tiny);
    CHECK(rc == MDIFF_ERR_IO && strlen(tiny) == 7, "truncated message '%s'", tiny);
    CHECK(api->context_create(&cp, &ctx, NULL, 0) == MDIFF_ERR_IO, "NULL message buffer is fine");
    api->context_destroy(NULL);
}

static void test_info_and_log(const mdiff_api *api)
{
    log_capture log = {0};
    mdiff_context_params cp;
    api->context_params_init(&cp, sizeof cp);
    cp.model_path = test_model("tiny-sd-dense");
    cp.threads = 1;
    cp.log = on_log;
    cp.log_user = &log;
    char msg[512];
    mdiff_context *ctx = NULL;
    int rc = api->context_create(&cp, &ctx, msg, sizeof msg);
    CHECK(rc == MDIFF_OK && ctx, "load tiny-sd-dense: %s", msg);
    if (!ctx)
        return;
    CHECK(log.count == 2 && strstr(log.last, "loaded") && strstr(log.last, "tiny-sd-dense"),
          "load is logged: '%s'", log.last);
    mdiff_model_info info = {.struct_size = sizeof info};
    CHECK(api->model_info(ctx, &info) == MDIFF_OK, "model_info");
    CHECK(info.family == MDIFF_FAMILY_SD1 && info.native_width == 16 && info.native_height == 16,
          "SD1 at 16x16 (family %d, %dx%d)", info.family, info.native_width, info.native_height);
    CHECK(info.params_total > info.params_unet && info.params_unet > 0 &&
              info.params_active == info.params_total,
          "dense: active == total (%llu, %llu)", (unsigned long long)info.params_active,
          (unsigned long long)info.params_total);
    CHECK(info.moe_layers == 0 && info.num_experts == 0 && info.routing == MDIFF_ROUTING_NONE &&
              info.unet_levels == 2 && info.transformer_blocks > 0 && info.size_multiple > 0,
          "dense shape: %d MoE layers, %d levels, %d blocks", info.moe_layers, info.unet_levels,
          info.transformer_blocks);
    /* An older host's smaller info struct is filled only within its size. */
    unsigned char buf[sizeof(mdiff_model_info)];
    memset(buf, 0xEE, sizeof buf);
    size_t part = offsetof(mdiff_model_info, family);
    ((mdiff_model_info *)buf)->struct_size = part;
    CHECK(api->model_info(ctx, (mdiff_model_info *)buf) == MDIFF_OK &&
              ((mdiff_model_info *)buf)->params_total == info.params_total && buf[part] == 0xEE,
          "model_info honours a smaller struct_size");

    /* Bad generation parameters: the right status and a message naming the problem. */
    struct {
        const char *what;
        int steps, width, height, channels, clip_skip;
        const char *sampler, *prompt;
        int expect;
        const char *needle;
    } bad[] = {
        {"steps 0", 0, 0, 0, 3, 0, NULL, "x", MDIFF_ERR_INVALID, "steps"},
        {"steps 5000", 5000, 0, 0, 3, 0, NULL, "x", MDIFF_ERR_INVALID, "steps"},
        {"unknown sampler", 4, 0, 0, 3, 0, "plms", "x", MDIFF_ERR_INVALID, "unknown sampler 'plms'"},
        {"width 15", 4, 15, 16, 3, 0, NULL, "x", MDIFF_ERR_INVALID, "multiple of"},
        {"width 100000", 4, 100000, 16, 3, 0, NULL, "x", MDIFF_ERR_INVALID, "out of range"},
        {"NULL prompt", 4, 0, 0, 3, 0, NULL, NULL, MDIFF_ERR_INVALID, "prompt"},
        {"2 channels", 4, 0, 0, 2, 0, NULL, "x", MDIFF_ERR_INVALID, "channels"},
        {"clip_skip 99", 4, 0, 0, 3, 99, NULL, "x", MDIFF_ERR_INVALID, "clip_skip"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mdiff_gen_params p;
        api->gen_params_init(&p, sizeof p);
        p.prompt = bad[i].prompt;
        p.steps = bad[i].steps;
        p.width = bad[i].width;
        p.height = bad[i].height;
        p.sampler = bad[i].sampler;
        p.clip_skip = bad[i].clip_skip;
        mdiff_image out;
        api->image_init(&out, sizeof out);
        out.channels = bad[i].channels;
        log.errors = 0;
        rc = api->generate(ctx, &p, &out, msg, sizeof msg);
        CHECK(rc == bad[i].expect && strstr(msg, bad[i].needle) && !out.data,
              "%s: status %d, message '%s'", bad[i].what, rc, msg);
    }
    /* Images: a mask without an init image, a zero strength, a broken image. */
    uint8_t px[16 * 16 * 3] = {0};
    mdiff_image init;
    api->image_init(&init, sizeof init);
    init.data = px;
    init.width = init.height = 16;
    init.channels = 3;
    mdiff_gen_params p;
    api->gen_params_init(&p, sizeof p);
    p.steps = 4;
    mdiff_image out;
    api->image_init(&out, sizeof out);
    p.mask = &init;
    rc = api->generate(ctx, &p, &out, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_INVALID && strstr(msg, "mask needs an init_image"), "mask alone: '%s'",
          msg);
    p.mask = NULL;
    p.init_image = &init;
    p.strength = 0.0f;
    rc = api->generate(ctx, &p, &out, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_INVALID && strstr(msg, "strength"), "strength 0: '%s'", msg);
    p.strength = 0.1f; /* 4 steps x 0.1 runs no step */
    rc = api->generate(ctx, &p, &out, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_INVALID && strstr(msg, "no denoising step"), "too few steps: '%s'", msg);
    p.strength = 0.5f;
    init.channels = 2;
    rc = api->generate(ctx, &p, &out, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_INVALID && strstr(msg, "init_image: channels"), "bad init: '%s'", msg);
    init.channels = 3;
    init.stride = 5;
    rc = api->generate(ctx, &p, &out, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_INVALID && strstr(msg, "stride"), "bad stride: '%s'", msg);
    /* A params struct too small to be any version. */
    api->gen_params_init(&p, sizeof p);
    p.struct_size = 16;
    rc = api->generate(ctx, &p, &out, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_INVALID && strstr(msg, "struct_size"), "tiny params: '%s'", msg);
    CHECK(api->generate(ctx, NULL, &out, msg, sizeof msg) == MDIFF_ERR_INVALID, "NULL params");
    CHECK(api->generate(NULL, &p, &out, msg, sizeof msg) == MDIFF_ERR_INVALID, "NULL context");

    /* After all that the context still works, and logs the run. */
    api->gen_params_init(&p, sizeof p);
    p.prompt = "a photo of a cat";
    p.steps = 3;
    int before = log.count;
    rc = api->generate(ctx, &p, &out, msg, sizeof msg);
    CHECK(rc == MDIFF_OK && out.data && out.width == 16, "a good run after bad ones: '%s'", msg);
    CHECK(log.count >= before + 2 && strstr(log.last, "done in"), "run logged: '%s'", log.last);
    api->image_free(&out);
    CHECK(api->set_log(ctx, NULL, NULL, MDIFF_LOG_DEBUG) == MDIFF_OK, "set_log");
    api->context_destroy(ctx);
}

int main(void)
{
    test_versions();
    const mdiff_api *api = test_api();
    test_defaults(api);
    test_create_errors(api);
    test_info_and_log(api);
    return test_report("abi_basics");
}
