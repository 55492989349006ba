/* SegMoE's "hidden" gate initialisation for one source model: its own
 * pipeline generates from the expert's prompts with an internal DDPM
 * sampler (25 steps, guidance 7.5, the model's native size, noise added at
 * every step), and each watched layer's input in the last U-Net call
 * (last batch row = the positive prompt, averaged over the sequence and
 * L2-normalised) becomes that expert's gate row. */
#ifndef MD_GATE_INIT_H
#define MD_GATE_INIT_H

#include "../models/model.h"
#include "merge.h"

/* DDPMScheduler settings beyond md_sched_config, from the source's
 * scheduler config (diffusers' DDPM defaults where a key is absent). */
typedef struct md_ddpm_settings {
    int clip_sample;
    float clip_sample_range;
} md_ddpm_settings;

typedef struct md_gate_job {
    const md_model *m;     /* the source, loaded on `be` */
    md_backend *be;        /* a backend of its own (CPU) */
    const md_ddpm_settings *ddpm;
    const char *positive, *negative;
    const md_tensor *const *watch; /* the source U-Net's weights whose inputs are kept */
    int nwatch;
    int expert, experts;   /* for hooks and progress */
    uint64_t seed;
    const md_merge_hooks *hooks;
} md_gate_job;

/* rows[i] ([dim of watch[i]'s input] floats, allocated by the caller from
 * the weight's shape) gets the normalised mean input of watch[i]. */
md_status md_gate_init_run(const md_gate_job *job, float *const *rows, md_error *err);

/* The same rows drawn like a fresh nn.Linear's weight: uniform in
 * +-1/sqrt(dim), from the seeded RNG (SegMoE's "random" init). */
void md_gate_init_random(uint64_t seed, int target, int expert, float *row, int dim);

#endif
