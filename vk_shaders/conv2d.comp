#version 450
// conv2d as an implicit GEMM per image: y[Cout, Ho*Wo] = w[Cout, K] col[K, Ho*Wo]
// with K = Cin*kh*kw; the column matrix is never stored, each tile of it is
// gathered from x (zero outside the padded image). Tiles as in gemm.comp,
// and like it compiled twice: f32, and MD_FP16 (conv2d_f16: float16 pairs
// along K in the tiles, fp16 products, fp32 sums).
#extension GL_GOOGLE_include_directive : require
#ifdef MD_FP16
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif
#include "common.glsl"

layout(local_size_x = 16, local_size_y = 16) in;
layout(constant_id = 0) const uint DT_W = 0;
layout(constant_id = 1) const uint DT_B = 0;
// Outputs per invocation along M and N (1..4): smaller tiles for small
// problems, so few rows or channels do not leave most of a tile idle.
layout(constant_id = 2) const uint TM = 4;
layout(constant_id = 3) const uint TN = 4;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { uint w[]; };
layout(std430, binding = 2) readonly buffer B { uint bias[]; };
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P {
    uint cin, h, wd, cout, ho, wo, kh, kw, stride, pad;
    uint xo, wgt_o, bo, yo, has_bias;
} p;

#ifndef MD_FP16
const uint BM = 16 * TM, BN = 16 * TN, BK = 16;
shared float As[BK][BM + 1];
shared float Bs[BK][BN + 1];
#else
const uint BM = 16 * TM, BN = 16 * TN, BP = 16, BK = 2 * BP; // BP pairs of K per step
shared f16vec2 As[BP][BM + 1];
shared f16vec2 Bs[BP][BN + 1];

// Element (kc, pix) of the column matrix: x at the input position that
// tap kc of output pixel pix reads, 0 in the padding or past the matrix.
float column(uint xbase, uint kc, uint K, uint pix, uint npix)
{
    if (kc >= K || pix >= npix)
        return 0.0;
    uint khw = p.kh * p.kw;
    uint ci = kc / khw, rem = kc - ci * khw;
    uint ky = rem / p.kw, kx = rem - ky * p.kw;
    uint oy = pix / p.wo, ox = pix - oy * p.wo;
    int iy = int(oy * p.stride + ky) - int(p.pad);
    int ix = int(ox * p.stride + kx) - int(p.pad);
    if (iy < 0 || iy >= int(p.h) || ix < 0 || ix >= int(p.wd))
        return 0.0;
    return x[xbase + (ci * p.h + uint(iy)) * p.wd + uint(ix)];
}
#endif

void main()
{
    uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
    uint t = ty * 16u + tx;
    uint img = gl_WorkGroupID.z;
    uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
    uint khw = p.kh * p.kw, K = p.cin * khw, npix = p.ho * p.wo;
    uint xbase = p.xo + img * p.cin * p.h * p.wd;
    float acc[TM][TN];
    for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++)
            acc[i][j] = 0.0;

    for (uint k0 = 0; k0 < K; k0 += BK) {
#ifndef MD_FP16
        // weights: consecutive invocations walk along K
        for (uint i = 0; i < TM; i++) {
            uint lin = t + 256u * i;
            uint r = lin / BK, kk = lin % BK;
            uint co = m0 + r, k = k0 + kk;
            As[kk][r] = (co < p.cout && k < K) ? MD_WEIGHT(w, DT_W, p.wgt_o + co * K + k) : 0.0;
        }
        // columns: consecutive invocations walk along output pixels
        for (uint j = 0; j < TN; j++) {
            uint lin = t + 256u * j;
            uint kb = lin / BN, c = lin % BN;
            uint kc = k0 + kb, pix = n0 + c;
            float v = 0.0;
            if (kc < K && pix < npix) {
                uint ci = kc / khw, rem = kc - ci * khw;
                uint ky = rem / p.kw, kx = rem - ky * p.kw;
                uint oy = pix / p.wo, ox = pix - oy * p.wo;
                int iy = int(oy * p.stride + ky) - int(p.pad);
                int ix = int(ox * p.stride + kx) - int(p.pad);
                if (iy >= 0 && iy < int(p.h) && ix >= 0 && ix < int(p.wd))
                    v = x[xbase + (ci * p.h + uint(iy)) * p.wd + uint(ix)];
            }
            Bs[kb][c] = v;
        }
        barrier();
        for (uint kk = 0; kk < BK; kk++) {
            float a[TM], b[TN];
            for (uint i = 0; i < TM; i++)
                a[i] = As[kk][ty + 16u * i];
            for (uint j = 0; j < TN; j++)
                b[j] = Bs[kk][tx + 16u * j];
            for (uint i = 0; i < TM; i++)
                for (uint j = 0; j < TN; j++)
                    acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
        barrier();
#else
        // weights: the pair (k, k+1) of one output channel per load,
        // consecutive invocations walk along K
        for (uint i = 0; i < TM; i++) {
            uint lin = t + 256u * i;
            uint r = lin / BP, kp = lin % BP;
            uint co = m0 + r, k = k0 + 2u * kp;
            uint left = co < p.cout ? K - min(k, K) : 0u;
            As[kp][r] = MD_WEIGHT_PAIR16(w, DT_W, p.wgt_o + co * K + k, left);
        }
        // columns: consecutive invocations walk along output pixels
        for (uint j = 0; j < TN; j++) {
            uint lin = t + 256u * j;
            uint kp = lin / BN, c = lin % BN;
            uint kc = k0 + 2u * kp, pix = n0 + c;
            Bs[kp][c] = f16vec2(column(xbase, kc, K, pix, npix),
                                column(xbase, kc + 1u, K, pix, npix));
        }
        barrier();
        for (uint kp = 0; kp < BP; kp++) {
            f16vec2 a[TM], b[TN];
            for (uint i = 0; i < TM; i++)
                a[i] = As[kp][ty + 16u * i];
            for (uint j = 0; j < TN; j++)
                b[j] = Bs[kp][tx + 16u * j];
            for (uint i = 0; i < TM; i++)
                for (uint j = 0; j < TN; j++) {
                    f16vec2 pr = a[i] * b[j];
                    acc[i][j] += float(pr.x) + float(pr.y);
                }
        }
        barrier();
#endif
    }

    uint ybase = p.yo + img * p.cout * npix;
    for (uint i = 0; i < TM; i++) {
        uint co = m0 + ty + 16u * i;
        if (co >= p.cout)
            continue;
        float bc = p.has_bias != 0u ? MD_WEIGHT(bias, DT_B, p.bo + co) : 0.0;
        for (uint j = 0; j < TN; j++) {
            uint pix = n0 + tx + 16u * j;
            if (pix < npix)
                y[ybase + co * npix + pix] = acc[i][j] + bc;
        }
    }
}
