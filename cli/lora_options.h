/* The LoRA flags of `moe-diffuse` and `moe-diffuse batch`: --lora
 * FILE[:WEIGHT] (repeatable), --lora-dir DIR, --lora-allow-unmatched. */
#ifndef MD_CLI_LORA_OPTIONS_H
#define MD_CLI_LORA_OPTIONS_H

#include "../host/request_fields.h"
#include "engine.h"

/* Sets the request field of `flag` from its value (NULL for the switch);
 * returns the field's name, or NULL after printing why not. */
const char *md_cli_lora_option(mdh_request *r, const char *flag, const char *value);

/* The folder <lora:NAME> tags are looked up in when no --lora-dir was
 * given: $MOEDIFFUSE_LORA_DIR. Returns 0, or MD_EXIT_FAILURE out of memory. */
int md_cli_lora_dir_default(mdh_request *r);

/* On stderr: with verbose, each LoRA the request applies and how many of its
 * modules match the model; unless quiet, a warning for modules skipped
 * under --lora-allow-unmatched. Errors are left to the generation. */
void md_cli_lora_report(md_cli_engine *e, const mdiff_gen_params *p, int verbose, int quiet);

#endif
