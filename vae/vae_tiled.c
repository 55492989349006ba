#include "vae_tiled.h"

#include <stdlib.h>
#include <string.h>

/* Tile origins along one side: 0, stride, 2*stride, ..., with the last
 * tile moved back to end at the edge. Returns the count. */
static int tile_starts(int side, int tile, int stride, int *starts, int cap)
{
    if (tile >= side) {
        starts[0] = 0;
        return 1;
    }
    int n = 0;
    for (int s = 0; n < cap; s += stride) {
        starts[n++] = s + tile >= side ? side - tile : s;
        if (s + tile >= side)
            break;
    }
    return n;
}

/* Weight of pixel i of a tile of `len` pixels: ramps up over `ramp` pixels
 * where a neighbour comes before, down where one comes after. Strictly
 * positive, so every pixel has weight. */
static float ramp_weight(int i, int len, int ramp_before, int ramp_after, int before, int after)
{
    float wgt = 1.0f;
    if (before && i < ramp_before)
        wgt = ((float)i + 0.5f) / (float)ramp_before;
    if (after && i >= len - ramp_after) {
        float down = ((float)(len - i) - 0.5f) / (float)ramp_after;
        wgt = down < wgt ? down : wgt;
    }
    return wgt;
}

#define MAX_TILES 1024

md_status md_vae_decode_tiled(const md_vae *v, md_backend *be, const float *z, int h, int w,
                              int tile_px, float *image, md_error *err)
{
    const md_vae_config *c = md_vae_config_of(v);
    const int f = md_vae_factor(v), lc = c->latent_channels, oc = c->out_channels;
    int t = tile_px / f;
    if (t < 1 || tile_px % f)
        return md_fail(err, MD_ERR_INVALID, "VAE tile %d: must be a multiple of %d pixels",
                       tile_px, f);
    if (t >= h && t >= w)
        return md_vae_decode(v, be, z, 1, h, w, image, err);
    const int th = t < h ? t : h, tw = t < w ? t : w;
    const int ov = t / 4 > 1 ? t / 4 : 1; /* overlap, latent pixels */
    int ys[MAX_TILES], xs[MAX_TILES];
    int ny = tile_starts(h, th, th - ov > 0 ? th - ov : 1, ys, MAX_TILES);
    int nx = tile_starts(w, tw, tw - ov > 0 ? tw - ov : 1, xs, MAX_TILES);
    const size_t H = (size_t)h * f, W = (size_t)w * f, tH = (size_t)th * f, tW = (size_t)tw * f;
    float *sub = malloc(sizeof(float) * (size_t)lc * th * tw);
    float *out = malloc(sizeof(float) * (size_t)oc * tH * tW);
    float *wsum = calloc(H * W, sizeof(float));
    float *wy = malloc(sizeof(float) * tH), *wx = malloc(sizeof(float) * tW);
    md_status st = MD_OK;
    if (!sub || !out || !wsum || !wy || !wx)
        st = md_fail(err, MD_ERR_NOMEM, "out of memory for a tiled VAE decode");
    if (st == MD_OK)
        memset(image, 0, sizeof(float) * (size_t)oc * H * W);
    for (int iy = 0; st == MD_OK && iy < ny; iy++) {
        for (int ix = 0; st == MD_OK && ix < nx; ix++) {
            const int y0 = ys[iy], x0 = xs[ix];
            for (int ch = 0; ch < lc; ch++)
                for (int y = 0; y < th; y++)
                    memcpy(sub + ((size_t)ch * th + y) * tw,
                           z + ((size_t)ch * h + y0 + y) * w + x0, sizeof(float) * tw);
            st = md_vae_decode(v, be, sub, 1, th, tw, out, err);
            if (st != MD_OK)
                break;
            /* The ramps span the overlap with the neighbour actually there. */
            int ry = (int)((iy > 0 ? ys[iy - 1] + th - y0 : ov) * f);
            int rx = (int)((ix > 0 ? xs[ix - 1] + tw - x0 : ov) * f);
            int ry_next = iy + 1 < ny ? (y0 + th - ys[iy + 1]) * f : ry;
            int rx_next = ix + 1 < nx ? (x0 + tw - xs[ix + 1]) * f : rx;
            for (size_t y = 0; y < tH; y++)
                wy[y] = ramp_weight((int)y, (int)tH, ry, ry_next, iy > 0, iy + 1 < ny);
            for (size_t x = 0; x < tW; x++)
                wx[x] = ramp_weight((int)x, (int)tW, rx, rx_next, ix > 0, ix + 1 < nx);
            const size_t py0 = (size_t)y0 * f, px0 = (size_t)x0 * f;
            for (size_t y = 0; y < tH; y++)
                for (size_t x = 0; x < tW; x++) {
                    float wt = wy[y] * wx[x];
                    size_t at = (py0 + y) * W + px0 + x;
                    wsum[at] += wt;
                    for (int ch = 0; ch < oc; ch++)
                        image[(size_t)ch * H * W + at] += wt * out[((size_t)ch * tH + y) * tW + x];
                }
        }
    }
    if (st == MD_OK)
        for (size_t i = 0; i < H * W; i++)
            for (int ch = 0; ch < oc; ch++)
                image[(size_t)ch * H * W + i] /= wsum[i];
    free(sub);
    free(out);
    free(wsum);
    free(wy);
    free(wx);
    return st;
}

