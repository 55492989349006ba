/* ABI threading: cancel from the callback and from another thread (no
 * output either way), BUSY for a second call on a busy context, several
 * contexts generating in parallel. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "abi_test.h"

static const mdiff_api *api;

static void pause_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits (up to 20 s) for a flag another thread sets. */
static int wait_for(atomic_int *flag)
{
    for (int i = 0; i < 20000 && !atomic_load(flag); i++)
        pause_ms(1);
    return atomic_load(flag);
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

/* ---- cancel from the callback, at each kind of stage ---- */
typedef struct stop_at {
    int stage, step, calls;
} stop_at;

static int stop_cb(void *user, const mdiff_progress *pr)
{
    stop_at *s = user;
    s->calls++;
    return pr->stage == s->stage && pr->step == s->step;
}

static void test_callback_cancel(mdiff_context *ctx)
{
    char msg[512];
    mdiff_gen_params p = params(8);
    uint8_t buf[16 * 16 * 3];
    const struct {
        int stage, step;
        const char *needle;
    } at[] = {{MDIFF_STAGE_DENOISE, 2, "cancelled at step 2 of 8"},
              {MDIFF_STAGE_TEXT, 0, "before the first step"},
              {MDIFF_STAGE_DECODE, 8, "while decoding"}};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        stop_at s = {at[i].stage, at[i].step, 0};
        api->set_progress(ctx, stop_cb, &s);
        memset(buf, 0xA5, sizeof buf);
        mdiff_image mine;
        api->image_init(&mine, sizeof mine);
        mine.data = buf;
        mine.width = mine.height = 16;
        int rc = api->generate(ctx, &p, &mine, msg, sizeof msg);
        int untouched = 1;
        for (size_t k = 0; k < sizeof buf; k++)
            untouched &= buf[k] == 0xA5;
        CHECK(rc == MDIFF_ERR_CANCELLED && strstr(msg, at[i].needle) && untouched,
              "callback cancel at stage %d: %d '%s', buffer untouched %d", at[i].stage, rc, msg,
              untouched);
        mdiff_image lib;
        api->image_init(&lib, sizeof lib);
        rc = api->generate(ctx, &p, &lib, msg, sizeof msg);
        CHECK(rc == MDIFF_ERR_CANCELLED && lib.data == NULL && lib.width == 0,
              "cancelled run allocates nothing");
    }
    CHECK(api->set_progress(ctx, NULL, NULL) == MDIFF_OK, "clear the callback");
    /* A cancel while nothing runs is ignored: the next run completes. */
    api->cancel(ctx);
    mdiff_image out;
    api->image_init(&out, sizeof out);
    int rc = api->generate(ctx, &p, &out, msg, sizeof msg);
    CHECK(rc == MDIFF_OK && out.data, "cancel between runs is ignored: %d '%s'", rc, msg);
    api->image_free(&out);
}

/* ---- another thread acts while the generating thread sits in step 1 ---- */
typedef struct meanwhile {
    mdiff_context *ctx;
    atomic_int in_step, acted;
    int do_cancel;
    int busy_generate, busy_info, busy_set;
} meanwhile;

static int hold_cb(void *user, const mdiff_progress *pr)
{
    meanwhile *m = user;
    if (pr->stage == MDIFF_STAGE_DENOISE && pr->step == 1) {
        atomic_store(&m->in_step, 1);
        wait_for(&m->acted);
    }
    return 0;
}

static void *other_thread(void *arg)
{
    meanwhile *m = arg;
    if (wait_for(&m->in_step)) {
        if (m->do_cancel) {
            api->cancel(m->ctx);
        } else {
            char msg[256];
            mdiff_gen_params p = params(2);
            mdiff_image out;
            api->image_init(&out, sizeof out);
            m->busy_generate = api->generate(m->ctx, &p, &out, msg, sizeof msg) == MDIFF_ERR_BUSY &&
                               strstr(msg, "already running") && !out.data;
            mdiff_model_info info = {.struct_size = sizeof info};
            m->busy_info = api->model_info(m->ctx, &info) == MDIFF_ERR_BUSY;
            m->busy_set = api->set_progress(m->ctx, NULL, NULL) == MDIFF_ERR_BUSY;
        }
    }
    atomic_store(&m->acted, 1);
    return NULL;
}

static int run_with_other_thread(mdiff_context *ctx, int do_cancel, meanwhile *m, char *msg,
                                 size_t cap, mdiff_image *out)
{
    memset(m, 0, sizeof *m);
    m->ctx = ctx;
    m->do_cancel = do_cancel;
    atomic_init(&m->in_step, 0);
    atomic_init(&m->acted, 0);
    api->set_progress(ctx, hold_cb, m);
    pthread_t t;
    pthread_create(&t, NULL, other_thread, m);
    mdiff_gen_params p = params(20);
    int rc = api->generate(ctx, &p, out, msg, cap);
    pthread_join(t, NULL);
    api->set_progress(ctx, NULL, NULL);
    return rc;
}

static void test_threads(mdiff_context *ctx)
{
    char msg[512];
    meanwhile m;
    mdiff_image out;
    api->image_init(&out, sizeof out);
    int rc = run_with_other_thread(ctx, 1, &m, msg, sizeof msg, &out);
    CHECK(rc == MDIFF_ERR_CANCELLED && strstr(msg, "cancelled at step 1 of 20") && !out.data,
          "cancel from another thread: %d '%s'", rc, msg);
    rc = run_with_other_thread(ctx, 0, &m, msg, sizeof msg, &out);
    CHECK(rc == MDIFF_OK && out.data, "the busy run itself completes: %d '%s'", rc, msg);
    CHECK(m.busy_generate && m.busy_info && m.busy_set,
          "second calls get BUSY (generate %d, model_info %d, set_progress %d)", m.busy_generate,
          m.busy_info, m.busy_set);
    api->image_free(&out);
}

/* ---- contexts in parallel ---- */
typedef struct parallel_run {
    mdiff_context *ctx;
    uint64_t hash;
    int rc;
} parallel_run;

static void *parallel_thread(void *arg)
{
    parallel_run *r = arg;
    char msg[256];
    mdiff_gen_params p = params(6);
    mdiff_image out;
    api->image_init(&out, sizeof out);
    r->rc = api->generate(r->ctx, &p, &out, msg, sizeof msg);
    r->hash = r->rc == MDIFF_OK ? image_hash(&out) : 0;
    api->image_free(&out);
    return NULL;
}

static void test_parallel(mdiff_context *ctx)
{
    parallel_run serial = {ctx, 0, 0};
    parallel_thread(&serial);
    parallel_run runs[2] = {{ctx, 0, -99}, {test_context(api, "tiny-sd-dense"), 0, -99}};
    for (int round = 0; round < 3; round++) {
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&t[i], NULL, parallel_thread, &runs[i]);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        CHECK(runs[0].rc == MDIFF_OK && runs[1].rc == MDIFF_OK && runs[0].hash == serial.hash &&
                  runs[1].hash == serial.hash,
              "round %d: two contexts in parallel give the serial image (%d, %d)", round,
              runs[0].rc, runs[1].rc);
    }
    api->context_destroy(runs[1].ctx);
}

int main(void)
{
    api = test_api();
    mdiff_context *ctx = test_context(api, "tiny-sd-dense");
    test_callback_cancel(ctx);
    test_threads(ctx);
    test_parallel(ctx);
    api->context_destroy(ctx);
    return test_report("abi_cancel");
}
