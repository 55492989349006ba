/* Expert selection with the per-generation controls (docs/moe.md,
 * "Controls"): sequence-split, capacity, skip, pinned experts and replay.
 * Every choice is first written per row (plan->choice, plan->slot_weight,
 * -1 for an empty slot), then grouped by expert as md_router_plan does, so
 * the layer runs the experts the same way whatever chose them. Work is
 * O(rows * E * k) and memory O(E) beyond the plan. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

#define MAX_K 16

int md_route_controls_active(const md_route_controls *c)
{
    return c && (c->split || c->capacity > 0.0f || c->skip > 0.0f || c->pinned || c->forced);
}

static int allowed(const md_route_controls *c, int e)
{
    return !c->pinned || (e < 64 && (c->pinned >> e & 1u));
}

/* Softmax over the listed experts' logits of one row (-1 entries get 0). */
static void softmax_of(const float *row, const int *sel, int n, float *w)
{
    double m = -INFINITY, e[MAX_K], s = 0.0;
    for (int i = 0; i < n; i++)
        if (sel[i] >= 0 && row[sel[i]] > m)
            m = row[sel[i]];
    for (int i = 0; i < n; i++) {
        e[i] = sel[i] >= 0 ? exp((double)row[sel[i]] - m) : 0.0;
        s += e[i];
    }
    for (int i = 0; i < n; i++)
        w[i] = s > 0.0 ? (float)(e[i] / s) : 0.0f;
}

/* The k best allowed experts of v (descending, lower index on ties); returns
 * how many there were (fewer when fewer are allowed). */
static int best_of(const double *v, int E, const md_route_controls *c, int k, int *out)
{
    int n = 0;
    for (; n < k; n++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            int taken = 0;
            for (int j = 0; j < n; j++)
                taken |= out[j] == e;
            if (!taken && allowed(c, e) && (best < 0 || v[e] > v[best]))
                best = e;
        }
        if (best < 0)
            break;
        out[n] = best;
    }
    return n;
}

static void put_row(md_route_plan *p, int64_t r, const int *sel, const float *w, int n)
{
    const int k = p->top_k;
    for (int i = 0; i < k; i++) {
        p->choice[r * k + i] = i < n ? sel[i] : -1;
        p->slot_weight[r * k + i] = i < n ? w[i] : 0.0f;
    }
}

/* Sequence mode, rows [r0, r1): one list of experts for them all. */
static void choose_group(md_route_plan *p, const md_route_controls *c, const float *logits,
                         int64_t r0, int64_t r1, int g, double *sum)
{
    const int E = p->num_experts, k = p->top_k;
    int sel[MAX_K], n = 0;
    if (c->forced) {
        for (int i = 0; i < k; i++)
            if (c->forced[g * k + i] >= 0)
                sel[n++] = c->forced[g * k + i];
    } else {
        for (int e = 0; e < E; e++)
            sum[e] = 0.0;
        for (int64_t r = r0; r < r1; r++)
            for (int e = 0; e < E; e++)
                sum[e] += logits[r * E + e];
        n = best_of(sum, E, c, k, sel);
    }
    if (!c->forced && c->skip > 0.0f && n > 1) {
        /* Mean renormalised weight of each chosen expert over the group. */
        double mean[MAX_K] = {0};
        for (int64_t r = r0; r < r1; r++) {
            float w[MAX_K];
            softmax_of(logits + r * E, sel, n, w);
            for (int i = 0; i < n; i++)
                mean[i] += w[i];
        }
        int kept = 1; /* the top choice always stays */
        for (int i = 1; i < n; i++)
            if (mean[i] / (double)(r1 - r0) >= c->skip)
                sel[kept++] = sel[i];
        p->skipped += (int64_t)(n - kept) * (r1 - r0);
        n = kept;
    }
    for (int64_t r = r0; r < r1; r++) {
        float w[MAX_K];
        softmax_of(logits + r * E, sel, n, w);
        put_row(p, r, sel, w, n);
    }
}

/* Token mode, one row: top-k, then skip, then capacity. */
static void choose_row(md_route_plan *p, const md_route_controls *c, const float *logits,
                       int64_t r, int64_t cap, int64_t *load, double *v, int *order)
{
    const int E = p->num_experts, k = p->top_k;
    const float *row = logits + r * E;
    int sel[MAX_K], n = 0;
    float w[MAX_K];
    if (c->forced) {
        for (int i = 0; i < k; i++)
            if (c->forced[r * k + i] >= 0)
                sel[n++] = c->forced[r * k + i];
        softmax_of(row, sel, n, w);
        put_row(p, r, sel, w, n);
        return;
    }
    for (int e = 0; e < E; e++)
        v[e] = row[e];
    n = best_of(v, E, c, k, sel);
    softmax_of(row, sel, n, w);
    if (c->skip > 0.0f) {
        int kept = 1;
        for (int i = 1; i < n; i++)
            if (w[i] >= c->skip)
                sel[kept++] = sel[i];
        p->skipped += n - kept;
        n = kept;
    }
    if (cap > 0) {
        /* The row's preferences in order (allowed experts by descending
         * logit, lower index on ties); full experts are passed over. */
        int m = 0;
        for (int e = 0; e < E; e++) {
            if (!allowed(c, e))
                continue;
            int at = m++;
            while (at > 0 && row[order[at - 1]] < row[e])
                order[at] = order[at - 1], at--;
            order[at] = e;
        }
        int want = n, got = 0;
        for (int i = 0; i < m && got < want; i++)
            if (load[order[i]] < cap) {
                load[order[i]]++;
                sel[got++] = order[i];
            }
        p->dropped += want - got;
        n = got;
    }
    softmax_of(row, sel, n, w);
    put_row(p, r, sel, w, n);
}

