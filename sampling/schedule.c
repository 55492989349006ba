#include "schedule.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* torch.linspace(start, end, n, dtype=float32) as its CPU kernel computes
 * it: a float32 step, the first half counted up from start and the second
 * half down from end, with a + b * c fused into one rounding (the kernel is
 * built with FMA contraction). Blocks of 8 values (AVX2 vectors, taken two
 * at a time) start from such a base and add j * step; the tail is scalar.
 * The table values depend on this to the last ulp, and alphas_cumprod
 * accumulates those ulps over 1000 steps. */
static void torch_linspace_f32(float start, float end, int n, float *out)
{
    enum { VEC = 8 };
    if (n == 1) {
        out[0] = start;
        return;
    }
    float step = (end - start) / (float)(n - 1);
    int half = n / 2;
    int nvec = n / (2 * VEC) * (2 * VEC);
    for (int b = 0; b < nvec; b += VEC) {
        float base = b < half ? fmaf(step, (float)b, start) : fmaf(-step, (float)(n - b - 1), end);
        for (int j = 0; j < VEC; j++)
            out[b + j] = fmaf((float)j, step, base);
    }
    for (int i = nvec; i < n; i++)
        out[i] = i < half ? fmaf(step, (float)i, start) : fmaf(-step, (float)(n - i - 1), end);
}

/* The config holds beta_start/beta_end as float, but the reference takes
 * sqrt of the decimal value in double; the float's error (up to 3e-8)
 * shifts sigma_max by several ulps. The shortest decimal that reads back
 * as the same float is the value the config file spelled. */
static double decimal_of(float f)
{
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f)
            return strtod(buf, NULL);
    }
    return (double)f;
}

static double cosine_alpha_bar(double t)
{
    const double half_pi = 1.5707963267948966192313216916398;
    double c = cos((t + 0.008) / 1.008 * half_pi);
    return c * c;
}

md_status md_sched_alphas_cumprod(const md_sched_config *cfg, float *acp, md_error *err)
{
    int n = cfg->num_train_timesteps;
    if (n < 2)
        return md_fail(err, MD_ERR_INVALID, "scheduler: num_train_timesteps %d must be at least 2", n);
    if (cfg->beta_schedule != MD_BETA_SQUAREDCOS &&
        !(cfg->beta_start > 0.0f && cfg->beta_end >= cfg->beta_start && cfg->beta_end < 1.0f))
        return md_fail(err, MD_ERR_INVALID, "scheduler: bad beta range [%g, %g]",
                       (double)cfg->beta_start, (double)cfg->beta_end);
    float *betas = malloc(sizeof *betas * (size_t)n);
    if (!betas)
        return md_fail(err, MD_ERR_NOMEM, "scheduler: out of memory");
    switch (cfg->beta_schedule) {
    case MD_BETA_LINEAR:
        torch_linspace_f32((float)decimal_of(cfg->beta_start), (float)decimal_of(cfg->beta_end), n,
                           betas);
        break;
    case MD_BETA_SCALED_LINEAR:
        torch_linspace_f32((float)sqrt(decimal_of(cfg->beta_start)),
                           (float)sqrt(decimal_of(cfg->beta_end)), n, betas);
        for (int t = 0; t < n; t++)
            betas[t] = betas[t] * betas[t];
        break;
    case MD_BETA_SQUAREDCOS:
        for (int t = 0; t < n; t++) {
            double b = 1.0 - cosine_alpha_bar((double)(t + 1) / n) / cosine_alpha_bar((double)t / n);
            betas[t] = (float)(b < 0.999 ? b : 0.999);
        }
        break;
    default:
        free(betas);
        return md_fail(err, MD_ERR_INVALID, "scheduler: unknown beta schedule %d",
                       (int)cfg->beta_schedule);
    }
    /* The product is accumulated in double and each prefix rounded to
     * float, as torch.cumprod does for float32 on the CPU. */
    double prod = 1.0;
    for (int t = 0; t < n; t++) {
        prod *= (double)(1.0f - betas[t]);
        acp[t] = (float)prod;
    }
    free(betas);
    return MD_OK;
}

void md_sched_sigma_table(const float *acp, int n, float *sigma)
{
    for (int t = 0; t < n; t++)
        sigma[t] = sqrtf((1.0f - acp[t]) / acp[t]);
}

void md_sched_linspace(double start, double stop, int num, double *out)
{
    if (num <= 0)
        return;
    if (num == 1) {
        out[0] = start;
        return;
    }
    /* numpy: arange(num) * step + start, with the endpoint set exactly. */
    double step = (stop - start) / (double)(num - 1);
    for (int i = 0; i < num; i++)
        out[i] = (double)i * step + start;
    out[num - 1] = stop;
}

/* numpy.arange(start, stop, step) for a negative float step: the length
 * is ceil((stop - start) / step) and value i is start + i * delta with
 * delta = (start + step) - start. Writes at most `cap` values and returns
 * how many numpy would produce. */
static int np_arange_down(double start, double stop, double step, double *out, int cap)
{
    double len_d = ceil((stop - start) / step);
    int len = len_d > 0 ? (int)len_d : 0;
    double delta = (start + step) - start;
    for (int i = 0; i < len && i < cap; i++)
        out[i] = i == 0 ? start : start + (double)i * delta;
    return len;
}

