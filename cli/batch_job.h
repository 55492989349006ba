/* Batch input: the prompts file (plain lines or JSON Lines with per-line
 * overrides) and the resolution of each entry into one generation job. */
#ifndef MD_CLI_BATCH_JOB_H
#define MD_CLI_BATCH_JOB_H

#include <stdint.h>

#include "../host/host_error.h"
#include "../host/request_fields.h"

#define MD_BATCH_NAME_MAX 255
/* The most a prompts file (or stdin) may hold: a larger one is refused, not
 * buffered to its end (`yes | moe-diffuse batch --prompts -` ends). */
#define MD_BATCH_PROMPTS_MAX (64 << 20)
#define MD_BATCH_SEED_MAX 9007199254740991.0 /* 2^53 - 1: exact in a JSON number */

/* An entry is a line that is neither blank nor a # comment. `index` counts
 * entries from 0 and drives default names, seeds and sharding; `line` is
 * the 1-based line number for messages. */
typedef struct md_batch_entry {
    long index;
    long line;
    char *text;
} md_batch_entry;

typedef struct md_batch_file {
    const char *path;
    md_batch_entry *entries;
    long count;
    char *data;
} md_batch_file;

/* Reads and splits the prompts; "-" is stdin. SIGINT/SIGTERM while reading
 * stop it: MDIFF_ERR_CANCELLED. */
int md_batch_file_read(const char *path, md_batch_file *f, mdh_error *err);
void md_batch_file_free(md_batch_file *f);

/* Command-line settings that lines may override. */
typedef struct md_batch_defaults {
    const mdh_request *request;  /* seed ignored: */
    uint64_t base_seed;          /* entry i without a seed gets base_seed + i */
} md_batch_defaults;

typedef struct md_batch_job {
    long index, line;
    int valid;                   /* 0: the line is malformed; error says why */
    char *error;                 /* owned */
    mdh_request req;             /* the entry's request as given (defaults unresolved) */
    char *name;                  /* owned: output file name inside the output folder */
} md_batch_job;

/* Never fails as a whole: a bad line gives valid = 0 and an error naming
 * file:line and the problem. */
void md_batch_job_resolve(const md_batch_entry *e, const char *file, const md_batch_defaults *d,
                          md_batch_job *job);
/* Frees the prompts (jobs of other shards keep only their name). */
void md_batch_job_drop_prompts(md_batch_job *job);
void md_batch_job_clear(md_batch_job *job);

/* Marks later jobs whose output name an earlier entry already uses as
 * invalid, so that no two entries ever write one file. */
void md_batch_jobs_check_names(md_batch_job *jobs, long count, const char *file);

#endif
