#version 450
// Batched transpose [rows, cols] -> [cols, rows] through a padded 32x32
// shared tile, so both the reads and the writes are contiguous.
layout(local_size_x = 32, local_size_y = 8) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint rows, cols, xo, yo; } p;

shared float tile[32][33];

void main()
{
    uint bt = gl_WorkGroupID.z;
    uint c0 = gl_WorkGroupID.x * 32u, r0 = gl_WorkGroupID.y * 32u;
    uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
    uint base = bt * p.rows * p.cols;
    for (uint j = ty; j < 32u; j += 8u) {
        uint r = r0 + j, c = c0 + tx;
        if (r < p.rows && c < p.cols)
            tile[j][tx] = x[p.xo + base + r * p.cols + c];
    }
    barrier();
    for (uint j = ty; j < 32u; j += 8u) {
        uint c = c0 + j, r = r0 + tx;
        if (r < p.rows && c < p.cols)
            y[p.yo + base + c * p.rows + r] = tile[tx][j];
    }
}
