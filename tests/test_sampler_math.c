/* Sampler behaviour beyond the golden tables: every sampler and prediction
 * type (epsilon, v, sample) against the closed-form step of an exact
 * model, spacing rules and defaults, img2img begin index, add_noise,
 * step-order and argument errors, in-place stepping. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/rng.h"
#include "sampling/sampler.h"
#include "sampling/schedule.h"
#include "test_support.h"


enum { N = 256 };

static md_sched_config sd_config(md_prediction pred, int spacing)
{
    md_sched_config c = {1000, 0.00085f, 0.012f, MD_BETA_SCALED_LINEAR, 1, 0, pred, spacing};
    return c;
}

static double rel_err(const float *a, const double *b, size_t n)
{
    double maxd = 0.0, maxb = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= maxd))
            maxd = d;
        if (fabs(b[i]) > maxb)
            maxb = fabs(b[i]);
    }
    return maxb > 0.0 ? maxd / maxb : maxd;
}

static md_sampler *make(md_sampler_kind k, const md_sched_config *c, int steps)
{
    md_sampler *s = NULL;
    md_error err = {0};
    if (md_sampler_create(&s, k, c, steps, &err) != MD_OK) {
        fprintf(stderr, "create %s: %s\n", md_sampler_name(k), err.msg);
        md_test_failf(__FILE__, __LINE__, "see above");
        return NULL;
    }
    return s;
}

/* Signal and noise scale of step i in the sampler's own sample space:
 * x_i = a * x0 + b * eps, and the v target is c_v_eps * eps - c_v_x0 * x0. */
typedef struct coeffs {
    double a, b;          /* sample = a x0 + b eps */
    double v_eps, v_x0;   /* v = v_eps eps - v_x0 x0 */
} coeffs;

static coeffs ddim_coeffs(double acp)
{
    coeffs c = {sqrt(acp), sqrt(1.0 - acp), sqrt(acp), sqrt(1.0 - acp)};
    return c;
}

/* Sigma samplers: Euler samples are x0 + sigma eps; DPM-Solver samples
 * are alpha x0 + sigma alpha eps. Both models see alpha x0 + sigma alpha eps. */
static coeffs sigma_coeffs(double sigma, int dpm)
{
    double alpha = 1.0 / sqrt(sigma * sigma + 1.0);
    coeffs c = {dpm ? alpha : 1.0, dpm ? sigma * alpha : sigma, alpha, sigma * alpha};
    return c;
}

/* Runs all steps with an exact model for x0/eps and compares each
 * prev_sample with its closed form. */
