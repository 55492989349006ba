#version 450
// y = x + bias[plane]: x [B, C, ...], one bias per (image, channel) plane.
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer B { float bias[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n, inner, xo, bo, yo; } p;

void main()
{
    uint stride = gl_NumWorkGroups.x * 256u;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride)
        y[p.yo + i] = x[p.xo + i] + bias[p.bo + i / p.inner];
}
