/* unet.callN.eps, the recorded MoE layer (unet.moe_*), and the expert
 * choices of every MoE layer per call (golden.json
 * moe_selected_experts_unet_calls). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gc.h"

typedef struct moe_capture {
    gc_case *c;
    int call;                 /* the U-Net call running now */
    int record_call;          /* the call during which unet.moe_<kind>.* was recorded */
    char record_layer[192];
    char record_prefix[64];   /* "unet.moe_ff" */
    int recorded;
    const cJSON *expected;    /* {"layer": [experts...]} for this call, or NULL */
    int choice_checked, choice_wrong;
    char first_wrong[192];
} moe_capture;

static void on_moe(void *user, const md_moe_trace *t)
{
    moe_capture *cap = user;
    const md_moe_layer *l = t->layer;
    if (cap->expected) {
        const cJSON *want = cJSON_GetObjectItem(cap->expected, l->name);
        if (want) {
            int ok = cJSON_GetArraySize(want) == t->plan->top_k;
            for (int k = 0; ok && k < t->plan->top_k; k++)
                ok = cJSON_GetArrayItem(want, k)->valueint == t->plan->selected[k];
            cap->choice_checked++;
            if (!ok && !cap->choice_wrong++)
                snprintf(cap->first_wrong, sizeof cap->first_wrong, "%s", l->name);
        }
    }
    if (cap->recorded || cap->call != cap->record_call || strcmp(l->name, cap->record_layer) != 0)
        return;
    cap->recorded = 1;
    char name[128];
    snprintf(name, sizeof name, "%s.input", cap->record_prefix);
    gc_put(cap->c, name, t->input, (size_t)t->rows * l->in_dim, 0);
    snprintf(name, sizeof name, "%s.router_logits", cap->record_prefix);
    gc_put(cap->c, name, t->router_logits, (size_t)t->rows * l->num_experts, 0);
    snprintf(name, sizeof name, "%s.output", cap->record_prefix);
    gc_put(cap->c, name, t->output, (size_t)t->rows * l->out_dim, 0);
    float sel[16];
    for (int k = 0; k < t->plan->top_k && k < 16; k++)
        sel[k] = (float)t->plan->selected[k];
    snprintf(name, sizeof name, "%s.selected_experts", cap->record_prefix);
    gc_put(cap->c, name, sel, (size_t)t->plan->top_k, 1);
}

/* The recorded layer and call come from the record's description:
 * "input ... of <layer path> in call<N> ...". */
static void find_recorded_layer(gc_case *c, moe_capture *cap)
{
    const cJSON *tensors = cJSON_GetObjectItem(c->golden_json, "tensors");
    const cJSON *rec;
    cap->record_call = -1;
    cJSON_ArrayForEach(rec, tensors)
    {
        size_t len = strlen(rec->string);
        if (strncmp(rec->string, "unet.moe_", 9) != 0 || len < 6 ||
            strcmp(rec->string + len - 6, ".input") != 0)
            continue;
        snprintf(cap->record_prefix, sizeof cap->record_prefix, "%.*s", (int)(len - 6), rec->string);
        const cJSON *desc = cJSON_GetObjectItem(rec, "description");
        if (!cJSON_IsString(desc))
            return;
        const char *s = desc->valuestring;
        const char *blocks = strstr(s, "_blocks.");
        const char *call = strstr(s, " in call");
        if (!blocks || !call)
            return;
        while (blocks > s && blocks[-1] != ' ')
            blocks--;
        size_t n = strcspn(blocks, " ");
        snprintf(cap->record_layer, sizeof cap->record_layer, "%.*s", (int)n, blocks);
        cap->record_call = atoi(call + 8);
        return;
    }
}

static const cJSON *expected_choices(gc_case *c, int call)
{
    const cJSON *calls = cJSON_GetObjectItem(c->golden_json, "moe_selected_experts_unet_calls");
    const cJSON *it;
    cJSON_ArrayForEach(it, calls)
    {
        const cJSON *n = cJSON_GetObjectItem(it, "call");
        if (cJSON_IsNumber(n) && n->valueint == call)
            return cJSON_GetObjectItem(it, "selected_experts");
    }
    return NULL;
}

void gc_run_unet(gc_case *c)
{
    if (!gc_has(c, "unet.call0.sample"))
        return;
    md_model *m = gc_model(c);
    if (!m)
        return;
    moe_capture cap = {.c = c};
    find_recorded_layer(c, &cap);
    md_unet_state *state = NULL;
    md_error serr = {0};
    if (md_unet_state_new(m->unet, &state, &serr) != MD_OK) {
        fprintf(stderr, "golden-check: unet: %s\n", serr.msg);
        return;
    }
    md_unet_state_set_observer(state, on_moe, &cap);
    for (int call = 0;; call++) {
        char name[128];
        size_t ns = 0, nt = 0, nc = 0, ntx = 0, nti = 0;
        snprintf(name, sizeof name, "unet.call%d.sample", call);
        if (!gc_has(c, name))
            break;
        float *sample = gc_gold_f32(c, name, &ns);
        snprintf(name, sizeof name, "unet.call%d.timestep", call);
        float *t = gc_gold_f32(c, name, &nt);
        snprintf(name, sizeof name, "unet.call%d.encoder_hidden_states", call);
        float *ctx = gc_gold_f32(c, name, &nc);
        snprintf(name, sizeof name, "unet.call%d.text_embeds", call);
        float *text_embeds = gc_gold_f32(c, name, &ntx);
        snprintf(name, sizeof name, "unet.call%d.time_ids", call);
        float *time_ids = gc_gold_f32(c, name, &nti);
        const md_tensor *st = md_safetensors_find(c->gold, "unet.call0.sample");
        int batch = (int)nt;
        md_unet_inputs in = {
            .batch = batch,
            .height = (int)st->shape[2],
            .width = (int)st->shape[3],
            .sample = sample,
            .timesteps = t,
            .context = ctx,
            .context_len = batch ? (int)(nc / (size_t)batch / (size_t)m->unet_cfg.cross_attention_dim) : 0,
            .text_embeds = text_embeds,
            .time_ids = time_ids,
        };
        float *eps = malloc(sizeof(float) * (ns ? ns : 1));
        cap.call = call;
        cap.expected = expected_choices(c, call);
        md_error err = {0};
        if (sample && t && ctx && eps) {
            if (md_unet_forward(m->unet, state, c->be, &in, eps, &err) == MD_OK) {
                snprintf(name, sizeof name, "unet.call%d.eps", call);
                gc_put(c, name, eps, ns, 0);
            } else {
                fprintf(stderr, "golden-check: unet call %d: %s\n", call, err.msg);
            }
        }
        free(sample);
        free(t);
        free(ctx);
        free(text_embeds);
        free(time_ids);
        free(eps);
    }
    md_unet_state_free(state);
    if (cJSON_GetObjectItem(c->golden_json, "moe_selected_experts_unet_calls")) {
        char name[256];
        float wrong = (float)(cap.choice_wrong + (cap.choice_checked == 0));
        snprintf(name, sizeof name, "check:moe_selected_experts (%d layer calls%s%s)",
                 cap.choice_checked, cap.choice_wrong ? ", first wrong: " : "", cap.first_wrong);
        gc_put(c, name, &wrong, 1, 1);
    }
}
