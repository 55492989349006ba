/* Routes recording (moe_routes_record.h). Sequence routes keep one list of
 * experts per row group; token routes one hex digit per slot ('-' empty). */
#include "moe_routes_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output_file.h"

typedef struct rec_call {
    int step, layer;
    int token, k, groups;
    int64_t n;    /* lists: rows (token) or groups */
    int8_t *list; /* n * k, -1 = empty */
} rec_call;

typedef struct rec_layer {
    char name[160];
    int experts;
} rec_layer;

struct mdh_routes_record {
    rec_layer *layers;
    int nlayers, cap_layers;
    rec_call *calls;
    int ncalls, cap_calls;
    int groups;
    char problem[200]; /* why the routes cannot be written; "" = none */
};

mdh_routes_record *mdh_routes_record_new(void)
{
    return calloc(1, sizeof(mdh_routes_record));
}

void mdh_routes_record_free(mdh_routes_record *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->ncalls; i++)
        free(r->calls[i].list);
    free(r->calls);
    free(r->layers);
    free(r);
}

static int layer_of(mdh_routes_record *r, const mdiff_router_event *ev)
{
    for (int i = 0; i < r->nlayers; i++)
        if (!strcmp(r->layers[i].name, ev->layer_name))
            return i;
    if (r->nlayers == r->cap_layers) {
        int cap = r->cap_layers ? 2 * r->cap_layers : 16;
        rec_layer *p = realloc(r->layers, sizeof *p * (size_t)cap);
        if (!p)
            return -1;
        r->layers = p;
        r->cap_layers = cap;
    }
    snprintf(r->layers[r->nlayers].name, sizeof r->layers[0].name, "%s", ev->layer_name);
    r->layers[r->nlayers].experts = ev->num_experts;
    return r->nlayers++;
}

void mdh_routes_record_add(mdh_routes_record *r, const mdiff_router_event *ev)
{
    if (r->problem[0])
        return;
    /* Events of a 1.3 library lack groups and routing: token routes are then
     * not told apart, so such a library's routes are not recorded. */
    if (ev->struct_size < sizeof *ev) {
        snprintf(r->problem, sizeof r->problem, "the library is older than ABI 1.4");
        return;
    }
    int token = ev->routing == MDIFF_ROUTING_TOKEN;
    int groups = ev->groups > 1 ? ev->groups : 1;
    if (token && ev->num_experts > 16) {
        snprintf(r->problem, sizeof r->problem,
                 "token routes of layers with more than 16 experts are not recorded (%s has %d)",
                 ev->layer_name, ev->num_experts);
        return;
    }
    int layer = layer_of(r, ev);
    if (layer >= 0 && r->ncalls == r->cap_calls) {
        int cap = r->cap_calls ? 2 * r->cap_calls : 64;
        rec_call *p = realloc(r->calls, sizeof *p * (size_t)cap);
        if (p) {
            r->calls = p;
            r->cap_calls = cap;
        }
    }
    const int k = ev->top_k;
    int64_t n = token ? ev->rows : groups;
    int8_t *list = malloc((size_t)(n > 0 ? n : 1) * (size_t)k);
    if (layer < 0 || r->ncalls == r->cap_calls || !list) {
        free(list);
        snprintf(r->problem, sizeof r->problem, "out of memory while recording");
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        /* a sequence group's list: its first row's (all its rows share it) */
        int64_t row = token ? i : i * (ev->rows / groups);
        for (int j = 0; j < k; j++)
            list[i * k + j] = (int8_t)ev->choice[row * k + j];
    }
    r->groups = groups;
    r->calls[r->ncalls++] = (rec_call){.step = ev->step, .layer = layer, .token = token, .k = k,
                                       .groups = groups, .n = n, .list = list};
}

