/* Command line of `moe-diffuse batch`. */
#ifndef MD_CLI_BATCH_OPTIONS_H
#define MD_CLI_BATCH_OPTIONS_H

#include <stdint.h>

#include "../host/request_fields.h"

typedef struct md_batch_options {
    const char *prompts;   /* required; "-" = stdin */
    const char *model;
    const char *out_dir;   /* default "outputs" */
    const char *manifest;  /* default out_dir/manifest[.shard-K-of-N].jsonl */
    const char *shard;     /* "K/N" or "auto/N"; NULL = the whole file */
    mdh_request defaults;  /* what every line starts from (owned strings) */
    int64_t seed;          /* base seed; -1 = random (recorded, reused on resume) */
    int threads;
    const char *backend;   /* "cpu", "vulkan", "auto" (default) */
    int device;            /* -1 = the best */
    int quiet;
    int moe_stats;         /* --moe-stats: routing statistics beside each image */
} md_batch_options;

/* Returns 0 to run, -1 when --help was printed, else the exit code for a
 * usage error (message already printed). */
int md_batch_parse(int argc, char **argv, md_batch_options *o);
void md_batch_options_free(md_batch_options *o);

#endif
