/* Elementwise activations and GEGLU. */
#include "cpu_internal.h"
#include "cpu_vmath.h"

/* Ranges are cut at multiples of 8 so each lands on whole vectors. */
#define MD_ACT_BLOCK 1024

struct act_job {
    int simd;
    md_act act;
    float *y;
    const float *x;
    int64_t n;
};

static void act_range(void *ctx, int64_t begin, int64_t end)
{
    struct act_job *j = ctx;
    int64_t i0 = begin * MD_ACT_BLOCK;
    int64_t i1 = end * MD_ACT_BLOCK < j->n ? end * MD_ACT_BLOCK : j->n;
    float *y = j->y + i0;
    const float *x = j->x + i0;
    int64_t n = i1 - i0;
    switch (j->act) {
    case MD_ACT_SILU: md_vm_silu(j->simd, y, x, n); break;
    case MD_ACT_GELU: md_vm_gelu_erf(j->simd, y, x, n); break;
    case MD_ACT_GELU_TANH: md_vm_gelu_tanh(j->simd, y, x, n); break;
    case MD_ACT_QUICK_GELU: md_vm_quick_gelu(j->simd, y, x, n); break;
    default:
        for (int64_t i = 0; i < n && y != x; i++)
            y[i] = x[i];
        break;
    }
}

void md_cpu_activation(md_backend *be, md_tensor *y, const md_tensor *x, md_act act)
{
    md_cpu *c = md_cpu_of(be);
    int64_t n = md_tensor_numel(x);
    struct act_job j = {c->simd, act, y->data, x->data, n};
    md_cpu_for(c, (n + MD_ACT_BLOCK - 1) / MD_ACT_BLOCK, 16 * MD_ACT_BLOCK, act_range, &j);
}

struct geglu_job {
    int simd;
    float *y;
    const float *x;
    int64_t h;
};

static void geglu_range(void *ctx, int64_t begin, int64_t end)
{
    struct geglu_job *j = ctx;
    for (int64_t r = begin; r < end; r++) {
        const float *x = j->x + r * 2 * j->h;
        md_vm_geglu(j->simd, j->y + r * j->h, x, x + j->h, j->h);
    }
}

void md_cpu_geglu(md_backend *be, md_tensor *y, const md_tensor *x)
{
    md_cpu *c = md_cpu_of(be);
    struct geglu_job j = {c->simd, y->data, x->data, md_cpu_last_dim(y)};
    md_cpu_for(c, md_cpu_rows(y), 16 * j.h, geglu_range, &j);
}