/* Rows grouped by expert from plan->choice (counting sort, rows ascending). */
static int group_rows(md_route_plan *p, int64_t rows)
{
    const int E = p->num_experts, k = p->top_k;
    int64_t *off = p->offset;
    memset(off, 0, ((size_t)E + 1) * sizeof(*off));
    for (int64_t i = 0; i < rows * k; i++)
        if (p->choice[i] >= 0)
            off[p->choice[i] + 1]++;
    for (int e = 0; e < E; e++)
        off[e + 1] += off[e];
    int64_t cursor[64];
    int64_t *cur = E <= 64 ? cursor : malloc((size_t)E * sizeof(int64_t));
    if (!cur)
        return -1;
    for (int e = 0; e < E; e++)
        cur[e] = off[e];
    for (int64_t r = 0; r < rows; r++)
        for (int i = 0; i < k; i++) {
            int e = p->choice[r * k + i];
            if (e < 0)
                continue;
            int64_t at = cur[e]++;
            p->rows_of[at] = (int32_t)r;
            p->weight_of[at] = p->slot_weight[r * k + i];
        }
    if (cur != cursor)
        free(cur);
    return 0;
}

/* plan->selected: the one list every row uses, in choice order, when there
 * is one (the layer then runs the experts in that order over all rows). */
static void set_selected(md_route_plan *p, int64_t rows)
{
    const int k = p->top_k;
    for (int i = 0; i < MAX_K; i++)
        p->selected[i] = -1;
    for (int64_t r = 1; r < rows; r++)
        if (memcmp(p->choice + r * k, p->choice, (size_t)k * sizeof(int32_t)) != 0)
            return;
    for (int i = 0; i < k && rows > 0; i++)
        p->selected[i] = p->choice[i];
}

static int fail_empty(md_route_plan *p)
{
    p->rows = 0;
    memset(p->offset, 0, ((size_t)p->num_experts + 1) * sizeof(*p->offset));
    return -1;
}

int md_router_plan_controlled(md_route_plan *p, md_routing mode, const md_route_controls *c,
                              const float *logits, int64_t rows)
{
    if (!md_route_controls_active(c)) {
        md_router_plan(p, mode, logits, rows);
        return 0;
    }
    const int E = p->num_experts, k = p->top_k;
    p->rows = rows;
    p->skipped = p->dropped = 0;
    int groups = md_route_groups(c, rows);
    p->groups = groups;
    double vbuf[64];
    int64_t lbuf[64];
    int obuf[64];
    double *v = E <= 64 ? vbuf : malloc((size_t)E * sizeof(double));
    int64_t *load = E <= 64 ? lbuf : calloc((size_t)E, sizeof(int64_t));
    int *order = E <= 64 ? obuf : malloc((size_t)E * sizeof(int));
    int ok = v && load && order;
    if (ok && mode == MD_ROUTE_SEQUENCE_TOPK) {
        /* Replayed routes carry one list per group; so does split routing. */
        int g_count = c->split || c->forced ? groups : 1;
        int64_t per = rows / g_count;
        for (int g = 0; g < g_count; g++)
            choose_group(p, c, logits, g * per, (g + 1) * per, c->forced ? g : 0, v);
    } else if (ok) {
        /* Capacity holds per row group (each image of a guidance batch):
         * served in row order over the whole call, the unconditional half
         * would fill the experts first and push the conditional half, the
         * one the image follows, off its choices. */
        int64_t per = rows / groups;
        for (int g = 0; g < groups; g++) {
            memset(load, 0, (size_t)E * sizeof(int64_t));
            int64_t cap = 0;
            if (c->capacity > 0.0f)
                cap = (int64_t)ceil((double)c->capacity * (double)per * k / E);
            for (int64_t r = g * per; r < (g + 1) * per; r++)
                choose_row(p, c, logits, r, cap, load, v, order);
        }
    }
    if (v != vbuf)
        free(v);
    if (load != lbuf)
        free(load);
    if (order != obuf)
        free(order);
    if (!ok || group_rows(p, rows) != 0)
        return fail_empty(p);
    set_selected(p, rows);
    return 0;
}
