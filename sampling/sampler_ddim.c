/* DDIMScheduler with eta = 0 (deterministic), no clipping or thresholding. */
#include "sampler_internal.h"

#include <math.h>
#include <stdlib.h>

#include "schedule.h"

md_status md_ddim_setup(md_sampler *s, const md_sched_config *cfg, md_error *err)
{
    s->acp = malloc(sizeof *s->acp * (size_t)s->num_train);
    s->t_int = malloc(sizeof *s->t_int * (size_t)s->steps);
    double *ts = malloc(sizeof *ts * (size_t)s->steps);
    md_status st = MD_OK;
    if (!s->acp || !s->t_int || !ts) {
        st = md_fail(err, MD_ERR_NOMEM, "sampler ddim: out of memory");
        goto done;
    }
    st = md_sched_alphas_cumprod(cfg, s->acp, err);
    if (st != MD_OK)
        goto done;
    st = md_sched_timesteps_ddpm(s->spacing, s->num_train, cfg->steps_offset, s->steps, 1, ts, err);
    if (st != MD_OK)
        goto done;
    for (int i = 0; i < s->steps; i++) {
        if (ts[i] < 0.0 || ts[i] >= (double)s->num_train) {
            st = md_fail(err, MD_ERR_INVALID,
                         "sampler ddim: timestep %g outside the %d training steps (steps_offset %d)",
                         ts[i], s->num_train, cfg->steps_offset);
            goto done;
        }
        s->t_int[i] = (int)ts[i];
        s->timesteps[i] = (float)ts[i];
    }
    s->final_acp = cfg->set_alpha_to_one ? 1.0f : s->acp[0];
    s->init_noise_sigma = 1.0f;
done:
    free(ts);
    return st;
}

void md_ddim_step(const md_sampler *s, int i, const float *model_output, const float *sample,
                  float *prev, size_t n)
{
    int t = s->t_int[i];
    int t_prev = t - s->num_train / s->steps;
    float a_t = s->acp[t];
    float a_prev = t_prev >= 0 ? s->acp[t_prev] : s->final_acp;
    float b_t = 1.0f - a_t;
    float sa = sqrtf(a_t), sb = sqrtf(b_t);
    float sa_prev = sqrtf(a_prev);
    float dir = sqrtf(1.0f - a_prev); /* eta = 0: no variance term */
    for (size_t k = 0; k < n; k++) {
        float x = sample[k], m = model_output[k];
        float x0, eps;
        switch (s->pred) {
        case MD_PRED_V:
            x0 = sa * x - sb * m;
            eps = sa * m + sb * x;
            break;
        case MD_PRED_SAMPLE:
            x0 = m;
            eps = (x - sa * x0) / sb;
            break;
        default:
            x0 = (x - sb * m) / sa;
            eps = m;
            break;
        }
        prev[k] = sa_prev * x0 + dir * eps;
    }
}

void md_ddim_add_noise(const md_sampler *s, int i, const float *x, const float *noise, float *out,
                       size_t n)
{
    float a = s->acp[s->t_int[i]];
    float sa = sqrtf(a), sb = sqrtf(1.0f - a);
    for (size_t k = 0; k < n; k++)
        out[k] = sa * x[k] + sb * noise[k];
}
