/* Decoding (and encoding) in overlapping tiles, so a large image decodes in the
 * memory of one tile: each tile is decoded alone and neighbouring tiles
 * are blended with linear ramps across their overlap. Not exact: the
 * decoder's GroupNorm statistics and receptive field see one tile, so the
 * result differs from a whole decode near and across seams (the measured
 * error is in docs/vae-tiling.md). */
#ifndef MD_VAE_TILED_H
#define MD_VAE_TILED_H

#include <stddef.h>

#include "vae.h"

/* The smallest tile side in pixels a request may ask for. */
#define MD_VAE_TILE_MIN 32

/* As md_vae_decode for one image (batch 1), in tiles of tile_px x tile_px
 * pixels (a multiple of the VAE factor) overlapping by a quarter tile. A
 * tile at least the image's size decodes it whole. */
md_status md_vae_decode_tiled(const md_vae *v, md_backend *be, const float *z, int h, int w,
                              int tile_px, float *image, md_error *err);

/* As md_vae_encode for one image (H, W multiples of the factor), in tiles
 * of tile_px pixels overlapping by a quarter tile, the latents blended. */
md_status md_vae_encode_tiled(const md_vae *v, md_backend *be, const float *image, int H, int W,
                              int tile_px, float *mean, float *logvar, md_error *err);

/* Bytes of activations an untiled decode of an h x w latent takes (an
 * estimate from the widest full-resolution level). */
size_t md_vae_decode_bytes(const md_vae *v, int h, int w);

/* The automatic choice for an image of height_px x width_px pixels when
 * `avail` bytes of memory are available (0: unknown): 0 (decode whole)
 * when the whole decode takes at most half of it, else the largest
 * multiple of 64 pixels whose tile decode takes at most a quarter. */
int md_vae_auto_tile(const md_vae *v, int height_px, int width_px, size_t avail);

#endif
