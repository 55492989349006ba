/* U-Net forward against the reference tensors of tiny-sd-dense and
 * tiny-sd-moe: eps of unet.call0/1/2, the first MoE feed-forward of call1
 * (input, router logits, chosen experts, output) and the experts every MoE
 * layer chose in every call (golden.json moe_selected_experts_unet_calls). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_json.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "test_support.h"
#include "unet/unet.h"

static void report(const char *name, double err, double tol)
{
    int ok = err <= tol;
    printf("  %-36s max_rel_err %.3e  tol %.0e  %s\n", name, err, tol, ok ? "PASS" : "FAIL");
    CHECK(ok, "%s exceeds its tolerance", name);
}

/* ---- observer: the first ff MoE layer's trace and every layer's choice ---- */
#define MAX_LAYERS 64

typedef struct capture {
    const char *watch; /* layer whose first trace is kept */
    int have_ff;
    float *input, *logits, *output;
    int64_t rows;
    int in_dim, out_dim, E, k;
    int selected[16];
    /* every layer's sequence-mode choice in this call */
    int nlayers;
    char names[MAX_LAYERS][160];
    int sel[MAX_LAYERS][16];
    int calls[MAX_LAYERS];
} capture;

static void observe(void *user, const md_moe_trace *tr)
{
    capture *c = user;
    const md_moe_layer *l = tr->layer;
    int i = 0;
    while (i < c->nlayers && strcmp(c->names[i], l->name) != 0)
        i++;
    if (i == c->nlayers && c->nlayers < MAX_LAYERS) {
        snprintf(c->names[i], sizeof(c->names[i]), "%s", l->name);
        c->nlayers++;
    }
    if (i < MAX_LAYERS) {
        c->calls[i]++;
        memcpy(c->sel[i], tr->plan->selected, sizeof(c->sel[i]));
    }
    if (c->watch && !c->have_ff && strcmp(l->name, c->watch) == 0) {
        c->have_ff = 1;
        c->rows = tr->rows;
        c->in_dim = l->in_dim;
        c->out_dim = l->out_dim;
        c->E = l->num_experts;
        c->k = l->top_k;
        size_t ni = (size_t)tr->rows * (size_t)l->in_dim,
               no = (size_t)tr->rows * (size_t)l->out_dim,
               nl = (size_t)tr->rows * (size_t)l->num_experts;
        c->input = malloc(ni * sizeof(float));
        c->output = malloc(no * sizeof(float));
        c->logits = malloc(nl * sizeof(float));
        memcpy(c->input, tr->input, ni * sizeof(float));
        memcpy(c->output, tr->output, no * sizeof(float));
        memcpy(c->logits, tr->router_logits, nl * sizeof(float));
        memcpy(c->selected, tr->plan->selected, sizeof(c->selected));
    }
}

static void capture_reset(capture *c)
{
    free(c->input);
    free(c->logits);
    free(c->output);
    memset(c, 0, sizeof(*c));
}

/* Compares every layer's choice in call `call` with golden.json. */
static void check_choices(const cJSON *gj, int call, const capture *c)
{
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(gj, "moe_selected_experts_unet_calls");
    const cJSON *entry;
    cJSON_ArrayForEach(entry, calls)
    {
        const cJSON *cn = cJSON_GetObjectItemCaseSensitive(entry, "call");
        if (!cJSON_IsNumber(cn) || cn->valueint != call)
            continue;
        const cJSON *sel = cJSON_GetObjectItemCaseSensitive(entry, "selected_experts");
        int n = 0, bad = 0;
        const cJSON *layer;
        cJSON_ArrayForEach(layer, sel)
        {
            n++;
            int i = 0;
            while (i < c->nlayers && strcmp(c->names[i], layer->string) != 0)
                i++;
            if (i == c->nlayers) {
                FAIL("MoE layer %s was never called", layer->string);
                bad++;
                continue;
            }
            int j = 0;
            const cJSON *v;
            cJSON_ArrayForEach(v, layer)
            {
                if (c->sel[i][j++] != v->valueint) {
                    FAIL("MoE layer %s chose other experts", layer->string);
                    bad++;
                    break;
                }
            }
        }
        printf("  call%d: %d MoE layers, expert choice %s\n", call, n,
               bad || n != c->nlayers ? "DIFFERS" : "matches");
        CHECK(n == c->nlayers, "a different number of MoE layers ran");
        return;
    }
    FAIL("golden.json lists no expert choice for this call");
}

