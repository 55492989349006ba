#version 450
// Group norm (optionally followed by SiLU): one workgroup per (image, group),
// whose channels are contiguous. Mean, then the variance around it (two
// passes: no cancellation when the mean is large), then the affine.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint DT_G = 0;
layout(constant_id = 1) const uint DT_B = 0;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer G { uint gamma[]; };
layout(std430, binding = 2) readonly buffer B { uint beta[]; };
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P {
    uint channels, groups, spatial, xo, yo, go, bo, has_gamma, has_beta, silu;
    float eps;
} p;

#include "reduce.glsl"

void main()
{
    uint t = gl_LocalInvocationIndex;
    uint bg = gl_WorkGroupID.x;
    uint cpg = p.channels / p.groups;
    uint n = cpg * p.spatial;
    uint xb = p.xo + bg * n, yb = p.yo + bg * n;

    float s = 0.0;
    for (uint i = t; i < n; i += 256u)
        s += x[xb + i];
    float mean = md_wg_sum(s) / float(n);
    float q = 0.0;
    for (uint i = t; i < n; i += 256u) {
        float d = x[xb + i] - mean;
        q += d * d;
    }
    float rstd = inversesqrt(md_wg_sum(q) / float(n) + p.eps);

    uint c0 = (bg % p.groups) * cpg;
    for (uint i = t; i < n; i += 256u) {
        uint c = c0 + i / p.spatial;
        float g = p.has_gamma != 0u ? MD_WEIGHT(gamma, DT_G, p.go + c) : 1.0;
        float b = p.has_beta != 0u ? MD_WEIGHT(beta, DT_B, p.bo + c) : 0.0;
        float v = (x[xb + i] - mean) * rstd * g + b;
        y[yb + i] = p.silu != 0u ? md_silu(v) : v;
    }
}
