/* Winograd convolution F(m x m, 3x3), m = 2 or 4, for the 3x3 stride-1
 * pad-1 convolutions of the U-Net and the VAE. Each m x m output tile comes
 * from an (m+2)^2 input tile: with A = m + 2,
 *   U[e] = G g G^T     (filters, [A*A][Cout][Cin])
 *   V[e] = B^T d B     (input tiles, [A*A][Cin][T])
 *   M[e] = U[e] V[e]   (A*A GEMMs through cblas_sgemm)
 *   y    = A^T M A     (output tiles)
 * which needs A^2/(9 m^2) of the direct multiplications (0.44 for m = 2,
 * 0.25 for m = 4). Exact up to float rounding; m = 4 rounds a little more
 * (its transforms have larger coefficients).
 *
 * The filters are transformed at every call, straight from the stored
 * f32/f16/bf16 weights: cached, they would take 16/9 (m = 2) or 4 (m = 4)
 * times the f32 weights (3.5 or 8 GB for SD1.5's U-Net). The transform
 * costs under 10% of a layer with many tiles but up to half of one with
 * few (bench/RESULTS.md), which md_cpu_winograd_pick weighs. Tiles of both batch elements share the GEMMs;
 * they are processed in bands of tile rows, and the filters in blocks of
 * output channels, so that scratch stays bounded on a full-resolution VAE
 * decode and on the widest U-Net layers.
 *
 * The transforms work on 8 tiles (or 8 input channels) at once, one per
 * vector lane, built once generically and once for AVX2+FMA. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#define WG_X86 1
#define WG_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define WG_X86 0
#endif

typedef float v8f __attribute__((vector_size(32)));
#define LANES 8
#define AI static inline __attribute__((always_inline))

/* ---- 1-D transforms: o[i * os] from d[k * ds] ---- */

/* B^T (A x A) */
AI void bt_1d(int m, v8f *o, int os, const v8f *d, int ds)
{
    if (m == 2) {
        v8f d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds];
        o[0] = d0 - d2;
        o[os] = d1 + d2;
        o[2 * os] = d2 - d1;
        o[3 * os] = d1 - d3;
    } else {
        v8f d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds],
            d5 = d[5 * ds];
        v8f a = d4 - 4.0f * d2, b = d3 - 4.0f * d1; /* shared by rows 1, 2 */
        v8f c = d4 - d2, e = 2.0f * (d3 - d1);      /* shared by rows 3, 4 */
        o[0] = 4.0f * d0 - 5.0f * d2 + d4;
        o[os] = a + b;
        o[2 * os] = a - b;
        o[3 * os] = c + e;
        o[4 * os] = c - e;
        o[5 * os] = 4.0f * d1 - 5.0f * d3 + d5;
    }
}

/* G (A x 3) */
AI void g_1d(int m, v8f *o, int os, const v8f *g, int gs)
{
    v8f g0 = g[0], g1 = g[gs], g2 = g[2 * gs];
    if (m == 2) {
        o[0] = g0;
        o[os] = 0.5f * (g0 + g1 + g2);
        o[2 * os] = 0.5f * (g0 - g1 + g2);
        o[3 * os] = g2;
    } else {
        o[0] = 0.25f * g0;
        o[os] = (-1.0f / 6.0f) * (g0 + g1 + g2);
        o[2 * os] = (-1.0f / 6.0f) * (g0 - g1 + g2);
        v8f p = (1.0f / 24.0f) * g0 + (1.0f / 6.0f) * g2, q = (1.0f / 12.0f) * g1;
        o[3 * os] = p + q;
        o[4 * os] = p - q;
        o[5 * os] = g2;
    }
}

/* A^T (m x A) */
AI void at_1d(int m, v8f *o, int os, const v8f *d, int ds)
{
    if (m == 2) {
        o[0] = d[0] + d[ds] + d[2 * ds];
        o[os] = d[ds] - d[2 * ds] - d[3 * ds];
    } else {
        v8f s1 = d[ds] + d[2 * ds], t1 = d[ds] - d[2 * ds];
        v8f s2 = d[3 * ds] + d[4 * ds], t2 = d[3 * ds] - d[4 * ds];
        o[0] = d[0] + s1 + s2;
        o[os] = t1 + 2.0f * t2;
        o[2 * os] = s1 + 4.0f * s2;
        o[3 * os] = t1 + 8.0f * t2 + d[5 * ds];
    }
}

/* Vector loads and stores of n <= 8 lanes; a whole vector is one move
 * (a variable-length copy would be a library call per vector). */
AI void v_load_n(v8f *v, const float *p, int n)
{
    if (n == LANES) {
        memcpy(v, p, sizeof *v);
        return;
    }
    float buf[LANES] = {0};
    memcpy(buf, p, (size_t)n * sizeof(float));
    memcpy(v, buf, sizeof *v);
}

