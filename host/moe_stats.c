/* MoE routing statistics (see moe_stats.h). */
#include "moe_stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_png.h"

typedef struct stats_layer {
    char name[160]; /* the layer's identity: module paths are unique */
    int num_experts, top_k;
} stats_layer;

typedef struct stats_record {
    int call, layer;
    int64_t rows;
    int64_t *load;
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
    for (int i = 0; i < s->nrecs; i++)
        free(s->recs[i].load);
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
    for (int64_t i = 0; i < c->rows * c->top_k; i++)
        if (c->choice[i] >= 0 && c->choice[i] < E)
            r->load[c->choice[i]]++;
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

static void fill_cell(const md_moe_stats *s, const stats_record *r, md_moe_stats_cell *c)
{
    const stats_layer *l = &s->layers[r->layer];
    c->layer = l->name;
    c->num_experts = l->num_experts;
    c->top_k = l->top_k;
    c->rows = r->rows;
    c->load = r->load;
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

int md_moe_stats_write_json(const md_moe_stats *s, const char *path, mdh_error *err)
{
    if (s->oom)
        return mdh_fail(err, MDIFF_ERR_NOMEM, "MoE statistics: out of memory while recording");
    FILE *f = fopen(path, "w");
    if (!f)
        return mdh_fail(err, MDIFF_ERR_IO, "%s: cannot write", path);
    fprintf(f, "{\n  \"calls\": %d,\n  \"skipped_fraction\": %.6f,\n  \"layers\": [",
            md_moe_stats_calls(s), s->slots ? (double)s->skipped / (double)s->slots : 0.0);
    for (int l = 0; l < s->nlayers; l++) {
        const stats_layer *L = &s->layers[l];
        fprintf(f, "%s\n    {\"name\": \"%s\", \"num_experts\": %d, \"top_k\": %d, \"total_load\": [",
                l ? "," : "", L->name, L->num_experts, L->top_k);
        for (int e = 0; e < L->num_experts; e++) {
            int64_t t = 0;
            for (int i = 0; i < s->nrecs; i++)
                if (s->recs[i].layer == l)
                    t += s->recs[i].load[e];
            fprintf(f, "%s%lld", e ? ", " : "", (long long)t);
        }
        fprintf(f, "]}");
    }
    fprintf(f, "\n  ],\n  \"records\": [");
    for (int i = 0; i < s->nrecs; i++) {
        md_moe_stats_cell c;
        fill_cell(s, &s->recs[i], &c);
        fprintf(f, "%s\n    {\"call\": %d, \"layer\": %d, \"rows\": %lld, \"load\": [", i ? "," : "",
                s->recs[i].call, s->recs[i].layer, (long long)c.rows);
        for (int e = 0; e < c.num_experts; e++)
            fprintf(f, "%s%lld", e ? ", " : "", (long long)c.load[e]);
        fprintf(f, "], \"entropy\": %.6f, \"load_entropy\": %.6f, \"busiest_share\": %.6f}",
                c.entropy, c.load_entropy, c.busiest_share);
    }
    fprintf(f, "\n  ]\n}\n");
    if (fclose(f) != 0)
        return mdh_fail(err, MDIFF_ERR_IO, "%s: write failed", path);
    return MDIFF_OK;
}

/* Dark blue (0) -> teal -> yellow (1). */
static void ramp(double v, uint8_t rgb[3])
{
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    static const double stops[3][3] = {{20, 20, 90}, {30, 150, 140}, {250, 230, 40}};
    int i = v < 0.5 ? 0 : 1;
    double t = v < 0.5 ? v * 2 : (v - 0.5) * 2;
    for (int c = 0; c < 3; c++)
        rgb[c] = (uint8_t)lround(stops[i][c] + (stops[i + 1][c] - stops[i][c]) * t);
}

int md_moe_stats_write_heatmap(const md_moe_stats *s, const char *path, int cell,
                                     mdh_error *err)
{
    if (s->oom)
        return mdh_fail(err, MDIFF_ERR_NOMEM, "MoE statistics: out of memory while recording");
    if (cell <= 0)
        cell = 8;
    const int calls = md_moe_stats_calls(s);
    int rows = 0;
    for (int l = 0; l < s->nlayers; l++)
        rows += s->layers[l].num_experts;
    if (calls == 0 || rows == 0)
        return mdh_fail(err, MDIFF_ERR_INVALID, "%s: no MoE layer was run: nothing to draw", path);
    const int sep = 2; /* pixels between layers */
    const int w = calls * cell, h = rows * cell + (s->nlayers - 1) * sep;
    uint8_t *img = malloc((size_t)w * (size_t)h * 3);
    if (!img)
        return mdh_fail(err, MDIFF_ERR_NOMEM, "%s: out of memory", path);
    memset(img, 128, (size_t)w * (size_t)h * 3);
    int y0 = 0;
    for (int l = 0; l < s->nlayers; l++) {
        const int E = s->layers[l].num_experts;
        for (int c = 0; c < calls; c++) {
            md_moe_stats_cell st;
            int have = md_moe_stats_get(s, c, l, &st);
            for (int e = 0; e < E; e++) {
                uint8_t rgb[3] = {0, 0, 0};
                if (have && st.rows > 0)
                    ramp((double)st.load[e] / (double)st.rows, rgb);
                for (int y = 0; y < cell; y++)
                    for (int x = 0; x < cell; x++)
                        memcpy(img + (((size_t)(y0 + e * cell + y) * w) + (size_t)(c * cell + x)) * 3,
                               rgb, 3);
            }
        }
        y0 += E * cell + sep;
    }
    int st = md_png_write(path, img, w, h, NULL, 0, err);
    free(img);
    return st;
}
