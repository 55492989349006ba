/* ABI 1.3: the library's one validation (resolve_params), the request's
 * MoE fields read per generation without a reload, and two contexts that
 * share one loaded model generating at once from two threads (also run
 * under ThreadSanitizer, label "threads"). */
#include <pthread.h>

#include "abi_test.h"

#define STEPS 3

static void test_resolve(const mdiff_api *api, mdiff_context *ctx)
{
    char msg[512];
    mdiff_gen_params p, r = {.struct_size = sizeof r};
    api->gen_params_init(&p, sizeof p);
    CHECK(p.guidance == MDIFF_GUIDANCE_MODEL, "1.3 default guidance: the model's");
    p.prompt = "a cat";
    /* Without a model: checked, the model's values left open. */
    CHECK(api->resolve_params(NULL, &p, &r, msg, sizeof msg) == MDIFF_OK, "alone: %s", msg);
    CHECK(r.width == 0 && r.guidance == MDIFF_GUIDANCE_MODEL && r.sampler &&
              !strcmp(r.sampler, "dpmpp_2m_karras"),
          "alone: size and guidance open, sampler named");
    /* With the model: every default resolved. */
    mdiff_model_info info = {.struct_size = sizeof info};
    api->model_info(ctx, &info);
    CHECK(api->resolve_params(ctx, &p, &r, msg, sizeof msg) == MDIFF_OK, "with model: %s", msg);
    CHECK(r.width == info.native_width && r.height == info.native_height &&
              r.guidance == info.default_guidance && r.moe_top_k == info.top_k &&
              r.moe_routing == MDIFF_ROUTING_SEQUENCE,
          "resolved: %dx%d guidance %g top-%d routing %d", r.width, r.height, (double)r.guidance,
          r.moe_top_k, r.moe_routing);
    /* The same checks as generate's, with their messages. */
    static const struct {
        int32_t steps, top_k, routing;
        const char *want;
    } bad[] = {{0, 0, 0, "steps must be 1..1000"},
               {3, 5, 0, "the model has 4 experts"},
               {3, 17, 0, "moe_top_k must be 0..16"},
               {3, 0, 7, "unknown moe_routing"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mdiff_gen_params q = p;
        q.steps = bad[i].steps;
        q.moe_top_k = bad[i].top_k;
        q.moe_routing = bad[i].routing;
        int rc = api->resolve_params(ctx, &q, &r, msg, sizeof msg);
        CHECK(rc == MDIFF_ERR_INVALID && strstr(msg, bad[i].want), "'%s' for %s", msg,
              bad[i].want);
        mdiff_image out;
        api->image_init(&out, sizeof out);
        rc = api->generate(ctx, &q, &out, msg, sizeof msg);
        CHECK(rc == MDIFF_ERR_INVALID && strstr(msg, bad[i].want), "generate: '%s'", msg);
    }
    /* A 1.2 host's struct still gets 7.5. */
    mdiff_gen_params old;
    api->gen_params_init(&old, offsetof(mdiff_gen_params, moe_top_k));
    CHECK(old.guidance == 7.5f, "1.2 struct: guidance 7.5");
}

typedef struct job {
    const mdiff_api *api;
    mdiff_context *ctx;
    const char *prompt;
    uint64_t seed;
    int top_k, routing;
    uint64_t hash;
    int rc;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    char msg[512];
    mdiff_gen_params p;
    j->api->gen_params_init(&p, sizeof p);
    p.prompt = j->prompt;
    p.steps = STEPS;
    p.seed = j->seed;
    p.moe_top_k = j->top_k;
    p.moe_routing = j->routing;
    mdiff_image out;
    j->api->image_init(&out, sizeof out);
    j->rc = j->api->generate(j->ctx, &p, &out, msg, sizeof msg);
    j->hash = j->rc == MDIFF_OK ? image_hash(&out) : 0;
    j->api->image_free(&out);
    return NULL;
}

static uint64_t one(const mdiff_api *api, mdiff_context *ctx, int top_k, int routing)
{
    job j = {api, ctx, "a castle made of glass", 11, top_k, routing, 0, 0};
    run_job(&j);
    CHECK(j.rc == MDIFF_OK, "generate top-k %d routing %d", top_k, routing);
    return j.hash;
}

/* The request's MoE fields change the routing of that generation only. */
static void test_moe_fields(const mdiff_api *api, mdiff_context *ctx)
{
    uint64_t own = one(api, ctx, 0, 0), k1 = one(api, ctx, 1, 0), k2 = one(api, ctx, 2, 0);
    uint64_t token = one(api, ctx, 0, MDIFF_ROUTING_TOKEN);
    CHECK(own == k2, "top-k 2 given equals the model's own top-2");
    CHECK(k1 != own, "top-k 1 changes the image");
    CHECK(token != own, "token routing changes the image");
    CHECK(one(api, ctx, 0, 0) == own, "the next request without MoE fields is the model's again");
    /* expert_settings: a context default, no reload, and a request still wins. */
    const mdiff_expert_settings_api *es = api->get_feature(MDIFF_FEATURE_EXPERT_SETTINGS);
    mdiff_expert_settings s = {.struct_size = sizeof s, .top_k = 1};
    char msg[256];
    CHECK(es && es->set(ctx, &s, msg, sizeof msg) == MDIFF_OK, "expert_settings.set 1: %s", msg);
    CHECK(one(api, ctx, 0, 0) == k1, "context default top-1 gives the top-1 image");
    CHECK(one(api, ctx, 2, 0) == own, "a request's top-2 wins over the context default");
    s.top_k = 0;
    es->set(ctx, &s, msg, sizeof msg);
}

/* Two contexts on one loaded model, generating at once: the same bytes as
 * one after the other. */
static void test_shared(const mdiff_api *api, mdiff_context *owner)
{
    mdiff_context_params cp;
    api->context_params_init(&cp, sizeof cp);
    cp.share_model = owner;
    cp.threads = 1;
    char msg[512];
    mdiff_context *second = NULL;
    int rc = api->context_create(&cp, &second, msg, sizeof msg);
    CHECK(rc == MDIFF_OK, "context sharing the model: %s", msg);
    if (rc != MDIFF_OK)
        return;
    job seq[2] = {{api, owner, "a red fox", 3, 0, 0, 0, 0},
                  {api, second, "a blue whale", 4, 1, 0, 0, 0}};
    for (int i = 0; i < 2; i++)
        run_job(&seq[i]);
    job par[2] = {seq[0], seq[1]};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, run_job, &par[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++)
        CHECK(seq[i].rc == MDIFF_OK && par[i].rc == MDIFF_OK && seq[i].hash == par[i].hash,
              "generation %d: the same bytes in parallel as in sequence", i);
    CHECK(seq[0].hash != seq[1].hash, "two different images");
    /* The owner may go first: the model lives until its last user. */
    api->context_destroy(owner);
    job after = {api, second, "a red fox", 3, 0, 0, 0, 0};
    run_job(&after);
    CHECK(after.rc == MDIFF_OK && after.hash == seq[0].hash,
          "the sharing context still generates after the owner is gone");
    api->context_destroy(second);
}

int main(void)
{
    const mdiff_api *api = test_api();
    CHECK(api->abi_minor >= 3 && api->resolve_params, "ABI 1.3 table");
    mdiff_context *ctx = test_context(api, "tiny-sd-moe");
    test_resolve(api, ctx);
    test_moe_fields(api, ctx);
    test_shared(api, ctx); /* destroys ctx */
    return test_report("abi_v1_3");
}
