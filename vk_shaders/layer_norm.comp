#version 450
// Layer norm over the last dim: one workgroup per row, two-pass statistics.
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
    uint rows, d, xo, yo, go, bo, has_gamma, has_beta;
    float eps;
} p;

#include "reduce.glsl"

void main()
{
    uint t = gl_LocalInvocationIndex;
    // rows may exceed one grid dimension: walk them in a loop
    for (uint r = gl_WorkGroupID.x; r < p.rows; r += gl_NumWorkGroups.x) {
        uint xb = p.xo + r * p.d, yb = p.yo + r * p.d;
        float s = 0.0;
        for (uint i = t; i < p.d; i += 256u)
            s += x[xb + i];
        float mean = md_wg_sum(s) / float(p.d);
        float q = 0.0;
        for (uint i = t; i < p.d; i += 256u) {
            float dv = x[xb + i] - mean;
            q += dv * dv;
        }
        float rstd = inversesqrt(md_wg_sum(q) / float(p.d) + p.eps);
        for (uint i = t; i < p.d; i += 256u) {
            float g = p.has_gamma != 0u ? MD_WEIGHT(gamma, DT_G, p.go + i) : 1.0;
            float b = p.has_beta != 0u ? MD_WEIGHT(beta, DT_B, p.bo + i) : 0.0;
            y[yb + i] = (x[xb + i] - mean) * rstd * g + b;
        }
    }
}
