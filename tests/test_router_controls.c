/* Router controls (moe/router_controls.c) against plain reference loops
 * written here: capacity, skip, pinned experts, sequence-split and replay,
 * in both routing modes, on random logits (with and without ties). Each
 * compares the plan's per-row expert weights (0 = not chosen) and its
 * skipped / dropped counts with the reference's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moe/router.h"
#include "test_support.h"

enum { ROWS = 120, MAXE = 8 };

typedef struct {
    double v;
    int i;
} scored;

static int by_value(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    return x->v > y->v ? -1 : x->v < y->v ? 1 : x->i - y->i;
}

/* Experts of v (allowed by `pinned`, 0 = all) by descending value, lower
 * index first on ties; returns their count. */
static int ranked(const double *v, int E, uint64_t pinned, int *out)
{
    scored s[MAXE];
    int n = 0;
    for (int e = 0; e < E; e++)
        if (!pinned || (pinned >> e & 1u))
            s[n++] = (scored){v[e], e};
    qsort(s, (size_t)n, sizeof s[0], by_value);
    for (int i = 0; i < n; i++)
        out[i] = s[i].i;
    return n;
}

static void softmax(const float *row, const int *sel, int n, double *w)
{
    double m = -INFINITY, s = 0;
    for (int i = 0; i < n; i++)
        m = fmax(m, row[sel[i]]);
    for (int i = 0; i < n; i++)
        s += exp(row[sel[i]] - m);
    for (int i = 0; i < n; i++)
        w[i] = exp(row[sel[i]] - m) / s;
}

typedef struct expect {
    double w[ROWS][MAXE];
    int64_t skipped, dropped;
} expect;

static void put(expect *x, const float *l, int E, int r, const int *sel, int n)
{
    double w[MAXE];
    softmax(l + r * E, sel, n, w);
    for (int i = 0; i < n; i++)
        x->w[r][sel[i]] = w[i];
}

/* Token routing: top-k, skip (weights below T, never the first), then the
 * capacity walk down each row's ranking in row order. */
static void ref_token(const float *l, int rows, int E, int k, const md_route_controls *c,
                      expect *x)
{
    /* capacity: per row group, each with its own count */
    int groups = c->groups > 1 && rows % c->groups == 0 ? c->groups : 1, per = rows / groups;
    int64_t cap = c->capacity > 0 ? (int64_t)ceil((double)c->capacity * per * k / E) : 0;
    int64_t load[MAXE] = {0};
    for (int r = 0; r < rows; r++) {
        if (r % per == 0)
            memset(load, 0, sizeof load);
        double v[MAXE];
        int rank[MAXE], sel[MAXE], n;
        for (int e = 0; e < E; e++)
            v[e] = l[r * E + e];
        int m = ranked(v, E, c->pinned, rank);
        n = k < m ? k : m;
        memcpy(sel, rank, sizeof sel);
        double w[MAXE];
        softmax(l + r * E, sel, n, w);
        int kept = n;
        if (c->skip > 0) {
            kept = 1;
            for (int i = 1; i < n; i++)
                if (w[i] >= c->skip)
                    sel[kept++] = sel[i];
            x->skipped += n - kept;
        }
        if (cap) {
            int got = 0;
            for (int i = 0; i < m && got < kept; i++)
                if (load[rank[i]] < cap) {
                    load[rank[i]]++;
                    sel[got++] = rank[i];
                }
            x->dropped += kept - got;
            kept = got;
        }
        put(x, l, E, r, sel, kept);
    }
}

/* Sequence routing over groups of rows: summed logits, pinned = exactly
 * the pinned set, skip on the mean renormalised weight. */
static void ref_sequence(const float *l, int rows, int E, int k, int groups,
                         const md_route_controls *c, expect *x)
{
    int per = rows / groups;
    for (int g = 0; g < groups; g++) {
        double sum[MAXE] = {0};
        for (int r = g * per; r < (g + 1) * per; r++)
            for (int e = 0; e < E; e++)
                sum[e] += l[r * E + e];
        int sel[MAXE];
        int m = ranked(sum, E, c->pinned, sel);
        int n = c->pinned ? m : k;
        if (c->skip > 0) {
            double mean[MAXE] = {0};
            for (int r = g * per; r < (g + 1) * per; r++) {
                double w[MAXE];
                softmax(l + r * E, sel, n, w);
                for (int i = 0; i < n; i++)
                    mean[i] += w[i] / per;
            }
            int kept = 1;
            for (int i = 1; i < n; i++)
                if (mean[i] >= c->skip)
                    sel[kept++] = sel[i];
            x->skipped += (int64_t)(n - kept) * per;
            n = kept;
        }
        for (int r = g * per; r < (g + 1) * per; r++)
            put(x, l, E, r, sel, n);
    }
}

/* The plan's weights per row and expert. */
static void weights_of(const md_route_plan *p, double w[ROWS][MAXE])
{
    memset(w, 0, sizeof(double) * ROWS * MAXE);
    for (int e = 0; e < p->num_experts; e++)
        for (int64_t i = p->offset[e]; i < p->offset[e + 1]; i++)
            w[p->rows_of[i]][e] += p->weight_of[i];
}

