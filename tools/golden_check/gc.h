/* golden-check: runs every record of a reference case through the engine
 * (contract: shared/golden/CHECKING.md). Records that are inputs of a call
 * are fed; every other record must be produced by some runner and is
 * compared; a record no runner produced is reported as unsupported. */
#ifndef MD_GC_H
#define MD_GC_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "lora/lora_backend.h"
#include "models/model.h"

typedef struct gc_result {
    char *name;
    float *values; /* produced values (integers stored as floats) */
    size_t n;
    int integer;
} gc_result;

typedef struct gc_case {
    const char *dir;
    char model_path[2048];
    cJSON *golden_json;    /* records, prompts, pipelines, scheduler configs */
    cJSON *case_json;      /* the case's own golden.json (architecture for single files) */
    md_safetensors *gold;
    md_backend *be;
    md_model *model;       /* loaded on first use */
    md_error model_err;
    int model_tried;
    gc_result *results;
    size_t nresults, cap;
    /* LoRA cases: the file being checked, bound to the model; be is then
     * the LoRA wrapper around inner_be (which loaded the model). */
    md_lora_file *lora_file;
    md_lora_binding lora;
    md_backend *inner_be;
    /* Merge cases: the temporary folder holding the merged model (at
     * model_path), removed at the end. */
    char merged_dir[2048];
} gc_case;

/* Golden tensor as float (int32 converted); NULL when absent. Caller frees. */
float *gc_gold_f32(gc_case *c, const char *name, size_t *n);
int gc_has(gc_case *c, const char *name);
/* Stores a produced record (values copied). */
void gc_put(gc_case *c, const char *name, const float *values, size_t n, int integer);
/* The model, loaded once; NULL (and a message on stderr once) on failure. */
md_model *gc_model(gc_case *c);
/* Scheduler config from a diffusers scheduler JSON object. */
int gc_sched_config(const cJSON *json, md_sched_config *out);

/* Runners: each produces the records of its kind that the case holds. */
void gc_run_tokenizer(gc_case *c);
void gc_run_text_encoder(gc_case *c);
void gc_run_unet(gc_case *c);
void gc_run_vae(gc_case *c);
void gc_run_schedulers(gc_case *c);
void gc_run_pipelines(gc_case *c);
void gc_run_lora_fused(gc_case *c);

/* LoRA cases: binds `file` (relative to the case folder) at the case's
 * lora_scale and makes c->be the LoRA backend; 0 (message printed) on
 * failure. gc_lora_end undoes it. */
int gc_lora_begin(gc_case *c, const char *file, md_lora_apply how);
void gc_lora_end(gc_case *c);

/* Merge cases (CHECKING.md item 8): merges the case's `yaml` into a
 * temporary folder that becomes the model; 0 (message printed) on
 * failure. gc_run_merge produces the merge.unet.* records from the merged
 * file; gc_merge_end removes the folder. */
int gc_merge_begin(gc_case *c, const char *yaml);
void gc_run_merge(gc_case *c);
void gc_merge_end(gc_case *c);

#endif
