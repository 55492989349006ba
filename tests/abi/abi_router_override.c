/* ABI 1.5 "moe.router_override": a host biasing the router. On the demo
 * model (token routing, 4 experts, top 2), forcing expert E on the left
 * half of each call's token grid must change the choice of exactly those
 * rows in the first call, raise E's share under the mask over the whole run
 * and leave the rest close to the baseline; on the SegMoE golden model a
 * bias on every row decides the sequence choice, and the override can
 * switch a call to token routing. Bad answers fail cleanly; set is BUSY
 * while generating; NULL restores the baseline image bit for bit. */
#include <math.h>

#include "abi_test.h"

#define STEPS 8
#define FORCE 1e4f

/* What the override does. */
typedef enum mode { PASS, PAINT, SEQ_ALL, TOKEN_LEFT, BAD_NAN, BAD_ROUTING, CANCEL } mode;

typedef struct run {
    const mdiff_router_override_api *ov;
    mdiff_context *ctx;
    mode m;
    int expert;
    /* The last override call: the trace of the same MoE call follows it. */
    int grid_h, grid_w;
    int override_calls, text_calls, bad_fields, busy_inside;
    char last_layer[160];
    /* The first call with a token grid (step 0): choices, and logits + bias. */
    int first_seen;
    int64_t first_rows;
    int32_t *first_choice;
    float *first_biased;
    int first_biased_same; /* 1: the trace saw logits + bias */
    int first_grid_w;
    /* Over the run: rows under / outside the mask, and those that chose
     * each expert. */
    uint64_t masked, unmasked, masked_by[4], unmasked_by[4];
    /* SegMoE checks. */
    int calls, calls_with_e_everywhere, token_calls, calls_differing_rows;
    int busy_progress;
} run;

static int masked_row(const run *r, int64_t row)
{
    int64_t p = row % ((int64_t)r->grid_h * r->grid_w);
    return p % r->grid_w < r->grid_w / 2;
}

static int on_override(void *user, mdiff_router_override_call *c)
{
    run *r = user;
    r->override_calls++;
    snprintf(r->last_layer, sizeof r->last_layer, "%s", c->layer_name);
    r->bad_fields += c->struct_size != sizeof *c || c->num_experts != 4 || c->top_k != 2 ||
                     c->groups != 2 || c->step < 0 || c->step >= c->total_steps ||
                     c->total_steps != STEPS || c->layer_index < 0 ||
                     (c->grid_height > 0 &&
                      c->rows != (int64_t)c->groups * c->grid_height * c->grid_width);
    for (int64_t i = 0; i < c->rows * c->num_experts; i++)
        r->bad_fields += c->bias[i] != 0.0f;
    if (r->override_calls == 1) /* the library is busy: set must refuse */
        r->busy_inside = r->ov->set(r->ctx, NULL, NULL) == MDIFF_ERR_BUSY;
    r->grid_h = c->grid_height;
    r->grid_w = c->grid_width;
    r->text_calls += c->grid_width == 0;
    const int E = c->num_experts, e = r->expert;
    switch (r->m) {
    case PASS: break;
    case PAINT:
    case TOKEN_LEFT:
        if (r->m == TOKEN_LEFT)
            r->bad_fields += c->routing != MDIFF_ROUTING_SEQUENCE;
        if (r->m == TOKEN_LEFT)
            c->routing = MDIFF_ROUTING_TOKEN;
        for (int64_t i = 0; c->grid_width > 0 && i < c->rows; i++)
            if (masked_row(r, i))
                c->bias[i * E + e] += FORCE;
        break;
    case SEQ_ALL:
        r->bad_fields += c->routing != MDIFF_ROUTING_SEQUENCE;
        for (int64_t i = 0; i < c->rows; i++)
            c->bias[i * E + e] += FORCE;
        break;
    case BAD_NAN: c->bias[c->rows * E - 1] = NAN; break;
    case BAD_ROUTING: c->routing = 7; break;
    case CANCEL: return 1;
    }
    if (!r->first_seen && c->grid_width > 0 && c->step == 0) {
        r->first_rows = c->rows;
        r->first_grid_w = c->grid_width;
        r->first_biased = malloc(sizeof(float) * (size_t)(c->rows * E));
        for (int64_t i = 0; r->first_biased && i < c->rows * E; i++)
            r->first_biased[i] = c->logits[i] + c->bias[i];
    }
    return 0;
}