static void compare(const char *what, const md_route_plan *p, const expect *x, int rows, int E)
{
    static double got[ROWS][MAXE];
    weights_of(p, got);
    double diff = 0;
    for (int r = 0; r < rows; r++)
        for (int e = 0; e < E; e++)
            diff = fmax(diff, fabs(got[r][e] - x->w[r][e]));
    CHECK(diff < 1e-6, "%s: weights differ from the reference by %g", what, diff);
    CHECK(p->skipped == x->skipped, "%s: skipped %lld, reference %lld", what,
          (long long)p->skipped, (long long)x->skipped);
    CHECK(p->dropped == x->dropped, "%s: dropped %lld, reference %lld", what,
          (long long)p->dropped, (long long)x->dropped);
}

static void fill(md_test_rng *rng, float *l, int n, int ties)
{
    for (int i = 0; i < n; i++)
        l[i] = ties ? (float)(int)(md_test_uniform(rng) * 3.0)
                    : (float)(md_test_uniform(rng) * 8.0 - 4.0);
}

static void run_case(md_test_rng *rng, md_routing mode, int E, int k, md_route_controls c,
                     int ties, const char *name)
{
    static float l[ROWS * MAXE];
    static expect x;
    memset(&x, 0, sizeof x);
    fill(rng, l, ROWS * E, ties);
    int plan_k = mode == MD_ROUTE_SEQUENCE_TOPK && c.pinned ? __builtin_popcountll(c.pinned) : k;
    md_route_plan *p = md_route_plan_new(E, plan_k, ROWS);
    REQUIRE(p, "plan_new");
    REQUIRE(md_router_plan_controlled(p, mode, &c, l, ROWS) == 0, "%s: planning failed", name);
    if (mode == MD_ROUTE_TOKEN_TOPK)
        ref_token(l, ROWS, E, plan_k, &c, &x);
    else
        ref_sequence(l, ROWS, E, plan_k, c.split ? c.groups : 1, &c, &x);
    char what[160];
    snprintf(what, sizeof what, "%s (%s, E=%d, k=%d, ties %d)", name,
             mode == MD_ROUTE_TOKEN_TOPK ? "token" : "sequence", E, plan_k, ties);
    compare(what, p, &x, ROWS, E);
    md_route_plan_free(p);
}

static void test_controls_against_reference(void)
{
    md_test_rng rng = {0x2545F4914F6CDD1Dull};
    for (int ties = 0; ties < 2; ties++)
        for (int E = 4; E <= MAXE; E += 4)
            for (int k = 1; k <= 3; k++) {
                md_route_controls none = {0};
                run_case(&rng, MD_ROUTE_TOKEN_TOPK, E, k, (md_route_controls){.capacity = 1.0f},
                         ties, "capacity 1.0");
                run_case(&rng, MD_ROUTE_TOKEN_TOPK, E, k, (md_route_controls){.capacity = 0.5f},
                         ties, "capacity 0.5 (residual path)");
                run_case(&rng, MD_ROUTE_TOKEN_TOPK, E, k,
                         (md_route_controls){.capacity = 1.0f, .groups = 2}, ties,
                         "capacity 1.0 per guidance half");
                run_case(&rng, MD_ROUTE_TOKEN_TOPK, E, k, (md_route_controls){.skip = 0.3f},
                         ties, "token skip");
                run_case(&rng, MD_ROUTE_TOKEN_TOPK, E, k,
                         (md_route_controls){.skip = 0.3f, .capacity = 1.25f}, ties,
                         "token skip + capacity");
                run_case(&rng, MD_ROUTE_TOKEN_TOPK, E, k < 2 ? k : 2,
                         (md_route_controls){.pinned = 0x5}, ties, "token pinned {0,2}");
                run_case(&rng, MD_ROUTE_SEQUENCE_TOPK, E, k, (md_route_controls){.skip = 0.3f},
                         ties, "sequence skip");
                run_case(&rng, MD_ROUTE_SEQUENCE_TOPK, E, k,
                         (md_route_controls){.groups = 2, .split = 1}, ties, "sequence-split");
                run_case(&rng, MD_ROUTE_SEQUENCE_TOPK, E, k,
                         (md_route_controls){.groups = 2, .split = 1, .skip = 0.35f}, ties,
                         "sequence-split + skip");
                run_case(&rng, MD_ROUTE_SEQUENCE_TOPK, E, k, (md_route_controls){.pinned = 0x6},
                         ties, "sequence pinned {1,2}");
                run_case(&rng, MD_ROUTE_SEQUENCE_TOPK, E, k, none, ties, "sequence plain");
                run_case(&rng, MD_ROUTE_TOKEN_TOPK, E, k, none, ties, "token plain");
            }
}

