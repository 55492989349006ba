/* Building a SegMoE Mixture-of-Experts model from dense ones: the base
 * model with the chosen U-Net layers of every transformer block replaced
 * by MoE layers whose experts are copies of each source model's layer and
 * whose gates are initialised from each source's own hidden states
 * (docs/merge.md). The output is SegMoE's on-disk layout, written to a
 * temporary folder next to the output and renamed at the end; sources are
 * read one at a time. */
#ifndef MD_MERGE_H
#define MD_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"
#include "../runtime/tensor.h"
#include "merge_config.h"

/* The gate-initialisation runs' fixed settings (SegMoE: the pipeline's
 * defaults with a DDPM scheduler). */
#define MD_MERGE_GATE_STEPS 25
#define MD_MERGE_GATE_GUIDANCE 7.5f

typedef enum md_merge_phase {
    MD_MERGE_PHASE_BASE = 0,   /* copying the base's weights */
    MD_MERGE_PHASE_EXPERT,     /* expert `expert` starts (its source is opened) */
    MD_MERGE_PHASE_GATE_STEP,  /* gate-init step `step` of `steps` of that expert done */
    MD_MERGE_PHASE_WRITE       /* expert weights, gates and configs written */
} md_merge_phase;

typedef struct md_merge_hooks {
    void *user;
    /* Supplies the gate-init noise of expert e instead of the seeded RNG:
     * step -1 the initial latents, else the variance noise of DDPM step
     * `step`. Returns 1 when filled. */
    int (*noise)(void *user, int expert, int step, float *out, size_t n);
    /* Observes the gate-init runs: "timesteps" [steps], "prompt_embeds"
     * [2, 77, dim] (negative, positive), "last_call_latents" (the latents
     * of the last U-Net call). */
    void (*tensor)(void *user, int expert, const char *name, const float *data, size_t n);
    /* Progress; a non-zero return cancels the merge (nothing is left). */
    int (*progress)(void *user, md_merge_phase phase, int expert, int experts, int step,
                    int steps);
} md_merge_hooks;

typedef struct md_merge_options {
    md_dtype dtype;    /* of the U-Net weights written: MD_F16 (default) or MD_F32 */
    int gate_init;     /* -1: the config's init; else md_merge_init */
    uint64_t seed;     /* gate-init noise (Philox), saved in segmoe_config */
    int threads;       /* CPU threads of the gate-init runs (0 = all) */
} md_merge_options;

/* Merges `config_path` into the new folder `out_dir`, which must not
 * exist. opt NULL: f16, the config's init, seed 0. hooks may be NULL. On
 * any failure or cancel nothing is left at out_dir nor beside it. */
md_status md_merge(const char *config_path, const char *out_dir, const md_merge_options *opt,
                   const md_merge_hooks *hooks, md_error *err);

#endif
