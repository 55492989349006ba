/* FNV-1a, 64-bit: a short stable hash of bytes (output digests in the
 * manifest, claim names), not a cryptographic one. */
#ifndef MD_CLI_FNV1A_H
#define MD_CLI_FNV1A_H

#include <stddef.h>
#include <stdint.h>

#define MD_FNV1A64_INIT 0xcbf29ce484222325ULL

/* Continues hash h over n bytes (start with MD_FNV1A64_INIT). */
static inline uint64_t md_fnv1a64(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

#endif