static void exact_model(md_sampler_kind kind, md_prediction pred, int spacing, int steps)
{
    md_sched_config cfg = sd_config(pred, spacing);
    md_sampler *s = make(kind, &cfg, steps);
    if (!s)
        return;
    float acp[1000];
    CHECK(md_sched_alphas_cumprod(&cfg, acp, NULL) == MD_OK);
    const float *ts = md_sampler_timesteps(s);
    const float *sig = md_sampler_sigmas(s);
    int dpm = kind == MD_SAMPLER_DPMPP_2M || kind == MD_SAMPLER_DPMPP_2M_KARRAS;
    float x0[N], eps[N], noise[N], sample[N], mout[N], prev[N], scaled[N];
    double expect[N];
    md_randn(7, 1, 0, x0, N);
    md_randn(7, 2, 0, eps, N);
    double worst = 0.0;
    for (int i = 0; i < steps; i++) {
        coeffs cur, nxt;
        double up = 0.0;
        if (kind == MD_SAMPLER_DDIM) {
            int t = (int)ts[i], tp = t - 1000 / steps;
            cur = ddim_coeffs(acp[t]);
            nxt = ddim_coeffs(tp >= 0 ? acp[tp] : acp[0]);
        } else {
            cur = sigma_coeffs(sig[i], dpm);
            nxt = sigma_coeffs(sig[i + 1], dpm);
            if (kind == MD_SAMPLER_EULER_A) {
                double f = sig[i], t = sig[i + 1];
                up = sqrt(t * t * (f * f - t * t) / (f * f));
                nxt.b = sqrt(t * t - up * up);
            }
        }
        md_randn(7, 3, (uint64_t)i * N, noise, N);
        for (int k = 0; k < N; k++) {
            sample[k] = (float)(cur.a * x0[k] + cur.b * eps[k]);
            switch (pred) {
            case MD_PRED_V:
                mout[k] = (float)(cur.v_eps * eps[k] - cur.v_x0 * x0[k]);
                break;
            case MD_PRED_SAMPLE:
                mout[k] = x0[k];
                break;
            default:
                mout[k] = eps[k];
                break;
            }
            expect[k] = nxt.a * x0[k] + nxt.b * eps[k] + up * noise[k];
        }
        /* The model input is the variance-preserving sample for every kind. */
        md_sampler_scale_input(s, i, sample, scaled, N);
        double sc[N];
        double div = (kind == MD_SAMPLER_DDIM || dpm) ? 1.0 : sqrt((double)sig[i] * sig[i] + 1.0);
        for (int k = 0; k < N; k++)
            sc[k] = sample[k] / div;
        CHECK(rel_err(scaled, sc, N) < 1e-6);
        md_error err = {0};
        CHECK(md_sampler_step(s, i, mout, sample, noise, prev, N, &err) == MD_OK);
        double e = rel_err(prev, expect, N);
        if (e > worst)
            worst = e;
    }
    static const char *const pn[] = {"epsilon", "v", "sample"};
    printf("exact model %-16s %-8s %d steps: max rel err %.2e\n", md_sampler_name(kind), pn[pred],
           steps, worst);
    CHECK(worst < 2e-6);
    md_sampler_free(s);
}

static void test_exact_models(void)
{
    for (int k = 0; k < MD_SAMPLER_COUNT; k++)
        for (int p = MD_PRED_EPSILON; p <= MD_PRED_SAMPLE; p++) {
            exact_model((md_sampler_kind)k, (md_prediction)p, -1, 10);
            exact_model((md_sampler_kind)k, (md_prediction)p, MD_SPACING_TRAILING, 20);
        }
}

static void expect_timesteps(md_sampler_kind k, int spacing, int steps, const float *want)
{
    md_sched_config cfg = sd_config(MD_PRED_EPSILON, spacing);
    md_sampler *s = make(k, &cfg, steps);
    if (!s)
        return;
    const float *ts = md_sampler_timesteps(s);
    int ok = 1;
    for (int i = 0; i < steps; i++)
        ok &= fabsf(ts[i] - want[i]) <= 1e-3f;
    if (!ok) {
        fprintf(stderr, "%s spacing %d:", md_sampler_name(k), spacing);
        for (int i = 0; i < steps; i++)
            fprintf(stderr, " %g", (double)ts[i]);
        fprintf(stderr, "\n");
    }
    CHECK(ok);
    md_sampler_free(s);
}

