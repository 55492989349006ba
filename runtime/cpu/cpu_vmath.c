#include "cpu_vmath.h"

#include <string.h>

#include "runtime/tensor.h"

#if defined(__x86_64__) || defined(__i386__)
#define MD_X86 1
#include <cpuid.h>
#include <immintrin.h>
#define MD_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define MD_X86 0
#endif

/* GCC vector extensions: one source, compiled once for baseline SSE and once
 * for AVX2. Helpers pass vectors by pointer and are always inlined, so no
 * vector value crosses a call boundary (which would tie them to one ABI). */
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
#define AI static inline __attribute__((always_inline))

AI void v_load(v8f *v, const float *p)
{
    memcpy(v, p, sizeof *v);
}

AI void v_store(float *p, const v8f *v)
{
    memcpy(p, v, sizeof *v);
}

/* exp(x): x = n ln2 + r with |r| <= ln2/2, exp(r) by a degree-7 polynomial,
 * 2^n assembled in the exponent bits. Below -87.3 the result is 0 (instead
 * of a subnormal); above 88.3 it saturates near FLT_MAX. */
AI void v_exp(v8f *io)
{
    v8f x = *io;
    v8i under = x < -87.3f;
    v8i over = x > 88.3f;
    v8f hi = (v8f){0} + 88.3f;
    x = (v8f)(((v8i)x & ~over) | ((v8i)hi & over));
    v8f t = x * 1.44269504088896341f + 12582912.0f; /* 1.5*2^23: round to int */
    v8f n = t - 12582912.0f;
    v8f r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    v8f p = 1.98756915e-4f * r + 1.39819995e-3f;
    p = p * r + 8.33345191e-3f;
    p = p * r + 4.16657959e-2f;
    p = p * r + 1.66666655e-1f;
    p = p * r + 5.00000012e-1f;
    p = p * r * r + r + 1.0f;
    v8i bits = ((v8i)t - 0x4b400000 + 127) << 23;
    v8f res = p * (v8f)bits;
    *io = (v8f)((v8i)res & ~under);
}

/* x / (1 + exp(-k x)): SiLU (k=1), QuickGELU (k=1.702), and tanh-GELU
 * written as x*sigmoid(2u), which avoids 1+tanh cancelling for x < 0. */
AI void v_x_sigmoid(v8f *io, float k)
{
    v8f x = *io;
    v8f e = -k * x;
    v_exp(&e);
    *io = x / (1.0f + e);
}

AI void v_gelu_tanh(v8f *io)
{
    v8f x = *io;
    v8f u = 1.5957691216057308f * (x + 0.044715f * x * x * x); /* 2*sqrt(2/pi)*(...) */
    v8f e = -u;
    v_exp(&e);
    *io = x / (1.0f + e);
}

/* GELU(x) = x/2 * erfc(-x/sqrt2), erfc from a Chebyshev-fitted form with
 * fractional error below 1.2e-7 everywhere, so tiny tails stay accurate. */
AI void v_gelu_erf(v8f *io)
{
    v8f x = *io;
    v8f u = x * -0.70710678118654752f;
    v8i neg = u < 0.0f;
    v8f z = (v8f)((v8i)u & 0x7fffffff);
    v8f t = 1.0f / (1.0f + 0.5f * z);
    v8f p = 0.17087277f * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    v8f e = p - z * z;
    v_exp(&e);
    v8f erfc_z = t * e;
    v8f erfc_u = (v8f)(((v8i)(2.0f - erfc_z) & neg) | ((v8i)erfc_z & ~neg));
    *io = 0.5f * x * erfc_u;
}

enum { OP_SILU, OP_GELU_ERF, OP_GELU_TANH, OP_QUICK_GELU };

AI void v_apply(v8f *v, int op)
{
    switch (op) {
    case OP_SILU: v_x_sigmoid(v, 1.0f); break;
    case OP_GELU_ERF: v_gelu_erf(v); break;
    case OP_GELU_TANH: v_gelu_tanh(v); break;
    default: v_x_sigmoid(v, 1.702f); break;
    }
}

/* The tail goes through the same vector code via a padded copy, so every
 * element gets identical numerics. */
AI void unary_body(float *y, const float *x, int64_t n, int op)
{
    int64_t i = 0;
    v8f v;
    for (; i + 8 <= n; i += 8) {
        v_load(&v, x + i);
        v_apply(&v, op);
        v_store(y + i, &v);
    }
    if (i < n) {
        float buf[8] = {0};
        memcpy(buf, x + i, (size_t)(n - i) * sizeof(float));
        v_load(&v, buf);
        v_apply(&v, op);
        v_store(buf, &v);
        memcpy(y + i, buf, (size_t)(n - i) * sizeof(float));
    }
}

AI void geglu_body(float *y, const float *a, const float *g, int64_t n)
{
    int64_t i = 0;
    v8f va, vg;
    for (; i + 8 <= n; i += 8) {
        v_load(&vg, g + i);
        v_load(&va, a + i);
        v_gelu_erf(&vg);
        vg *= va;
        v_store(y + i, &vg);
    }
    if (i < n) {
        float ba[8] = {0}, bg[8] = {0};
        memcpy(ba, a + i, (size_t)(n - i) * sizeof(float));
        memcpy(bg, g + i, (size_t)(n - i) * sizeof(float));
        v_load(&va, ba);
        v_load(&vg, bg);
        v_gelu_erf(&vg);
        vg *= va;
        v_store(bg, &vg);
        memcpy(y + i, bg, (size_t)(n - i) * sizeof(float));
    }
}