static void on_trace(void *user, const mdiff_router_event *ev)
{
    run *r = user;
    const int k = ev->top_k, e = r->expert;
    r->calls++;
    r->token_calls += ev->routing == MDIFF_ROUTING_TOKEN;
    int all_e = 1, differ = 0;
    int grid = r->grid_w > 0 && ev->rows == (int64_t)ev->groups * r->grid_h * r->grid_w;
    for (int64_t i = 0; i < ev->rows; i++) {
        int has = 0;
        for (int j = 0; j < k; j++)
            has |= ev->choice[i * k + j] == e;
        all_e &= has;
        differ |= i > 0 && memcmp(ev->choice + i * k, ev->choice, sizeof(int32_t) * k) != 0;
        if (!grid)
            continue;
        int m = masked_row(r, i);
        *(m ? &r->masked : &r->unmasked) += 1;
        for (int j = 0; j < k; j++)
            if (ev->choice[i * k + j] >= 0 && ev->choice[i * k + j] < 4)
                (m ? r->masked_by : r->unmasked_by)[ev->choice[i * k + j]]++;
    }
    r->calls_with_e_everywhere += all_e;
    r->calls_differing_rows += differ;
    if (!r->first_seen && r->grid_w > 0 && ev->step == 0) {
        r->first_seen = 1;
        r->first_choice = malloc(sizeof(int32_t) * (size_t)(ev->rows * k));
        if (r->first_choice)
            memcpy(r->first_choice, ev->choice, sizeof(int32_t) * (size_t)(ev->rows * k));
        r->first_biased_same = r->first_biased && ev->rows == r->first_rows &&
                               !memcmp(r->first_biased, ev->logits,
                                       sizeof(float) * (size_t)(ev->rows * ev->num_experts));
    }
}

static int on_progress(void *user, const mdiff_progress *p)
{
    run *r = user;
    if (p->stage == MDIFF_STAGE_DENOISE && p->step == 1)
        r->busy_progress = r->ov->set(r->ctx, NULL, NULL) == MDIFF_ERR_BUSY;
    return 0;
}

static void run_free(run *r)
{
    free(r->first_choice);
    free(r->first_biased);
}

/* One generation; rc and message out, image bytes hashed. */
static int generate(const mdiff_api *api, mdiff_context *ctx, uint64_t *hash, char *msg,
                    size_t cap)
{
    mdiff_gen_params p;
    api->gen_params_init(&p, sizeof p);
    p.prompt = "a large red circle in the center on a blue background";
    p.seed = 5;
    p.steps = STEPS;
    mdiff_image img;
    api->image_init(&img, sizeof img);
    int rc = api->generate(ctx, &p, &img, msg, cap);
    *hash = rc == MDIFF_OK ? image_hash(&img) : 0;
    api->image_free(&img);
    return rc;
}

/* Generates with the override in mode m (trace on), into *r. */
static int traced(const mdiff_api *api, mdiff_context *ctx, run *r, mode m, int expert,
                  uint64_t *hash, char *msg)
{
    const mdiff_router_trace_api *tr = api->get_feature(MDIFF_FEATURE_ROUTER_TRACE);
    const mdiff_router_override_api *ov = r->ov;
    *r = (run){.ov = ov, .ctx = ctx, .m = m, .expert = expert};
    tr->set(ctx, on_trace, r);
    ov->set(ctx, on_override, r);
    api->set_progress(ctx, on_progress, r);
    int rc = generate(api, ctx, hash, msg, 512);
    api->set_progress(ctx, NULL, NULL);
    tr->set(ctx, NULL, NULL);
    return rc;
}

static double share(uint64_t n, uint64_t of)
{
    return of ? (double)n / (double)of : 0.0;
}