static void test_spacing(void)
{
    /* Defaults (-1): DDIM leading, the others linspace. */
    expect_timesteps(MD_SAMPLER_DDIM, -1, 4, (const float[]){751, 501, 251, 1});
    expect_timesteps(MD_SAMPLER_DDIM, -1, 5, (const float[]){801, 601, 401, 201, 1});
    expect_timesteps(MD_SAMPLER_EULER, -1, 4, (const float[]){999, 666, 333, 0});
    expect_timesteps(MD_SAMPLER_EULER_A, -1, 4, (const float[]){999, 666, 333, 0});
    expect_timesteps(MD_SAMPLER_DPMPP_2M, -1, 4, (const float[]){999, 749, 500, 250});
    /* Explicit spacings. */
    expect_timesteps(MD_SAMPLER_DDIM, MD_SPACING_LINSPACE, 4, (const float[]){999, 666, 333, 0});
    expect_timesteps(MD_SAMPLER_DDIM, MD_SPACING_TRAILING, 4, (const float[]){999, 749, 499, 249});
    expect_timesteps(MD_SAMPLER_DDIM, MD_SPACING_TRAILING, 3, (const float[]){999, 666, 332});
    expect_timesteps(MD_SAMPLER_EULER, MD_SPACING_LEADING, 4, (const float[]){751, 501, 251, 1});
    expect_timesteps(MD_SAMPLER_DPMPP_2M, MD_SPACING_LEADING, 4,
                     (const float[]){801, 601, 401, 201});
    expect_timesteps(MD_SAMPLER_DPMPP_2M, MD_SPACING_TRAILING, 4,
                     (const float[]){999, 749, 499, 249});
    /* Euler linspace keeps fractional timesteps: 999 * 2/3 * ... */
    expect_timesteps(MD_SAMPLER_EULER, -1, 7, (const float[]){999, 832.5f, 666, 499.5f, 333, 166.5f, 0});

    /* Euler init_noise_sigma: sigma_max for linspace, sqrt(sigma_max^2+1)
     * for leading. */
    md_sched_config lin = sd_config(MD_PRED_EPSILON, -1);
    md_sched_config lead = sd_config(MD_PRED_EPSILON, MD_SPACING_LEADING);
    md_sampler *a = make(MD_SAMPLER_EULER, &lin, 4), *b = make(MD_SAMPLER_EULER, &lead, 4);
    if (a && b) {
        float sa = md_sampler_sigmas(a)[0], sb = md_sampler_sigmas(b)[0];
        CHECK(md_sampler_init_noise_sigma(a) == sa);
        CHECK(fabsf(md_sampler_init_noise_sigma(b) - sqrtf(sb * sb + 1.0f)) < 1e-6f);
        CHECK(sa > 14.6f && sa < 14.62f);
        CHECK(md_sampler_sigmas(a)[4] == 0.0f && md_sampler_sigmas(b)[4] == 0.0f);
    }
    md_sampler_free(a);
    md_sampler_free(b);
    md_sampler *d = make(MD_SAMPLER_DDIM, &lin, 4), *p = make(MD_SAMPLER_DPMPP_2M, &lin, 4);
    if (d && p) {
        CHECK(md_sampler_init_noise_sigma(d) == 1.0f);
        CHECK(md_sampler_init_noise_sigma(p) == 1.0f);
        CHECK(md_sampler_sigmas(d) == NULL);
        CHECK(md_sampler_sigmas(p) != NULL);
        CHECK(!md_sampler_needs_noise(d) && !md_sampler_needs_noise(p));
    }
    md_sampler_free(d);
    md_sampler_free(p);

    /* Step counts whose float arange yields an extra value still give
     * `steps` valid timesteps. */
    md_sched_config tr = sd_config(MD_PRED_EPSILON, MD_SPACING_TRAILING);
    md_sampler *t61 = make(MD_SAMPLER_DDIM, &tr, 61);
    if (t61) {
        const float *ts = md_sampler_timesteps(t61);
        CHECK(ts[0] == 999.0f && ts[60] >= 0.0f && ts[60] < 20.0f);
        for (int i = 1; i < 61; i++)
            CHECK(ts[i] < ts[i - 1]);
    }
    md_sampler_free(t61);
    /* Karras timesteps are descending; DPM's are integers. */
    md_sampler *ek = make(MD_SAMPLER_EULER_KARRAS, &lin, 12), *dk = make(MD_SAMPLER_DPMPP_2M_KARRAS, &lin, 12);
    if (ek && dk) {
        const float *te = md_sampler_timesteps(ek), *td = md_sampler_timesteps(dk);
        for (int i = 1; i < 12; i++) {
            CHECK(te[i] < te[i - 1]);
            CHECK(td[i] <= td[i - 1]);
        }
        for (int i = 0; i < 12; i++)
            CHECK(td[i] == rintf(td[i]));
        CHECK(fabsf(te[0] - 999.0f) < 1e-3f && te[11] < 1.0f);
    }
    md_sampler_free(ek);
    md_sampler_free(dk);
}

