/* Noise-schedule tables shared by the samplers. Each function reproduces
 * the arithmetic of diffusers 0.27 including its precision: the training
 * tables are float32 torch tensors (betas in float32, cumulative product
 * accumulated in double as torch does on the CPU), while timestep spacing,
 * sigma interpolation and Karras sigmas run in float64 numpy. */
#ifndef MD_SCHEDULE_H
#define MD_SCHEDULE_H

#include "../config/config.h"
#include "../runtime/status.h"

/* acp[t] = prod_{s<=t} (1 - beta_s), t < cfg->num_train_timesteps. */
md_status md_sched_alphas_cumprod(const md_sched_config *cfg, float *acp, md_error *err);

/* sigma[t] = sqrt((1 - acp[t]) / acp[t]) in float32. */
void md_sched_sigma_table(const float *acp, int n, float *sigma);

/* numpy.linspace(start, stop, num) (endpoint included). */
void md_sched_linspace(double start, double stop, int num, double *out);

/* Descending timesteps of DDIMScheduler / EulerDiscreteScheduler for
 * `steps` steps. `round_linspace`: DDIM rounds "linspace" values to
 * integers (half to even), Euler keeps them fractional. */
md_status md_sched_timesteps_ddpm(md_spacing spacing, int num_train, int steps_offset, int steps,
                                  int round_linspace, double *out, md_error *err);

/* Descending integer timesteps of DPMSolverMultistepScheduler, which spaces
 * steps + 1 points and drops the last. */
md_status md_sched_timesteps_dpm(md_spacing spacing, int num_train, int steps_offset, int steps,
                                 double *out, md_error *err);

/* numpy.interp(x, arange(n), fp). */
double md_sched_interp(double x, const float *fp, int n);

/* Karras et al. (2022) sigmas, rho = 7, from sigma_max down to sigma_min. */
void md_sched_karras(double sigma_min, double sigma_max, int num, double *out);

/* Fractional timestep whose log-sigma interpolates to log(sigma);
 * log_sigmas[n] are float32 logs of the sigma table. */
double md_sched_sigma_to_t(double sigma, const float *log_sigmas, int n);

#endif
