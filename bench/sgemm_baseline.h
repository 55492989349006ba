/* The baseline every benchmark figure is a ratio to: OpenBLAS' sgemm rate
 * on a U-Net-like shape (4096 tokens x 320 -> 1280), measured in the run. */
#ifndef MD_BENCH_SGEMM_BASELINE_H
#define MD_BENCH_SGEMM_BASELINE_H

/* GFLOP/s, best of 5 after a warm-up; 0 out of memory. */
double md_bench_sgemm_gflops(void);

#endif
