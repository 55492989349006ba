/* Sampler construction, accessors and dispatch to the per-family files. */
#include "sampler_internal.h"

#include <stdlib.h>
#include <string.h>

#include "schedule.h"

static const char *const k_names[MD_SAMPLER_COUNT] = {
    [MD_SAMPLER_DDIM] = "ddim",
    [MD_SAMPLER_EULER] = "euler",
    [MD_SAMPLER_EULER_A] = "euler_a",
    [MD_SAMPLER_DPMPP_2M] = "dpmpp_2m",
    [MD_SAMPLER_EULER_KARRAS] = "euler_karras",
    [MD_SAMPLER_DPMPP_2M_KARRAS] = "dpmpp_2m_karras",
};

const char *md_sampler_name(md_sampler_kind k)
{
    if ((int)k < 0 || k >= MD_SAMPLER_COUNT)
        return "unknown";
    return k_names[k];
}

int md_sampler_from_name(const char *name)
{
    if (!name)
        return -1;
    for (int k = 0; k < MD_SAMPLER_COUNT; k++)
        if (strcmp(name, k_names[k]) == 0)
            return k;
    return -1;
}

md_status md_sampler_create(md_sampler **out, md_sampler_kind kind, const md_sched_config *cfg,
                            int steps, md_error *err)
{
    if (!out || !cfg)
        return md_fail(err, MD_ERR_INVALID, "sampler: NULL argument");
    *out = NULL;
    if ((int)kind < 0 || kind >= MD_SAMPLER_COUNT)
        return md_fail(err, MD_ERR_INVALID, "sampler: unknown kind %d", (int)kind);
    if (cfg->num_train_timesteps < 2)
        return md_fail(err, MD_ERR_INVALID, "sampler: num_train_timesteps %d must be at least 2",
                       cfg->num_train_timesteps);
    if (steps < 1 || steps > cfg->num_train_timesteps)
        return md_fail(err, MD_ERR_INVALID, "sampler %s: %d steps (must be 1..%d)",
                       md_sampler_name(kind), steps, cfg->num_train_timesteps);
    if (cfg->prediction_type != MD_PRED_EPSILON && cfg->prediction_type != MD_PRED_V &&
        cfg->prediction_type != MD_PRED_SAMPLE)
        return md_fail(err, MD_ERR_INVALID, "sampler: unknown prediction type %d",
                       (int)cfg->prediction_type);
    int spacing = cfg->timestep_spacing;
    if (spacing == -1)
        spacing = kind == MD_SAMPLER_DDIM ? MD_SPACING_LEADING : MD_SPACING_LINSPACE;
    if (spacing != MD_SPACING_LEADING && spacing != MD_SPACING_LINSPACE &&
        spacing != MD_SPACING_TRAILING)
        return md_fail(err, MD_ERR_INVALID, "sampler: unknown timestep spacing %d", spacing);

    md_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return md_fail(err, MD_ERR_NOMEM, "sampler: out of memory");
    s->kind = kind;
    s->pred = cfg->prediction_type;
    s->spacing = (md_spacing)spacing;
    s->steps = steps;
    s->num_train = cfg->num_train_timesteps;
    s->last = -1;
    s->timesteps = calloc((size_t)steps, sizeof *s->timesteps);
    if (!s->timesteps) {
        free(s);
        return md_fail(err, MD_ERR_NOMEM, "sampler: out of memory");
    }
    md_status st;
    switch (kind) {
    case MD_SAMPLER_DDIM:
        st = md_ddim_setup(s, cfg, err);
        break;
    case MD_SAMPLER_EULER:
    case MD_SAMPLER_EULER_A:
    case MD_SAMPLER_EULER_KARRAS:
        st = md_euler_setup(s, cfg, err);
        break;
    default:
        st = md_dpm_setup(s, cfg, err);
        break;
    }
    if (st != MD_OK) {
        md_sampler_free(s);
        return st;
    }
    *out = s;
    return MD_OK;
}

md_status md_sigma_setup_begin(md_sampler *s, const md_sched_config *cfg, md_sigma_setup *w,
                               md_error *err)
{
    int n = s->steps, nt = s->num_train;
    w->acp = malloc(sizeof *w->acp * (size_t)nt);
    w->table = malloc(sizeof *w->table * (size_t)nt);
    w->ts = malloc(sizeof *w->ts * (size_t)n);
    w->sig = malloc(sizeof *w->sig * (size_t)n);
    s->sigmas = malloc(sizeof *s->sigmas * (size_t)(n + 1));
    if (!w->acp || !w->table || !w->ts || !w->sig || !s->sigmas)
        return md_fail(err, MD_ERR_NOMEM, "sampler %s: out of memory", md_sampler_name(s->kind));
    md_status st = md_sched_alphas_cumprod(cfg, w->acp, err);
    if (st == MD_OK)
        md_sched_sigma_table(w->acp, nt, w->table);
    return st;
}

