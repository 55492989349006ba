/* The one noise source: Philox4x32-10 keyed by the seed, counter = (index
 * of a block of 4 samples, stream), so value i of a stream depends only on
 * (seed, stream, i): the same seed gives the same noise on every backend
 * and thread count. Normal samples use Box-Muller on consecutive uniform
 * pairs; rng.c documents the exact layout. */
#ifndef MD_RNG_H
#define MD_RNG_H

#include <stddef.h>
#include <stdint.h>

/* out[i] = N(0,1) sample number (offset + i) of stream `stream` for `seed`.
 * Streams separate independent uses (initial noise, per-step noise, ...). */
void md_randn(uint64_t seed, uint64_t stream, uint64_t offset, float *out, size_t n);
/* Raw Philox4x32-10 block: counter (4 words), key (2 words) -> 4 words. */
void md_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

#endif
