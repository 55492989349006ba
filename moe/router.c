/* Expert selection on the host. Both modes fill the same plan layout: rows
 * grouped by expert (offset/rows_of/weight_of), so the layer code that runs
 * the experts does not care which mode chose them. */
#include "router.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MD_ROUTER_MAX_K 16

md_route_plan *md_route_plan_new(int num_experts, int top_k, int64_t max_rows)
{
    if (num_experts < 1 || top_k < 1 || top_k > num_experts || top_k > MD_ROUTER_MAX_K ||
        max_rows < 0)
        return NULL;
    md_route_plan *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->num_experts = num_experts;
    p->top_k = top_k;
    p->max_k = top_k;
    p->groups = 1;
    p->offset = calloc((size_t)num_experts + 1, sizeof(*p->offset));
    if (!p->offset || md_route_plan_reserve(p, max_rows > 0 ? max_rows : 1) != 0) {
        md_route_plan_free(p);
        return NULL;
    }
    for (int i = 0; i < MD_ROUTER_MAX_K; i++)
        p->selected[i] = -1;
    return p;
}

void md_route_plan_free(md_route_plan *p)
{
    if (!p)
        return;
    free(p->offset);
    free(p->rows_of);
    free(p->weight_of);
    free(p->choice);
    free(p->slot_weight);
    free(p);
}

/* Per-row arrays for rows x k entries (contents not kept). */
static int plan_alloc(md_route_plan *p, int64_t rows, int k)
{
    size_t n = (size_t)rows * (size_t)k;
    int32_t *r = malloc(n * sizeof(*r));
    float *w = malloc(n * sizeof(*w));
    int32_t *c = malloc(n * sizeof(*c));
    float *sw = malloc(n * sizeof(*sw));
    if (!r || !w || !c || !sw) {
        free(r);
        free(w);
        free(c);
        free(sw);
        return -1;
    }
    free(p->rows_of);
    free(p->weight_of);
    free(p->choice);
    free(p->slot_weight);
    p->rows_of = r;
    p->weight_of = w;
    p->choice = c;
    p->slot_weight = sw;
    p->max_rows = rows;
    p->max_k = k;
    return 0;
}

int md_route_plan_reserve(md_route_plan *p, int64_t rows)
{
    return rows <= p->max_rows ? 0 : plan_alloc(p, rows, p->max_k);
}

int md_route_plan_set_k(md_route_plan *p, int k)
{
    if (k < 1 || k > p->num_experts || k > MD_ROUTER_MAX_K)
        return -1;
    if (k > p->max_k && plan_alloc(p, p->max_rows, k) != 0)
        return -1;
    p->top_k = k;
    return 0;
}

/* Indices of the k largest of v[0..n) in descending order; on equal values
 * the lower index comes first (a stable selection). */
static void top_k_double(const double *v, int n, int k, int *out)
{
    for (int i = 0; i < k; i++) {
        int best = -1;
        for (int e = 0; e < n; e++) {
            int taken = 0;
            for (int j = 0; j < i; j++)
                taken |= out[j] == e;
            if (!taken && (best < 0 || v[e] > v[best]))
                best = e;
        }
        out[i] = best;
    }
}

static void top_k_float(const float *v, int n, int k, int *out)
{
    for (int i = 0; i < k; i++) {
        int best = -1;
        for (int e = 0; e < n; e++) {
            int taken = 0;
            for (int j = 0; j < i; j++)
                taken |= out[j] == e;
            if (!taken && (best < 0 || v[e] > v[best]))
                best = e;
        }
        out[i] = best;
    }
}

/* Softmax over the chosen experts' logits of one row, in top-k order. */
static void softmax_chosen(const float *row, const int *chosen, int k, float *w)
{
    double m = row[chosen[0]];
    for (int i = 1; i < k; i++)
        if (row[chosen[i]] > m)
            m = row[chosen[i]];
    double e[MD_ROUTER_MAX_K], s = 0.0;
    for (int i = 0; i < k; i++) {
        e[i] = exp((double)row[chosen[i]] - m);
        s += e[i];
    }
    for (int i = 0; i < k; i++)
        w[i] = (float)(e[i] / s);
}

