/* Philox4x32-10 counter-based generator and the normal samples built on it.
 *
 * Layout (fixed: changing it changes every image made from a seed):
 *   key     = (seed low 32 bits, seed high 32 bits)
 *   counter = (block low, block high, stream low, stream high)
 *   block b yields the four 32-bit words w0..w3 used by normal samples
 *   4b .. 4b+3.
 * Normals: uniforms u = (w + 0.5) / 2^32, which lie strictly inside (0, 1)
 * so log(u) is finite; Box-Muller on the pairs (w0, w1) and (w2, w3):
 *   r = sqrt(-2 ln u_a), z_a = r cos(2 pi u_b), z_b = r sin(2 pi u_b),
 * computed in double and rounded to float. Sample k therefore depends only
 * on (seed, stream, k), whatever range a call asks for. */
#include "rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void md_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

static double to_unit_open(uint32_t w)
{
    return ((double)w + 0.5) * (1.0 / 4294967296.0);
}

/* The four normals of block `block`. */
static void normal_block(const uint32_t key[2], uint64_t stream, uint64_t block, float z[4])
{
    const double two_pi = 6.283185307179586476925286766559;
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                       (uint32_t)(stream >> 32)};
    uint32_t w[4];
    md_philox4x32_10(ctr, key, w);
    for (int p = 0; p < 2; p++) {
        double r = sqrt(-2.0 * log(to_unit_open(w[2 * p])));
        double th = two_pi * to_unit_open(w[2 * p + 1]);
        z[2 * p] = (float)(r * cos(th));
        z[2 * p + 1] = (float)(r * sin(th));
    }
}

void md_randn(uint64_t seed, uint64_t stream, uint64_t offset, float *out, size_t n)
{
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    size_t i = 0;
    while (i < n) {
        uint64_t k = offset + i;
        uint64_t block = k / 4;
        unsigned first = (unsigned)(k % 4);
        float z[4];
        normal_block(key, stream, block, z);
        for (unsigned j = first; j < 4 && i < n; j++)
            out[i++] = z[j];
    }
}
