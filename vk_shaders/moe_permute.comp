#version 450
// Groups the (row, expert) pairs of the choice by expert: one workgroup per
// expert e. Its slots start after every pair with a lower expert (so the
// groups lie in expert order) and list its rows in ascending order: a
// prefix scan over blocks of 256 rows, no atomics, the same on every
// device. Writes route = [count[E], offset[E], row of each slot[rows*k]]
// and slot_of[rows*k] (where each (row, i) pair's output lands).
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer C { float choice[]; };
layout(std430, binding = 1) writeonly buffer R { uint route[]; };
layout(std430, binding = 2) writeonly buffer T { uint slot_of[]; };
layout(push_constant) uniform P { uint rows, E, k, co, ro, to; } p;

shared uint sh[256];
shared uint part[16];

// Inclusive prefix sum of v over the workgroup, and the total: two levels
// of 16 (16 invocations each sum a run of 16, then every invocation adds
// up the runs before its own), so three barriers instead of a tree's 16.
uint wg_scan(uint v, out uint total)
{
    uint t = gl_LocalInvocationIndex;
    sh[t] = v;
    barrier();
    if (t < 16u) {
        uint s = 0u;
        for (uint i = 16u * t; i < 16u * t + 16u; i++) {
            s += sh[i];
            sh[i] = s;
        }
        part[t] = s;
    }
    barrier();
    uint r = sh[t];
    total = 0u;
    for (uint i = 0u; i < 16u; i++) {
        r += i < t / 16u ? part[i] : 0u;
        total += part[i];
    }
    barrier(); // sh and part are reused by the next call
    return r;
}

void main()
{
    uint t = gl_LocalInvocationIndex;
    for (uint e = gl_WorkGroupID.x; e < p.E; e += gl_NumWorkGroups.x) {
        uint before = 0u, mine = 0u;
        for (uint r = t; r < p.rows; r += 256u)
            for (uint i = 0u; i < p.k; i++) {
                uint c = uint(choice[p.co + r * p.k + i]);
                before += c < e ? 1u : 0u;
                mine += c == e ? 1u : 0u;
            }
        uint first, count;
        wg_scan(before, first);
        wg_scan(mine, count);
        uint base = first;
        for (uint r0 = 0u; r0 < p.rows; r0 += 256u) {
            uint r = r0 + t, at = p.k; // which of the row's k picks is e, if any
            if (r < p.rows)
                for (uint i = 0u; i < p.k; i++)
                    if (uint(choice[p.co + r * p.k + i]) == e)
                        at = i;
            uint block;
            uint incl = wg_scan(at < p.k ? 1u : 0u, block);
            if (at < p.k) {
                uint slot = base + incl - 1u;
                route[p.ro + 2u * p.E + slot] = r;
                slot_of[p.to + r * p.k + at] = slot;
            }
            base += block;
        }
        if (t == 0u) {
            route[p.ro + e] = count;
            route[p.ro + p.E + e] = first;
        }
    }
}
