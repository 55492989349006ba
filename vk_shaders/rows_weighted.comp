#version 450
// y [R, D] += w[r] * x [R, D] (MoE: an expert that took every token).
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Wt { float wt[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
layout(push_constant) uniform P { uint n, d, xo, yo; } p;

void main()
{
    uint stride = gl_NumWorkGroups.x * 256u;
    for (uint i = gl_GlobalInvocationID.x; i < p.n * p.d; i += stride)
        y[p.yo + i] += wt[i / p.d] * x[p.xo + i];
}
