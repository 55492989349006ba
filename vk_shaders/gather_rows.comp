#version 450
// y [n, D] = x[rows[i], :] (MoE: the tokens of one expert).
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer R { int rows[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n, d, xo, yo; } p;

void main()
{
    uint stride = gl_NumWorkGroups.x * 256u;
    for (uint i = gl_GlobalInvocationID.x; i < p.n * p.d; i += stride) {
        uint r = i / p.d, c = i - r * p.d;
        y[p.yo + i] = x[p.xo + uint(rows[r]) * p.d + c];
    }
}
