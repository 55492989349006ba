/* The sampler object shared by the per-family files (sampler_ddim.c,
 * sampler_euler.c, sampler_dpmpp.c); not part of the public interface.
 * Step arithmetic is float32, in the order diffusers evaluates it, so that
 * results agree with the float32 torch reference to a few ulps. */
#ifndef MD_SAMPLER_INTERNAL_H
#define MD_SAMPLER_INTERNAL_H

#include "sampler.h"

struct md_sampler {
    md_sampler_kind kind;
    md_prediction pred;
    md_spacing spacing;
    int steps;
    int num_train;
    int begin;            /* first step index of the loop (img2img) */
    int last;             /* index of the last step taken; -1 before the first */
    float init_noise_sigma;
    float *timesteps;     /* [steps] */
    float *sigmas;        /* [steps + 1] for sigma samplers, else NULL */
    /* DDIM */
    int *t_int;           /* [steps] integer timesteps */
    float *acp;           /* [num_train] alphas_cumprod */
    float final_acp;      /* used when the previous timestep is below 0 */
    /* DPM-Solver++: data prediction of the previous step */
    float *prev_x0;
    size_t prev_n;
    int lower_order_nums; /* steps taken since the loop began, capped at 2 */
};

md_status md_ddim_setup(md_sampler *s, const md_sched_config *cfg, md_error *err);
void md_ddim_step(const md_sampler *s, int i, const float *model_output, const float *sample,
                  float *prev, size_t n);
void md_ddim_add_noise(const md_sampler *s, int i, const float *x, const float *noise, float *out,
                       size_t n);

/* euler, euler_karras and euler_a */
md_status md_euler_setup(md_sampler *s, const md_sched_config *cfg, md_error *err);
void md_euler_scale_input(const md_sampler *s, int i, const float *x, float *y, size_t n);
void md_euler_step(const md_sampler *s, int i, const float *model_output, const float *sample,
                   float *prev, size_t n);
void md_euler_a_step(const md_sampler *s, int i, const float *model_output, const float *sample,
                     const float *noise, float *prev, size_t n);
void md_euler_add_noise(const md_sampler *s, int i, const float *x, const float *noise, float *out,
                        size_t n);

/* Scratch of a sigma sampler's setup (Euler, DPM-Solver++): the float32
 * training tables and the float64 timesteps and sigmas of the steps. */
typedef struct md_sigma_setup {
    float *acp;       /* [num_train] alphas_cumprod; free for reuse once table is made */
    float *table;     /* [num_train] sigma of every training timestep */
    double *ts, *sig; /* [steps] */
} md_sigma_setup;
/* Allocates the scratch and s->sigmas and fills acp and table. Every
 * pointer is set even on failure, so md_sigma_setup_free is always safe. */
md_status md_sigma_setup_begin(md_sampler *s, const md_sched_config *cfg, md_sigma_setup *w,
                               md_error *err);
/* ts and sig become s->timesteps and s->sigmas, then final sigma 0. */
void md_sigma_setup_store(md_sampler *s, const md_sigma_setup *w);
void md_sigma_setup_free(md_sigma_setup *w);

/* dpmpp_2m and dpmpp_2m_karras */
md_status md_dpm_setup(md_sampler *s, const md_sched_config *cfg, md_error *err);
md_status md_dpm_step(md_sampler *s, int i, const float *model_output, const float *sample,
                      float *prev, size_t n, md_error *err);
void md_dpm_add_noise(const md_sampler *s, int i, const float *x, const float *noise, float *out,
                      size_t n);

#endif
