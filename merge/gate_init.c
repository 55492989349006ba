/* The gate-initialisation run (gate_init.h). Its DDPM step follows
 * diffusers 0.27's DDPMScheduler.step for epsilon prediction with
 * "fixed_small" variance, in float32 as torch computes it. */
#include "gate_init.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../pipeline/pipeline.h"
#include "../sampling/rng.h"
#include "../sampling/schedule.h"
#include "gate_capture.h"

/* Philox streams of the gate-init noise, apart from the generation
 * pipeline's: expert e uses MERGE_STREAM0 + 32 e (initial latents) and
 * the next 25 (step noise); the gates of the random init use
 * GATE_STREAM0 + target. */
enum { MERGE_STREAM0 = 1 << 20, GATE_STREAM0 = 1 << 21 };

static int noise(const md_gate_job *j, int step, float *out, size_t n)
{
    const md_merge_hooks *h = j->hooks;
    if (h && h->noise)
        return h->noise(h->user, j->expert, step, out, n);
    md_randn(j->seed, (uint64_t)MERGE_STREAM0 + 32u * (uint64_t)j->expert + (uint64_t)(step + 1),
             0, out, n);
    return 1;
}

static void observe(const md_gate_job *j, const char *name, const float *v, size_t n)
{
    if (j->hooks && j->hooks->tensor)
        j->hooks->tensor(j->hooks->user, j->expert, name, v, n);
}

/* One DDPM step from x_t to x_{t-1} in place (prev_t = t - 1000/steps as
 * diffusers' previous_timestep computes it; alpha 1 before t = 0). */
static void ddpm_step(const md_ddpm_settings *s, const float *acp, int t, int prev_t,
                      const float *eps, float *x, const float *z, size_t n)
{
    const float a_t = acp[t], a_prev = prev_t >= 0 ? acp[prev_t] : 1.0f;
    const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    const float cur_a = a_t / a_prev, cur_b = 1.0f - cur_a;
    const float c_x0 = sqrtf(a_prev) * cur_b / b_t, c_x = sqrtf(cur_a) * b_prev / b_t;
    float var = b_prev / b_t * cur_b;
    var = var < 1e-20f ? 1e-20f : var;
    const float sd = sqrtf(var), sb = sqrtf(b_t), sa = sqrtf(a_t);
    for (size_t i = 0; i < n; i++) {
        float x0 = (x[i] - sb * eps[i]) / sa;
        if (s->clip_sample)
            x0 = fminf(fmaxf(x0, -s->clip_sample_range), s->clip_sample_range);
        x[i] = c_x0 * x0 + c_x * x[i] + (t > 0 ? sd * z[i] : 0.0f);
    }
}

typedef struct run_buf {
    float *embeds, *lat, *model_in, *eps, *z, *acp;
    double *ts;
    float *pooled;      /* SDXL: [2, projection dim], negative first */
    float time_ids[12]; /* SDXL: [2, 6] */
} run_buf;

static void free_buf(run_buf *b)
{
    free(b->embeds), free(b->lat), free(b->model_in), free(b->eps), free(b->z), free(b->acp);
    free(b->ts), free(b->pooled);
}

static md_status denoise(const md_gate_job *j, md_backend *cap, md_unet_state *st, run_buf *b,
                         md_error *err)
{
    const md_model *m = j->m;
    const int steps = MD_MERGE_GATE_STEPS, hw = m->unet_cfg.sample_size;
    const size_t n = (size_t)m->unet_cfg.in_channels * (size_t)hw * (size_t)hw;
    const md_sched_config *sc = &m->sched_cfg;
    md_spacing spacing = sc->timestep_spacing >= 0 ? (md_spacing)sc->timestep_spacing
                                                    : MD_SPACING_LEADING;
    MD_TRY(md_sched_alphas_cumprod(sc, b->acp, err));
    MD_TRY(md_sched_timesteps_ddpm(spacing, sc->num_train_timesteps, sc->steps_offset, steps, 1,
                                   b->ts, err));
    float tsf[MD_MERGE_GATE_STEPS];
    for (int i = 0; i < steps; i++)
        tsf[i] = (float)b->ts[i];
    observe(j, "timesteps", tsf, (size_t)steps);
    if (!noise(j, -1, b->lat, n))
        return md_fail(err, MD_ERR_INVALID, "merge: expert %d: no initial noise", j->expert);
    for (int i = 0; i < steps; i++) {
        const int t = (int)b->ts[i], prev = t - sc->num_train_timesteps / steps;
        memcpy(b->model_in, b->lat, sizeof(float) * n);
        memcpy(b->model_in + n, b->lat, sizeof(float) * n);
        float trow[2] = {(float)t, (float)t};
        md_unet_inputs in = {.batch = 2, .height = hw, .width = hw, .sample = b->model_in,
                             .timesteps = trow, .context = b->embeds,
                             .context_len = MD_CLIP_CONTEXT, .text_embeds = b->pooled,
                             .time_ids = b->pooled ? b->time_ids : NULL};
        /* Every call overwrites SegMoE's hook; only the last one counts. */
        const int last = i == steps - 1;
        if (last)
            observe(j, "last_call_latents", b->lat, n);
        md_capture_arm(cap, last);
        /* The last call must run to_k / to_v itself for the capture to see
         * their input: the state would reuse the first call's keys and values. */
        if (last)
            md_unet_state_drop_kv(st);
        MD_TRY(md_unet_forward(m->unet, st, cap, &in, b->eps, err));
        md_capture_arm(cap, 0);
        for (size_t k = 0; k < n; k++) /* guidance: uncond + g (cond - uncond) */
            b->eps[k] += MD_MERGE_GATE_GUIDANCE * (b->eps[n + k] - b->eps[k]);
        if (!noise(j, i, b->z, n))
            return md_fail(err, MD_ERR_INVALID, "merge: expert %d: no noise for step %d",
                           j->expert, i);
        ddpm_step(j->ddpm, b->acp, t, prev, b->eps, b->lat, b->z, n);
        if (j->hooks && j->hooks->progress &&
            j->hooks->progress(j->hooks->user, MD_MERGE_PHASE_GATE_STEP, j->expert, j->experts,
                               i + 1, steps))
            return md_fail(err, MD_ERR_CANCELLED, "merge: cancelled");
    }
    return MD_OK;
}

