/* MoE routing statistics (see moe_stats.h). */
#include "moe_stats.h"

#include "output_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


typedef struct stats_layer {
    char name[160]; /* the layer's identity: module paths are unique */
    int num_experts, top_k;
} stats_layer;

typedef struct stats_record {
    int call, layer;
    int64_t rows;
    int64_t *load;
    int64_t *half;      /* [2][num_experts]: unconditional, conditional rows; NULL = no guidance */
    double entropy_sum; /* summed per-token entropies */
} stats_record;

struct md_moe_stats {
    stats_layer *layers;
    int nlayers, cap_layers;
    stats_record *recs;
    int nrecs, cap_recs;
    int call;           /* current call index */
    int call_has_recs;  /* the current call has records */
    int64_t skipped, slots; /* expert-rows skipped / routable, over all calls */
    int halves;         /* some call came with guidance's two row groups */
    int oom;
};

md_moe_stats *md_moe_stats_new(void)
{
    return calloc(1, sizeof(md_moe_stats));
}

void md_moe_stats_free(md_moe_stats *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nrecs; i++) {
        free(s->recs[i].load);
        free(s->recs[i].half);
    }
    free(s->recs);
    free(s->layers);
    free(s);
}

void md_moe_stats_next_call(md_moe_stats *s)
{
    if (s->call_has_recs) {
        s->call++;
        s->call_has_recs = 0;
    }
}

static int layer_index(md_moe_stats *s, const char *name, int num_experts, int top_k)
{
    for (int i = 0; i < s->nlayers; i++)
        if (!strcmp(s->layers[i].name, name))
            return i;
    if (s->nlayers == s->cap_layers) {
        int cap = s->cap_layers ? 2 * s->cap_layers : 16;
        stats_layer *p = realloc(s->layers, sizeof(*p) * (size_t)cap);
        if (!p)
            return -1;
        s->layers = p;
        s->cap_layers = cap;
    }
    stats_layer *n = &s->layers[s->nlayers];
    snprintf(n->name, sizeof n->name, "%s", name);
    n->num_experts = num_experts;
    n->top_k = top_k;
    return s->nlayers++;
}

/* The record of (current call, layer), created when missing; a layer seen
 * twice in one call starts the next call. */
static stats_record *record_for(md_moe_stats *s, int layer)
{
    for (int i = s->nrecs - 1; i >= 0 && s->recs[i].call == s->call; i--)
        if (s->recs[i].layer == layer) {
            md_moe_stats_next_call(s);
            break;
        }
    if (s->nrecs == s->cap_recs) {
        int cap = s->cap_recs ? 2 * s->cap_recs : 64;
        stats_record *p = realloc(s->recs, sizeof(*p) * (size_t)cap);
        if (!p)
            return NULL;
        s->recs = p;
        s->cap_recs = cap;
    }
    stats_record *r = &s->recs[s->nrecs];
    memset(r, 0, sizeof(*r));
    r->load = calloc((size_t)s->layers[layer].num_experts, sizeof(int64_t));
    if (!r->load)
        return NULL;
    r->call = s->call;
    r->layer = layer;
    s->nrecs++;
    s->call_has_recs = 1;
    return r;
}

void md_moe_stats_record(md_moe_stats *s, const md_moe_call *c)
{
    if (s->oom)
        return;
    int li = layer_index(s, c->layer, c->num_experts, c->top_k);
    stats_record *r = li < 0 ? NULL : record_for(s, li);
    if (!r) {
        s->oom = 1;
        return;
    }
    const int E = c->num_experts;
    r->rows += c->rows;
    s->skipped += c->skipped;
    s->slots += c->rows * c->top_k;
    /* Guidance stacks [uncond; cond]: row i belongs to half i / (rows / 2). */
    int64_t half_rows = c->row_groups == 2 && c->rows % 2 == 0 ? c->rows / 2 : 0;
    if (half_rows && !r->half) {
        r->half = calloc(2 * (size_t)E, sizeof(int64_t));
        if (!r->half) {
            s->oom = 1;
            return;
        }
        s->halves = 1;
    }
    for (int64_t i = 0; i < c->rows * c->top_k; i++) {
        int32_t e = c->choice[i];
        if (e < 0 || e >= E)
            continue;
        r->load[e]++;
        if (half_rows)
            r->half[(i / c->top_k >= half_rows ? E : 0) + e]++;
    }
    for (int64_t i = 0; i < c->rows; i++) {
        const float *lg = c->logits + i * E;
        double mx = lg[0];
        for (int e = 1; e < E; e++)
            mx = lg[e] > mx ? lg[e] : mx;
        double z = 0.0, zl = 0.0;
        for (int e = 0; e < E; e++) {
            double p = exp(lg[e] - mx);
            z += p;
            zl += p * (lg[e] - mx);
        }
        /* H = log Z - sum p_e (l_e - max) / Z, with logits shifted by max */
        r->entropy_sum += log(z) - zl / z;
    }
}

void md_moe_stats_skipped(const md_moe_stats *s, int64_t *skipped, int64_t *slots)
{
    *skipped = s->skipped;
    *slots = s->slots;
}

int md_moe_stats_calls(const md_moe_stats *s)
{
    return s->nrecs ? s->recs[s->nrecs - 1].call + 1 : 0;
}