md_status md_vae_encode_tiled(const md_vae *v, md_backend *be, const float *image, int H, int W,
                              int tile_px, float *mean, float *logvar, md_error *err)
{
    const md_vae_config *c = md_vae_config_of(v);
    const int f = md_vae_factor(v), lc = c->latent_channels, ic = c->in_channels;
    const int h = H / f, w = W / f, t = tile_px / f;
    if (t < 1 || tile_px % f)
        return md_fail(err, MD_ERR_INVALID, "VAE tile %d: must be a multiple of %d pixels",
                       tile_px, f);
    if (t >= h && t >= w)
        return md_vae_encode(v, be, image, 1, H, W, mean, logvar, err);
    const int th = t < h ? t : h, tw = t < w ? t : w;
    const int ov = t / 4 > 1 ? t / 4 : 1;
    int ys[MAX_TILES], xs[MAX_TILES];
    int ny = tile_starts(h, th, th - ov > 0 ? th - ov : 1, ys, MAX_TILES);
    int nx = tile_starts(w, tw, tw - ov > 0 ? tw - ov : 1, xs, MAX_TILES);
    const size_t tH = (size_t)th * f, tW = (size_t)tw * f, n = (size_t)h * w;
    float *sub = malloc(sizeof(float) * (size_t)ic * tH * tW);
    float *m = malloc(sizeof(float) * (size_t)lc * th * tw);
    float *lv = malloc(sizeof(float) * (size_t)lc * th * tw);
    float *wsum = calloc(n, sizeof(float));
    float *wy = malloc(sizeof(float) * th), *wx = malloc(sizeof(float) * tw);
    md_status st = MD_OK;
    if (!sub || !m || !lv || !wsum || !wy || !wx)
        st = md_fail(err, MD_ERR_NOMEM, "out of memory for a tiled VAE encode");
    if (st == MD_OK) {
        memset(mean, 0, sizeof(float) * (size_t)lc * n);
        memset(logvar, 0, sizeof(float) * (size_t)lc * n);
    }
    for (int iy = 0; st == MD_OK && iy < ny; iy++) {
        for (int ix = 0; st == MD_OK && ix < nx; ix++) {
            const int y0 = ys[iy], x0 = xs[ix];
            for (int ch = 0; ch < ic; ch++)
                for (size_t y = 0; y < tH; y++)
                    memcpy(sub + ((size_t)ch * tH + y) * tW,
                           image + ((size_t)ch * H + (size_t)y0 * f + y) * W + (size_t)x0 * f,
                           sizeof(float) * tW);
            st = md_vae_encode(v, be, sub, 1, (int)tH, (int)tW, m, lv, err);
            if (st != MD_OK)
                break;
            int ry = iy > 0 ? ys[iy - 1] + th - y0 : ov, rx = ix > 0 ? xs[ix - 1] + tw - x0 : ov;
            int ry_next = iy + 1 < ny ? y0 + th - ys[iy + 1] : ry;
            int rx_next = ix + 1 < nx ? x0 + tw - xs[ix + 1] : rx;
            for (int y = 0; y < th; y++)
                wy[y] = ramp_weight(y, th, ry, ry_next, iy > 0, iy + 1 < ny);
            for (int x = 0; x < tw; x++)
                wx[x] = ramp_weight(x, tw, rx, rx_next, ix > 0, ix + 1 < nx);
            for (int y = 0; y < th; y++)
                for (int x = 0; x < tw; x++) {
                    float wt = wy[y] * wx[x];
                    size_t at = (size_t)(y0 + y) * w + x0 + x, src = (size_t)y * tw + x;
                    wsum[at] += wt;
                    for (int ch = 0; ch < lc; ch++) {
                        mean[(size_t)ch * n + at] += wt * m[(size_t)ch * th * tw + src];
                        logvar[(size_t)ch * n + at] += wt * lv[(size_t)ch * th * tw + src];
                    }
                }
        }
    }
    if (st == MD_OK)
        for (size_t i = 0; i < n; i++)
            for (int ch = 0; ch < lc; ch++) {
                mean[(size_t)ch * n + i] /= wsum[i];
                logvar[(size_t)ch * n + i] /= wsum[i];
            }
    free(sub);
    free(m);
    free(lv);
    free(wsum);
    free(wy);
    free(wx);
    return st;
}

size_t md_vae_decode_bytes(const md_vae *v, int h, int w)
{
    const md_vae_config *c = md_vae_config_of(v);
    const int f = md_vae_factor(v);
    size_t widest = 0;
    /* the decoder runs its levels from deepest to full resolution */
    for (int l = 0; l < c->levels; l++) {
        size_t side = (size_t)f >> l;
        size_t px = (size_t)h * side * (size_t)w * side;
        size_t b = px * (size_t)c->block_out_channels[l];
        widest = b > widest ? b : widest;
    }
    /* input, output, the skip of a ResNet and the norm's temporary */
    return widest * 4 * sizeof(float);
}

int md_vae_auto_tile(const md_vae *v, int height_px, int width_px, size_t avail)
{
    const int f = md_vae_factor(v);
    if (avail == 0 || md_vae_decode_bytes(v, height_px / f, width_px / f) <= avail / 2)
        return 0;
    int tile = 64;
    while (tile + 64 < width_px + height_px &&
           md_vae_decode_bytes(v, (tile + 64) / f, (tile + 64) / f) <= avail / 4)
        tile += 64;
    return tile;
}