/* Compares the observed trace of the recorded MoE layer with
 * `<prefix>.input/.router_logits/.selected_experts/.output`. */
static void check_moe_records(const md_safetensors *gs, const char *prefix, const capture *cap)
{
    char n[4][96];
    snprintf(n[0], sizeof(n[0]), "%s.input", prefix);
    snprintf(n[1], sizeof(n[1]), "%s.router_logits", prefix);
    snprintf(n[2], sizeof(n[2]), "%s.selected_experts", prefix);
    snprintf(n[3], sizeof(n[3]), "%s.output", prefix);
    if (!cap->have_ff) {
        FAIL("the recorded MoE layer (%s) was not observed", prefix);
        return;
    }
    const md_tensor *gi = md_test_golden_tensor(gs, n[0], MD_F32);
    const md_tensor *gl = md_test_golden_tensor(gs, n[1], MD_F32);
    const md_tensor *gsel = md_test_golden_tensor(gs, n[2], MD_I32);
    const md_tensor *go = md_test_golden_tensor(gs, n[3], MD_F32);
    if (gi && md_tensor_numel(gi) == cap->rows * cap->in_dim)
        report(n[0], md_test_rel_err(cap->input, gi->data, cap->rows * cap->in_dim), 1e-4);
    else
        FAIL("%s: shape differs", n[0]);
    if (gl && md_tensor_numel(gl) == cap->rows * cap->E)
        report(n[1], md_test_rel_err(cap->logits, gl->data, cap->rows * cap->E), 1e-4);
    else
        FAIL("%s: shape differs", n[1]);
    if (gsel && md_tensor_numel(gsel) == cap->k) {
        int same = 1;
        for (int i = 0; i < cap->k; i++)
            same &= cap->selected[i] == ((const int32_t *)gsel->data)[i];
        report(n[2], same ? 0.0 : 1.0, 0);
    } else {
        FAIL("%s: shape differs", n[2]);
    }
    if (go && md_tensor_numel(go) == cap->rows * cap->out_dim)
        report(n[3], md_test_rel_err(cap->output, go->data, cap->rows * cap->out_dim), 1e-4);
    else
        FAIL("%s: shape differs", n[3]);
}

typedef struct golden_case {
    const char *name;
    int calls;              /* unet.call0 .. call{calls-1} */
    const char *moe_record; /* record prefix of the traced MoE layer */
    int moe_call;           /* the call during which it was recorded */
} golden_case;

