#version 450
// The weighted sum back to the tokens: y[r] = sum_i w[r,i] * out[slot of
// (r,i)], from 0, in top-k order (SEQ, the sequence mode's order) or in
// ascending expert index (token mode), as the host path adds them. Every
// element is written by one invocation: no atomics, no fill first.
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer O { float o[]; };
layout(std430, binding = 1) readonly buffer T { uint slot_of[]; };
layout(std430, binding = 2) readonly buffer C { float choice[]; };
layout(std430, binding = 3) readonly buffer Wt { float weight[]; };
layout(std430, binding = 4) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint rows, d, k, seq, oo, to, co, wo, yo; } p;

void main()
{
    uint stride = gl_NumWorkGroups.x * 256u;
    for (uint i = gl_GlobalInvocationID.x; i < p.rows * p.d; i += stride) {
        uint r = i / p.d, c = i - r * p.d, at = r * p.k;
        float acc = 0.0;
        int prev = -1;
        for (uint j = 0u; j < p.k; j++) {
            uint q = j;
            if (p.seq == 0u) { // the pick with the next larger expert index
                uint best = 0xffffffffu;
                for (uint u = 0u; u < p.k; u++) {
                    uint ex = uint(choice[p.co + at + u]);
                    if (int(ex) > prev && ex < best) {
                        best = ex;
                        q = u;
                    }
                }
                prev = int(best);
            }
            acc += weight[p.wo + at + q] * o[p.oo + slot_of[p.to + at + q] * p.d + c];
        }
        y[p.yo + i] = acc;
    }
}
