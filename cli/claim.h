/* Claims of batch entries, so that runs sharing one output folder (two
 * unsharded ones with their own manifests, or sharded beside unsharded)
 * never render an entry twice. A claim is a file beside the output,
 * `.NAME.claim` (or `.claim-HASH` for a name too long for that), that
 * appears already locked (flock): it is made under a temporary name, locked
 * and then linked to its name, which fails when the name exists. The lock
 * lives as long as the claiming process, so a claim whose lock can be taken
 * was left by a run that died, and is taken over. */
#ifndef MD_CLI_CLAIM_H
#define MD_CLI_CLAIM_H

#include <stddef.h>

#include "../host/host_error.h"

typedef struct md_claim {
    int fd;        /* locked; -1 = none held */
    int dir_fd;
    char name[64 + 256];
} md_claim;

typedef enum md_claim_result {
    MD_CLAIM_TAKEN = 0, /* this process holds it */
    MD_CLAIM_BUSY = 1,  /* a live run holds it; `owner` says which */
    MD_CLAIM_ERROR = -1 /* err says why */
} md_claim_result;

/* Claims output `name` in folder `dir`. owner (cap bytes) receives the
 * holder's "pid N on HOST" when busy. */
md_claim_result md_claim_take(const char *dir, const char *name, md_claim *c, char *owner,
                              size_t cap, mdh_error *err);

/* Removes the claim file and drops the lock (after the manifest record). */
void md_claim_release(md_claim *c);

#endif
