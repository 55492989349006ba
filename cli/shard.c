#include "shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A whole decimal number in lo..hi; no sign games, no trailing junk. */
static int parse_long(const char *s, size_t len, long lo, long hi, long *out)
{
    if (len == 0 || len > 18)
        return 0;
    char buf[20];
    memcpy(buf, s, len);
    buf[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (buf[i] < '0' || buf[i] > '9')
            if (!(i == 0 && buf[i] == '-' && len > 1))
                return 0;
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

static int env_long(const char *name, long *out, int *present, char *msg, size_t msg_size)
{
    const char *v = getenv(name);
    *present = v && *v;
    if (!*present)
        return 0;
    if (!parse_long(v, strlen(v), -MD_SHARD_MAX, MD_SHARD_MAX, out)) {
        snprintf(msg, msg_size, "--shard auto: %s='%s' is not an integer", name, v);
        return -1;
    }
    return 0;
}

/* K for "auto/N": Slurm first (an Indexed Job never sets it), then k8s. */
static int auto_index(md_shard *s, char *msg, size_t msg_size)
{
    long id, min = 0;
    int have_id, have_min;
    if (env_long("SLURM_ARRAY_TASK_ID", &id, &have_id, msg, msg_size) ||
        env_long("SLURM_ARRAY_TASK_MIN", &min, &have_min, msg, msg_size))
        return -1;
    if (have_id) {
        /* An array that is not exactly N consecutive tasks (a resubmitted
         * subset, a step) would map tasks to the wrong shards: refuse. */
        long max;
        int have_max;
        if (env_long("SLURM_ARRAY_TASK_MAX", &max, &have_max, msg, msg_size))
            return -1;
        if (have_min && have_max && max - min + 1 != s->n) {
            snprintf(msg, msg_size,
                     "--shard auto/%ld: the Slurm array spans tasks %ld..%ld, not %ld tasks; "
                     "submit --array=0-%ld (or 1-%ld), or give --shard K/%ld explicitly",
                     s->n, min, max, s->n, s->n - 1, s->n, s->n);
            return -1;
        }
        s->k = id - (have_min ? min : 0);
        snprintf(s->source, sizeof s->source, "SLURM_ARRAY_TASK_ID=%ld - SLURM_ARRAY_TASK_MIN=%ld",
                 id, have_min ? min : 0L);
        return 0;
    }
    long idx;
    int have_idx;
    if (env_long("JOB_COMPLETION_INDEX", &idx, &have_idx, msg, msg_size))
        return -1;
    if (have_idx) {
        s->k = idx;
        snprintf(s->source, sizeof s->source, "JOB_COMPLETION_INDEX=%ld", idx);
        return 0;
    }
    snprintf(msg, msg_size,
             "--shard auto/N needs SLURM_ARRAY_TASK_ID (a Slurm job array) or "
             "JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) in the environment");
    return -1;
}

int md_shard_parse(const char *spec, md_shard *out, char *msg, size_t msg_size)
{
    memset(out, 0, sizeof *out);
    const char *slash = strchr(spec, '/');
    if (!slash) {
        snprintf(msg, msg_size, "--shard expects K/N or auto/N (K from 0), got '%s'", spec);
        return -1;
    }
    if (!parse_long(slash + 1, strlen(slash + 1), 1, MD_SHARD_MAX, &out->n)) {
        snprintf(msg, msg_size, "--shard '%s': N must be an integer in 1..%d", spec, MD_SHARD_MAX);
        return -1;
    }
    size_t klen = (size_t)(slash - spec);
    if (klen == 4 && memcmp(spec, "auto", 4) == 0) {
        if (auto_index(out, msg, msg_size))
            return -1;
        if (out->k < 0 || out->k >= out->n) {
            snprintf(msg, msg_size,
                     "--shard '%s': %s gives shard %ld, outside 0..%ld (does the array/job have "
                     "exactly %ld tasks?)",
                     spec, out->source, out->k, out->n - 1, out->n);
            return -1;
        }
        return 0;
    }
    long k;
    if (!parse_long(spec, klen, -MD_SHARD_MAX, MD_SHARD_MAX, &k) || k < 0 || k >= out->n) {
        snprintf(msg, msg_size, "--shard '%s': K must be an integer in 0..%ld (K counts from 0)",
                 spec, out->n - 1);
        return -1;
    }
    out->k = k;
    snprintf(out->source, sizeof out->source, "--shard %s", spec);
    return 0;
}
