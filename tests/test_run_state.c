/* One loaded model, several generations: the model is read-only during a
 * generation, so two threads, each with its own CPU backend and U-Net
 * state, give byte for byte what the same generations give one after the
 * other; and the MoE top-k is a per-generation option that routes as a
 * model whose config says that top-k, without reloading. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "pipeline/pipeline.h"
#include "test_support.h"

#define CASE "tiny-sd-moe"
#define STEPS 3

typedef struct job {
    const md_model *m;
    md_backend *be;     /* NULL: the model's own backend */
    md_unet_state *st;  /* NULL: one made by md_generate */
    const char *prompt;
    uint64_t seed;
    int top_k;
    float *image;
    md_status status;
    md_error err;
} job;

static size_t image_floats(const md_model *m)
{
    return (size_t)3 * m->default_size * m->default_size;
}

static void *run_job(void *arg)
{
    job *j = arg;
    mdiff_gen_params p;
    md_request_defaults(&p, sizeof p);
    p.prompt_syntax = MDIFF_PROMPT_PLAIN;
    p.guidance = 7.5f;
    p.prompt = j->prompt;
    p.steps = STEPS;
    p.seed = j->seed;
    p.width = p.height = j->m->default_size;
    p.moe_top_k = j->top_k;
    md_gen_run run = {.backend = j->be, .unet = j->st};
    j->status = md_generate(j->m, &run, &p, NULL, NULL, j->image, &j->err);
    return NULL;
}

static md_model *load(md_backend *be, const cJSON *arch)
{
    char dir[4096];
    md_error err = {0};
    md_model *m = NULL;
    md_model_options opt = {.backend = be, .architecture = arch};
    if (!md_test_golden_path(dir, sizeof dir, CASE) || md_model_load(dir, &opt, &m, &err) != MD_OK)
        FAIL("loading %s: %s", CASE, err.msg);
    return m;
}

/* Two generations in sequence on the model's backend, then at once from
 * two threads with a backend and a state each. */
static void test_parallel(const md_model *m)
{
    const size_t n = image_floats(m);
    job seq[2] = {{.m = m, .prompt = "a red circle", .seed = 1},
                  {.m = m, .prompt = "a blue square on green grass", .seed = 7}};
    job par[2];
    md_backend *be[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        seq[i].image = calloc(n, sizeof(float));
        REQUIRE(seq[i].image, "out of memory");
        run_job(&seq[i]);
        CHECK(seq[i].status == MD_OK, "sequential %d: %s", i, seq[i].err.msg);
    }
    CHECK(memcmp(seq[0].image, seq[1].image, n * sizeof(float)) != 0,
          "two different prompts and seeds gave the same image");

    pthread_t th[2];
    int started[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        par[i] = seq[i];
        par[i].image = calloc(n, sizeof(float));
        par[i].status = MD_ERR_INVALID;
        be[i] = md_test_cpu_backend(2);
        md_error err = {0};
        if (!par[i].image || !be[i] || md_unet_state_new(m->unet, &par[i].st, &err) != MD_OK) {
            FAIL("setting up thread %d: %s", i, err.msg);
            continue;
        }
        par[i].be = be[i];
    }
    for (int i = 0; i < 2; i++)
        if (par[i].st)
            started[i] = pthread_create(&th[i], NULL, run_job, &par[i]) == 0;
    for (int i = 0; i < 2; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        CHECK(started[i] && par[i].status == MD_OK, "thread %d: %s", i, par[i].err.msg);
        CHECK(par[i].status == MD_OK &&
                  memcmp(par[i].image, seq[i].image, n * sizeof(float)) == 0,
              "thread %d's image differs from the same generation run alone", i);
        free(par[i].image);
        free(seq[i].image);
        md_unet_state_free(par[i].st);
        md_backend_destroy(be[i]);
    }
}

/* top_k 1 as an option: differs from the model's own 2 and equals a model
 * loaded with num_experts_per_tok 1 in its config. */
static void test_top_k(const md_model *m, md_backend *be)
{
    cJSON *unet = md_test_load_golden_config(CASE "/unet/config.json");
    REQUIRE(unet);
    cJSON *seg = cJSON_GetObjectItemCaseSensitive(unet, "segmoe_config");
    cJSON *k = cJSON_GetObjectItemCaseSensitive(seg, "num_experts_per_tok");
    if (!CHECK(cJSON_IsNumber(k) && k->valueint == 2, "expected a top-2 SegMoE config")) {
        cJSON_Delete(unet);
        return;
    }
    cJSON_SetNumberValue(k, 1);
    cJSON *arch = cJSON_CreateObject();
    cJSON_AddItemToObject(arch, "unet", unet);
    md_model *m1 = load(be, arch);
    cJSON_Delete(arch);
    if (!m1)
        return;

    const size_t n = image_floats(m);
    job own = {.m = m, .prompt = "a red circle", .seed = 3};
    job opt1 = own, cfg1 = own;
    opt1.top_k = 1;
    cfg1.m = m1;
    job *all[3] = {&own, &opt1, &cfg1};
    for (int i = 0; i < 3; i++) {
        all[i]->image = calloc(n, sizeof(float));
        if (all[i]->image)
            run_job(all[i]);
        CHECK(all[i]->image && all[i]->status == MD_OK, "generation %d: %s", i, all[i]->err.msg);
    }
    if (own.status == MD_OK && opt1.status == MD_OK && cfg1.status == MD_OK) {
        CHECK(memcmp(own.image, opt1.image, n * sizeof(float)) != 0,
              "top_k 1 gave the same image as the model's top-2");
        CHECK(memcmp(opt1.image, cfg1.image, n * sizeof(float)) == 0,
              "the top_k 1 option differs from a model configured with top-k 1");
    }
    for (int i = 0; i < 3; i++)
        free(all[i]->image);
    md_model_free(m1);
}

static void test_refusals(const md_model *m, md_backend *be)
{
    const size_t n = image_floats(m);
    float *image = calloc(n, sizeof(float));
    REQUIRE(image);
    /* 5 of 4 experts: refused by the first layer, which is named */
    job j = {.m = m, .prompt = "x", .seed = 1, .top_k = 5, .image = image};
    run_job(&j);
    CHECK(j.status == MD_ERR_INVALID && strstr(j.err.msg, "4 experts"),
          "top_k 5 of 4 experts: status %d, %s", (int)j.status, j.err.msg);
    j.top_k = 17;
    run_job(&j);
    CHECK(j.status == MD_ERR_INVALID, "top_k 17: status %d", (int)j.status);
    /* A backend whose weights live on a device cannot use another's. */
    md_backend device_like = *be;
    device_like.host_weights = 0;
    j.top_k = 0;
    j.be = &device_like;
    run_job(&j);
    CHECK(j.status == MD_ERR_UNSUPPORTED, "a non-host backend: status %d, %s", (int)j.status,
          j.err.msg);
    free(image);
}

int main(void)
{
    if (!md_test_golden_dir_required())
        return md_test_finish("test_run_state");
    md_backend *be = md_test_cpu_backend(2);
    md_model *m = be ? load(be, NULL) : NULL;
    if (m) {
        test_parallel(m);
        test_top_k(m, be);
        test_refusals(m, be);
    }
    md_model_free(m);
    md_backend_destroy(be);
    return md_test_finish("test_run_state");
}
