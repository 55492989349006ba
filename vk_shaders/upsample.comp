#version 450
// Nearest 2x upsampling: y[.., i, j] = x[.., i/2, j/2]; an odd output size
// is the 2x result cropped.
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n, h, w, ho, wo, xo, yo; } p;

void main()
{
    uint stride = gl_NumWorkGroups.x * 256u;
    uint plane = p.ho * p.wo;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
        uint pl = i / plane, rem = i - pl * plane;
        uint oy = rem / p.wo, ox = rem - oy * p.wo;
        y[p.yo + i] = x[p.xo + (pl * p.h + oy / 2u) * p.w + ox / 2u];
    }
}