int md_moe_stats_layers(const md_moe_stats *s)
{
    return s->nlayers;
}

const char *md_moe_stats_layer(const md_moe_stats *s, int layer, int *num_experts)
{
    if (layer < 0 || layer >= s->nlayers)
        return NULL;
    *num_experts = s->layers[layer].num_experts;
    return s->layers[layer].name;
}

int md_moe_stats_halves(const md_moe_stats *s)
{
    return s->halves;
}

int md_moe_stats_failed(const md_moe_stats *s)
{
    return s->oom;
}

static void fill_cell(const md_moe_stats *s, const stats_record *r, md_moe_stats_cell *c)
{
    const stats_layer *l = &s->layers[r->layer];
    c->layer = l->name;
    c->num_experts = l->num_experts;
    c->top_k = l->top_k;
    c->rows = r->rows;
    c->load = r->load;
    c->load_half[0] = r->half;
    c->load_half[1] = r->half ? r->half + l->num_experts : NULL;
    c->entropy = r->rows ? r->entropy_sum / (double)r->rows : 0.0;
    int64_t sum = 0, mx = 0;
    for (int e = 0; e < l->num_experts; e++) {
        sum += r->load[e];
        mx = r->load[e] > mx ? r->load[e] : mx;
    }
    double h = 0.0;
    for (int e = 0; e < l->num_experts; e++)
        if (r->load[e] > 0) {
            double p = (double)r->load[e] / (double)sum;
            h -= p * log(p);
        }
    c->load_entropy = h;
    c->busiest_share = sum ? (double)mx / (double)sum : 0.0;
}

int md_moe_stats_get(const md_moe_stats *s, int call, int layer, md_moe_stats_cell *out)
{
    for (int i = 0; i < s->nrecs; i++)
        if (s->recs[i].call == call && s->recs[i].layer == layer) {
            fill_cell(s, &s->recs[i], out);
            return 1;
        }
    memset(out, 0, sizeof(*out));
    return 0;
}

/* Slots of expert e of layer l over every call: half 0/1, or -1 = all rows. */
static int64_t layer_total(const md_moe_stats *s, int l, int e, int half)
{
    int64_t t = 0;
    const int E = s->layers[l].num_experts;
    for (int i = 0; i < s->nrecs; i++)
        if (s->recs[i].layer == l)
            t += half < 0 ? s->recs[i].load[e] : s->recs[i].half ? s->recs[i].half[half * E + e] : 0;
    return t;
}

static void write_loads(FILE *f, const char *key, const int64_t *load, int n)
{
    fprintf(f, ", \"%s\": [", key);
    for (int e = 0; e < n; e++)
        fprintf(f, "%s%lld", e ? ", " : "", (long long)load[e]);
    fprintf(f, "]");
}

static int write_json(FILE *f, void *user)
{
    const md_moe_stats *s = user;
    fprintf(f, "{\n  \"calls\": %d,\n  \"skipped_fraction\": %.6f,\n  \"cfg_halves\": %s,\n  \"layers\": [",
            md_moe_stats_calls(s), s->slots ? (double)s->skipped / (double)s->slots : 0.0,
            s->halves ? "true" : "false");
    static const char *const keys[3] = {"total_load", "uncond_load", "cond_load"};
    for (int l = 0; l < s->nlayers; l++) {
        const stats_layer *L = &s->layers[l];
        fprintf(f, "%s\n    {\"name\": \"%s\", \"num_experts\": %d, \"top_k\": %d", l ? "," : "",
                L->name, L->num_experts, L->top_k);
        for (int h = -1; h < (s->halves ? 2 : 0); h++) {
            fprintf(f, ", \"%s\": [", keys[h + 1]);
            for (int e = 0; e < L->num_experts; e++)
                fprintf(f, "%s%lld", e ? ", " : "", (long long)layer_total(s, l, e, h));
            fprintf(f, "]");
        }
        fprintf(f, "}");
    }
    fprintf(f, "\n  ],\n  \"records\": [");
    for (int i = 0; i < s->nrecs; i++) {
        md_moe_stats_cell c;
        fill_cell(s, &s->recs[i], &c);
        fprintf(f, "%s\n    {\"call\": %d, \"layer\": %d, \"rows\": %lld", i ? "," : "",
                s->recs[i].call, s->recs[i].layer, (long long)c.rows);
        write_loads(f, "load", c.load, c.num_experts);
        if (c.load_half[0]) {
            write_loads(f, "load_uncond", c.load_half[0], c.num_experts);
            write_loads(f, "load_cond", c.load_half[1], c.num_experts);
        }
        fprintf(f, ", \"entropy\": %.6f, \"load_entropy\": %.6f, \"busiest_share\": %.6f}",
                c.entropy, c.load_entropy, c.busiest_share);
    }
    fprintf(f, "\n  ]\n}\n");
    return !ferror(f);
}

int md_moe_stats_write_json(const md_moe_stats *s, const char *path, mdh_error *err)
{
    if (s->oom)
        return mdh_fail(err, MDIFF_ERR_NOMEM, "MoE statistics: out of memory while recording");
    return mdh_output_write(path, write_json, (void *)s, err);
}
