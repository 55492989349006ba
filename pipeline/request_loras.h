/* The LoRAs a request applies: with the weighted prompt syntax, the
 * prompt's <lora:NAME:WEIGHT> tags found in lora_dir, then loras[] in order
 * (text/prompt_loras.h, lora/lora_set.h). */
#ifndef MD_PIPELINE_REQUEST_LORAS_H
#define MD_PIPELINE_REQUEST_LORAS_H

#include "../include/moediffuse.h"
#include "../lora/lora_set.h"

typedef struct md_request_loras {
    md_lora_use *uses; /* count entries (owned) */
    int count;
    char *prompt;      /* the prompt without its tags (owned) */
} md_request_loras;

/* Checks the request's LoRA fields and finds every file (nothing is
 * opened): a missing file or name is MD_ERR_IO naming it. */
md_status md_request_loras_collect(const mdiff_gen_params *p, md_request_loras *out,
                                   md_error *err);
void md_request_loras_free(md_request_loras *r);

#endif
