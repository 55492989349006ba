/* The expert cache under max_expert_memory (moe/expert_cache.h):
 *  - a layer with experts of 1.5 MiB in a weight file: under a bound the
 *    experts' pages present in the process (read from /proc/self/pagemap)
 *    stay within it, and the output is bit for bit the unbounded one;
 *  - a whole model: the same image at any bound, the bound held by the
 *    cache's count, a bound below the minimum refused before generating;
 *  - two generations at once on one model, each under its own bound, give
 *    the images they give one after the other (run under ThreadSanitizer). */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/mapped_pages.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "moe/expert_cache.h"
#include "pipeline/pipeline.h"
#include "runtime/vulkan_api.h"
#include "test_support.h"

enum { E = 4, D = 256, INNER = 1024, ROWS = 64 };

/* Bytes of [p, p + n) in pages this process has mapped (present bit of
 * /proc/self/pagemap), counting whole pages only; -1 when unreadable. */
static long long present_bytes(int fd, const void *p, size_t n)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + page - 1) / page, hi = ((uintptr_t)p + n) / page;
    long long bytes = 0;
    for (uintptr_t v = lo; v < hi; v++) {
        uint64_t entry;
        if (pread(fd, &entry, sizeof entry, (off_t)(v * sizeof entry)) != (ssize_t)sizeof entry)
            return -1;
        bytes += (entry >> 63) ? (long long)page : 0;
    }
    return bytes;
}

static long long experts_present(int fd, const md_moe_layer *l)
{
    long long sum = 0;
    for (int e = 0; e < l->num_experts; e++) {
        const md_tensor *t[4] = {l->experts[e].w1, l->experts[e].b1, l->experts[e].w2,
                                 l->experts[e].b2};
        for (int j = 0; j < 4; j++) {
            long long b = t[j] ? present_bytes(fd, t[j]->data, md_tensor_nbytes(t[j])) : 0;
            if (b < 0)
                return -1;
            sum += b;
        }
    }
    return sum;
}