void md_router_plan(md_route_plan *plan, md_routing mode, const float *logits, int64_t rows)
{
    const int E = plan->num_experts, k = plan->top_k;
    plan->rows = rows;
    plan->skipped = plan->dropped = 0;
    plan->groups = 1;
    int64_t *count = plan->offset; /* counts first, turned into offsets below */
    memset(count, 0, ((size_t)E + 1) * sizeof(*count));

    if (mode == MD_ROUTE_SEQUENCE_TOPK) {
        /* One choice for the whole call; the sum is taken in double so the
         * choice does not depend on the summation order of a backend. */
        double sums[64];
        double *sum = E <= 64 ? sums : calloc((size_t)E, sizeof(double));
        if (!sum) {
            /* Without the sum buffer the plan stays empty: no expert runs. */
            plan->rows = 0;
            return;
        }
        for (int e = 0; e < E; e++)
            sum[e] = 0.0;
        for (int64_t r = 0; r < rows; r++)
            for (int e = 0; e < E; e++)
                sum[e] += logits[r * E + e];
        int sel[MD_ROUTER_MAX_K];
        top_k_double(sum, E, k, sel);
        if (sum != sums)
            free(sum);
        for (int i = 0; i < MD_ROUTER_MAX_K; i++)
            plan->selected[i] = i < k ? sel[i] : -1;

        /* Experts in index order, each holding every row. */
        int64_t off = 0;
        for (int e = 0; e < E; e++) {
            int slot = -1;
            for (int i = 0; i < k; i++)
                if (sel[i] == e)
                    slot = i;
            plan->offset[e] = off;
            if (slot < 0)
                continue;
            for (int64_t r = 0; r < rows; r++) {
                float w[MD_ROUTER_MAX_K];
                softmax_chosen(logits + r * E, sel, k, w);
                plan->rows_of[off + r] = (int32_t)r;
                plan->weight_of[off + r] = w[slot];
            }
            off += rows;
        }
        plan->offset[E] = off;
        for (int64_t r = 0; r < rows; r++)
            for (int i = 0; i < k; i++)
                plan->choice[r * k + i] = sel[i];
        return;
    }

    /* Token mode: each row picks its own experts; then a counting sort
     * groups the rows by expert, rows in ascending order within a group. */
    for (int i = 0; i < MD_ROUTER_MAX_K; i++)
        plan->selected[i] = -1;
    for (int64_t r = 0; r < rows; r++) {
        int sel[MD_ROUTER_MAX_K];
        top_k_float(logits + r * E, E, k, sel);
        for (int i = 0; i < k; i++) {
            plan->choice[r * k + i] = sel[i];
            count[sel[i] + 1]++;
        }
    }
    for (int e = 0; e < E; e++)
        plan->offset[e + 1] += plan->offset[e];
    /* A second pass places each row; it recomputes the softmax so that no
     * per-row buffer is needed. */
    int64_t cursor[64];
    int64_t *cur = E <= 64 ? cursor : malloc((size_t)E * sizeof(int64_t));
    if (!cur) {
        plan->rows = 0;
        memset(plan->offset, 0, ((size_t)E + 1) * sizeof(*plan->offset));
        return;
    }
    for (int e = 0; e < E; e++)
        cur[e] = plan->offset[e];
    for (int64_t r = 0; r < rows; r++) {
        int sel[MD_ROUTER_MAX_K];
        float w[MD_ROUTER_MAX_K];
        for (int i = 0; i < k; i++)
            sel[i] = plan->choice[r * k + i];
        softmax_chosen(logits + r * E, sel, k, w);
        for (int i = 0; i < k; i++) {
            int64_t at = cur[sel[i]]++;
            plan->rows_of[at] = (int32_t)r;
            plan->weight_of[at] = w[i];
        }
    }
    if (cur != cursor)
        free(cur);
}
