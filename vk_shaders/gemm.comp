#version 450
// linear: y[M,N] = x[M,K] w[N,K]^T + b[N]. Output tiles of (16 TM)x(16 TN)
// (64x64 at most), K in steps of 16 through shared memory; each invocation
// owns TM x TN outputs strided by 16, so that stores of neighbouring
// invocations are contiguous.
#extension GL_GOOGLE_include_directive : require
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

const uint BM = 16 * TM, BN = 16 * TN, BK = 16;
shared float As[BK][BM + 1];
shared float Bs[BK][BN + 1];

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
