/* Router plans against an independent reference (sort-based top-k) on
 * random logits, for both routing modes, k = 1 and 2, with and without
 * ties. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moe/router.h"
#include "test_support.h"

typedef struct {
    double v;
    int i;
} scored;

/* Descending value, ascending index on ties. */
static int cmp_scored(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->v > y->v)
        return -1;
    if (x->v < y->v)
        return 1;
    return x->i - y->i;
}

static void ref_topk(const double *v, int n, int k, int *out)
{
    scored s[64];
    for (int i = 0; i < n; i++)
        s[i] = (scored){v[i], i};
    qsort(s, (size_t)n, sizeof(s[0]), cmp_scored);
    for (int i = 0; i < k; i++)
        out[i] = s[i].i;
}

static void ref_softmax(const float *row, const int *sel, int k, double *w)
{
    double m = -INFINITY, s = 0;
    for (int i = 0; i < k; i++)
        m = fmax(m, row[sel[i]]);
    for (int i = 0; i < k; i++)
        s += exp(row[sel[i]] - m);
    for (int i = 0; i < k; i++)
        w[i] = exp(row[sel[i]] - m) / s;
}

/* Per row and expert: the expected weight (0 = not chosen). */
static void reference(md_routing mode, const float *logits, int64_t rows, int E, int k,
                      double *expect, int *ref_sel)
{
    memset(expect, 0, sizeof(double) * (size_t)rows * (size_t)E);
    if (mode == MD_ROUTE_SEQUENCE_TOPK) {
        double sum[64] = {0};
        for (int64_t r = 0; r < rows; r++)
            for (int e = 0; e < E; e++)
                sum[e] += logits[r * E + e];
        ref_topk(sum, E, k, ref_sel);
        for (int64_t r = 0; r < rows; r++) {
            double w[16];
            ref_softmax(logits + r * E, ref_sel, k, w);
            for (int i = 0; i < k; i++)
                expect[r * E + ref_sel[i]] = w[i];
        }
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        double v[64];
        int sel[16];
        double w[16];
        for (int e = 0; e < E; e++)
            v[e] = logits[r * E + e];
        ref_topk(v, E, k, sel);
        ref_softmax(logits + r * E, sel, k, w);
        for (int i = 0; i < k; i++)
            expect[r * E + sel[i]] = w[i];
        for (int i = 0; i < k; i++)
            ref_sel[r * k + i] = sel[i];
    }
}

static void check_plan(md_route_plan *p, md_routing mode, const float *logits, int64_t rows, int E,
                       int k)
{
    double *expect = malloc(sizeof(double) * (size_t)rows * (size_t)E);
    double *got = calloc((size_t)rows * (size_t)E, sizeof(double));
    int *ref_sel = malloc(sizeof(int) * (size_t)(rows * k + 16));
    reference(mode, logits, rows, E, k, expect, ref_sel);
    md_router_plan(p, mode, logits, rows);

    int ok = 1;
    if (p->rows != rows || p->offset[0] != 0 || p->offset[E] != rows * k)
        ok = 0;
    for (int e = 0; ok && e < E; e++) {
        if (p->offset[e + 1] < p->offset[e])
            ok = 0;
        for (int64_t j = p->offset[e]; ok && j < p->offset[e + 1]; j++) {
            int32_t r = p->rows_of[j];
            if (r < 0 || r >= rows || (j > p->offset[e] && p->rows_of[j - 1] >= r))
                ok = 0; /* rows ascending, unique within an expert */
            else
                got[r * E + e] = p->weight_of[j];
        }
    }
    double max_diff = 0;
    int mismatched_choice = 0;
    for (int64_t i = 0; ok && i < rows * E; i++) {
        if ((expect[i] > 0) != (got[i] > 0))
            mismatched_choice = 1;
        max_diff = fmax(max_diff, fabs(expect[i] - got[i]));
    }
    for (int64_t r = 0; ok && r < rows; r++) {
        for (int i = 0; i < k; i++) {
            int want = mode == MD_ROUTE_SEQUENCE_TOPK ? ref_sel[i] : ref_sel[r * k + i];
            if (p->choice[r * k + i] != want)
                mismatched_choice = 1;
        }
    }
    if (mode == MD_ROUTE_SEQUENCE_TOPK)
        for (int i = 0; i < k; i++)
            if (p->selected[i] != ref_sel[i])
                mismatched_choice = 1;
    free(expect);
    free(got);
    free(ref_sel);
    const char *mname = mode ? "token" : "sequence";
    REQUIRE(ok, "%s k=%d E=%d rows=%lld: malformed plan", mname, k, E, (long long)rows);
    REQUIRE(!mismatched_choice, "%s k=%d E=%d: expert choice differs from the reference", mname, k,
            E);
    REQUIRE(max_diff < 1e-6, "%s k=%d E=%d: weights differ by %g", mname, k, E, max_diff);
}