static md_status check_steps(int num_train, int steps, md_error *err)
{
    if (steps < 1 || steps > num_train)
        return md_fail(err, MD_ERR_INVALID, "scheduler: %d steps (must be 1..%d)", steps, num_train);
    return MD_OK;
}

/* numpy's round() is round-half-to-even, which rint() gives in the default
 * rounding mode. */
static double np_round(double x) { return rint(x); }

/* "trailing": arange(start, 0, -num_train/steps), rounded, minus one. For
 * some step counts (61, 103, ...) numpy's arange yields one value too many
 * (a final ~0, i.e. timestep -1) because of its float length computation;
 * the first `steps` values are kept. */
static md_status trailing_timesteps(int num_train, int start, int steps, double *out,
                                    md_error *err)
{
    double ratio = (double)num_train / (double)steps;
    int len = np_arange_down((double)start, 0.0, -ratio, out, steps);
    if (len < steps)
        return md_fail(err, MD_ERR_INVALID, "scheduler: trailing spacing gave %d of %d steps", len,
                       steps);
    for (int i = 0; i < steps; i++)
        out[i] = np_round(out[i]) - 1.0;
    return MD_OK;
}

md_status md_sched_timesteps_ddpm(md_spacing spacing, int num_train, int steps_offset, int steps,
                                  int round_linspace, double *out, md_error *err)
{
    md_status st = check_steps(num_train, steps, err);
    if (st != MD_OK)
        return st;
    switch (spacing) {
    case MD_SPACING_LINSPACE: {
        md_sched_linspace(0.0, (double)(num_train - 1), steps, out);
        for (int i = 0; i < steps / 2; i++) {
            double tmp = out[i];
            out[i] = out[steps - 1 - i];
            out[steps - 1 - i] = tmp;
        }
        if (round_linspace)
            for (int i = 0; i < steps; i++)
                out[i] = np_round(out[i]);
        return MD_OK;
    }
    case MD_SPACING_LEADING: {
        int ratio = num_train / steps;
        for (int i = 0; i < steps; i++)
            out[i] = (double)((steps - 1 - i) * ratio + steps_offset);
        return MD_OK;
    }
    case MD_SPACING_TRAILING:
        return trailing_timesteps(num_train, num_train, steps, out, err);
    }
    return md_fail(err, MD_ERR_INVALID, "scheduler: unknown timestep spacing %d", (int)spacing);
}

md_status md_sched_timesteps_dpm(md_spacing spacing, int num_train, int steps_offset, int steps,
                                 double *out, md_error *err)
{
    md_status st = check_steps(num_train, steps, err);
    if (st != MD_OK)
        return st;
    /* lambda_min_clipped is -inf for every supported config, so the last
     * usable timestep is num_train. */
    int last = num_train;
    switch (spacing) {
    case MD_SPACING_LINSPACE: {
        double *pts = malloc(sizeof *pts * (size_t)(steps + 1));
        if (!pts)
            return md_fail(err, MD_ERR_NOMEM, "scheduler: out of memory");
        md_sched_linspace(0.0, (double)(last - 1), steps + 1, pts);
        for (int i = 0; i < steps; i++)
            out[i] = np_round(pts[steps - i]);
        free(pts);
        return MD_OK;
    }
    case MD_SPACING_LEADING: {
        int ratio = last / (steps + 1);
        for (int i = 0; i < steps; i++)
            out[i] = (double)((steps - i) * ratio + steps_offset);
        return MD_OK;
    }
    case MD_SPACING_TRAILING:
        return trailing_timesteps(num_train, last, steps, out, err);
    }
    return md_fail(err, MD_ERR_INVALID, "scheduler: unknown timestep spacing %d", (int)spacing);
}

double md_sched_interp(double x, const float *fp, int n)
{
    if (!(x > 0.0))
        return (double)fp[0];
    if (x >= (double)(n - 1))
        return (double)fp[n - 1];
    int j = (int)floor(x);
    if (x == (double)j)
        return (double)fp[j];
    double slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
    return slope * (x - (double)j) + (double)fp[j];
}

void md_sched_karras(double sigma_min, double sigma_max, int num, double *out)
{
    const double rho = 7.0;
    double min_inv = pow(sigma_min, 1.0 / rho);
    double max_inv = pow(sigma_max, 1.0 / rho);
    md_sched_linspace(0.0, 1.0, num, out);
    for (int i = 0; i < num; i++)
        out[i] = pow(max_inv + out[i] * (min_inv - max_inv), rho);
}

double md_sched_sigma_to_t(double sigma, const float *log_sigmas, int n)
{
    double log_sigma = log(sigma > 1e-10 ? sigma : 1e-10);
    /* low = argmax of the running count of table entries <= log_sigma,
     * i.e. the last such entry for an increasing table (0 if none). */
    int low = 0, count = 0, best = -1;
    for (int i = 0; i < n; i++) {
        count += (log_sigma - (double)log_sigmas[i]) >= 0.0;
        if (count > best) {
            best = count;
            low = i;
        }
    }
    if (low > n - 2)
        low = n - 2;
    int high = low + 1;
    float lo = log_sigmas[low], hi = log_sigmas[high];
    double w = ((double)lo - log_sigma) / (double)(lo - hi);
    if (w < 0.0)
        w = 0.0;
    if (w > 1.0)
        w = 1.0;
    return (1.0 - w) * low + w * high;
}