static void test_beta_schedules(void)
{
    float acp[1000];
    /* DDPM's linear schedule: sqrt(alpha_bar_T) = 0.00635 (Ho et al.). */
    md_sched_config lin = {1000, 0.0001f, 0.02f, MD_BETA_LINEAR, 0, 1, MD_PRED_EPSILON, -1};
    CHECK(md_sched_alphas_cumprod(&lin, acp, NULL) == MD_OK);
    CHECK(fabsf(acp[0] - 0.9999f) < 1e-7f);
    CHECK(fabs(sqrt((double)acp[999]) - 0.006353) < 2e-5);
    /* Cosine schedule: alpha_bar(t) = f(t)/f(0) with f the squared cosine,
     * betas capped at 0.999. */
    md_sched_config cos_cfg = lin;
    cos_cfg.beta_schedule = MD_BETA_SQUAREDCOS;
    CHECK(md_sched_alphas_cumprod(&cos_cfg, acp, NULL) == MD_OK);
    const double hp = 1.5707963267948966;
    double f0 = cos(0.008 / 1.008 * hp);
    double f500 = cos((0.5 + 0.008) / 1.008 * hp);
    CHECK(fabs(acp[499] - (f500 * f500) / (f0 * f0)) < 1e-5);
    for (int t = 1; t < 1000; t++)
        CHECK(acp[t] < acp[t - 1] && acp[t] >= 0.0f);
    /* Scaled linear (SD): the well-known sigma range 0.0292 .. 14.6146. */
    md_sched_config sd = sd_config(MD_PRED_EPSILON, -1);
    float sig[1000];
    CHECK(md_sched_alphas_cumprod(&sd, acp, NULL) == MD_OK);
    md_sched_sigma_table(acp, 1000, sig);
    CHECK(fabsf(sig[0] - 0.0291675f) < 1e-6f);
    CHECK(fabsf(sig[999] - 14.614645f) < 1e-5f);
    /* Bad ranges fail. */
    md_sched_config bad = sd;
    bad.beta_end = 1.5f;
    md_error err = {0};
    CHECK(md_sched_alphas_cumprod(&bad, acp, &err) == MD_ERR_INVALID && err.msg[0]);
}

/* The helpers that reproduce numpy / the Karras formula. */
static void test_schedule_helpers(void)
{
    double v[5];
    md_sched_linspace(0.0, 1.0, 5, v);
    CHECK(v[0] == 0.0 && v[2] == 0.5 && v[4] == 1.0);
    md_sched_linspace(3.0, 9.0, 1, v);
    CHECK(v[0] == 3.0);
    const float fp[4] = {1.0f, 3.0f, 7.0f, 8.0f};
    CHECK(md_sched_interp(-1.0, fp, 4) == 1.0);
    CHECK(md_sched_interp(1.0, fp, 4) == 3.0);
    CHECK(md_sched_interp(1.25, fp, 4) == 4.0);
    CHECK(md_sched_interp(3.0, fp, 4) == 8.0);
    CHECK(md_sched_interp(10.0, fp, 4) == 8.0);
    md_sched_karras(0.1, 10.0, 3, v);
    double mid = pow((pow(0.1, 1 / 7.0) + pow(10.0, 1 / 7.0)) / 2, 7.0);
    CHECK(fabs(v[0] - 10.0) < 1e-12 && fabs(v[2] - 0.1) < 1e-12 && fabs(v[1] - mid) < 1e-12);
    /* sigma_to_t inverts the log-sigma table, clamped at both ends. */
    float ls[4] = {logf(1.0f), logf(2.0f), logf(4.0f), logf(8.0f)};
    CHECK(fabs(md_sched_sigma_to_t(2.0, ls, 4) - 1.0) < 1e-6);
    CHECK(fabs(md_sched_sigma_to_t(sqrt(8.0), ls, 4) - 1.5) < 1e-6);
    CHECK(md_sched_sigma_to_t(0.5, ls, 4) == 0.0);
    CHECK(md_sched_sigma_to_t(100.0, ls, 4) == 3.0);
    CHECK(fabs(md_sched_sigma_to_t(8.0, ls, 4) - 3.0) < 1e-6);
}