AI float exp_sum_body(float *x, int64_t n, float max)
{
    int64_t i = 0;
    v8f v, acc = {0};
    for (; i + 8 <= n; i += 8) {
        v_load(&v, x + i);
        v -= max;
        v_exp(&v);
        acc += v;
        v_store(x + i, &v);
    }
    float sum = 0.0f;
    if (i < n) {
        float buf[8];
        for (int j = 0; j < 8; j++)
            buf[j] = j < n - i ? x[i + j] - max : -1000.0f; /* pads exp to 0 */
        v_load(&v, buf);
        v_exp(&v);
        acc += v;
        v_store(buf, &v);
        memcpy(x + i, buf, (size_t)(n - i) * sizeof(float));
    }
    for (int j = 0; j < 8; j++)
        sum += acc[j];
    return sum;
}

AI void affine_body(float *y, const float *x, int64_t n, float shift, float a, float b, int silu)
{
    int64_t i = 0;
    v8f v;
    for (; i + 8 <= n; i += 8) {
        v_load(&v, x + i);
        v = (v - shift) * a + b;
        if (silu)
            v_x_sigmoid(&v, 1.0f);
        v_store(y + i, &v);
    }
    if (i < n) {
        float buf[8] = {0};
        memcpy(buf, x + i, (size_t)(n - i) * sizeof(float));
        v_load(&v, buf);
        v = (v - shift) * a + b;
        if (silu)
            v_x_sigmoid(&v, 1.0f);
        v_store(buf, &v);
        memcpy(y + i, buf, (size_t)(n - i) * sizeof(float));
    }
}

/* Two builds of each body; the _avx2 ones run only when the CPU has it. */
#if MD_X86
#define MD_VARIANTS(ret, name, params, call)                                                 \
    static ret name##_gen params { return call; }                                            \
    MD_TARGET_AVX2 static ret name##_avx2 params { return call; }
#define MD_PICK(simd, name) ((simd) ? name##_avx2 : name##_gen)
#else
#define MD_VARIANTS(ret, name, params, call) static ret name##_gen params { return call; }
#define MD_PICK(simd, name) name##_gen
#endif

MD_VARIANTS(void, silu, (float *y, const float *x, int64_t n), unary_body(y, x, n, OP_SILU))
MD_VARIANTS(void, gelu_erf, (float *y, const float *x, int64_t n), unary_body(y, x, n, OP_GELU_ERF))
MD_VARIANTS(void, gelu_tanh, (float *y, const float *x, int64_t n),
            unary_body(y, x, n, OP_GELU_TANH))
MD_VARIANTS(void, quick_gelu, (float *y, const float *x, int64_t n),
            unary_body(y, x, n, OP_QUICK_GELU))
MD_VARIANTS(void, geglu, (float *y, const float *a, const float *g, int64_t n),
            geglu_body(y, a, g, n))
MD_VARIANTS(float, exp_sum, (float *x, int64_t n, float max), exp_sum_body(x, n, max))
MD_VARIANTS(void, affine,
            (float *y, const float *x, int64_t n, float shift, float a, float b, int silu),
            affine_body(y, x, n, shift, a, b, silu))

void md_vm_silu(int simd, float *y, const float *x, int64_t n)
{
    MD_PICK(simd, silu)(y, x, n);
}

void md_vm_gelu_erf(int simd, float *y, const float *x, int64_t n)
{
    MD_PICK(simd, gelu_erf)(y, x, n);
}

void md_vm_gelu_tanh(int simd, float *y, const float *x, int64_t n)
{
    MD_PICK(simd, gelu_tanh)(y, x, n);
}

void md_vm_quick_gelu(int simd, float *y, const float *x, int64_t n)
{
    MD_PICK(simd, quick_gelu)(y, x, n);
}

void md_vm_geglu(int simd, float *y, const float *a, const float *g, int64_t n)
{
    MD_PICK(simd, geglu)(y, a, g, n);
}

float md_vm_exp_sum(int simd, float *x, int64_t n, float max)
{
    return MD_PICK(simd, exp_sum)(x, n, max);
}

void md_vm_affine(int simd, float *y, const float *x, int64_t n, float shift, float a, float b,
                  int silu)
{
    /* Constant `silu` per call so each build drops the unused branch. */
    if (silu)
        MD_PICK(simd, affine)(y, x, n, shift, a, b, 1);
    else
        MD_PICK(simd, affine)(y, x, n, shift, a, b, 0);
}

float md_vm_max(const float *x, int64_t n)
{
    float m[8];
    int64_t i = 0;
    for (int j = 0; j < 8; j++)
        m[j] = n > 0 ? x[0] : 0.0f;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
    for (; i < n; i++)
        m[0] = x[i] > m[0] ? x[i] : m[0];
    float r = m[0];
    for (int j = 1; j < 8; j++)
        r = m[j] > r ? m[j] : r;
    return r;
}

#if MD_X86
__attribute__((target("avx,f16c"))) static void f16_hw(float *dst, const uint16_t *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++)
        dst[i] = md_f16_to_f32(src[i]);
}
#endif

void md_vm_f16_to_f32(int f16c, float *dst, const uint16_t *src, int64_t n)
{
#if MD_X86
    if (f16c) {
        f16_hw(dst, src, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++)
        dst[i] = md_f16_to_f32(src[i]);
}

void md_vm_bf16_to_f32(float *dst, const uint16_t *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)src[i] << 16;
        memcpy(dst + i, &bits, sizeof bits);
    }
}

int md_vm_detect_simd(void)
{
#if MD_X86
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

int md_vm_detect_f16c(void)
{
#if MD_X86 && defined(__clang__) && __clang_major__ < 15
    /* clang before 15 rejects "f16c" in __builtin_cpu_supports: read the
     * CPUID bit itself (leaf 1, ECX); "avx" still covers the OS's support. */
    unsigned a, b, c, d;
    return __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
#elif MD_X86
    return __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}