static void write_call(FILE *f, const rec_call *c)
{
    if (c->token) {
        fprintf(f, "{\"k\": %d, \"choices\": \"", c->k);
        for (int64_t i = 0; i < c->n * c->k; i++)
            fputc(c->list[i] < 0 ? '-' : "0123456789abcdef"[c->list[i]], f);
        fputs("\"}", f);
        return;
    }
    fputs("{\"experts\": [", f);
    for (int64_t g = 0; g < c->n; g++) {
        fputs(g ? ", [" : "[", f);
        for (int j = 0, first = 1; j < c->k; j++)
            if (c->list[g * c->k + j] >= 0) {
                fprintf(f, "%s%d", first ? "" : ", ", c->list[g * c->k + j]);
                first = 0;
            }
        fputc(']', f);
    }
    fputs("]}", f);
}

typedef struct routes_out {
    const mdh_routes_record *r;
    const rec_call **at;
    int steps, run;
} routes_out;

static int write_routes(FILE *f, void *user)
{
    const routes_out *o = user;
    const mdh_routes_record *r = o->r;
    const rec_call **at = o->at;
    int steps = o->steps, run = o->run;
    fprintf(f,
            "{\"format\": \"moe-diffuse-routes\", \"version\": 1, \"steps\": %d, "
            "\"first_step\": %d, \"groups\": %d,\n \"layers\": [",
            steps, steps - run, r->groups);
    for (int l = 0; l < r->nlayers; l++) {
        fputs(l ? ",\n  {\"name\": \"" : "\n  {\"name\": \"", f);
        for (const char *c = r->layers[l].name; *c; c++) { /* JSON-escaped */
            if (*c == '"' || *c == '\\')
                fputc('\\', f);
            fputc((unsigned char)*c < 0x20 ? '?' : *c, f);
        }
        fprintf(f, "\", \"experts\": %d}", r->layers[l].experts);
    }
    fputs("],\n \"routes\": [", f);
    for (int s = 0; s < run; s++) {
        fputs(s ? ",\n  [" : "\n  [", f);
        for (int l = 0; l < r->nlayers; l++) {
            fputs(l ? ",\n   " : "\n   ", f);
            write_call(f, at[(size_t)s * (size_t)r->nlayers + (size_t)l]);
        }
        fputs("]", f);
    }
    fputs("]}\n", f);
    return !ferror(f);
}

int mdh_routes_record_write(const mdh_routes_record *r, const char *path, int steps,
                            mdh_error *err)
{
    if (r->problem[0])
        return mdh_fail(err, MDIFF_ERR_UNSUPPORTED, "%s: routes not written: %s", path,
                        r->problem);
    int run = 0; /* steps run: trace steps count from the first one run */
    for (int i = 0; i < r->ncalls; i++)
        run = r->calls[i].step + 1 > run ? r->calls[i].step + 1 : run;
    if (r->nlayers == 0 || run > steps)
        return mdh_fail(err, MDIFF_ERR_INVALID, "%s: no MoE layer call was recorded", path);
    /* calls[step * nlayers + layer]: each must be there exactly once */
    const rec_call **at = calloc((size_t)run * (size_t)r->nlayers, sizeof *at);
    if (!at)
        return mdh_fail(err, MDIFF_ERR_NOMEM, "%s: out of memory", path);
    int st = MDIFF_OK;
    for (int i = 0; i < r->ncalls && st == MDIFF_OK; i++) {
        const rec_call **slot = &at[(size_t)r->calls[i].step * (size_t)r->nlayers +
                                    (size_t)r->calls[i].layer];
        if (*slot)
            st = mdh_fail(err, MDIFF_ERR_INVALID,
                          "%s: layer %s ran twice in step %d: cannot be one route", path,
                          r->layers[r->calls[i].layer].name, r->calls[i].step);
        *slot = &r->calls[i];
    }
    for (size_t i = 0; st == MDIFF_OK && i < (size_t)run * (size_t)r->nlayers; i++)
        if (!at[i])
            st = mdh_fail(err, MDIFF_ERR_INVALID, "%s: layer %s did not run in step %zu", path,
                          r->layers[i % (size_t)r->nlayers].name, i / (size_t)r->nlayers);
    if (st == MDIFF_OK) {
        routes_out o = {r, at, steps, run};
        st = mdh_output_write(path, write_routes, &o, err);
    }
    free(at);
    return st;
}