static void run_case(md_backend *be, const char *dir, const golden_case *c)
{
    const char *case_name = c->name;
    char path[1024];
    md_error err = {0};
    printf("%s\n", case_name);

    snprintf(path, sizeof(path), "%s/%s/unet/config.json", dir, case_name);
    cJSON *cj = NULL;
    md_unet_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (md_json_read_file(path, &cj, &err) != MD_OK ||
        md_unet_config_from_json(cj, path, &cfg, &err) != MD_OK) {
        FAIL("config: %s", err.msg);
        cJSON_Delete(cj);
        return;
    }
    cJSON_Delete(cj);

    snprintf(path, sizeof(path), "%s/%s/golden.json", dir, case_name);
    cJSON *gj = md_test_read_json(path);
    if (!gj) {
        FAIL("%s cannot be read", path);
        return;
    }

    md_safetensors *st = NULL, *gs = NULL;
    md_weights *w = md_weights_new("unet");
    md_unet *u = NULL;
    md_unet_state *state = NULL;
    snprintf(path, sizeof(path), "%s/%s/unet/diffusion_pytorch_model.safetensors", dir, case_name);
    if (md_safetensors_open(path, &st, &err) != MD_OK ||
        md_weights_add_file(w, st, &err) != MD_OK || md_unet_load(&u, &cfg, w, be, &err) != MD_OK) {
        FAIL("loading the unet: %s", err.msg);
        goto done;
    }
    snprintf(path, sizeof(path), "%s/%s/golden.safetensors", dir, case_name);
    gs = md_test_open_safetensors(path);
    if (!gs)
        goto done;

    if (md_unet_state_new(u, &state, &err) != MD_OK) {
        FAIL("unet state: %s", err.msg);
        goto done;
    }
    capture cap;
    memset(&cap, 0, sizeof(cap));
    if (cfg.moe.enabled)
        md_unet_state_set_observer(state, observe, &cap);

    /* The recorded MoE layer: SD cases name it in moe_first_ff_layer, the
     * SDXL case in moe_recorded_layers. */
    const char *moe_layer =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(gj, "moe_first_ff_layer"));
    if (!moe_layer)
        moe_layer = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(gj, "moe_recorded_layers"), c->moe_record));

    for (int call = 0; call < c->calls; call++) {
        char n[128];
        snprintf(n, sizeof(n), "unet.call%d.sample", call);
        const md_tensor *sample = md_test_golden_tensor(gs, n, MD_F32);
        snprintf(n, sizeof(n), "unet.call%d.timestep", call);
        const md_tensor *ts = md_test_golden_tensor(gs, n, MD_F32);
        snprintf(n, sizeof(n), "unet.call%d.encoder_hidden_states", call);
        const md_tensor *ctx = md_test_golden_tensor(gs, n, MD_F32);
        snprintf(n, sizeof(n), "unet.call%d.eps", call);
        const md_tensor *eps = md_test_golden_tensor(gs, n, MD_F32);
        const md_tensor *te = NULL, *tid = NULL;
        if (cfg.text_time_embedding) {
            snprintf(n, sizeof(n), "unet.call%d.text_embeds", call);
            te = md_test_golden_tensor(gs, n, MD_F32);
            snprintf(n, sizeof(n), "unet.call%d.time_ids", call);
            tid = md_test_golden_tensor(gs, n, MD_F32);
            if (!te || !tid)
                continue;
        }
        if (!sample || !ts || !ctx || !eps)
            continue;
        md_unet_inputs in = {.batch = (int)sample->shape[0],
                             .height = (int)sample->shape[2],
                             .width = (int)sample->shape[3],
                             .sample = sample->data,
                             .timesteps = ts->data,
                             .context = ctx->data,
                             .context_len = (int)ctx->shape[1],
                             .text_embeds = te ? te->data : NULL,
                             .time_ids = tid ? tid->data : NULL};
        int64_t ne = md_tensor_numel(eps);
        float *out = malloc((size_t)ne * sizeof(float));
        float *again = malloc((size_t)ne * sizeof(float));
        capture_reset(&cap);
        cap.watch = call == c->moe_call ? moe_layer : NULL;
        size_t mark = be->arena_mark(be);
        if (md_unet_forward(u, state, be, &in, out, &err) != MD_OK) {
            FAIL("forward: %s", err.msg);
            free(out);
            free(again);
            continue;
        }
        snprintf(n, sizeof(n), "unet.call%d.eps", call);
        report(n, md_test_rel_err(out, eps->data, ne), 1e-4);

        if (cfg.moe.enabled) {
            check_choices(gj, call, &cap);
            if (call == c->moe_call)
                check_moe_records(gs, c->moe_record, &cap);
        }

        /* A second call of the same shape gives the same numbers. */
        capture_reset(&cap);
        if (md_unet_forward(u, state, be, &in, again, &err) != MD_OK)
            FAIL("second forward: %s", err.msg);
        else if (memcmp(out, again, (size_t)ne * sizeof(float)) != 0)
            FAIL("a repeated call (the text's keys and values reused) gave different results");
        /* Another context through the same buffer: the kept keys and values
         * must not be reused (same results as a state that never saw it). */
        float *ctx_copy = malloc((size_t)md_tensor_numel(ctx) * sizeof(float));
        float *changed = malloc((size_t)ne * sizeof(float));
        float *fresh = malloc((size_t)ne * sizeof(float));
        md_unet_state *other = NULL;
        if (ctx_copy && changed && fresh && md_unet_state_new(u, &other, &err) == MD_OK) {
            memcpy(ctx_copy, ctx->data, (size_t)md_tensor_numel(ctx) * sizeof(float));
            in.context = ctx_copy;
            md_status s1 = md_unet_forward(u, state, be, &in, again, &err); /* fills */
            ctx_copy[0] += 0.5f;
            md_status s2 = md_unet_forward(u, state, be, &in, changed, &err);
            md_status s3 = md_unet_forward(u, other, be, &in, fresh, &err);
            CHECK(s1 == MD_OK && s2 == MD_OK && s3 == MD_OK && memcmp(changed, fresh, (size_t)ne * sizeof(float)) == 0 &&
                      memcmp(changed, out, (size_t)ne * sizeof(float)) != 0,
                  "a changed context in the same buffer: %s", err.msg);
            md_unet_state_drop_kv(other);
        }
        md_unet_state_free(other);
        free(ctx_copy);
        free(changed);
        free(fresh);
        md_unet_state_drop_kv(state);
        CHECK(be->arena_mark(be) == mark, "the forward passes did not give their activations back");
        free(out);
        free(again);
    }
    capture_reset(&cap);

