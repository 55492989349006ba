/* Philox4x32-10 against the Random123 known-answer vectors, range-split
 * independence of md_randn, and moments of its normal samples. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/rng.h"
#include "test_support.h"


static void kat(const char *what, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                uint32_t k1, uint32_t e0, uint32_t e1, uint32_t e2, uint32_t e3)
{
    const uint32_t ctr[4] = {c0, c1, c2, c3}, key[2] = {k0, k1};
    uint32_t out[4];
    md_philox4x32_10(ctr, key, out);
    int ok = out[0] == e0 && out[1] == e1 && out[2] == e2 && out[3] == e3;
    printf("philox KAT %-6s %08x %08x %08x %08x %s\n", what, (unsigned)out[0], (unsigned)out[1],
           (unsigned)out[2], (unsigned)out[3], ok ? "ok" : "MISMATCH");
    CHECK(ok);
}

static void test_kat(void)
{
    kat("zeros", 0, 0, 0, 0, 0, 0, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u);
    kat("ones", 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu,
        0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu);
    kat("pi", 0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u,
        0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u);
}

static void test_split(void)
{
    float whole[10], parts[10];
    md_randn(1234, 7, 0, whole, 10);
    md_randn(1234, 7, 0, parts, 3);
    md_randn(1234, 7, 3, parts + 3, 7);
    CHECK(memcmp(whole, parts, sizeof whole) == 0);

    /* Every split point and a start in the middle of a block. */
    float big[37];
    md_randn(99, 1, 5, big, 37);
    for (size_t cut = 0; cut <= 37; cut++) {
        float a[37];
        md_randn(99, 1, 5, a, cut);
        md_randn(99, 1, 5 + cut, a + cut, 37 - cut);
        CHECK(memcmp(a, big, sizeof a) == 0);
    }
    for (size_t k = 0; k < 37; k++) {
        float one;
        md_randn(99, 1, 5 + k, &one, 1);
        CHECK(one == big[k]);
    }

    /* Seeds and streams give different sequences; the same call repeats. */
    float s0[8], s1[8], st1[8], again[8];
    md_randn(1, 0, 0, s0, 8);
    md_randn(2, 0, 0, s1, 8);
    md_randn(1, 1, 0, st1, 8);
    md_randn(1, 0, 0, again, 8);
    CHECK(memcmp(s0, s1, sizeof s0) != 0);
    CHECK(memcmp(s0, st1, sizeof s0) != 0);
    CHECK(memcmp(s0, again, sizeof s0) == 0);
    /* The high words of seed and stream matter too. */
    md_randn(1 + (1ull << 32), 0, 0, s1, 8);
    CHECK(memcmp(s0, s1, sizeof s0) != 0);
    md_randn(1, 1ull << 32, 0, st1, 8);
    CHECK(memcmp(s0, st1, sizeof s0) != 0);
    /* Offsets beyond 2^32 blocks work (counter high word). */
    float far[5], far_parts[5];
    uint64_t off = (1ull << 34) + 2;
    md_randn(5, 0, off, far, 5);
    md_randn(5, 0, off, far_parts, 2);
    md_randn(5, 0, off + 2, far_parts + 2, 3);
    CHECK(memcmp(far, far_parts, sizeof far) == 0);
    md_randn(5, 0, 0, far_parts, 5);
    CHECK(memcmp(far, far_parts, sizeof far) != 0);
}

static void test_moments(void)
{
    const size_t n = 1000000;
    float *z = malloc(n * sizeof *z);
    CHECK(z != NULL);
    if (!z)
        return;
    md_randn(42, 3, 0, z, n);
    double sum = 0.0, sum2 = 0.0, sum4 = 0.0;
    size_t beyond3 = 0, nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        double v = z[i];
        if (!isfinite(v))
            nonfinite++;
        sum += v;
        sum2 += v * v;
        sum4 += v * v * v * v;
        beyond3 += fabs(v) > 3.0;
    }
    double mean = sum / (double)n;
    double var = sum2 / (double)n - mean * mean;
    double kurt = sum4 / (double)n;
    double tail = (double)beyond3 / (double)n; /* 0.0027 for N(0,1) */
    printf("randn 1e6: mean %.5f var %.5f E[z^4] %.4f P(|z|>3) %.5f\n", mean, var, kurt, tail);
    CHECK(nonfinite == 0);
    CHECK(fabs(mean) < 0.01);
    CHECK(fabs(var - 1.0) < 0.01);
    CHECK(fabs(kurt - 3.0) < 0.05);
    CHECK(fabs(tail - 0.0027) < 0.0005);
    /* Neighbouring samples (the two halves of a Box-Muller pair, and
     * adjacent pairs) are uncorrelated. */
    double c1 = 0.0, c2 = 0.0;
    for (size_t i = 0; i + 2 < n; i += 2) {
        c1 += (double)z[i] * z[i + 1];
        c2 += (double)z[i + 1] * z[i + 2];
    }
    c1 /= (double)(n / 2);
    c2 /= (double)(n / 2);
    printf("randn lag-1 correlation: within pair %.5f across pairs %.5f\n", c1, c2);
    CHECK(fabs(c1) < 0.01);
    CHECK(fabs(c2) < 0.01);
    free(z);
}

int main(void)
{
    test_kat();
    test_split();
    test_moments();
    return md_test_finish("rng");
}