AI void v_store_n(float *p, const v8f *v, int n)
{
    if (n == LANES) {
        memcpy(p, v, sizeof *v);
        return;
    }
    float buf[LANES];
    memcpy(buf, v, sizeof buf);
    memcpy(p, buf, (size_t)n * sizeof(float));
}

/* ---- the three transforms ---- */

struct wino_job {
    const md_cpu *c;
    int m;
    int64_t cin, cout, h, w, tiles_x, tiles_y;
    const md_tensor *wt; /* stored weights [Cout, Cin, 3, 3] */
    const float *x;      /* [B, Cin, H, W] */
    float *y;            /* [B, Cout, H, W] */
    const float *bias;   /* [Cout] or NULL */
    float *u, *v, *mm;   /* U, V and M above, U and M for one block of Cout */
    int64_t co0, cb;     /* that block: output channels [co0, co0 + cb) */
    int64_t r0, rows, t; /* band: global tile rows [r0, r0 + rows), t tiles */
};

/* One item per output channel of the block: 8 input channels per step,
 * one per lane. */
AI void filter_body(const struct wino_job *j, int m, int64_t begin, int64_t end)
{
    const int a = m + 2;
    float buf[LANES * 9];
    for (int64_t lc = begin; lc < end; lc++)
        for (int64_t ci0 = 0; ci0 < j->cin; ci0 += LANES) {
            int n = j->cin - ci0 < LANES ? (int)(j->cin - ci0) : LANES;
            md_cpu_widen(j->c, j->wt, ((j->co0 + lc) * j->cin + ci0) * 9, buf, (int64_t)n * 9);
            v8f g[9], t[6 * 3], u[36];
            for (int k = 0; k < 9; k++) {
                float lane[LANES] = {0};
                for (int l = 0; l < n; l++)
                    lane[l] = buf[l * 9 + k];
                memcpy(&g[k], lane, sizeof g[k]);
            }
            for (int col = 0; col < 3; col++)
                g_1d(m, &t[col], 3, &g[col], 3);
            for (int row = 0; row < a; row++)
                g_1d(m, &u[row * a], 1, &t[row * 3], 1);
            for (int e = 0; e < a * a; e++)
                v_store_n(j->u + (e * j->cb + lc) * j->cin + ci0, &u[e], n);
        }
}

/* One item per (input channel, tile row of the band): 8 tiles per step. */
AI void input_body(const struct wino_job *j, int m, int64_t begin, int64_t end)
{
    const int a = m + 2;
    for (int64_t it = begin; it < end; it++) {
        int64_t ci = it / j->rows, rr = it % j->rows, r = j->r0 + rr;
        int64_t nb = r / j->tiles_y, ty = r % j->tiles_y;
        const float *plane = j->x + (nb * j->cin + ci) * j->h * j->w;
        float *vrow = j->v + ci * j->t + rr * j->tiles_x;
        for (int64_t tx0 = 0; tx0 < j->tiles_x; tx0 += LANES) {
            int n = j->tiles_x - tx0 < LANES ? (int)(j->tiles_x - tx0) : LANES;
            v8f d[36], t[36], o[36];
            for (int ya = 0; ya < a; ya++) {
                int64_t iy = m * ty - 1 + ya;
                /* this input row across the 8 tiles, zero outside the image */
                float seg[LANES * 4 + 2] = {0};
                int64_t x0 = m * tx0 - 1, len = (int64_t)m * n + 2;
                if (iy >= 0 && iy < j->h) {
                    const float *src = plane + iy * j->w;
                    int64_t lo = x0 < 0 ? -x0 : 0, hi = j->w - x0 < len ? j->w - x0 : len;
                    if (hi > lo)
                        memcpy(seg + lo, src + x0 + lo, (size_t)(hi - lo) * sizeof(float));
                }
                for (int xb = 0; xb < a; xb++) {
                    float lane[LANES];
                    for (int l = 0; l < LANES; l++)
                        lane[l] = seg[m * l + xb];
                    memcpy(&d[ya * a + xb], lane, sizeof lane);
                }
            }
            for (int col = 0; col < a; col++)
                bt_1d(m, &t[col], a, &d[col], a);
            for (int row = 0; row < a; row++)
                bt_1d(m, &o[row * a], 1, &t[row * a], 1);
            for (int e = 0; e < a * a; e++)
                v_store_n(vrow + e * j->cin * j->t + tx0, &o[e], n);
        }
    }
}

/* One item per (output channel of the block, tile row of the band): 8
 * tiles per step. */
