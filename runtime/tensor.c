#include "tensor.h"

#include <stdio.h>
#include <string.h>

size_t md_dtype_size(md_dtype dt)
{
    switch (dt) {
    case MD_F64: case MD_I64: return 8;
    case MD_F32: case MD_I32: return 4;
    case MD_F16: case MD_BF16: case MD_I16: return 2;
    case MD_I8: case MD_U8: case MD_BOOL: return 1;
    default: return 0;
    }
}

const char *md_dtype_name(md_dtype dt)
{
    static const char *const names[MD_DTYPE_COUNT] = {
        "F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"};
    return (dt >= 0 && dt < MD_DTYPE_COUNT) ? names[dt] : "?";
}

int64_t md_tensor_numel(const md_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

size_t md_tensor_nbytes(const md_tensor *t)
{
    return (size_t)md_tensor_numel(t) * md_dtype_size(t->dtype);
}

const char *md_shape_str(const md_tensor *t, char *buf, size_t cap)
{
    size_t used = 0;
    used += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
    return buf;
}

int md_shape_equal(const md_tensor *t, int ndim, const int64_t *shape)
{
    int a = t->ndim, b = ndim;
    while (a > 0 && t->shape[a - 1] == 1 && a > b)
        a--;
    while (b > 0 && shape[b - 1] == 1 && b > a)
        b--;
    if (a != b)
        return 0;
    for (int i = 0; i < a; i++)
        if (t->shape[i] != shape[i])
            return 0;
    return 1;
}

float md_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                exp--;
            }
            mant &= 0x3ff;
            bits = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t md_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffff;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    if (absx < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (absx < 0x33000000u)
            return (uint16_t)sign;
        /* value = m * 2^(e-150); in units of the half subnormal step 2^-24 */
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e;
        uint32_t half_m = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (half_m & 1)))
            half_m++;
        return (uint16_t)(sign | half_m);
    }
    uint32_t r = absx - 0x38000000u; /* rebias exponent 127 -> 15 */
    uint32_t h = r >> 13;
    uint32_t rem = r & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
}

float md_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

void md_widen_to_f32(md_dtype dt, const void *src, float *dst, size_t n)
{
    if (dt == MD_F32) {
        memcpy(dst, src, n * sizeof(float));
    } else if (dt == MD_F16) {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++)
            dst[i] = md_f16_to_f32(s[i]);
    } else if (dt == MD_BF16) {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++)
            dst[i] = md_bf16_to_f32(s[i]);
    }
}