static void fill_random(md_test_rng *rng, float *l, int64_t n, int ties)
{
    for (int64_t i = 0; i < n; i++)
        l[i] = ties ? (float)(int)(md_test_uniform(rng) * 3.0)
                    : (float)(md_test_uniform(rng) * 8.0 - 4.0);
}

static void test_modes(void)
{
    const int64_t rows = 200;
    md_test_rng rng = {0x9E3779B97F4A7C15ull};
    for (int ties = 0; ties < 2; ties++)
        for (int E = 2; E <= 8; E += 2)
            for (int k = 1; k <= 2; k++)
                for (int mode = 0; mode < 2; mode++) {
                    md_route_plan *p = md_route_plan_new(E, k, 4);
                    REQUIRE(p, "plan_new failed");
                    REQUIRE(md_route_plan_reserve(p, rows) == 0 && p->max_rows >= rows,
                            "reserve failed");
                    float *l = malloc(sizeof(float) * (size_t)(rows * E));
                    for (int rep = 0; rep < 3; rep++) {
                        fill_random(&rng, l, rows * E, ties);
                        check_plan(p, (md_routing)mode, l, rows - rep * 50, E, k);
                    }
                    free(l);
                    md_route_plan_free(p);
                }
}

/* Hand-made ties: equal sums must pick the lower expert index. */
static void test_explicit_ties(void)
{
    md_route_plan *p = md_route_plan_new(4, 2, 2);
    REQUIRE(p, "plan_new failed");
    const float l[8] = {1, 2, 2, 1, /* row 0 */ 1, 0, 0, 1};
    md_router_plan(p, MD_ROUTE_SEQUENCE_TOPK, l, 2);
    /* sums 2, 2, 2, 2 -> experts 0 and 1 */
    REQUIRE(p->selected[0] == 0 && p->selected[1] == 1, "sequence tie picked %d,%d",
            p->selected[0], p->selected[1]);
    REQUIRE(p->offset[1] - p->offset[0] == 2 && p->offset[2] - p->offset[1] == 2 &&
                p->offset[4] == p->offset[2],
            "sequence tie: wrong groups");
    md_router_plan(p, MD_ROUTE_TOKEN_TOPK, l, 2);
    /* row 0: 2,2 at experts 1,2; row 1: 1,1 at experts 0,3 */
    REQUIRE(p->choice[0] == 1 && p->choice[1] == 2 && p->choice[2] == 0 && p->choice[3] == 3,
            "token tie picked %d,%d / %d,%d", p->choice[0], p->choice[1], p->choice[2],
            p->choice[3]);
    REQUIRE(fabsf(p->weight_of[0] - 0.5f) < 1e-7f, "tied weights should be 1/2");
    md_route_plan_free(p);

    /* top-1: weight exactly 1 */
    p = md_route_plan_new(3, 1, 1);
    const float m[3] = {-1, 5, 3};
    md_router_plan(p, MD_ROUTE_SEQUENCE_TOPK, m, 1);
    REQUIRE(p->selected[0] == 1 && p->weight_of[p->offset[1]] == 1.0f, "top-1 weight");
    md_route_plan_free(p);

    REQUIRE(md_route_plan_new(2, 3, 1) == NULL, "k > E must be refused");
    REQUIRE(md_route_plan_new(2, 0, 1) == NULL, "k = 0 must be refused");
}

int main(void)
{
    test_modes();
    test_explicit_ties();
    return md_test_finish("test_router");
}
