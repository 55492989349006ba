#version 450
// Fused multi-head attention with an online softmax: a workgroup takes BR
// queries of one (image, head) and streams the keys in tiles of BC, keeping
// a running max and sum per query, so no Nq x Nk matrix ever exists.
// RT = 64 / BR invocations share a query row: each holds every RT-th output
// column and repeats the (cheap) row statistics instead of syncing them.
// Head sizes come in as specialization constants, which size the tiles.
// Compiled twice: f32, and MD_FP16 (attention_f16): Q, K, V tiles in
// float16 (Q and K as pairs along the head channels), fp16 products, fp32
// sums; the scores, the softmax statistics and the outputs stay fp32.
#ifdef MD_FP16
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif
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

#ifndef MD_FP16
shared float sQ[BR * D];
shared float sK[BC * DP];
shared float sV[BC * DV];
#else
const uint D2 = (D + 1) / 2, DP2 = D2 + 1; // channel pairs (an odd D pads a zero)
shared f16vec2 sQ[BR * D2];
shared f16vec2 sK[BC * DP2];
shared float16_t sV[BC * DV];
#endif
shared float sS[BR * BC];

const float NEG = -1.0e30;

void main()
{
    uint t = gl_LocalInvocationIndex;
    uint row = t / RT, sub = t % RT;
    uint q0 = gl_WorkGroupID.x * BR, h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;

#ifndef MD_FP16
    for (uint i = t; i < BR * D; i += 64u) {
        uint r = i / D, d = i - r * D;
        uint qi = q0 + r;
        sQ[i] = qi < p.nq ? q[p.qo + (b * p.nq + qi) * p.cq + h * D + d] : 0.0;
    }
#else
    for (uint i = t; i < BR * D2; i += 64u) {
        uint r = i / D2, d = 2u * (i - r * D2);
        uint qi = q0 + r;
        vec2 v = vec2(0.0);
        if (qi < p.nq) {
            uint base = p.qo + (b * p.nq + qi) * p.cq + h * D + d;
            v.x = q[base];
            if (d + 1u < D)
                v.y = q[base + 1u];
        }
        sQ[i] = f16vec2(v);
    }
#endif

    float m = NEG, l = 0.0;
    float acc[DVR];
    for (uint j = 0; j < DVR; j++)
        acc[j] = 0.0;

    // causal: no query of this block sees keys past its last query
    uint kend = p.causal != 0u ? min(p.nk, q0 + BR) : p.nk;
    for (uint k0 = 0; k0 < kend; k0 += BC) {
        barrier(); // the previous tile is no longer read
#ifndef MD_FP16
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
#else
        for (uint i = t; i < BC * D2; i += 64u) {
            uint c = i / D2, dp = i - c * D2, d = 2u * dp;
            uint kj = k0 + c;
            vec2 kv = vec2(0.0);
            if (kj < p.nk) {
                uint base = p.ko + (b * p.nk + kj) * p.cq + h * D + d;
                kv.x = k[base];
                if (d + 1u < D)
                    kv.y = k[base + 1u];
            }
            sK[c * DP2 + dp] = f16vec2(kv);
        }
        for (uint i = t; i < BC * DV; i += 64u) {
            uint c = i / DV, d = i - c * DV;
            uint kj = k0 + c;
            sV[i] = float16_t(kj < p.nk ? v[p.vo + (b * p.nk + kj) * p.cv + h * DV + d] : 0.0);
        }
#endif
        barrier();
        for (uint i = t; i < BR * BC; i += 64u) {
            uint r = i / BC, c = i - r * BC;
            uint kj = k0 + c, qi = q0 + r;
            float s = NEG;
            if (kj < p.nk && (p.causal == 0u || kj <= qi)) {
                float dot = 0.0;
#ifndef MD_FP16
                for (uint d = 0; d < D; d++)
                    dot = fma(sQ[r * D + d], sK[c * DP + d], dot);
#else
                for (uint dp = 0; dp < D2; dp++) {
                    f16vec2 pr = sQ[r * D2 + dp] * sK[c * DP2 + dp];
                    dot += float(pr.x) + float(pr.y);
                }
#endif
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
#ifdef MD_FP16
                float16_t e16 = float16_t(e);
#endif
                for (uint j = 0; j < DVR; j++) {
                    uint col = sub + RT * j;
#ifndef MD_FP16
                    if (col < DV)
                        acc[j] = fma(e, sV[c * DV + col], acc[j]);
#else
                    if (col < DV)
                        acc[j] += float(e16 * sV[c * DV + col]);
#endif
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
