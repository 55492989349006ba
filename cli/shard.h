/* --shard K/N: entry i of a batch belongs to shard K iff i % N == K, so N
 * processes cover every entry exactly once. "auto/N" takes K from the
 * scheduler: Slurm job arrays (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN,
 * so 0- and 1-based arrays both map to 0..N-1) or Kubernetes Indexed Jobs
 * (JOB_COMPLETION_INDEX, 0-based). */
#ifndef MD_CLI_SHARD_H
#define MD_CLI_SHARD_H

#include <stddef.h>

#define MD_SHARD_MAX 1000000

typedef struct md_shard {
    long k, n;        /* n = 1: no sharding */
    char source[160]; /* where k came from, for the log: "SLURM_ARRAY_TASK_ID=3 - ..." */
} md_shard;

/* Parses spec ("K/N" or "auto/N", reading the environment for auto).
 * Returns 0 on success, else -1 with a message in msg. */
int md_shard_parse(const char *spec, md_shard *out, char *msg, size_t msg_size);

static inline int md_shard_owns(const md_shard *s, long index)
{
    return index % s->n == s->k;
}

#endif
