/* 2-D convolution as im2col + GEMM (3x3 stride-1 ones usually go to
 * cpu_winograd.c instead): y_b [Cout, Ho*Wo] = W [Cout, K] col [K, Ho*Wo],
 * K = Cin*kh*kw. The column buffer covers a band of output rows at a time,
 * so a large image (VAE decoder at full resolution) needs bounded scratch. */
#include <cblas.h>
#include <string.h>

#include "cpu_internal.h"

struct im2col_job {
    float *col;          /* [K, rows*wo] */
    const float *x;      /* one batch element [Cin, H, W] */
    int64_t h, w, kh, kw, wo;
    int64_t oy0, rows;   /* output rows of this band */
    int stride, pad;
};

/* One item is one row of the column matrix: a (channel, ky, kx) triple. */
static void im2col_range(void *ctx, int64_t begin, int64_t end)
{
    struct im2col_job *j = ctx;
    int64_t npix = j->rows * j->wo;
    for (int64_t k = begin; k < end; k++) {
        int64_t ci = k / (j->kh * j->kw), ky = (k / j->kw) % j->kh, kx = k % j->kw;
        const float *plane = j->x + ci * j->h * j->w;
        float *dst = j->col + k * npix;
        for (int64_t r = 0; r < j->rows; r++, dst += j->wo) {
            int64_t iy = (j->oy0 + r) * j->stride - j->pad + ky;
            if (iy < 0 || iy >= j->h) {
                memset(dst, 0, (size_t)j->wo * sizeof(float));
                continue;
            }
            const float *src = plane + iy * j->w;
            if (j->stride == 1) {
                /* ix = ox - pad + kx: a shifted copy with zero edges */
                int64_t lo = j->pad - kx, hi = j->w + j->pad - kx; /* valid ox in [lo, hi) */
                if (lo < 0)
                    lo = 0;
                if (hi > j->wo)
                    hi = j->wo;
                for (int64_t ox = 0; ox < lo && ox < j->wo; ox++)
                    dst[ox] = 0.0f;
                if (hi > lo)
                    memcpy(dst + lo, src + lo - j->pad + kx, (size_t)(hi - lo) * sizeof(float));
                for (int64_t ox = hi > lo ? hi : lo; ox < j->wo; ox++)
                    dst[ox] = 0.0f;
            } else {
                for (int64_t ox = 0; ox < j->wo; ox++) {
                    int64_t ix = ox * j->stride - j->pad + kx;
                    dst[ox] = (ix >= 0 && ix < j->w) ? src[ix] : 0.0f;
                }
            }
        }
    }
}

void md_cpu_conv2d(md_backend *be, md_tensor *y, const md_tensor *x, const md_tensor *w,
                   const md_tensor *b, int stride, int pad)
{
    md_cpu *c = md_cpu_of(be);
    int64_t batch = x->shape[0], cin = x->shape[1], h = x->shape[2], wd = x->shape[3];
    int64_t cout = w->shape[0];
    int64_t kh = w->ndim >= 4 ? w->shape[2] : 1, kw = w->ndim >= 4 ? w->shape[3] : 1;
    int64_t ho = y->shape[2], wo = y->shape[3];
    int64_t kdim = cin * kh * kw, npix = ho * wo;
    if (batch <= 0 || cout <= 0 || npix <= 0)
        return;
    int wino = md_cpu_winograd_pick(c, y, x, w, stride, pad);
    if (wino) {
        md_cpu_conv2d_winograd(c, wino, y, x, w, b);
        return;
    }

    size_t mark = md_arena_mark(&c->arena);
    const float *wf = md_cpu_weight_f32(c, w);
    const float *bf = b ? md_cpu_weight_f32(c, b) : NULL;
    int direct = kh == 1 && kw == 1 && stride == 1 && pad == 0;
    int64_t band = direct ? ho : c->col_budget / (kdim * wo > 0 ? kdim * wo : 1);
    if (band < 1)
        band = 1;
    if (band > ho)
        band = ho;
    float *col = direct ? NULL : md_arena_alloc(&c->arena, (size_t)(kdim * band * wo) * sizeof(float));
    if (!wf || (b && !bf) || (!direct && !col)) {
        md_cpu_poison(y);
        md_arena_reset(&c->arena, mark);
        return;
    }

    for (int64_t n = 0; n < batch; n++) {
        const float *xb = (const float *)x->data + n * cin * h * wd;
        float *yb = (float *)y->data + n * cout * npix;
        if (bf)
            for (int64_t co = 0; co < cout; co++)
                for (int64_t p = 0; p < npix; p++)
                    yb[co * npix + p] = bf[co];
        float beta = bf ? 1.0f : 0.0f;
        if (direct) {
            md_cpu_blas_lock();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cout, (int)npix,
                        (int)kdim, 1.0f, wf, (int)kdim, xb, (int)npix, beta, yb, (int)npix);
            md_cpu_blas_unlock();
            continue;
        }
        for (int64_t oy0 = 0; oy0 < ho; oy0 += band) {
            int64_t rows = ho - oy0 < band ? ho - oy0 : band;
            struct im2col_job j = {col, xb, h, wd, kh, kw, wo, oy0, rows, stride, pad};
            md_cpu_for(c, kdim, rows * wo, im2col_range, &j);
            /* The band's outputs are columns [oy0*wo, (oy0+rows)*wo) of y_b. */
            md_cpu_blas_lock();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cout, (int)(rows * wo),
                        (int)kdim, 1.0f, wf, (int)kdim, col, (int)(rows * wo), beta,
                        yb + oy0 * wo, (int)npix);
            md_cpu_blas_unlock();
        }
    }
    md_arena_reset(&c->arena, mark);
}
