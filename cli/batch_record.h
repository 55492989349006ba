/* Manifest records of batch entries and the resume rule: an entry is done
 * when an earlier ok record has the same output name and parameters and
 * the output file is the one it recorded (size and hash). */
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

/* What identifies an output file's bytes: its size and FNV-1a 64 hash. */
typedef struct md_file_digest {
    uint64_t size;
    uint64_t fnv1a64;
} md_file_digest;

/* The digest of the regular file at path (never through a symlink, never
 * waiting on a FIFO); 0 on success, -1 when it is missing or unreadable. */
int md_file_digest_of(const char *path, md_file_digest *d);

/* status "ok" or "error"; error may be NULL; seconds < 0 = not timed;
 * resolved (NULL = none): the request as the library ran it, recorded under
 * "resolved"; digest (NULL = none): the output's, recorded as "size" and
 * "fnv1a64" (16 hex digits). Returns NULL when out of memory. */
cJSON *md_batch_record(const md_batch_job *j, const md_batch_run_info *ri, const char *output,
                       const char *status, const char *error, double seconds, double gen_seconds,
                       const mdiff_gen_params *resolved, const md_file_digest *digest);

/* The earlier ok record that makes j done: the same request, and the file
 * at path is the one it recorded (NULL = render it). */
const cJSON *md_batch_find_done(const md_manifest_done *d, const md_batch_job *j,
                                const char *path);

/* 1 when the file at path is the one `rec` recorded: same size and hash
 * (any format; a torn, replaced or missing file, or a record without a
 * digest, as older manifests have, is redone). */
int md_batch_output_is_recorded(const char *path, const cJSON *rec);

#endif
