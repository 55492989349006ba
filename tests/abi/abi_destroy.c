/* The ABI under abuse: context_destroy while a generation runs on that
 * context, from another thread and from inside its own progress callback,
 * is deferred (the generation is cancelled and the context freed when it
 * returns, and no callback of the host's runs after that); a prompt far
 * over MDIFF_PROMPT_MAX is refused in milliseconds. Run under ASan and
 * ThreadSanitizer in CI. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "abi_test.h"

static const mdiff_api *api;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void pause_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static mdiff_gen_params params(int steps)
{
    mdiff_gen_params p;
    api->gen_params_init(&p, sizeof p);
    p.prompt = "a lighthouse";
    p.steps = steps;
    p.sampler = "euler";
    p.seed = 3;
    return p;
}

/* ---- destroy from inside the progress callback ---- */
typedef struct self_destroy {
    mdiff_context *ctx;
    int destroyed, calls_after;
} self_destroy;

static int destroy_cb(void *user, const mdiff_progress *pr)
{
    self_destroy *s = user;
    if (s->destroyed) {
        s->calls_after++;
        return 0;
    }
    if (pr->stage == MDIFF_STAGE_DENOISE && pr->step == 2) {
        api->context_destroy(s->ctx);
        s->destroyed = 1;
    }
    return 0; /* no cancel asked: the destroy alone must stop the run */
}

static void test_destroy_in_callback(void)
{
    self_destroy s = {test_context(api, "tiny-sd-dense"), 0, 0};
    api->set_progress(s.ctx, destroy_cb, &s);
    mdiff_gen_params p = params(8);
    mdiff_image out;
    api->image_init(&out, sizeof out);
    char msg[512];
    int rc = api->generate(s.ctx, &p, &out, msg, sizeof msg);
    CHECK(s.destroyed && rc == MDIFF_ERR_CANCELLED && out.data == NULL,
          "destroy in the callback: generate returned %d '%s' (want cancelled, no image)", rc, msg);
    CHECK(s.calls_after == 0, "destroy in the callback: %d callbacks after it", s.calls_after);
    /* The context is gone now: ASan reports a leak or a use after free. */
}

/* ---- destroy from another thread ---- */
typedef struct runner {
    mdiff_context *ctx;
    atomic_int in_step, destroyed, calls_after;
    int hold; /* the callback waits in step 1 until the destroy returned */
    int rc;
    char msg[512];
} runner;

static int runner_cb(void *user, const mdiff_progress *pr)
{
    runner *r = user;
    if (atomic_load(&r->destroyed))
        atomic_fetch_add(&r->calls_after, 1);
    if (pr->stage == MDIFF_STAGE_DENOISE && pr->step == 1 && !atomic_load(&r->in_step)) {
        atomic_store(&r->in_step, 1);
        for (int i = 0; r->hold && i < 20000 && !atomic_load(&r->destroyed); i++)
            pause_ms(1);
    }
    return 0;
}

static void *run_generate(void *arg)
{
    runner *r = arg;
    mdiff_gen_params p = params(40);
    p.width = p.height = 64;
    mdiff_image out;
    api->image_init(&out, sizeof out);
    r->rc = api->generate(r->ctx, &p, &out, r->msg, sizeof r->msg);
    if (out.data) /* a failure above; freeing keeps the report to the check */
        api->image_free(&out);
    return NULL;
}

static void test_destroy_from_thread(int hold)
{
    runner r = {.ctx = test_context(api, "tiny-sd-dense"), .hold = hold};
    atomic_init(&r.in_step, 0);
    atomic_init(&r.destroyed, 0);
    atomic_init(&r.calls_after, 0);
    api->set_progress(r.ctx, runner_cb, &r);
    pthread_t t;
    pthread_create(&t, NULL, run_generate, &r);
    for (int i = 0; i < 20000 && !atomic_load(&r.in_step); i++)
        pause_ms(1);
    double t0 = now();
    api->context_destroy(r.ctx);
    double took = now() - t0;
    atomic_store(&r.destroyed, 1);
    pthread_join(t, NULL);
    CHECK(r.rc == MDIFF_ERR_CANCELLED, "destroy from a thread (%s): generate returned %d '%s'",
          hold ? "in the callback" : "in a step", r.rc, r.msg);
    CHECK(took < 1.0, "destroy from a thread returns at once (%.3f s)", took);
    /* Held in the callback, the next check sees the destroy: no call at
     * all; otherwise one already under way may finish. */
    CHECK(atomic_load(&r.calls_after) <= (hold ? 0 : 1), "%d callbacks after the destroy",
          atomic_load(&r.calls_after));
}

/* ---- an idle context is freed at once, and twice-destroyed is not ---- */
static void test_destroy_idle(void)
{
    mdiff_context *ctx = test_context(api, "tiny-sd-dense");
    api->context_destroy(ctx);
    api->context_destroy(NULL);
    CHECK(1, "idle destroy");
}

/* ---- a 512 KB prompt: refused by length before anything parses it ---- */
static void test_huge_prompt(void)
{
    mdiff_context *ctx = test_context(api, "tiny-sd-dense");
    size_t n = 512 * 1024;
    char *prompt = malloc(n + 1);
    const char *unit = "((a:1.1) BREAK [";
    for (size_t i = 0; i < n; i++)
        prompt[i] = unit[i % strlen(unit)];
    prompt[n] = '\0';
    mdiff_gen_params p = params(2);
    p.prompt = prompt;
    mdiff_image out;
    api->image_init(&out, sizeof out);
    char msg[512];
    double t0 = now();
    int rc = api->generate(ctx, &p, &out, msg, sizeof msg);
    double took = now() - t0;
    CHECK(rc == MDIFF_ERR_INVALID && strstr(msg, "16384"), "512 KB prompt: %d '%s'", rc, msg);
    CHECK(took < 0.05, "512 KB prompt refused in %.1f ms", took * 1e3);
    mdiff_gen_params r = {.struct_size = sizeof r};
    t0 = now();
    rc = api->resolve_params(NULL, &p, &r, msg, sizeof msg);
    took = now() - t0;
    CHECK(rc == MDIFF_ERR_INVALID && took < 0.05, "resolve_params: %d in %.1f ms", rc, took * 1e3);
    free(prompt);
    api->context_destroy(ctx);
}

int main(void)
{
    api = test_api();
    test_destroy_idle();
    test_destroy_in_callback();
    test_destroy_from_thread(1);
    test_destroy_from_thread(0);
    test_huge_prompt();
    return test_report("abi_destroy");
}