AI void output_body(const struct wino_job *j, int m, int64_t begin, int64_t end)
{
    const int a = m + 2;
    for (int64_t it = begin; it < end; it++) {
        int64_t lc = it / j->rows, rr = it % j->rows, r = j->r0 + rr, co = j->co0 + lc;
        int64_t nb = r / j->tiles_y, ty = r % j->tiles_y;
        float *plane = j->y + (nb * j->cout + co) * j->h * j->w;
        const float *mrow = j->mm + lc * j->t + rr * j->tiles_x;
        float bias = j->bias ? j->bias[co] : 0.0f;
        for (int64_t tx0 = 0; tx0 < j->tiles_x; tx0 += LANES) {
            int n = j->tiles_x - tx0 < LANES ? (int)(j->tiles_x - tx0) : LANES;
            v8f d[36], t[4 * 6], o[16];
            for (int e = 0; e < a * a; e++)
                v_load_n(&d[e], mrow + e * j->cb * j->t + tx0, n);
            for (int col = 0; col < a; col++)
                at_1d(m, &t[col], a, &d[col], a);
            for (int row = 0; row < m; row++)
                at_1d(m, &o[row * m], 1, &t[row * a], 1);
            for (int row = 0; row < m; row++) {
                int64_t oy = m * ty + row;
                if (oy >= j->h)
                    break;
                float vals[4][LANES];
                for (int col = 0; col < m; col++)
                    memcpy(vals[col], &o[row * m + col], sizeof vals[col]);
                /* lane l holds output columns m*(tx0+l) .. m*(tx0+l)+m-1 */
                float line[LANES * 4];
                for (int l = 0; l < n; l++)
                    for (int col = 0; col < m; col++)
                        line[l * m + col] = vals[col][l] + bias;
                int64_t x0 = m * tx0, len = (int64_t)m * n;
                if (len > j->w - x0)
                    len = j->w - x0;
                memcpy(plane + oy * j->w + x0, line, (size_t)len * sizeof(float));
            }
        }
    }
}

/* Two builds of each body (m fixed so the transforms unroll); the _avx2
 * ones run only when the CPU has AVX2 and FMA. */
#define WG_BODY(name, m)                                                                   \
    static void name##_m##m##_gen(const struct wino_job *j, int64_t b, int64_t e)           \
    {                                                                                      \
        name##_body(j, m, b, e);                                                           \
    }
#define WG_BODY_AVX2(name, m)                                                              \
    WG_TARGET_AVX2 static void name##_m##m##_avx2(const struct wino_job *j, int64_t b,      \
                                                  int64_t e)                               \
    {                                                                                      \
        name##_body(j, m, b, e);                                                           \
    }