/* Capacity: no expert above its cap, the cap is ceil(F * rows * k / E). */
static void test_capacity_bound(void)
{
    md_test_rng rng = {77};
    static float l[ROWS * 4];
    /* every row prefers expert 0: the cap decides */
    for (int r = 0; r < ROWS; r++)
        for (int e = 0; e < 4; e++)
            l[r * 4 + e] = (float)(4 - e) + (float)md_test_uniform(&rng) * 0.1f;
    md_route_plan *p = md_route_plan_new(4, 2, ROWS);
    REQUIRE(p, "plan_new");
    md_route_controls c = {.capacity = 1.0f};
    REQUIRE(md_router_plan_controlled(p, MD_ROUTE_TOKEN_TOPK, &c, l, ROWS) == 0, "plan");
    int64_t cap = (ROWS * 2 + 3) / 4;
    for (int e = 0; e < 4; e++)
        CHECK(p->offset[e + 1] - p->offset[e] == cap, "expert %d holds %lld rows, cap %lld", e,
              (long long)(p->offset[e + 1] - p->offset[e]), (long long)cap);
    /* rows past the first cap/1 ... go down their ranking: row 0 gets 0 and 1 */
    CHECK(p->choice[0] == 0 && p->choice[1] == 1, "row 0 keeps its top-2");
    CHECK(p->choice[(ROWS - 1) * 2] == 2 && p->choice[(ROWS - 1) * 2 + 1] == 3,
          "the last row falls back to experts 2 and 3");
    c.capacity = 0.25f; /* ceil(0.25 * 120 * 2 / 4) = 15 per expert: 60 of 240 slots */
    REQUIRE(md_router_plan_controlled(p, MD_ROUTE_TOKEN_TOPK, &c, l, ROWS) == 0, "plan");
    CHECK(p->offset[4] == 60 && p->dropped == 180, "60 slots kept, 180 to the residual path");
    CHECK(p->choice[(ROWS - 1) * 2] == -1, "a row with no slot left has none");
    md_route_plan_free(p);
}

/* Split with two identical halves chooses what sequence routing chooses;
 * replayed choices give the plan of the original choice. */
static void test_split_and_replay(void)
{
    md_test_rng rng = {5};
    static float l[ROWS * 8];
    fill(&rng, l, ROWS / 2 * 8, 0);
    memcpy(l + ROWS / 2 * 8, l, sizeof(float) * ROWS / 2 * 8);
    md_route_plan *a = md_route_plan_new(8, 2, ROWS), *b = md_route_plan_new(8, 2, ROWS);
    REQUIRE(a && b, "plan_new");
    md_router_plan(a, MD_ROUTE_SEQUENCE_TOPK, l, ROWS);
    md_route_controls split = {.groups = 2, .split = 1};
    REQUIRE(md_router_plan_controlled(b, MD_ROUTE_SEQUENCE_TOPK, &split, l, ROWS) == 0, "plan");
    CHECK(a->selected[0] == b->selected[0] && a->selected[1] == b->selected[1],
          "equal halves: split selects %d,%d, sequence %d,%d", b->selected[0], b->selected[1],
          a->selected[0], a->selected[1]);
    CHECK(!memcmp(a->weight_of, b->weight_of, sizeof(float) * ROWS * 2),
          "equal halves: the same weights, bit for bit");

    /* token replay of a token plan */
    fill(&rng, l, ROWS * 8, 0);
    md_router_plan(a, MD_ROUTE_TOKEN_TOPK, l, ROWS);
    static int8_t forced[ROWS * 2];
    for (int i = 0; i < ROWS * 2; i++)
        forced[i] = (int8_t)a->choice[i];
    md_route_controls replay = {.forced = forced};
    REQUIRE(md_router_plan_controlled(b, MD_ROUTE_TOKEN_TOPK, &replay, l, ROWS) == 0, "plan");
    CHECK(!memcmp(a->offset, b->offset, sizeof(int64_t) * 9) &&
              !memcmp(a->rows_of, b->rows_of, sizeof(int32_t) * ROWS * 2) &&
              !memcmp(a->weight_of, b->weight_of, sizeof(float) * ROWS * 2),
          "token replay: the recorded plan, bit for bit");
    /* sequence replay: per-group lists; a different list per half */
    int8_t lists[4] = {3, 5, 1, -1};
    replay = (md_route_controls){.groups = 2, .forced = lists};
    REQUIRE(md_router_plan_controlled(b, MD_ROUTE_SEQUENCE_TOPK, &replay, l, ROWS) == 0, "plan");
    static expect x;
    memset(&x, 0, sizeof x);
    for (int r = 0; r < ROWS; r++)
        put(&x, l, 8, r, r < ROWS / 2 ? (int[]){3, 5} : (int[]){1}, r < ROWS / 2 ? 2 : 1);
    compare("sequence replay", b, &x, ROWS, 8);
    CHECK(b->selected[0] == -1, "halves differ: no single list");
    md_route_plan_free(a);
    md_route_plan_free(b);
}

int main(void)
{
    test_controls_against_reference();
    test_capacity_bound();
    test_split_and_replay();
    return md_test_finish("test_router_controls");
}
