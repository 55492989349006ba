/* DPMSolverMultistepScheduler: algorithm dpmsolver++, solver order 2,
 * midpoint solver, lower_order_final, final sigma 0 (optionally Karras
 * sigmas). The solver works on data predictions x0; the first step of a
 * loop and the last step (final sigma 0) are first order. */
#include "sampler_internal.h"

#include <math.h>
#include <stdlib.h>

#include "schedule.h"

md_status md_dpm_setup(md_sampler *s, const md_sched_config *cfg, md_error *err)
{
    int n = s->steps, nt = s->num_train;
    md_sigma_setup w;
    md_status st = md_sigma_setup_begin(s, cfg, &w, err);
    if (st == MD_OK)
        st = md_sched_timesteps_dpm(s->spacing, nt, cfg->steps_offset, n, w.ts, err);
    if (st != MD_OK)
        goto done;
    if (s->kind == MD_SAMPLER_DPMPP_2M_KARRAS) {
        /* The Karras range spans the whole training table; timesteps are
         * the rounded fractional timesteps of those sigmas. */
        float *log_table = w.acp; /* acp is no longer needed */
        for (int t = 0; t < nt; t++)
            log_table[t] = logf(w.table[t]);
        md_sched_karras((double)w.table[0], (double)w.table[nt - 1], n, w.sig);
        for (int i = 0; i < n; i++)
            w.ts[i] = rint(md_sched_sigma_to_t(w.sig[i], log_table, nt));
    } else {
        for (int i = 0; i < n; i++)
            w.sig[i] = md_sched_interp(w.ts[i], w.table, nt);
    }
    md_sigma_setup_store(s, &w);
    s->init_noise_sigma = 1.0f;
done:
    md_sigma_setup_free(&w);
    return st;
}

/* alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t and
 * lambda = log(alpha_t) - log(sigma_t) (+inf for the final sigma 0). */
typedef struct dpm_point {
    float alpha, sigma, lambda;
} dpm_point;

static dpm_point dpm_at(float sigma)
{
    dpm_point p;
    p.alpha = 1.0f / sqrtf(sigma * sigma + 1.0f);
    p.sigma = sigma * p.alpha;
    p.lambda = logf(p.alpha) - logf(p.sigma);
    return p;
}

md_status md_dpm_step(md_sampler *s, int i, const float *model_output, const float *sample,
                      float *prev, size_t n, md_error *err)
{
    if (!s->prev_x0 || s->prev_n != n) {
        free(s->prev_x0);
        s->prev_n = 0;
        s->prev_x0 = malloc(sizeof *s->prev_x0 * (n ? n : 1));
        if (!s->prev_x0)
            return md_fail(err, MD_ERR_NOMEM, "sampler %s: out of memory",
                           md_sampler_name(s->kind));
        s->prev_n = n;
        s->lower_order_nums = 0; /* a new size cannot continue the old history */
    }
    dpm_point cur = dpm_at(s->sigmas[i]);
    dpm_point nxt = dpm_at(s->sigmas[i + 1]);
    float h = nxt.lambda - cur.lambda;
    float c_sample = nxt.sigma / cur.sigma;
    float c_x0 = nxt.alpha * (expf(-h) - 1.0f);
    /* The final step (sigma 0) and the first step of a loop are first
     * order; every other step uses the previous data prediction. */
    int second = s->lower_order_nums >= 1 && i != s->steps - 1;
    float c_d1 = 0.5f * c_x0, inv_r0 = 0.0f;
    if (second) {
        dpm_point prv = dpm_at(s->sigmas[i - 1]);
        float h0 = cur.lambda - prv.lambda;
        float r0 = h0 / h;
        inv_r0 = 1.0f / r0;
    }
    for (size_t k = 0; k < n; k++) {
        float x = sample[k], m = model_output[k];
        float x0;
        switch (s->pred) {
        case MD_PRED_V:
            x0 = cur.alpha * x - cur.sigma * m;
            break;
        case MD_PRED_SAMPLE:
            x0 = m;
            break;
        default:
            x0 = (x - cur.sigma * m) / cur.alpha;
            break;
        }
        float y;
        if (second) {
            float d1 = inv_r0 * (x0 - s->prev_x0[k]);
            y = c_sample * x - c_x0 * x0 - c_d1 * d1;
        } else {
            y = c_sample * x - c_x0 * x0;
        }
        s->prev_x0[k] = x0;
        prev[k] = y;
    }
    if (s->lower_order_nums < 2)
        s->lower_order_nums++;
    return MD_OK;
}

void md_dpm_add_noise(const md_sampler *s, int i, const float *x, const float *noise, float *out,
                      size_t n)
{
    dpm_point p = dpm_at(s->sigmas[i]);
    for (size_t k = 0; k < n; k++)
        out[k] = p.alpha * x[k] + p.sigma * noise[k];
}