static uint16_t *random_f16(md_test_rng *rng, size_t n, float scale)
{
    uint16_t *v = malloc(n * sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        v[i] = md_f32_to_f16(scale * (float)(2.0 * md_test_uniform(rng) - 1.0));
    return v;
}

/* A GEGLU MoE layer "m" of E experts written to path. */
static int write_layer(const char *path)
{
    md_test_rng rng = {42};
    md_safetensors_entry en[1 + 4 * E];
    void *data[1 + 4 * E];
    int n = 0;
    char names[4 * E][48];
    en[n] = (md_safetensors_entry){"m.gate.weight", {MD_F16, 2, {E, D}, NULL}};
    data[n] = en[n].tensor.data = random_f16(&rng, E * D, 0.5f);
    n++;
    for (int e = 0; e < E; e++) {
        const char *suffix[4] = {"net.0.proj.weight", "net.0.proj.bias", "net.2.weight",
                                 "net.2.bias"};
        const int64_t shapes[4][2] = {{2 * INNER, D}, {2 * INNER, 0}, {D, INNER}, {D, 0}};
        for (int j = 0; j < 4; j++) {
            snprintf(names[4 * e + j], sizeof names[0], "m.experts.%d.%s", e, suffix[j]);
            md_tensor t = {MD_F16, shapes[j][1] ? 2 : 1, {shapes[j][0], shapes[j][1]}, NULL};
            size_t count = (size_t)md_tensor_numel(&t);
            t.data = random_f16(&rng, count, 0.05f);
            en[n] = (md_safetensors_entry){names[4 * e + j], t};
            data[n++] = t.data;
        }
    }
    md_error err = {0};
    md_status s = md_safetensors_write(path, en, (size_t)n, &err);
    for (int i = 0; i < n; i++)
        free(data[i]);
    if (s != MD_OK)
        FAIL("writing %s: %s", path, err.msg);
    return s == MD_OK;
}

/* Runs the layer `calls` times on the same input under `budget`; the last
 * output in y and the most expert bytes present after any call. */
static long long run_layer(md_backend *be, const md_moe_layer *l, md_expert_cache *c,
                           uint64_t budget, const float *x, float *y, int calls, int pagemap)
{
    md_moe_scratch *sc = md_moe_scratch_new();
    md_moe_options opt = {.expert_budget = budget};
    long long most = 0;
    for (int i = 0; i < calls; i++) {
        size_t mark = be->arena_mark(be);
        md_tensor xt = be->new_tensor(be, 2, (int64_t[]){ROWS, D});
        md_tensor yt = be->new_tensor(be, 2, (int64_t[]){ROWS, D});
        be->upload(be, &xt, x);
        md_error err = {0};
        CHECK(md_moe_forward(be, l, sc, &opt, &yt, &xt, NULL, NULL, &err) == MD_OK, "%s",
              err.msg);
        be->download(be, &yt, y);
        be->arena_reset(be, mark);
        long long p = pagemap >= 0 ? experts_present(pagemap, l) : 0;
        most = p > most ? p : most;
    }
    md_expert_memory m;
    md_expert_cache_memory(c, &m);
    if (budget)
        CHECK(m.peak <= budget, "the cache counted %llu resident bytes over its bound %llu",
              (unsigned long long)m.peak, (unsigned long long)budget);
    md_moe_scratch_free(sc);
    return most;
}

static void test_layer_pages(void)
{
    char dir[4096], path[4200];
    REQUIRE(md_test_make_temp_dir(dir, sizeof dir, "expert-cache"), "temp dir");
    snprintf(path, sizeof path, "%s/layer.safetensors", dir);
    if (!write_layer(path))
        return;
    md_error err = {0};
    md_safetensors *st = NULL;
    md_weights *w = md_weights_new("layer");
    REQUIRE(md_safetensors_open(path, &st, &err) == MD_OK, "%s", err.msg);
    REQUIRE(md_weights_add_file(w, st, &err) == MD_OK, "%s", err.msg);
    md_backend *be = md_test_cpu_backend(2);
    md_moe_config cfg = {.enabled = 1, .num_experts = E, .top_k = 2, .moe_ff = 1,
                         .routing = MD_ROUTE_TOKEN_TOPK};
    md_moe_layer layer;
    REQUIRE(md_moe_layer_load(&layer, MD_MOE_GEGLU_FF, &cfg, w, "m", D, D, be, &err) == MD_OK,
            "%s", err.msg);
    md_moe_layer *list[1] = {&layer};
    md_expert_cache *c = NULL;
    REQUIRE(md_expert_cache_new(&c, list, 1, be, 0, &err) == MD_OK, "%s", err.msg);
    md_expert_memory m;
    md_expert_cache_memory(c, &m);
    const uint64_t expert = (uint64_t)(3 * INNER * D + 2 * INNER + D) * 2;
    CHECK(m.total == E * expert && m.largest == expert && m.fixed == 0 && m.minimum == expert,
          "sizes: total %llu largest %llu fixed %llu (expected %d x %llu, none fixed)",
          (unsigned long long)m.total, (unsigned long long)m.largest,
          (unsigned long long)m.fixed, E, (unsigned long long)expert);

    md_test_rng rng = {7};
    float x[ROWS * D], ref[ROWS * D], y[ROWS * D];
    for (int i = 0; i < ROWS * D; i++)
        x[i] = (float)(2.0 * md_test_uniform(&rng) - 1.0);
    int pm = open("/proc/self/pagemap", O_RDONLY);
    if (pm < 0)
        fprintf(stderr, "note: /proc/self/pagemap unreadable: present pages not measured\n");
    long long unbounded = run_layer(be, &layer, c, 0, x, ref, 3, pm);
    if (pm >= 0)
        CHECK(unbounded >= (long long)(m.total * 9 / 10),
              "unbounded, %lld of %llu expert bytes are present: the measurement misses them",
              unbounded, (unsigned long long)m.total);
    /* Whole pages at each end of a tensor belong to its neighbours too, and
     * the fault-around maps up to MD_FAULT_AROUND beside the expert read
     * last; the rest must be within the bound. */
    const long long slack = 2 * (long long)MD_FAULT_AROUND + 16 * 4096;
    const uint64_t bounds[2] = {expert, 2 * expert + expert / 2};
    for (int b = 0; b < 2; b++) {
        md_expert_cache_reset(c);
        long long most = run_layer(be, &layer, c, bounds[b], x, y, 3, pm);
        CHECK(memcmp(y, ref, sizeof y) == 0, "bound %llu: the output differs from unbounded",
              (unsigned long long)bounds[b]);
        if (pm >= 0)
            CHECK(most <= (long long)bounds[b] + slack,
                  "bound %llu: %lld expert bytes present (unbounded: %lld)",
                  (unsigned long long)bounds[b], most, unbounded);
        md_expert_cache_memory(c, &m);
        CHECK(m.evictions > 0, "bound %llu: %llu loads, %llu evictions: nothing was evicted",
              (unsigned long long)bounds[b], (unsigned long long)m.loads,
              (unsigned long long)m.evictions);
        printf("layer bound %.2f MiB: at most %.2f MiB of experts present (unbounded %.2f MiB); "
               "%llu loads, %llu evictions\n",
               (double)bounds[b] / 1048576.0, (double)most / 1048576.0,
               (double)unbounded / 1048576.0, (unsigned long long)m.loads,
               (unsigned long long)m.evictions);
    }
    md_error e2 = {0};
    CHECK(md_expert_cache_check(c, expert - 1, &e2) == MD_ERR_INVALID &&
              strstr(e2.msg, "largest expert"),
          "a bound below the largest expert was not refused: %s", e2.msg);
    if (pm >= 0)
        close(pm);
    md_expert_cache_free(c);
    md_moe_layer_free(&layer);
    md_weights_free(w);
    md_safetensors_close(st);
    md_backend_destroy(be);
    md_test_remove_tree(dir);
}

/* ---- a whole model ---- */

#define CASE "tiny-sd-moe"

typedef struct job {
    const md_model *m;
    md_backend *be;
    uint64_t budget;
    const char *prompt;
    uint64_t seed;
    float *image;
    md_status status;
    md_error err;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    mdiff_gen_params p;
    md_request_defaults(&p, sizeof p);
    p.prompt_syntax = MDIFF_PROMPT_PLAIN;
    p.guidance = 7.5f;
    p.prompt = j->prompt;
    p.steps = 3;
    p.seed = j->seed;
    p.max_expert_memory = j->budget;
    md_gen_run run = {.backend = j->be};
    j->status = md_generate(j->m, &run, &p, NULL, NULL, j->image, &j->err);
    return NULL;
}

static void test_model(void)
{
    char dir[4096];
    md_error err = {0};
    md_model *m = NULL;
    md_backend *be = md_test_cpu_backend(2);
    md_model_options opt = {.backend = be};
    if (!md_test_golden_path(dir, sizeof dir, CASE) || md_model_load(dir, &opt, &m, &err) != MD_OK) {
        FAIL("loading %s: %s", CASE, err.msg);
        md_backend_destroy(be);
        return;
    }
    md_expert_cache *c = md_unet_expert_cache(m->unet);
    REQUIRE(c != NULL, "an MoE model without an expert cache");
    md_expert_memory mem;
    md_expert_cache_memory(c, &mem);
    const size_t n = (size_t)3 * m->default_size * m->default_size;
    const uint64_t bounds[3] = {0, mem.minimum, mem.total / 2};
    float *img[3];
    for (int b = 0; b < 3; b++) {
        img[b] = calloc(n, sizeof(float));
        md_expert_cache_reset(c);
        job j = {.m = m, .budget = bounds[b], .prompt = "a red circle", .seed = 5, .image = img[b]};
        run_job(&j);
        CHECK(j.status == MD_OK, "bound %llu: %s", (unsigned long long)bounds[b], j.err.msg);
        md_expert_cache_memory(c, &mem);
        if (bounds[b]) {
            CHECK(mem.peak <= bounds[b] && mem.evictions > 0,
                  "bound %llu: peak %llu, %llu evictions", (unsigned long long)bounds[b],
                  (unsigned long long)mem.peak, (unsigned long long)mem.evictions);
            CHECK(memcmp(img[b], img[0], n * sizeof(float)) == 0,
                  "bound %llu: the image differs from the unbounded one",
                  (unsigned long long)bounds[b]);
        }
        printf("model bound %llu of %llu bytes: peak %llu, %llu loads, %llu hits, %llu "
               "evictions\n",
               (unsigned long long)bounds[b], (unsigned long long)mem.total,
               (unsigned long long)mem.peak, (unsigned long long)mem.loads,
               (unsigned long long)mem.hits, (unsigned long long)mem.evictions);
    }
    /* Below the minimum: refused by the request's one validation. */
    mdiff_gen_params p, out;
    md_request_defaults(&p, sizeof p);
    p.prompt = "x";
    p.max_expert_memory = mem.minimum - 1;
    md_request_context rc = {.model = m};
    CHECK(md_request_resolve(&rc, &p, &out, &err) == MD_ERR_INVALID &&
              strstr(err.msg, "max_expert_memory"),
          "a bound below the minimum was accepted: %s", err.msg);
    /* A dense-model field on a context default: 0 takes the context's. */
    p.max_expert_memory = 0;
    rc.expert_budget = mem.total / 3;
    CHECK(md_request_resolve(&rc, &p, &out, &err) == MD_OK &&
              out.max_expert_memory == mem.total / 3,
          "the context's bound was not taken: %s", err.msg);

    /* Two generations at once, each under its own bound. */
    job seq[2] = {{.m = m, .budget = mem.minimum, .prompt = "a red circle", .seed = 1},
                  {.m = m, .budget = mem.total / 3, .prompt = "a blue square", .seed = 9}};
    job par[2];
    md_backend *bes[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        seq[i].image = calloc(n, sizeof(float));
        run_job(&seq[i]);
        CHECK(seq[i].status == MD_OK, "sequential %d: %s", i, seq[i].err.msg);
        par[i] = seq[i];
        par[i].image = calloc(n, sizeof(float));
        par[i].be = bes[i] = md_test_cpu_backend(2);
    }
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, run_job, &par[i]);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK(par[i].status == MD_OK, "parallel %d: %s", i, par[i].err.msg);
        CHECK(memcmp(par[i].image, seq[i].image, n * sizeof(float)) == 0,
              "parallel %d differs from the same generation alone", i);
        free(seq[i].image);
        free(par[i].image);
        md_backend_destroy(bes[i]);
    }
    md_expert_cache_memory(c, &mem);
    CHECK(mem.resident <= mem.total, "resident %llu of %llu", (unsigned long long)mem.resident,
          (unsigned long long)mem.total);
    for (int b = 0; b < 3; b++)
        free(img[b]);
    md_model_free(m);
    md_backend_destroy(be);
}

