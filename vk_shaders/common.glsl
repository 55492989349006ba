// Shared helpers. Weights arrive as 32-bit words in their stored dtype
// (0 f32, 1 f16, 2 bf16), so F16/BF16 stay half-size in device memory and
// no 16-bit storage feature is needed.

float md_weight_word(uint word, uint i, uint dt)
{
    if (dt == 0u)
        return uintBitsToFloat(word);
    uint h = (i & 1u) != 0u ? (word >> 16) : (word & 0xffffu);
    if (dt == 1u)
        return unpackHalf2x16(h).x;
    return uintBitsToFloat(h << 16);
}

// Element i of a weight stored in dtype dt, read from the words of `buf`.
#define MD_WEIGHT(buf, dt, i) md_weight_word(buf[(dt) == 0u ? (i) : ((i) >> 1)], (i), (dt))

float md_silu(float x)
{
    return x / (1.0 + exp(-x));
}

// GELU(x) = x/2 erfc(-x/sqrt2); erfc by the Chebyshev-fitted form with
// fractional error below 1.2e-7 (the CPU backend uses the same form).
float md_gelu_erf(float x)
{
    float u = x * -0.70710678118654752;
    float z = abs(u);
    float t = 1.0 / (1.0 + 0.5 * z);
    float p = 0.17087277 * t - 0.82215223;
    p = p * t + 1.48851587;
    p = p * t - 1.13520398;
    p = p * t + 0.27886807;
    p = p * t - 0.18628806;
    p = p * t + 0.09678418;
    p = p * t + 0.37409196;
    p = p * t + 1.00002368;
    p = p * t - 1.26551223;
    float erfc_z = t * exp(p - z * z);
    float erfc_u = u < 0.0 ? 2.0 - erfc_z : erfc_z;
    return 0.5 * x * erfc_u;
}

#ifdef MD_FP16
// Elements i and i+1 of a weight as float16, zero past the `left` elements
// that exist. An F16 pair starting at an even index is one word, taken as
// is; anything else is decoded and rounded to fp16.
#define MD_WEIGHT_PAIR16(buf, dt, i, left)                                      \
    ((dt) == 1u && ((i) & 1u) == 0u && (left) >= 2u                             \
         ? unpackFloat2x16(buf[(i) >> 1])                                       \
         : f16vec2((left) > 0u ? MD_WEIGHT(buf, dt, i) : 0.0,                   \
                   (left) > 1u ? MD_WEIGHT(buf, dt, (i) + 1u) : 0.0))
#endif
