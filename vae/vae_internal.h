/* AutoencoderKL internals shared by the loader (vae_load.c), the building
 * blocks (vae_blocks.c) and the encode/decode passes (vae.c). */
#ifndef MD_VAE_INTERNAL_H
#define MD_VAE_INTERNAL_H

#include "../nn/nn.h"
#include "vae.h"

/* ResnetBlock2D without a time embedding. */
typedef struct md_vae_resnet {
    int cin, cout;
    md_nn_norm norm1, norm2;
    md_nn_conv conv1, conv2;
    md_nn_conv shortcut; /* weights NULL when cin == cout */
} md_vae_resnet;

/* Single-head self-attention over the H*W positions, with a residual. */
typedef struct md_vae_attn {
    int channels;
    md_nn_norm norm;
    md_nn_linear q, k, v, out;
} md_vae_attn;

typedef struct md_vae_mid {
    md_vae_resnet res0, res1;
    md_vae_attn attn;
} md_vae_mid;

typedef struct md_vae_level {
    int nres;
    md_vae_resnet *res;
    /* Encoder: the stride-2 downsampler's 3x3 kernel re-laid as a 4x4 kernel
     * (see vae_load.c); decoder: the 3x3 conv after the nearest 2x upsample.
     * Weights NULL on the last level of either side. */
    md_nn_conv resample;
} md_vae_level;

typedef struct md_vae_encoder {
    md_nn_conv conv_in;
    md_vae_level level[MD_MAX_LEVELS];
    md_vae_mid mid;
    md_nn_norm norm_out;
    md_nn_conv conv_out, quant;
} md_vae_encoder;

typedef struct md_vae_decoder {
    md_nn_conv post_quant, conv_in;
    md_vae_mid mid;
    md_vae_level level[MD_MAX_LEVELS]; /* up_blocks order: level[0] is the coarsest */
    md_nn_norm norm_out;
    md_nn_conv conv_out;
} md_vae_decoder;

struct md_vae {
    md_vae_config cfg;
    md_backend *be;
    int has_encoder, has_decoder;
    md_vae_encoder enc;
    md_vae_decoder dec;
    /* Weights built at load time (the 4x4 downsample kernels): the tensor
     * descriptors and their host storage, owned here. */
    md_tensor owned[MD_MAX_LEVELS];
    void *owned_data[MD_MAX_LEVELS];
    int nowned;
};

/* Two activation buffers of equal capacity that the stages of one pass
 * alternate between, so a pass needs about two of its largest activations
 * instead of one per stage. Each stage views a slot with its own shape. */
typedef struct md_vae_pingpong {
    md_tensor slot[2];
    int64_t cap;  /* elements per slot */
    int64_t peak; /* largest view taken: a pass checks peak <= cap, which
                     guards the sizing functions in vae.c */
    int cur;      /* the slot holding the current activation */
} md_vae_pingpong;

/* A [1, c, h, w] view of slot i. */
md_tensor md_vae_view(md_vae_pingpong *pp, int i, int64_t c, int64_t h, int64_t w);

/* Stages: read the activation in pp->slot[pp->cur] with shape
 * [1, c, h, w] and leave the result in pp->slot[pp->cur] (switching slots as
 * needed). Temporaries come from the backend arena and are released before
 * returning. They fail only on arena exhaustion. */
md_status md_vae_resnet_fwd(md_backend *be, const md_vae_config *cfg, const md_vae_resnet *r,
                            md_vae_pingpong *pp, int64_t h, int64_t w, md_error *err);
md_status md_vae_attn_fwd(md_backend *be, const md_vae_config *cfg, const md_vae_attn *a,
                          md_vae_pingpong *pp, int64_t h, int64_t w, md_error *err);
md_status md_vae_mid_fwd(md_backend *be, const md_vae_config *cfg, const md_vae_mid *m,
                         md_vae_pingpong *pp, int64_t h, int64_t w, md_error *err);
/* conv2d from the current slot into the other one, then switch. */
void md_vae_conv_fwd(md_backend *be, md_vae_pingpong *pp, const md_tensor *wt,
                     const md_tensor *b, int64_t cin, int64_t cout, int64_t h, int64_t w,
                     int stride, int pad, int64_t ho, int64_t wo);
/* Downsample2D (pad right/bottom by one, 3x3 stride 2): [c,h,w] -> [c,h/2,w/2]. */
void md_vae_downsample_fwd(md_backend *be, md_vae_pingpong *pp, const md_vae_level *l, int64_t c,
                           int64_t h, int64_t w);
/* Upsample2D (nearest 2x then 3x3 conv): [c,h,w] -> [c,2h,2w]. */
void md_vae_upsample_fwd(md_backend *be, md_vae_pingpong *pp, const md_vae_level *l, int64_t c,
                         int64_t h, int64_t w);

/* Loading (vae_load.c). */
md_status md_vae_load_encoder(md_vae *v, md_weights *w, md_error *err);
md_status md_vae_load_decoder(md_vae *v, md_weights *w, md_error *err);
void md_vae_free_levels(md_vae *v);

#endif
