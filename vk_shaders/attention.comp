#version 450
// Fused multi-head attention with an online softmax: a workgroup takes BR
// queries of one (image, head) and streams the keys in tiles of BC, keeping
// a running max and sum per query, so no Nq x Nk matrix ever exists.
// RT = 64 / BR invocations share a query row: each holds every RT-th output
// column and repeats the (cheap) row statistics instead of syncing them.
// Head sizes come in as specialization constants, which size the tiles.
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint D = 64;   // q/k channels per head
layout(constant_id = 1) const uint DV = 64;  // v channels per head
layout(constant_id = 2) const uint BC = 16;  // keys per tile
const uint BR = 16, RT = 64 / BR;
const uint DP = D + 1; // padded K rows: scores read K across rows
const uint DVR = (DV + RT - 1) / RT;

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer V { float v[]; };
layout(std430, binding = 3) writeonly buffer O { float o[]; };
layout(push_constant) uniform P {
    uint nq, nk, cq, cv, causal, qo, ko, vo, oo;
    float scale;
} p;

shared float sQ[BR * D];
shared float sK[BC * DP];
shared float sV[BC * DV];
shared float sS[BR * BC];

const float NEG = -1.0e30;

void main()
{
    uint t = gl_LocalInvocationIndex;
    uint row = t / RT, sub = t % RT;
    uint q0 = gl_WorkGroupID.x * BR, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;

    for (uint i = t; i < BR * D; i += 64u) {
        uint r = i / D, d = i - r * D;
        uint qi = q0 + r;
        sQ[i] = qi < p.nq ? q[p.qo + (b * p.nq + qi) * p.cq + h * D + d] : 0.0;
    }

    float m = NEG, l = 0.0;
    float acc[DVR];
    for (uint j = 0; j < DVR; j++)
        acc[j] = 0.0;

    // causal: no query of this block sees keys past its last query
    uint kend = p.causal != 0u ? min(p.nk, q0 + BR) : p.nk;
    for (uint k0 = 0; k0 < kend; k0 += BC) {
        barrier(); // the previous tile is no longer read
        for (uint i = t; i < BC * D; i += 64u) {
            uint c = i / D, d = i - c * D;
            uint kj = k0 + c;
            sK[c * DP + d] = kj < p.nk ? k[p.ko + (b * p.nk + kj) * p.cq + h * D + d] : 0.0;
        }
        for (uint i = t; i < BC * DV; i += 64u) {
            uint c = i / DV, d = i - c * DV;
            uint kj = k0 + c;
            sV[i] = kj < p.nk ? v[p.vo + (b * p.nk + kj) * p.cv + h * DV + d] : 0.0;
        }
        barrier();
        for (uint i = t; i < BR * BC; i += 64u) {
            uint r = i / BC, c = i - r * BC;
            uint kj = k0 + c, qi = q0 + r;
            float s = NEG;
            if (kj < p.nk && (p.causal == 0u || kj <= qi)) {
                float dot = 0.0;
                for (uint d = 0; d < D; d++)
                    dot = fma(sQ[r * D + d], sK[c * DP + d], dot);
                s = dot * p.scale;
            }
            sS[i] = s;
        }
        barrier();

        float mt = NEG;
        for (uint c = 0; c < BC; c++)
            mt = max(mt, sS[row * BC + c]);
        float mn = max(m, mt);
        if (mn > 0.5 * NEG) { // the row has seen a key: update it
            float alpha = exp(m - mn);
            l *= alpha;
            for (uint j = 0; j < DVR; j++)
                acc[j] *= alpha;
            for (uint c = 0; c < BC; c++) {
                float s = sS[row * BC + c];
                float e = s > 0.5 * NEG ? exp(s - mn) : 0.0;
                l += e;
                for (uint j = 0; j < DVR; j++) {
                    uint col = sub + RT * j;
                    if (col < DV)
                        acc[j] = fma(e, sV[c * DV + col], acc[j]);
                }
            }
            m = mn;
        }
    }

    uint qi = q0 + row;
    if (qi < p.nq) {
        float inv = l > 0.0 ? 1.0 / l : 0.0;
        for (uint j = 0; j < DVR; j++) {
            uint col = sub + RT * j;
            if (col < DV)
                o[p.oo + (b * p.nq + qi) * p.cv + h * DV + col] = acc[j] * inv;
        }
    }
}
