#version 450
// y [B, N, D] += pos[:N] (pos a weight [Nmax, D]).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint DT_P = 0;
layout(std430, binding = 0) readonly buffer Pos { uint pos[]; };
layout(std430, binding = 1) buffer Y { float y[]; };
layout(push_constant) uniform P { uint total, n, d, po, yo; } p;

void main()
{
    uint stride = gl_NumWorkGroups.x * 256u;
    uint nd = p.n * p.d;
    for (uint i = gl_GlobalInvocationID.x; i < p.total; i += stride)
        y[p.yo + i] += MD_WEIGHT(pos, DT_P, p.po + i % nd);
}
