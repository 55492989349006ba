#version 450
// GEGLU: x [rows, 2H] -> y [rows, H] = x[:, :H] * gelu(x[:, H:]).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n, h, xo, yo; } p;

void main()
{
    uint stride = gl_NumWorkGroups.x * 256u;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
        uint r = i / p.h, c = i - r * p.h;
        uint base = p.xo + r * 2u * p.h + c;
        y[p.yo + i] = x[base] * md_gelu_erf(x[base + p.h]);
    }
}