/* Vulkan (lavapipe on CI): a model loaded with its experts deferred
 * generates under a bound with the experts' device memory within it, and
 * the image of the same host-routed run without a bound. */
static void test_vulkan(void)
{
    md_vulkan_options vo = {.device = -1, .allow_cpu = 1, .host_moe = 1};
    md_backend *ref_be = NULL, *be = NULL;
    md_error err = {0};
    if (md_backend_vulkan_create(&ref_be, &vo, &err) != MD_OK) {
        printf("note: no Vulkan device (%s): the device cache is not tested here\n", err.msg);
        return;
    }
    vo.host_moe = 0;
    REQUIRE(md_backend_vulkan_create(&be, &vo, &err) == MD_OK, "%s", err.msg);
    char dir[4096];
    md_model *ref = NULL, *m = NULL;
    md_model_options ro = {.backend = ref_be}, mo = {.backend = be, .defer_experts = 1};
    REQUIRE(md_test_golden_path(dir, sizeof dir, CASE) && md_model_load(dir, &ro, &ref, &err) == MD_OK &&
                md_model_load(dir, &mo, &m, &err) == MD_OK,
            "loading %s on Vulkan: %s", CASE, err.msg);
    md_expert_cache *c = md_unet_expert_cache(m->unet);
    md_expert_memory mem;
    md_expert_cache_memory(c, &mem);
    CHECK(mem.device == 1 && mem.fixed == 0, "deferred experts: device %d, fixed %llu",
          mem.device, (unsigned long long)mem.fixed);
    const size_t n = (size_t)3 * m->default_size * m->default_size;
    float *a = calloc(n, sizeof(float)), *b = calloc(n, sizeof(float));
    job ja = {.m = ref, .prompt = "a red circle", .seed = 5, .image = a};
    run_job(&ja);
    CHECK(ja.status == MD_OK, "%s", ja.err.msg);
    const uint64_t bound = mem.total / 3;
    job jb = {.m = m, .budget = bound, .prompt = "a red circle", .seed = 5, .image = b};
    run_job(&jb);
    CHECK(jb.status == MD_OK, "%s", jb.err.msg);
    CHECK(memcmp(a, b, n * sizeof(float)) == 0,
          "the bounded Vulkan image differs from the unbounded host-routed one");
    md_vulkan_stats vs;
    md_vulkan_stats_get(be, &vs);
    md_expert_cache_memory(c, &mem);
    /* The device rounds each tensor up to its alignment (at most 256 bytes
     * each, 4 tensors an expert). */
    const uint64_t align_slack = (bound / 1024 + 4) * 4 * 256;
    CHECK(mem.peak <= bound && vs.ondemand_peak <= bound + align_slack && mem.evictions > 0 &&
              mem.prefetches > 0,
          "bound %llu: cache peak %llu, device peak %llu, %llu evictions, %llu prefetched",
          (unsigned long long)bound, (unsigned long long)mem.peak,
          (unsigned long long)vs.ondemand_peak, (unsigned long long)mem.evictions,
          (unsigned long long)mem.prefetches);
    printf("vulkan bound %llu of %llu bytes: device peak %llu; %llu loads, %llu prefetched (%llu "
           "used), %llu evictions\n",
           (unsigned long long)bound, (unsigned long long)mem.total,
           (unsigned long long)vs.ondemand_peak, (unsigned long long)mem.loads,
           (unsigned long long)mem.prefetches, (unsigned long long)mem.prefetch_used,
           (unsigned long long)mem.evictions);
    free(a);
    free(b);
    md_model_free(ref);
    md_model_free(m);
    md_vulkan_stats_get(be, &vs);
    CHECK(vs.ondemand_bytes == 0, "%llu bytes of device experts left after the model was freed",
          (unsigned long long)vs.ondemand_bytes);
    md_backend_destroy(ref_be);
    md_backend_destroy(be);
}

int main(void)
{
    test_layer_pages();
    if (md_test_golden_dir_required()) {
        test_model();
        test_vulkan();
    }
    return md_test_finish("test_expert_cache");
}
