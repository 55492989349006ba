/* unet.callN.eps, the recorded MoE layers (every group unet.moe_<kind>.*),
 * and the expert choices of every MoE layer per call (golden.json
 * moe_selected_experts_unet_calls). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gc.h"

/* One recorded MoE layer: the records unet.moe_<kind>.{input,
 * router_logits,selected_experts,output} of one layer during one call. A
 * case may record several (unet.moe_ff.*, unet.moe_attn.*, ...). */
typedef struct moe_group {
    char prefix[64]; /* "unet.moe_ff" */
    char layer[192]; /* "down_blocks.0.attentions.0.transformer_blocks.0.ff" */
    int call;        /* -1 while the descriptions have not named it */
    int recorded;
} moe_group;

enum { MAX_MOE_GROUPS = 16 };

typedef struct moe_capture {
    gc_case *c;
    int call; /* the U-Net call running now */
    moe_group groups[MAX_MOE_GROUPS];
    int ngroups;
    const cJSON *expected; /* {"layer": [experts...]} for this call, or NULL */
    int choice_checked, choice_wrong;
    char first_wrong[192];
} moe_capture;

static void put_group(gc_case *c, const moe_group *g, const md_moe_trace *t)
{
    const md_moe_layer *l = t->layer;
    char name[128];
    snprintf(name, sizeof name, "%s.input", g->prefix);
    gc_put(c, name, t->input, (size_t)t->rows * l->in_dim, 0);
    snprintf(name, sizeof name, "%s.router_logits", g->prefix);
    gc_put(c, name, t->router_logits, (size_t)t->rows * l->num_experts, 0);
    snprintf(name, sizeof name, "%s.output", g->prefix);
    gc_put(c, name, t->output, (size_t)t->rows * l->out_dim, 0);
    float sel[16];
    for (int k = 0; k < t->plan->top_k && k < 16; k++)
        sel[k] = (float)t->plan->selected[k];
    snprintf(name, sizeof name, "%s.selected_experts", g->prefix);
    gc_put(c, name, sel, (size_t)(t->plan->top_k < 16 ? t->plan->top_k : 16), 1);
}

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
    for (int i = 0; i < cap->ngroups; i++) {
        moe_group *g = &cap->groups[i];
        if (g->recorded || g->call != cap->call || strcmp(l->name, g->layer) != 0)
            continue;
        g->recorded = 1;
        put_group(cap->c, g, t);
    }
}

/* The layer path in a description: the word holding "_blocks."
 * ("input ... of down_blocks.0.attentions.0.transformer_blocks.0.ff in
 * call1 ..."); the call: " in call<N>". Either may be named by any record
 * of the group. */
static void read_description(moe_group *g, const char *s)
{
    const char *blocks = strstr(s, "_blocks.");
    if (blocks && !g->layer[0]) {
        while (blocks > s && blocks[-1] != ' ')
            blocks--;
        size_t n = strcspn(blocks, " ");
        snprintf(g->layer, sizeof g->layer, "%.*s", (int)n, blocks);
    }
    const char *call = strstr(s, " in call");
    if (call && g->call < 0 && call[8] >= '0' && call[8] <= '9')
        g->call = atoi(call + 8);
}

/* Every group unet.moe_<kind>.* of the case, each with the layer and call
 * its descriptions name. A group they do not locate keeps call -1: its
 * records are then never produced and fail as unsupported. */
static void find_recorded_groups(gc_case *c, moe_capture *cap)
{
    const cJSON *tensors = cJSON_GetObjectItem(c->golden_json, "tensors");
    const cJSON *rec;
    cJSON_ArrayForEach(rec, tensors)
    {
        if (strncmp(rec->string, "unet.moe_", 9) != 0)
            continue;
        const char *dot = strchr(rec->string + 9, '.');
        if (!dot)
            continue;
        int len = (int)(dot - rec->string);
        moe_group *g = NULL;
        for (int i = 0; i < cap->ngroups && !g; i++)
            if ((int)strlen(cap->groups[i].prefix) == len &&
                strncmp(cap->groups[i].prefix, rec->string, (size_t)len) == 0)
                g = &cap->groups[i];
        if (!g) {
            if (cap->ngroups == MAX_MOE_GROUPS || len >= (int)sizeof g->prefix) {
                fprintf(stderr, "golden-check: MoE record group of %s not handled\n",
                        rec->string);
                continue;
            }
            g = &cap->groups[cap->ngroups++];
            snprintf(g->prefix, sizeof g->prefix, "%.*s", len, rec->string);
            g->call = -1;
        }
        const cJSON *desc = cJSON_GetObjectItem(rec, "description");
        if (cJSON_IsString(desc))
            read_description(g, desc->valuestring);
    }
    for (int i = 0; i < cap->ngroups; i++)
        if (!cap->groups[i].layer[0] || cap->groups[i].call < 0)
            fprintf(stderr, "golden-check: %s.*: the descriptions name no layer and call\n",
                    cap->groups[i].prefix);
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
    find_recorded_groups(c, &cap);
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
