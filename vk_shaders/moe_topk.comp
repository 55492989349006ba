#version 450
// MoE routing on the device, the host's rules (moe/router.c): top-k with
// ties to the lower expert index, per-row weights a softmax over the chosen
// experts' logits. MODE 0: per-token top-k, one invocation per row.
// MODE 1 (sequence, first pass): per expert, the logits summed over all
// rows. MODE 2 (sequence, second pass): top-k of those sums (the same for
// every row, recomputed per invocation: E is small), then each row's
// weights. Outputs: choice [rows, k] (expert indices as exact floats, in
// top-k order) and weight [rows, k].
#extension GL_GOOGLE_include_directive : require
#include "float_float.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint MODE = 0;

layout(std430, binding = 0) readonly buffer L { float logit[]; };
layout(std430, binding = 1) buffer S { float colsum[]; }; // [E] (hi, lo) pairs
layout(std430, binding = 2) writeonly buffer C { float choice[]; };
layout(std430, binding = 3) writeonly buffer Wt { float weight[]; };
layout(push_constant) uniform P { uint rows, E, k, lo, so, co, wo; } p;

shared vec2 red[256];

const uint MAXK = 16;

// Sum of one expert's logits over all rows, in float-float (about 44
// bits): a fixed order (strided per invocation, then a fixed tree), so it
// is the same on every device, and close enough to the host's double sum
// that the two choices differ only on near-ties of the summed logits.
void column_sums()
{
    uint t = gl_LocalInvocationIndex;
    for (uint e = gl_WorkGroupID.x; e < p.E; e += gl_NumWorkGroups.x) {
        vec2 acc = vec2(0.0);
        for (uint r = t; r < p.rows; r += 256u)
            acc = md_ff_add(acc, vec2(logit[p.lo + r * p.E + e], 0.0));
        red[t] = acc;
        barrier();
        for (uint s = 128u; s > 0u; s >>= 1) {
            if (t < s)
                red[t] = md_ff_add(red[t], red[t + s]);
            barrier();
        }
        if (t == 0u) {
            colsum[p.so + 2u * e] = red[0].x;
            colsum[p.so + 2u * e + 1u] = red[0].y;
        }
        barrier();
    }
}

// Value of expert e for the selection: a row's logit, or a column sum.
vec2 score(uint r, uint e)
{
    if (MODE == 0u)
        return vec2(logit[p.lo + r * p.E + e], 0.0);
    return vec2(colsum[p.so + 2u * e], colsum[p.so + 2u * e + 1u]);
}

bool greater(vec2 a, vec2 b)
{
    return a.x > b.x || (a.x == b.x && a.y > b.y);
}

void main()
{
    if (MODE == 1u) {
        column_sums();
        return;
    }
    uint stride = gl_NumWorkGroups.x * 256u;
    for (uint r = gl_GlobalInvocationID.x; r < p.rows; r += stride) {
        // The k largest in descending order; strict comparisons in index
        // order leave ties to the lower index (the host's loop exactly).
        uint sel[MAXK];
        for (uint i = 0u; i < p.k; i++) {
            int best = -1;
            vec2 bv = vec2(0.0);
            for (uint e = 0u; e < p.E; e++) {
                bool taken = false;
                for (uint j = 0u; j < i; j++)
                    taken = taken || sel[j] == e;
                vec2 v = score(r, e);
                if (!taken && (best < 0 || greater(v, bv))) {
                    best = int(e);
                    bv = v;
                }
            }
            sel[i] = uint(best);
        }
        // Softmax over the chosen experts' logits of this row.
        float l[MAXK];
        float m = logit[p.lo + r * p.E + sel[0]];
        for (uint i = 0u; i < p.k; i++) {
            l[i] = logit[p.lo + r * p.E + sel[i]];
            m = max(m, l[i]);
        }
        float s = 0.0;
        for (uint i = 0u; i < p.k; i++) {
            l[i] = exp(l[i] - m);
            s += l[i];
        }
        for (uint i = 0u; i < p.k; i++) {
            choice[p.co + r * p.k + i] = float(sel[i]);
            weight[p.wo + r * p.k + i] = l[i] / s;
        }
    }
}