/* Returns 77 when `backend` is not what runs (no such device), else 0. */
static int test_paint(const mdiff_api *api, const mdiff_router_override_api *ov,
                      const char *backend)
{
    mdiff_context *ctx = test_context_at(api, test_demo_model(), backend);
    char msg[512], name[256] = "";
    const mdiff_profile_api *prof = api->get_feature(MDIFF_FEATURE_PROFILE);
    if (prof)
        prof->backend_name(ctx, name, sizeof name);
    printf("backend: %s\n", name);
    if (strncmp(name, backend, strlen(backend)) != 0) {
        api->context_destroy(ctx);
        return 77;
    }
    /* The CPU's images are exact; elsewhere the device's own routing and the
     * host plan an override forces may round apart. */
    const int exact = !strcmp(backend, "cpu");
    uint64_t plain, h;
    CHECK(generate(api, ctx, &plain, msg, sizeof msg) == MDIFF_OK, "baseline: %s", msg);

    /* A pass-through override (bias left 0) changes nothing. */
    run base = {.ov = ov}, paint = {.ov = ov};
    CHECK(traced(api, ctx, &base, PASS, 0, &h, msg) == MDIFF_OK, "pass-through: %s", msg);
    CHECK(h == plain || !exact, "a zero bias gives the baseline image");
    if (!exact)
        printf("a zero bias gives %s image\n", h == plain ? "the baseline" : "another");
    CHECK(base.override_calls == base.calls && base.calls == 3 * STEPS,
          "one override call per MoE call: %d overrides, %d calls", base.override_calls,
          base.calls);
    CHECK(base.bad_fields == 0, "call fields (struct_size, E, k, groups, steps, grid, zeroed "
                                "bias): %d bad", base.bad_fields);
    CHECK(base.busy_inside && base.busy_progress,
          "set is BUSY while generating (override %d, progress %d)", base.busy_inside,
          base.busy_progress);
    /* The expert to paint: the one the masked rows chose least. */
    int e = 0;
    for (int x = 1; x < 4; x++)
        e = base.masked_by[x] < base.masked_by[e] ? x : e;
    paint.expert = e;
    CHECK(traced(api, ctx, &paint, PAINT, e, &h, msg) == MDIFF_OK, "paint: %s", msg);
    CHECK(h != plain, "painting changes the image");

    /* (a) The first call with a grid of step 0: same input as the baseline. */
    CHECK(base.first_seen && paint.first_seen && base.first_rows == paint.first_rows &&
              base.first_choice && paint.first_choice && paint.first_grid_w > 0,
          "first call recorded");
    int same_unmasked = 1, masked_have_e = 1, changed = 0, nmasked = 0;
    run first = {.grid_w = paint.first_grid_w, .grid_h = 1};
    for (int64_t i = 0; paint.first_choice && base.first_choice && i < paint.first_rows; i++) {
        const int32_t *a = base.first_choice + i * 2, *b = paint.first_choice + i * 2;
        /* grid_h 1: masked_row needs only the column, p % grid_w. */
        if (masked_row(&first, i)) {
            nmasked++;
            masked_have_e &= b[0] == e || b[1] == e;
            changed += a[0] != b[0] || a[1] != b[1];
        } else {
            same_unmasked &= a[0] == b[0] && a[1] == b[1];
        }
    }
    CHECK(same_unmasked, "first call: unmasked rows choose as without the override");
    CHECK(masked_have_e && nmasked * 2 == paint.first_rows,
          "first call: all %d masked rows include expert %d", nmasked, e);
    CHECK(changed > 0, "first call: %d masked rows changed their choice", changed);
    CHECK(paint.first_biased_same, "the trace sees the logits with the bias added");

    /* (b) Over the run: the share of rows whose top-2 include e. */
    double bm = share(base.masked_by[e], base.masked), pm = share(paint.masked_by[e], paint.masked);
    double bu = share(base.unmasked_by[e], base.unmasked);
    double pu = share(paint.unmasked_by[e], paint.unmasked);
    printf("expert %d share: masked %.3f -> %.3f, unmasked %.3f -> %.3f (%llu masked, %llu "
           "unmasked rows)\n",
           e, bm, pm, bu, pu, (unsigned long long)paint.masked, (unsigned long long)paint.unmasked);
    CHECK(pm == 1.0 && pm - bm >= 0.3, "masked rows: expert %d share %.3f -> %.3f", e, bm, pm);
    CHECK(fabs(pu - bu) <= 0.05, "unmasked rows: expert %d share %.3f -> %.3f (tolerance 0.05)",
          e, bu, pu);
    run_free(&base);
    run_free(&paint);

    /* Bad answers fail the generation cleanly, naming the layer. */
    run bad = {.ov = ov};
    int rc = traced(api, ctx, &bad, BAD_NAN, e, &h, msg);
    CHECK(rc == MDIFF_ERR_INVALID && strstr(msg, bad.last_layer) && strstr(msg, "not finite"),
          "NaN bias: %s '%s'", api->status_name(rc), msg);
    run_free(&bad);
    rc = traced(api, ctx, &bad, BAD_ROUTING, e, &h, msg);
    CHECK(rc == MDIFF_ERR_INVALID && strstr(msg, bad.last_layer) && strstr(msg, "routing 7"),
          "routing 7: %s '%s'", api->status_name(rc), msg);
    run_free(&bad);
    rc = traced(api, ctx, &bad, CANCEL, e, &h, msg);
    CHECK(rc == MDIFF_ERR_CANCELLED && bad.override_calls == 1, "non-zero answer: %s, %d calls",
          api->status_name(rc), bad.override_calls);
    run_free(&bad);

    /* (d) Off again: the baseline image, bit for bit. */
    CHECK(ov->set(ctx, NULL, NULL) == MDIFF_OK, "set NULL");
    CHECK(generate(api, ctx, &h, msg, sizeof msg) == MDIFF_OK && h == plain,
          "override off: the baseline image again");
    CHECK(ov->set(NULL, on_override, NULL) == MDIFF_ERR_INVALID, "NULL context");
    api->context_destroy(ctx);
    return 0;
}

