#version 450
// y [outer, na + nb] = [a [outer, na], b [outer, nb]] (channel and last-dim
// concatenation both have this form).
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n, na, nb, ao, bo, yo; } p;

void main()
{
    uint stride = gl_NumWorkGroups.x * 256u;
    uint width = p.na + p.nb;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
        uint r = i / width, c = i - r * width;
        y[p.yo + i] = c < p.na ? a[p.ao + r * p.na + c] : b[p.bo + r * p.nb + (c - p.na)];
    }
}
