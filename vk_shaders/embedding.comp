#version 450
// y [n, dim] = table[ids[i]]; an id outside the table gives a zero row.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint DT_T = 0;
layout(std430, binding = 0) readonly buffer T { uint table[]; };
layout(std430, binding = 1) readonly buffer I { int ids[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n, dim, vocab, to, yo; } p;

void main()
{
    uint stride = gl_NumWorkGroups.x * 256u;
    for (uint i = gl_GlobalInvocationID.x; i < p.n * p.dim; i += stride) {
        uint r = i / p.dim, c = i - r * p.dim;
        int id = ids[r];
        y[p.yo + i] = (id < 0 || uint(id) >= p.vocab) ? 0.0
                                                      : MD_WEIGHT(table, DT_T, p.to + uint(id) * p.dim + c);
    }
}
