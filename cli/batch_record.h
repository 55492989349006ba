/* Manifest records of batch entries and the resume rule: an entry is done
 * when an earlier ok record has the same output name and parameters and
 * the output file is complete. */
#ifndef MD_CLI_BATCH_RECORD_H
#define MD_CLI_BATCH_RECORD_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "batch_job.h"
#include "manifest.h"

/* What every record of one run shares. */
typedef struct md_batch_run_info {
    const char *prompts;   /* the prompts file as given */
    const char *model;     /* the model path as given */
    char shard[48];        /* "K/N" */
    uint64_t base_seed;
    int base_seed_random;
    char host[256];
} md_batch_run_info;

/* status "ok" or "error"; error may be NULL; seconds < 0 = not timed;
 * resolved (NULL = none): the request as the library ran it, recorded under
 * "resolved". Returns NULL when out of memory. */
cJSON *md_batch_record(const md_batch_job *j, const md_batch_run_info *ri, const char *output,
                       const char *status, const char *error, double seconds, double gen_seconds,
                       const mdiff_gen_params *resolved);

/* The earlier ok record that makes j done (NULL = render it). */
const cJSON *md_batch_find_done(const md_manifest_done *d, const md_batch_job *j);

/* 1 when path is a whole image: present, non-empty and, for PNG and JPEG,
 * ending with the format's end marker (so a torn file is redone). */
int md_batch_output_complete(const char *path);

#endif
