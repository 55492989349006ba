// Workgroup sum over 256 invocations through shared memory (no subgroup
// operations: subgroup sizes differ between devices, 8 on lavapipe).
shared float md_red[256];

float md_wg_sum(float v)
{
    uint t = gl_LocalInvocationIndex;
    md_red[t] = v;
    barrier();
    for (uint s = 128u; s > 0u; s >>= 1) {
        if (t < s)
            md_red[t] += md_red[t + s];
        barrier();
    }
    float r = md_red[0];
    barrier();
    return r;
}