static void test_add_noise(void)
{
    md_sched_config cfg = sd_config(MD_PRED_EPSILON, -1);
    float acp[1000];
    CHECK(md_sched_alphas_cumprod(&cfg, acp, NULL) == MD_OK);
    float x[N], nz[N], out[N];
    double want[N];
    md_randn(3, 0, 0, x, N);
    md_randn(3, 1, 0, nz, N);
    for (int k = 0; k < MD_SAMPLER_COUNT; k++) {
        md_sampler *s = make((md_sampler_kind)k, &cfg, 5);
        if (!s)
            continue;
        for (int i = 0; i < 5; i++) {
            double a, b;
            if (k == MD_SAMPLER_DDIM) {
                double ac = acp[(int)md_sampler_timesteps(s)[i]];
                a = sqrt(ac);
                b = sqrt(1.0 - ac);
            } else if (k == MD_SAMPLER_DPMPP_2M || k == MD_SAMPLER_DPMPP_2M_KARRAS) {
                double sg = md_sampler_sigmas(s)[i];
                a = 1.0 / sqrt(sg * sg + 1.0);
                b = sg * a;
            } else {
                a = 1.0;
                b = md_sampler_sigmas(s)[i];
            }
            for (int j = 0; j < N; j++)
                want[j] = a * x[j] + b * nz[j];
            md_sampler_add_noise(s, i, x, nz, out, N);
            CHECK(rel_err(out, want, N) < 1e-6);
        }
        md_sampler_free(s);
    }
    /* img2img example from diffusers: DDIM 5 steps, strength 0.6 -> begin
     * 2, noise added at t = 401. */
    md_sampler *d = make(MD_SAMPLER_DDIM, &cfg, 5);
    if (d) {
        md_sampler_set_begin(d, 2);
        CHECK(md_sampler_timesteps(d)[2] == 401.0f);
        md_sampler_add_noise(d, 2, x, nz, out, N);
        for (int j = 0; j < N; j++)
            want[j] = sqrt((double)acp[401]) * x[j] + sqrt(1.0 - acp[401]) * nz[j];
        CHECK(rel_err(out, want, N) < 1e-6);
    }
    md_sampler_free(d);
}