void md_sigma_setup_store(md_sampler *s, const md_sigma_setup *w)
{
    for (int i = 0; i < s->steps; i++) {
        s->timesteps[i] = (float)w->ts[i];
        s->sigmas[i] = (float)w->sig[i];
    }
    s->sigmas[s->steps] = 0.0f;
}

void md_sigma_setup_free(md_sigma_setup *w)
{
    free(w->acp);
    free(w->table);
    free(w->ts);
    free(w->sig);
}

void md_sampler_free(md_sampler *s)
{
    if (!s)
        return;
    free(s->timesteps);
    free(s->sigmas);
    free(s->t_int);
    free(s->acp);
    free(s->prev_x0);
    free(s);
}

int md_sampler_steps(const md_sampler *s) { return s->steps; }

const float *md_sampler_timesteps(const md_sampler *s) { return s->timesteps; }

const float *md_sampler_sigmas(const md_sampler *s) { return s->sigmas; }

float md_sampler_init_noise_sigma(const md_sampler *s) { return s->init_noise_sigma; }

int md_sampler_needs_noise(const md_sampler *s) { return s->kind == MD_SAMPLER_EULER_A; }

void md_sampler_set_begin(md_sampler *s, int begin)
{
    if (begin < 0)
        begin = 0;
    if (begin > s->steps)
        begin = s->steps;
    s->begin = begin;
    s->last = -1;
    s->lower_order_nums = 0;
}

static int is_euler(const md_sampler *s)
{
    return s->kind == MD_SAMPLER_EULER || s->kind == MD_SAMPLER_EULER_A ||
           s->kind == MD_SAMPLER_EULER_KARRAS;
}

void md_sampler_scale_input(const md_sampler *s, int i, const float *x, float *y, size_t n)
{
    if (is_euler(s) && i >= 0 && i < s->steps) {
        md_euler_scale_input(s, i, x, y, n);
        return;
    }
    /* DDIM and DPM-Solver take the sample unscaled. */
    if (y != x)
        memmove(y, x, n * sizeof *y);
}

md_status md_sampler_step(md_sampler *s, int i, const float *model_output, const float *sample,
                          const float *noise, float *prev, size_t n, md_error *err)
{
    if (!model_output || !sample || !prev)
        return md_fail(err, MD_ERR_INVALID, "sampler %s: NULL buffer", md_sampler_name(s->kind));
    if (i < s->begin || i >= s->steps)
        return md_fail(err, MD_ERR_INVALID, "sampler %s: step %d outside [%d, %d)",
                       md_sampler_name(s->kind), i, s->begin, s->steps);
    /* Returning to the first step starts a new loop; otherwise steps must
     * follow each other, since multistep samplers use the previous one. */
    if (i == s->begin) {
        s->last = -1;
        s->lower_order_nums = 0;
    } else if (i != s->last + 1) {
        return md_fail(err, MD_ERR_INVALID, "sampler %s: step %d taken after step %d",
                       md_sampler_name(s->kind), i, s->last);
    }
    switch (s->kind) {
    case MD_SAMPLER_DDIM:
        md_ddim_step(s, i, model_output, sample, prev, n);
        break;
    case MD_SAMPLER_EULER:
    case MD_SAMPLER_EULER_KARRAS:
        md_euler_step(s, i, model_output, sample, prev, n);
        break;
    case MD_SAMPLER_EULER_A:
        if (!noise)
            return md_fail(err, MD_ERR_INVALID, "sampler euler_a: step %d needs noise", i);
        md_euler_a_step(s, i, model_output, sample, noise, prev, n);
        break;
    default: {
        md_status st = md_dpm_step(s, i, model_output, sample, prev, n, err);
        if (st != MD_OK)
            return st;
        break;
    }
    }
    s->last = i;
    return MD_OK;
}

void md_sampler_add_noise(const md_sampler *s, int i, const float *original, const float *noise,
                          float *out, size_t n)
{
    /* Sigma samplers also accept i = steps (final sigma: no noise). */
    int max_i = s->sigmas ? s->steps : s->steps - 1;
    if (i < 0)
        i = 0;
    if (i > max_i)
        i = max_i;
    if (s->kind == MD_SAMPLER_DDIM)
        md_ddim_add_noise(s, i, original, noise, out, n);
    else if (is_euler(s))
        md_euler_add_noise(s, i, original, noise, out, n);
    else
        md_dpm_add_noise(s, i, original, noise, out, n);
}
