#version 450
// Elementwise activation; ACT follows md_act (1 SiLU, 2 GELU erf,
// 3 GELU tanh, 4 QuickGELU, else identity).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint ACT = 0;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n, xo, yo; } p;

float act(float v)
{
    if (ACT == 1u)
        return md_silu(v);
    if (ACT == 2u)
        return md_gelu_erf(v);
    if (ACT == 3u) // x * sigmoid(2u): no cancelling of 1 + tanh for x < 0
        return v / (1.0 + exp(-1.5957691216057308 * (v + 0.044715 * v * v * v)));
    if (ACT == 4u)
        return v / (1.0 + exp(-1.702 * v));
    return v;
}

void main()
{
    uint stride = gl_NumWorkGroups.x * 256u;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride)
        y[p.yo + i] = act(x[p.xo + i]);
}