static void test_order_and_errors(void)
{
    md_sched_config cfg = sd_config(MD_PRED_EPSILON, -1);
    md_error err = {0};
    md_sampler *s = NULL;
    CHECK(md_sampler_create(&s, MD_SAMPLER_EULER, &cfg, 0, &err) == MD_ERR_INVALID && !s);
    CHECK(md_sampler_create(&s, MD_SAMPLER_EULER, &cfg, 1001, &err) == MD_ERR_INVALID && !s);
    CHECK(md_sampler_create(&s, MD_SAMPLER_COUNT, &cfg, 4, &err) == MD_ERR_INVALID && !s);
    CHECK(md_sampler_create(&s, MD_SAMPLER_DDIM, NULL, 4, &err) == MD_ERR_INVALID && !s);
    md_sched_config bad = cfg;
    bad.timestep_spacing = 7;
    CHECK(md_sampler_create(&s, MD_SAMPLER_DDIM, &bad, 4, &err) == MD_ERR_INVALID && !s);
    bad = cfg;
    bad.steps_offset = 300; /* 751 + 300 is past the table */
    CHECK(md_sampler_create(&s, MD_SAMPLER_DDIM, &bad, 4, &err) == MD_ERR_INVALID && !s);
    CHECK(strstr(err.msg, "ddim") != NULL);
    bad = cfg;
    bad.prediction_type = (md_prediction)9;
    CHECK(md_sampler_create(&s, MD_SAMPLER_EULER, &bad, 4, &err) == MD_ERR_INVALID && !s);
    /* Single-step schedules work. */
    for (int k = 0; k < MD_SAMPLER_COUNT; k++) {
        md_sampler *one = make((md_sampler_kind)k, &cfg, 1);
        float x[4] = {1, 2, 3, 4}, m[4] = {0.1f, 0.2f, 0.3f, 0.4f}, nz[4] = {0}, y[4];
        if (one) {
            CHECK(md_sampler_step(one, 0, m, x, nz, y, 4, &err) == MD_OK);
            for (int j = 0; j < 4; j++)
                CHECK(isfinite(y[j]));
        }
        md_sampler_free(one);
    }

    float x[N], m[N], nz[N], y[N];
    md_randn(1, 0, 0, x, N);
    md_randn(1, 1, 0, m, N);
    md_randn(1, 2, 0, nz, N);
    md_sampler *a = make(MD_SAMPLER_EULER_A, &cfg, 4);
    if (a) {
        CHECK(md_sampler_needs_noise(a));
        CHECK(md_sampler_step(a, 0, m, x, NULL, y, N, &err) == MD_ERR_INVALID);
        CHECK(md_sampler_step(a, 0, m, x, nz, y, N, &err) == MD_OK);
        CHECK(md_sampler_step(a, 2, m, x, nz, y, N, &err) == MD_ERR_INVALID); /* skipped 1 */
        CHECK(md_sampler_step(a, 1, m, x, nz, y, N, &err) == MD_OK);
        CHECK(md_sampler_step(a, 4, m, x, nz, y, N, &err) == MD_ERR_INVALID);
        CHECK(md_sampler_step(a, -1, m, x, nz, y, N, &err) == MD_ERR_INVALID);
        CHECK(md_sampler_step(a, 0, m, x, nz, y, N, &err) == MD_OK); /* restart */
    }
    md_sampler_free(a);

    /* DPM-Solver++: the history restarts with the loop, so two runs give
     * identical results, and a loop started at `begin` makes its first
     * step first order (equal to a fresh sampler's step at that index
     * with no history). In-place stepping matches separate buffers. */
    md_sampler *p = make(MD_SAMPLER_DPMPP_2M, &cfg, 6);
    md_sampler *q = make(MD_SAMPLER_DPMPP_2M, &cfg, 6);
    if (p && q) {
        float run1[6][N], run2[6][N], cur[N];
        for (int r = 0; r < 2; r++) {
            memcpy(cur, x, sizeof cur);
            for (int i = 0; i < 6; i++) {
                float mo[N];
                md_randn(9, 10 + (uint64_t)i, 0, mo, N);
                CHECK(md_sampler_step(p, i, mo, cur, NULL, cur, N, &err) == MD_OK); /* in place */
                memcpy(r ? run2[i] : run1[i], cur, sizeof cur);
            }
        }
        CHECK(memcmp(run1, run2, sizeof run1) == 0);
        /* Separate buffers give the same as in place. */
        memcpy(cur, x, sizeof cur);
        for (int i = 0; i < 6; i++) {
            float mo[N], out[N];
            md_randn(9, 10 + (uint64_t)i, 0, mo, N);
            CHECK(md_sampler_step(q, i, mo, cur, NULL, out, N, &err) == MD_OK);
            CHECK(memcmp(out, run1[i], sizeof out) == 0);
            memcpy(cur, out, sizeof cur);
        }
        /* Begin at 3: first order at step 3, then second order. */
        md_sampler_set_begin(p, 3);
        float mo[N], first[N], fresh[N];
        md_randn(9, 13, 0, mo, N);
        CHECK(md_sampler_step(p, 2, mo, x, NULL, first, N, &err) == MD_ERR_INVALID);
        CHECK(md_sampler_step(p, 3, mo, x, NULL, first, N, &err) == MD_OK);
        md_sampler *f = make(MD_SAMPLER_DPMPP_2M, &cfg, 6);
        if (f) {
            md_sampler_set_begin(f, 3);
            CHECK(md_sampler_step(f, 3, mo, x, NULL, fresh, N, &err) == MD_OK);
            CHECK(memcmp(first, fresh, sizeof first) == 0);
        }
        /* ... which differs from step 3 of a full loop (second order). */
        if (f) {
            md_sampler_set_begin(f, 0);
            for (int i = 0; i < 3; i++)
                CHECK(md_sampler_step(f, i, m, x, NULL, fresh, N, &err) == MD_OK);
            CHECK(md_sampler_step(f, 3, mo, x, NULL, fresh, N, &err) == MD_OK);
            CHECK(memcmp(first, fresh, sizeof first) != 0);
        }
        md_sampler_free(f);
    }
    md_sampler_free(p);
    md_sampler_free(q);
    md_sampler_free(NULL);
}

int main(void)
{
    test_exact_models();
    test_spacing();
    test_beta_schedules();
    test_schedule_helpers();
    test_add_noise();
    test_order_and_errors();
    return md_test_finish("sampler math");
}
