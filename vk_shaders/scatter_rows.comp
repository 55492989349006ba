#version 450
// y[rows[i], :] += w[i] * x[i, :] (MoE: an expert's output back to its
// tokens). Rows are distinct within one call, so no two invocations write
// the same element.
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer R { int rows[]; };
layout(std430, binding = 2) readonly buffer Wt { float wt[]; };
layout(std430, binding = 3) buffer Y { float y[]; };
layout(push_constant) uniform P { uint n, d, xo, yo, has_w; } p;

void main()
{
    uint stride = gl_NumWorkGroups.x * 256u;
    for (uint i = gl_GlobalInvocationID.x; i < p.n * p.d; i += stride) {
        uint r = i / p.d, c = i - r * p.d;
        float w = p.has_w != 0u ? wt[r] : 1.0;
        uint dst = p.yo + uint(rows[r]) * p.d + c;
        y[dst] += w * x[p.xo + i];
    }
}
