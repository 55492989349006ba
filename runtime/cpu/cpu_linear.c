/* Linear layers: y = x W^T + b as one OpenBLAS GEMM. */
#include <cblas.h>
#include <string.h>

#include "cpu_internal.h"

/* y rows start as the bias so the GEMM can accumulate onto them (beta = 1)
 * instead of a second pass over y. */
void md_cpu_fill_rows(float *y, const float *row, int64_t rows, int64_t n)
{
    for (int64_t r = 0; r < rows; r++)
        memcpy(y + r * n, row, (size_t)n * sizeof(float));
}

void md_cpu_linear(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                   const md_tensor *b)
{
    md_cpu *c = md_cpu_of(be);
    int64_t out = w->shape[0];
    int64_t in = out > 0 ? md_tensor_numel(w) / out : 0;
    int64_t rows = in > 0 ? md_tensor_numel(x) / in : 0;
    if (rows <= 0 || out <= 0)
        return;
    size_t mark = md_arena_mark(&c->arena);
    const float *wf = md_cpu_weight_f32(c, w);
    const float *bf = b ? md_cpu_weight_f32(c, b) : NULL;
    if (!wf || (b && !bf)) {
        md_cpu_poison(y);
        md_arena_reset(&c->arena, mark);
        return;
    }
    float *yd = y->data;
    if (bf)
        md_cpu_fill_rows(yd, bf, rows, out);
    md_cpu_blas_lock();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)out, (int)in, 1.0f,
                x->data, (int)in, wf, (int)in, bf ? 1.0f : 0.0f, yd, (int)out);
    md_cpu_blas_unlock();
    md_arena_reset(&c->arena, mark);
}