done:
    md_unet_state_free(state);
    md_unet_free(u);
    md_weights_free(w);
    md_safetensors_close(st);
    md_safetensors_close(gs);
    cJSON_Delete(gj);
}

/* Loading must name a missing weight. */
static void test_missing_weight(md_backend *be, const char *dir)
{
    char path[1024];
    md_error err = {0};
    snprintf(path, sizeof(path), "%s/tiny-sd-dense/unet/config.json", dir);
    cJSON *cj = NULL;
    md_unet_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (md_json_read_file(path, &cj, &err) != MD_OK ||
        md_unet_config_from_json(cj, path, &cfg, &err) != MD_OK) {
        cJSON_Delete(cj);
        return;
    }
    cJSON_Delete(cj);
    snprintf(path, sizeof(path), "%s/tiny-sd-dense/unet/diffusion_pytorch_model.safetensors", dir);
    md_safetensors *st = NULL;
    if (md_safetensors_open(path, &st, &err) != MD_OK)
        return;
    md_weights *w = md_weights_new("unet");
    const char *skip = "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight";
    for (size_t i = 0; i < md_safetensors_count(st); i++)
        if (strcmp(md_safetensors_name(st, i), skip) != 0)
            md_weights_add(w, md_safetensors_name(st, i), md_safetensors_tensor(st, i), path, &err);
    md_unet *u = NULL;
    md_status s = md_unet_load(&u, &cfg, w, be, &err);
    if (s == MD_OK || !strstr(err.msg, skip))
        FAIL("a missing weight must fail naming it (got: %s)", err.msg);
    else
        printf("missing weight reported: %s\n", err.msg);
    md_unet_free(u);
    md_weights_free(w);
    md_safetensors_close(st);
}

int main(void)
{
    const char *dir = md_test_golden_dir_required();
    if (!dir)
        return 1;
    md_backend *be = md_test_cpu_backend(0);
    if (!be)
        return 1;
    static const golden_case cases[] = {
        {"tiny-sd-dense", 3, NULL, -1},
        {"tiny-sd-moe", 3, "unet.moe_ff", 1},
        {"tiny-sdxl", 2, NULL, -1},
        {"tiny-segmoe-sdxl", 1, "unet.moe_attn", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(be, dir, &cases[i]);
    test_missing_weight(be, dir);
    md_backend_destroy(be);
    return md_test_finish("test_unet_golden");
}