static md_status gate_rows(const md_gate_job *j, const md_backend *cap, float *const *rows,
                           md_error *err)
{
    for (int i = 0; i < j->nwatch; i++) {
        int dim = 0;
        const float *mean = md_capture_mean(cap, i, &dim);
        if (!mean)
            return md_fail(err, MD_ERR_INVALID,
                           "merge: expert %d: a watched layer (%d of %d) never ran in the "
                           "gate-init run",
                           j->expert, i, j->nwatch);
        double ss = 0;
        for (int d = 0; d < dim; d++)
            ss += (double)mean[d] * mean[d];
        double norm = sqrt(ss);
        norm = norm < 1e-8 ? 1e-8 : norm;
        for (int d = 0; d < dim; d++)
            rows[i][d] = (float)(mean[d] / norm);
    }
    return MD_OK;
}

md_status md_gate_init_run(const md_gate_job *j, float *const *rows, md_error *err)
{
    const md_model *m = j->m;
    const int sdxl = m->family == MD_FAMILY_SDXL;
    const size_t pd = sdxl ? (size_t)m->te2_cfg.projection_dim : 0;
    const int hw = m->unet_cfg.sample_size, ctx = m->unet_cfg.cross_attention_dim;
    const size_t n = (size_t)m->unet_cfg.in_channels * (size_t)hw * (size_t)hw;
    const size_t ne = (size_t)MD_CLIP_CONTEXT * (size_t)ctx;
    run_buf b = {
        .embeds = malloc(sizeof(float) * 2 * ne), .lat = malloc(sizeof(float) * n),
        .model_in = malloc(sizeof(float) * 2 * n), .eps = malloc(sizeof(float) * 2 * n),
        .z = malloc(sizeof(float) * n),
        .acp = malloc(sizeof(float) * (size_t)(m->sched_cfg.num_train_timesteps + 1)),
        .ts = malloc(sizeof(double) * MD_MERGE_GATE_STEPS),
        .pooled = sdxl ? malloc(sizeof(float) * 2 * pd) : NULL};
    /* SDXL's added conditioning at the native size: original = target =
     * the default size, no crop (the pipeline's defaults). */
    for (int r = 0; r < 2; r++) {
        const float side = (float)m->default_size;
        const float ids[6] = {side, side, 0, 0, side, side};
        memcpy(b.time_ids + 6 * r, ids, sizeof ids);
    }
    md_backend *cap = NULL;
    md_unet_state *st = NULL;
    md_status s = MD_OK;
    if (!b.embeds || !b.lat || !b.model_in || !b.eps || !b.z || !b.acp || !b.ts ||
        (sdxl && !b.pooled))
        s = md_fail(err, MD_ERR_NOMEM, "merge: out of memory for the gate-init run");
    /* The plain prompts (no emphasis syntax), negative first as the
     * guidance batch has them. */
    if (s == MD_OK)
        s = md_encode_prompt(m, j->be, j->negative, 0, b.embeds, b.pooled, err);
    if (s == MD_OK)
        s = md_encode_prompt(m, j->be, j->positive, 0, b.embeds + ne,
                             b.pooled ? b.pooled + pd : NULL, err);
    if (s == MD_OK) {
        observe(j, "prompt_embeds", b.embeds, 2 * ne);
        s = md_capture_new(j->be, j->watch, j->nwatch, &cap, err);
    }
    if (s == MD_OK)
        s = md_unet_state_new(m->unet, &st, err);
    if (s == MD_OK)
        s = denoise(j, cap, st, &b, err);
    if (s == MD_OK)
        s = gate_rows(j, cap, rows, err);
    md_unet_state_drop_kv(st); /* while the backend holding them exists */
    md_unet_state_free(st);
    if (cap)
        cap->destroy(cap);
    free_buf(&b);
    return s;
}

void md_gate_init_random(uint64_t seed, int target, int expert, float *row, int dim)
{
    const float bound = 1.0f / sqrtf((float)dim);
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int d = 0; d < dim; d += 4) {
        const uint32_t ctr[4] = {(uint32_t)(d / 4), (uint32_t)expert, (uint32_t)target,
                                 (uint32_t)GATE_STREAM0};
        uint32_t r[4];
        md_philox4x32_10(ctr, key, r);
        for (int k = 0; k < 4 && d + k < dim; k++)
            row[d + k] = bound * (2.0f * (float)(r[k] >> 8) * (1.0f / 16777216.0f) - 1.0f);
    }
}
