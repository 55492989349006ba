#version 450
// linear: y[M,N] = x[M,K] w[N,K]^T + b[N]. Output tiles of (16 TM)x(16 TN)
// (64x64 at most), K in steps of 16 through shared memory; each invocation
// owns TM x TN outputs strided by 16, so that stores of neighbouring
// invocations are contiguous.
//
// Compiled twice (runtime/vulkan/vulkan.cmake): as is (f32 arithmetic) and
// with MD_FP16 (gemm_f16): the tiles hold float16 pairs along K, products
// are fp16 (two per f16vec2 multiply), sums over K stay fp32. Half the
// bytes per tile, so K advances 32 per barrier at the f32 tile's footprint.
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
layout(push_constant) uniform P { uint M, N, K, xo, wo, bo, yo, has_bias; } p;

#ifndef MD_FP16
const uint BM = 16 * TM, BN = 16 * TN, BK = 16;
shared float As[BK][BM + 1];
shared float Bs[BK][BN + 1];
#else
// BP pairs of K per step: 256 invocations x TM loads fill BM rows x BP pairs.
const uint BM = 16 * TM, BN = 16 * TN, BP = 16, BK = 2 * BP;
shared f16vec2 As[BP][BM + 1];
shared f16vec2 Bs[BP][BN + 1];
#endif

void main()
{
    uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
    uint t = ty * 16u + tx;
    uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
    float acc[TM][TN];
    for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++)
            acc[i][j] = 0.0;

    for (uint k0 = 0; k0 < p.K; k0 += BK) {
#ifndef MD_FP16
        for (uint i = 0; i < TM; i++) {
            uint lin = t + 256u * i;
            uint r = lin / BK, kk = lin % BK;
            uint m = m0 + r, k = k0 + kk;
            As[kk][r] = (m < p.M && k < p.K) ? x[p.xo + m * p.K + k] : 0.0;
        }
        for (uint j = 0; j < TN; j++) {
            uint lin = t + 256u * j;
            uint r = lin / BK, kk = lin % BK;
            uint n = n0 + r, k = k0 + kk;
            Bs[kk][r] = (n < p.N && k < p.K) ? MD_WEIGHT(w, DT_W, p.wo + n * p.K + k) : 0.0;
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
        // Each invocation loads the pair (k, k+1) of one row: consecutive
        // invocations walk along K, as in the f32 variant.
        for (uint i = 0; i < TM; i++) {
            uint lin = t + 256u * i;
            uint r = lin / BP, kp = lin % BP;
            uint m = m0 + r, k = k0 + 2u * kp;
            vec2 v = vec2(0.0);
            if (m < p.M) {
                uint base = p.xo + m * p.K;
                if (k < p.K)
                    v.x = x[base + k];
                if (k + 1u < p.K)
                    v.y = x[base + k + 1u];
            }
            As[kp][r] = f16vec2(v);
        }
        for (uint j = 0; j < TN; j++) {
            uint lin = t + 256u * j;
            uint r = lin / BP, kp = lin % BP;
            uint n = n0 + r, k = k0 + 2u * kp;
            uint left = n < p.N ? p.K - min(k, p.K) : 0u;
            Bs[kp][r] = MD_WEIGHT_PAIR16(w, DT_W, p.wo + n * p.K + k, left);
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

    for (uint j = 0; j < TN; j++) {
        uint n = n0 + tx + 16u * j;
        if (n >= p.N)
            continue;
        float bn = p.has_bias != 0u ? MD_WEIGHT(bias, DT_B, p.bo + n) : 0.0;
        for (uint i = 0; i < TM; i++) {
            uint m = m0 + ty + 16u * i;
            if (m < p.M)
                y[p.yo + m * p.N + n] = acc[i][j] + bn;
        }
    }
}
