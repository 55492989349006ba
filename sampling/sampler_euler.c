/* EulerDiscreteScheduler (s_churn 0, optionally Karras sigmas) and
 * EulerAncestralDiscreteScheduler. */
#include "sampler_internal.h"

#include <math.h>

#include "schedule.h"

/* Sigmas of the Karras schedule and their fractional timesteps. For
 * EulerDiscreteScheduler the Karras range is taken from the interpolated
 * sigmas, so with "leading" spacing it ends at the first timestep rather
 * than at the top of the training table. */
static void karras_from_interp(int n, int nt, const float *table, float *log_table, double *sig,
                               double *ts)
{
    for (int t = 0; t < nt; t++)
        log_table[t] = logf(table[t]);
    double smin = sig[n - 1], smax = sig[0];
    md_sched_karras(smin, smax, n, sig);
    for (int i = 0; i < n; i++)
        ts[i] = md_sched_sigma_to_t(sig[i], log_table, nt);
}

md_status md_euler_setup(md_sampler *s, const md_sched_config *cfg, md_error *err)
{
    int n = s->steps, nt = s->num_train;
    md_sigma_setup w;
    md_status st = md_sigma_setup_begin(s, cfg, &w, err);
    if (st == MD_OK)
        st = md_sched_timesteps_ddpm(s->spacing, nt, cfg->steps_offset, n, 0, w.ts, err);
    if (st != MD_OK)
        goto done;
    /* The reference holds these timesteps as float32 before interpolating. */
    for (int i = 0; i < n; i++) {
        w.ts[i] = (double)(float)w.ts[i];
        w.sig[i] = md_sched_interp(w.ts[i], w.table, nt);
    }
    if (s->kind == MD_SAMPLER_EULER_KARRAS) {
        /* acp is no longer needed: it holds the float32 log-sigma table. */
        karras_from_interp(n, nt, w.table, w.acp, w.sig, w.ts);
    }
    md_sigma_setup_store(s, &w);
    float max_sigma = 0.0f;
    for (int i = 0; i < n; i++)
        if (s->sigmas[i] > max_sigma)
            max_sigma = s->sigmas[i];
    /* diffusers scales the initial noise by sqrt(sigma_max^2 + 1) only for
     * "leading" spacing. */
    s->init_noise_sigma = s->spacing == MD_SPACING_LEADING
                              ? sqrtf(max_sigma * max_sigma + 1.0f)
                              : max_sigma;
done:
    md_sigma_setup_free(&w);
    return st;
}

void md_euler_scale_input(const md_sampler *s, int i, const float *x, float *y, size_t n)
{
    float sigma = s->sigmas[i];
    float d = sqrtf(sigma * sigma + 1.0f);
    for (size_t k = 0; k < n; k++)
        y[k] = x[k] / d;
}

/* Denoised estimate x0 for one element. */
static float predict_x0(md_prediction pred, float sigma, float v_c, float v_q, float x, float m)
{
    switch (pred) {
    case MD_PRED_V:
        return m * v_c + x / v_q;
    case MD_PRED_SAMPLE:
        return m;
    default:
        return x - sigma * m;
    }
}

void md_euler_step(const md_sampler *s, int i, const float *model_output, const float *sample,
                   float *prev, size_t n)
{
    float sigma = s->sigmas[i];
    float v_q = sigma * sigma + 1.0f;
    float v_c = -sigma / sqrtf(v_q);
    float dt = s->sigmas[i + 1] - sigma;
    for (size_t k = 0; k < n; k++) {
        float x = sample[k];
        float x0 = predict_x0(s->pred, sigma, v_c, v_q, x, model_output[k]);
        float d = (x - x0) / sigma;
        prev[k] = x + d * dt;
    }
}

void md_euler_a_step(const md_sampler *s, int i, const float *model_output, const float *sample,
                     const float *noise, float *prev, size_t n)
{
    float sigma = s->sigmas[i], to = s->sigmas[i + 1];
    float v_q = sigma * sigma + 1.0f;
    float v_c = -sigma / sqrtf(v_q);
    float from2 = sigma * sigma, to2 = to * to;
    float up = sqrtf(to2 * (from2 - to2) / from2);
    float down = sqrtf(to2 - up * up);
    float dt = down - sigma;
    for (size_t k = 0; k < n; k++) {
        float x = sample[k];
        float x0 = predict_x0(s->pred, sigma, v_c, v_q, x, model_output[k]);
        float d = (x - x0) / sigma;
        float y = x + d * dt;
        prev[k] = y + noise[k] * up;
    }
}

void md_euler_add_noise(const md_sampler *s, int i, const float *x, const float *noise, float *out,
                        size_t n)
{
    float sigma = s->sigmas[i];
    for (size_t k = 0; k < n; k++)
        out[k] = x[k] + noise[k] * sigma;
}
