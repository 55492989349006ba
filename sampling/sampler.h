/* Noise schedules and samplers, matching diffusers 0.27 step for step:
 * ddim (DDIMScheduler, eta 0), euler (EulerDiscrete), euler_a
 * (EulerAncestralDiscrete), dpmpp_2m (DPMSolverMultistep, dpmsolver++,
 * order 2, lower_order_final), euler_karras and dpmpp_2m_karras
 * (use_karras_sigmas). All host code on float arrays. */
#ifndef MD_SAMPLER_H
#define MD_SAMPLER_H

#include <stddef.h>

#include "../config/config.h"

typedef enum md_sampler_kind {
    MD_SAMPLER_DDIM = 0,
    MD_SAMPLER_EULER,
    MD_SAMPLER_EULER_A,
    MD_SAMPLER_DPMPP_2M,
    MD_SAMPLER_EULER_KARRAS,
    MD_SAMPLER_DPMPP_2M_KARRAS,
    MD_SAMPLER_COUNT
} md_sampler_kind;

const char *md_sampler_name(md_sampler_kind k);
/* -1 when unknown. */
int md_sampler_from_name(const char *name);

typedef struct md_sampler md_sampler;

md_status md_sampler_create(md_sampler **out, md_sampler_kind kind, const md_sched_config *cfg,
                            int steps, md_error *err);
void md_sampler_free(md_sampler *s);

int md_sampler_steps(const md_sampler *s);
/* Timesteps as diffusers' scheduler.timesteps (float; fractional for Karras). */
const float *md_sampler_timesteps(const md_sampler *s);
/* steps + 1 sigmas (last = final sigma) for sigma-based samplers, else NULL. */
const float *md_sampler_sigmas(const md_sampler *s);
float md_sampler_init_noise_sigma(const md_sampler *s);
/* True when step() consumes fresh noise (euler_a). */
int md_sampler_needs_noise(const md_sampler *s);

/* img2img: start the loop at step index `begin` (diffusers' set_begin_index
 * / t_start). Step indices stay indices into md_sampler_timesteps: the
 * first step taken is then `begin`, and multistep history starts there. */
void md_sampler_set_begin(md_sampler *s, int begin);

/* y = scale_model_input(x, timesteps[i]) */
void md_sampler_scale_input(const md_sampler *s, int i, const float *x, float *y, size_t n);
/* prev = step(model_output, timesteps[i], sample); noise is used by
 * ancestral samplers (n values, N(0,1)), ignored otherwise. Steps must be
 * taken in order (multistep samplers keep history): i is the begin index
 * (which starts a new loop) or the step after the last one taken.
 * prev may be the same buffer as sample or model_output. */
md_status md_sampler_step(md_sampler *s, int i, const float *model_output, const float *sample,
                          const float *noise, float *prev, size_t n, md_error *err);
/* out = add_noise(original, noise, timesteps[i]) as the scheduler defines it
 * (sigma samplers also take i = steps, the final sigma 0). */
void md_sampler_add_noise(const md_sampler *s, int i, const float *original, const float *noise,
                          float *out, size_t n);

#endif
