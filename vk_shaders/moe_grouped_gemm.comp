#version 450
// One dispatch over all experts of an MoE layer: y[s] = a[s] w[e]^T + b[e]
// for every slot s of expert e's group (moe_permute.comp's route). The grid
// is fixed (output-column tiles, row tiles up to the most rows one expert
// can have, experts) and a workgroup whose tile lies past its expert's
// rows returns at once, so the counts are never read back by the host.
// Only slots in [s0, s1) are computed (a chunk, when a full intermediate
// would not fit one binding). GATHER: a row s is x[route row of s] (the
// tokens); else a[s - xsub]. Tiling as in gemm.comp.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = 16, local_size_y = 16) in;
layout(constant_id = 0) const uint DT_W = 0;
layout(constant_id = 1) const uint DT_B = 0;
layout(constant_id = 2) const uint TM = 4;
layout(constant_id = 3) const uint TN = 4;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { uint w[]; };     // [E, N, K]
layout(std430, binding = 2) readonly buffer B { uint bias[]; };  // [E, N]
layout(std430, binding = 3) readonly buffer R { uint route[]; }; // count[E], offset[E], rows[]
layout(std430, binding = 4) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P {
    uint N, K, xo, wo, bo, yo, ro, E, has_bias, gather, s0, s1, xsub, ysub;
} p;

const uint BM = 16 * TM, BN = 16 * TN, BK = 16;
shared float As[BK][BM + 1];
shared float Bs[BK][BN + 1];

void main()
{
    uint e = gl_WorkGroupID.z;
    uint count = route[p.ro + e], first = route[p.ro + p.E + e];
    uint lo = max(first, p.s0), hi = min(first + count, p.s1);
    uint m0 = lo + gl_WorkGroupID.y * BM;
    if (m0 >= hi)
        return; // the whole workgroup: past this expert's rows

    uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
    uint t = ty * 16u + tx;
    uint n0 = gl_WorkGroupID.x * BN;
    uint wbase = p.wo + e * p.N * p.K, bbase = p.bo + e * p.N;

    // The A rows this invocation loads, resolved once.
    uint arow[TM];
    bool aok[TM];
    for (uint i = 0; i < TM; i++) {
        uint m = m0 + (t + 256u * i) / BK;
        aok[i] = m < hi;
        arow[i] = !aok[i] ? 0u : p.gather != 0u ? route[p.ro + 2u * p.E + m] : m - p.xsub;
    }

    float acc[TM][TN];
    for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++)
            acc[i][j] = 0.0;

    for (uint k0 = 0; k0 < p.K; k0 += BK) {
        for (uint i = 0; i < TM; i++) {
            uint lin = t + 256u * i;
            uint r = lin / BK, kk = lin % BK;
            uint k = k0 + kk;
            As[kk][r] = (aok[i] && k < p.K) ? x[p.xo + arow[i] * p.K + k] : 0.0;
        }
        for (uint j = 0; j < TN; j++) {
            uint lin = t + 256u * j;
            uint r = lin / BK, kk = lin % BK;
            uint n = n0 + r, k = k0 + kk;
            Bs[kk][r] = (n < p.N && k < p.K) ? MD_WEIGHT(w, DT_W, wbase + n * p.K + k) : 0.0;
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
        float bn = p.has_bias != 0u ? MD_WEIGHT(bias, DT_B, bbase + n) : 0.0;
        for (uint i = 0; i < TM; i++) {
            uint m = m0 + ty + 16u * i;
            if (m < hi)
                y[p.yo + (m - p.ysub) * p.N + n] = acc[i][j] + bn;
        }
    }
}