/* (c) SegMoE: the choice is made once per call from the summed logits. */
static void test_sequence(const mdiff_api *api, const mdiff_router_override_api *ov)
{
    mdiff_context *ctx = test_context_at(api, test_model("tiny-sd-moe"), "cpu");
    char msg[512];
    uint64_t h;
    for (int e = 0; e < 4; e += 3) {
        run r = {.ov = ov};
        CHECK(traced(api, ctx, &r, SEQ_ALL, e, &h, msg) == MDIFF_OK, "SegMoE: %s", msg);
        CHECK(r.calls == 21 * STEPS && r.calls_with_e_everywhere == r.calls && r.token_calls == 0,
              "SegMoE, expert %d forced: %d of %d calls chose it for every row", e,
              r.calls_with_e_everywhere, r.calls);
        CHECK(r.bad_fields == 0, "SegMoE call fields: %d bad", r.bad_fields);
        /* attn2's to_k and to_v route text tokens: no grid (3 blocks). */
        CHECK(r.text_calls == 2 * 3 * STEPS, "SegMoE: %d calls without a grid", r.text_calls);
        run_free(&r);
    }
    run r = {.ov = ov};
    CHECK(traced(api, ctx, &r, TOKEN_LEFT, 1, &h, msg) == MDIFF_OK, "SegMoE per token: %s", msg);
    CHECK(r.token_calls == r.calls && r.calls_differing_rows > 0 && r.masked_by[1] == r.masked &&
              r.masked > 0,
          "switched to token routing: %d of %d calls, %d with rows choosing apart, %llu of %llu "
          "masked rows with expert 1",
          r.token_calls, r.calls, r.calls_differing_rows, (unsigned long long)r.masked_by[1],
          (unsigned long long)r.masked);
    run_free(&r);
    ov->set(ctx, NULL, NULL);
    api->context_destroy(ctx);
}

/* argv[1]: the backend of the demo model's runs, "cpu" by default; with
 * another one only they run, or exit 77 (skipped) where it is missing. */
int main(int argc, char **argv)
{
    const char *backend = argc > 1 ? argv[1] : "cpu";
    const mdiff_api *api = test_api();
    CHECK(api->abi_minor >= 5, "ABI 1.5 (minor %d)", api->abi_minor);
    const mdiff_router_override_api *ov = api->get_feature(MDIFF_FEATURE_ROUTER_OVERRIDE);
    CHECK(ov && ov->struct_size >= sizeof *ov && ov->set, "router override feature");
    if (ov) {
        if (test_paint(api, ov, backend) == 77) {
            printf("skipped: no %s backend\n", backend);
            return 77;
        }
        if (!strcmp(backend, "cpu"))
            test_sequence(api, ov);
    }
    return test_report("abi_router_override");
}
