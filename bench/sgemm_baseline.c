#include "sgemm_baseline.h"

#include <cblas.h>
#include <stdlib.h>
#include <time.h>

#include "sampling/rng.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double md_bench_sgemm_gflops(void)
{
    const int m = 4096, k = 320, n = 1280;
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
    float *c = malloc(sizeof(float) * m * n);
    double best = 1e30;
    if (a && b && c) {
        md_randn(1, 0, 0, a, (size_t)m * k);
        md_randn(1, 1, 0, b, (size_t)k * n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c, n);
        for (int r = 0; r < 5; r++) {
            double t0 = now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c,
                        n);
            double t = now() - t0;
            best = t < best ? t : best;
        }
    }
    free(a);
    free(b);
    free(c);
    return best < 1e30 ? 2.0 * m * n * k / best / 1e9 : 0.0;
}