WG_BODY(filter, 2)
WG_BODY(filter, 4)
WG_BODY(input, 2)
WG_BODY(input, 4)
WG_BODY(output, 2)
WG_BODY(output, 4)
#if WG_X86
WG_BODY_AVX2(filter, 2)
WG_BODY_AVX2(filter, 4)
WG_BODY_AVX2(input, 2)
WG_BODY_AVX2(input, 4)
WG_BODY_AVX2(output, 2)
WG_BODY_AVX2(output, 4)
#define WG_PICK(j, name)                                                                   \
    ((j)->c->simd ? ((j)->m == 2 ? name##_m2_avx2 : name##_m4_avx2)                        \
                  : ((j)->m == 2 ? name##_m2_gen : name##_m4_gen))
#else
#define WG_PICK(j, name) ((j)->m == 2 ? name##_m2_gen : name##_m4_gen)
#endif

static void filter_range(void *ctx, int64_t b, int64_t e)
{
    struct wino_job *j = ctx;
    WG_PICK(j, filter)(j, b, e);
}

static void input_range(void *ctx, int64_t b, int64_t e)
{
    struct wino_job *j = ctx;
    WG_PICK(j, input)(j, b, e);
}

static void output_range(void *ctx, int64_t b, int64_t e)
{
    struct wino_job *j = ctx;
    WG_PICK(j, output)(j, b, e);
}

/* ---- choice and driver ---- */

int md_cpu_winograd_env(void)
{
    /* Off unless asked for: its GEMMs, like im2col's, go through OpenBLAS,
     * whose sums differ with the thread count, and the different rounding
     * of Winograd made that visible as a different image at -t 1 and -t 2
     * (docs/performance.md). */
    const char *s = getenv("MD_CPU_WINOGRAD");
    if (!s || !*s || !strcmp(s, "0") || !strcmp(s, "off"))
        return MD_CPU_WINOGRAD_OFF;
    if (!strcmp(s, "2"))
        return 2;
    if (!strcmp(s, "4"))
        return 4;
    return MD_CPU_WINOGRAD_AUTO;
}

int md_cpu_winograd_pick(const md_cpu *c, const md_tensor *y, const md_tensor *x,
                         const md_tensor *w, int stride, int pad)
{
    if (c->winograd == MD_CPU_WINOGRAD_OFF || stride != 1 || pad != 1 || w->ndim != 4 ||
        w->shape[2] != 3 || w->shape[3] != 3 || y->shape[2] != x->shape[2] ||
        y->shape[3] != x->shape[3])
        return 0;
    if (c->winograd == 2 || c->winograd == 4)
        return c->winograd;
    int64_t batch = x->shape[0], cin = x->shape[1], h = x->shape[2], wd = x->shape[3];
    /* The filters are transformed at every call, so the tiles sharing them
     * must be many enough; F(4x4) needs more of them (its filters are 36
     * values, its GEMMs thinner). Measured at SD1.5's shapes (bench-conv,
     * bench/RESULTS.md): F(4x4) from 32x32 latents at batch 2 (128 tiles)
     * and the VAE decoder, F(2x2) at 16x16 and 8x8 at batch 2, im2col for
     * fewer tiles or for layers with few channels (conv_in, conv_out). */
    int64_t tiles4 = batch * ((h + 3) / 4) * ((wd + 3) / 4);
    int64_t tiles2 = batch * ((h + 1) / 2) * ((wd + 1) / 2);
    if (cin < 16 || w->shape[0] < 16)
        return 0;
    if (tiles4 >= 128)
        return 4;
    if (tiles2 >= 32)
        return 2;
    return 0;
}

void md_cpu_conv2d_winograd(md_cpu *c, int m, md_tensor *y, const md_tensor *x,
                            const md_tensor *w, const md_tensor *b)
{
    const int64_t a = m + 2, na = a * a;
    int64_t batch = x->shape[0], cin = x->shape[1], h = x->shape[2], wd = x->shape[3];
    int64_t cout = w->shape[0];
    int64_t tiles_y = (h + m - 1) / m, tiles_x = (wd + m - 1) / m;
    int64_t total_rows = batch * tiles_y;
    if (total_rows <= 0 || cout <= 0 || cin <= 0)
        return;

    /* Transformed filters for a block of output channels at a time: all of
     * them would take up to 4x the f32 weights (0.5 GB for a 2560->1280
     * layer at m = 4). */
    int64_t cb = c->wino_filter_budget / (na * cin);
    if (cb >= 32)
        cb -= cb % 16;
    if (cb < 1)
        cb = 1;
    if (cb > cout)
        cb = cout;
    int64_t band = c->wino_budget / (na * (cin + cb) * tiles_x);
    if (band < 1)
        band = 1;
    if (band > total_rows)
        band = total_rows;
    size_t mark = md_arena_mark(&c->arena);
    const float *bf = b ? md_cpu_weight_f32(c, b) : NULL;
    float *u = md_arena_alloc(&c->arena, (size_t)(na * cb * cin) * sizeof(float));
    float *v = md_arena_alloc(&c->arena, (size_t)(na * cin * band * tiles_x) * sizeof(float));
    float *mm = md_arena_alloc(&c->arena, (size_t)(na * cb * band * tiles_x) * sizeof(float));
    if ((b && !bf) || !u || !v || !mm) {
        md_cpu_poison(y);
        md_arena_reset(&c->arena, mark);
        return;
    }
    struct wino_job j = {c, m, cin, cout, h, wd, tiles_x, tiles_y, w, x->data, y->data, bf,
                         u, v, mm, 0, 0, 0, 0, 0};
    /* Bands outer, so each band's input is transformed once; the filters
     * of a single block are transformed once, several blocks per band
     * (only on layers both wide and large, none at SD1.5's sizes). */
    int one_block = cb == cout;
    if (one_block) {
        j.cb = cout;
        md_cpu_for(c, cout, cin * na * 4, filter_range, &j);
    }
    for (j.r0 = 0; j.r0 < total_rows; j.r0 += band) {
        j.rows = total_rows - j.r0 < band ? total_rows - j.r0 : band;
        j.t = j.rows * tiles_x;
        md_cpu_for(c, cin * j.rows, tiles_x * na * 4, input_range, &j);
        for (j.co0 = 0; j.co0 < cout; j.co0 += cb) {
            j.cb = cout - j.co0 < cb ? cout - j.co0 : cb;
            if (!one_block)
                md_cpu_for(c, j.cb, cin * na * 4, filter_range, &j);
            md_cpu_blas_lock();
            for (int64_t e = 0; e < na; e++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)j.cb, (int)j.t,
                            (int)cin, 1.0f, u + e * j.cb * cin, (int)cin, v + e * cin * j.t,
                            (int)j.t, 0.0f, mm + e * j.cb * j.t, (int)j.t);
            md_cpu_blas_unlock();
            md_cpu_for(c, j.cb * j.rows, tiles_x * na * 3, output_range, &j);
        }
    }
    md_arena_reset(&c->arena, mark);
}
