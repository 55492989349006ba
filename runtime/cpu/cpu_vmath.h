/* Vectorised float kernels for the CPU backend. Each takes `simd` (from
 * md_cpu.simd): when set, an AVX2+FMA build of the same code is used.
 * exp/erf are fast polynomial forms with relative error around 1e-7, which
 * keeps results within float rounding of the libm versions.
 * Unless noted, y may equal x. */
#ifndef MD_CPU_VMATH_H
#define MD_CPU_VMATH_H

#include <stdint.h>

int md_vm_detect_simd(void);
int md_vm_detect_f16c(void);

void md_vm_silu(int simd, float *y, const float *x, int64_t n);
void md_vm_gelu_erf(int simd, float *y, const float *x, int64_t n);
void md_vm_gelu_tanh(int simd, float *y, const float *x, int64_t n);
void md_vm_quick_gelu(int simd, float *y, const float *x, int64_t n);
/* y[i] = a[i] * gelu_erf(g[i]); y must not overlap a or g. */
void md_vm_geglu(int simd, float *y, const float *a, const float *g, int64_t n);

/* x[i] = exp(x[i] - max); returns the sum of the new values. */
float md_vm_exp_sum(int simd, float *x, int64_t n, float max);
float md_vm_max(const float *x, int64_t n);

/* y[i] = (x[i] - shift) * a + b, then SiLU when `silu` is set. */
void md_vm_affine(int simd, float *y, const float *x, int64_t n, float shift, float a, float b,
                  int silu);

/* Half -> float. `f16c`: use the hardware instruction. */
void md_vm_f16_to_f32(int f16c, float *dst, const uint16_t *src, int64_t n);
void md_vm_bf16_to_f32(float *dst, const uint16_t *src, int64_t n);

#endif
