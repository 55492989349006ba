/* Internal pieces of the U-Net: the layer descriptors and the per-call
 * context shared by resnet.c, attention.c, transformer.c, unet_blocks.c,
 * time_embedding.c and unet.c. */
#ifndef MD_UNET_INTERNAL_H
#define MD_UNET_INTERNAL_H

#include "../moe/moe.h"
#include "../nn/nn.h"
#include "unet.h"

/* What every block needs during one forward call: the caller's backend
 * and, from its md_unet_state, the MoE scratch (by layer index), options
 * and observer. */
typedef struct md_unet_run {
    md_backend *be;
    md_error *err;
    const md_tensor *temb;    /* SiLU(emb) [B, temb_dim], shared by all resnets */
    const md_tensor *context; /* [B, L, cross_attention_dim] */
    md_moe_scratch *const *moe_scratch; /* one per md_moe_layer.index */
    const md_moe_options *moe_opt;
    md_moe_observer observer;
    void *observer_user;
    md_tensor *kv;            /* per kv_index: keys then values [B, L, dim]; NULL = none */
    int kv_fill;              /* 1: this call computes them, else they are reused */
} md_unet_run;

/* What md_unet_state holds (unet/unet_state.c); unet.c's forward uses it. */
struct md_unet_state {
    const md_unet *unet;     /* the model it was sized for */
    int skip_cap;
    md_tensor *skips;        /* skip_cap entries, reused by every call */
    float *host;             /* host scratch for the embeddings, grown on demand */
    size_t host_cap;         /* floats */
    int nmoe;
    md_moe_scratch **moe;    /* nmoe entries, by md_moe_layer.index */
    md_moe_options moe_opt;
    md_moe_observer observer;
    void *observer_user;
    md_moe_override_fn override;
    void *override_user;
    /* Cross-attention keys and values, computed by the first call with a
     * text context and reused by later calls with the same context (byte for
     * byte) on the same backend: they live in a block of that backend's
     * arena below every call's own allocations (unet.c, kv_prepare). */
    int nkv;                 /* slots (md_attention.kv_index) */
    md_tensor *kv;           /* 2 * nkv */
    float *kv_context;       /* the context they were computed from */
    size_t kv_context_n, kv_context_cap;
    md_backend *kv_be;
    size_t kv_mark, kv_end;  /* their arena block */
    int kv_held, kv_valid;
};

/* Size of the skip stack a forward call of u pushes. */
int md_unet_skip_cap(const md_unet *u);
/* Cross-attentions whose keys and values a run state caches. */
int md_unet_kv_slots(const md_unet *u);

/* ---- ResnetBlock2D ---- */
typedef struct md_resnet {
    int cin, cout, groups;
    float eps;
    md_nn_norm norm1, norm2;
    md_nn_conv conv1, conv2;
    md_nn_linear time_proj;
    md_nn_conv shortcut; /* w == NULL when cin == cout */
} md_resnet;

md_status md_resnet_load(md_resnet *r, md_weights *w, md_backend *be, md_error *err,
                         const char *prefix, int cin, int cout, int temb_dim, int groups,
                         float eps);
/* y [B, cout, H, W] (allocated by the caller) = resnet(x [B, cin, H, W]). */
md_status md_resnet_forward(const md_unet_run *run, const md_resnet *r, md_tensor *y,
                            const md_tensor *x);

/* ---- Attention ---- */
/* A projection that is either a plain linear or an MoE layer. */
typedef struct md_proj {
    md_nn_linear lin;
    md_moe_layer *moe; /* non-NULL: MoE */
} md_proj;

typedef struct md_attention {
    int dim, kv_dim, heads;
    md_proj q, k, v;
    md_nn_linear out;
    int kv_index; /* a cross-attention with dense to_k / to_v: its keys and values'
                     slot in the run state's cache (they depend on the text only);
                     -1 otherwise */
} md_attention;

md_status md_attention_load(md_attention *a, md_weights *w, md_backend *be, md_error *err,
                            const char *prefix, int dim, int kv_dim, int heads,
                            const md_moe_config *moe);
void md_attention_free(md_attention *a);
/* y [B, N, dim] = to_out(attention(to_q(x), to_k(ctx), to_v(ctx))). */
md_status md_attention_forward(const md_unet_run *run, const md_attention *a, md_tensor *y,
                               const md_tensor *x, const md_tensor *ctx);

/* ---- BasicTransformerBlock / Transformer2DModel ---- */
typedef struct md_tblock {
    int dim, only_cross;
    md_nn_norm norm1, norm2, norm3;
    md_attention attn1, attn2;
    md_nn_linear ff1, ff2; /* dense GEGLU feed-forward */
    md_moe_layer *ff_moe;  /* non-NULL: MoE feed-forward */
} md_tblock;

typedef struct md_transformer {
    int channels, groups, linear_proj, nblocks;
    md_nn_norm norm;
    md_nn_linear proj_in, proj_out; /* a 1x1 conv is the same per-pixel linear */
    md_tblock *blocks;
} md_transformer;

/* moe == NULL (or !moe->enabled) for a dense transformer. */
md_status md_transformer_load(md_transformer *t, md_weights *w, md_backend *be, md_error *err,
                              const char *prefix, const md_unet_config *cfg, int channels,
                              int heads, int nblocks, const md_moe_config *moe);
void md_transformer_free(md_transformer *t);
/* In place: x [B, C, H, W] <- transformer(x) (the residual included). */
md_status md_transformer_forward(const md_unet_run *run, const md_transformer *t, md_tensor *x);

/* ---- U-Net blocks ---- */
typedef struct md_unet_block {
    int nres;
    md_resnet *res;
    md_transformer *attn; /* nres entries, or NULL for a block without attention */
    int has_resample;     /* Downsample2D / Upsample2D */
    md_nn_conv resample;
} md_unet_block;

/* The skip connections of the down path, consumed by the up path. */
typedef struct md_skip_stack {
    md_tensor *t;
    int n, cap;
} md_skip_stack;

md_status md_down_block_load(md_unet_block *b, md_weights *w, md_backend *be, md_error *err,
                             const md_unet_config *cfg, int level, int cin);
/* skip_ch/nskip: channel counts of the skip stack as the down path leaves
 * it; the block pops the ones it consumes. */
md_status md_up_block_load(md_unet_block *b, md_weights *w, md_backend *be, md_error *err,
                           const md_unet_config *cfg, int index, int cin, const int *skip_ch,
                           int *nskip);
md_status md_mid_block_load(md_unet_block *b, md_weights *w, md_backend *be, md_error *err,
                            const md_unet_config *cfg);
void md_unet_block_free(md_unet_block *b);

/* *h is replaced by the block's output; outputs that the up path needs are
 * pushed on (down) or popped from (up) the stack. */
md_status md_down_block_forward(const md_unet_run *run, const md_unet_block *b, md_tensor *h,
                                md_skip_stack *skips);
md_status md_mid_block_forward(const md_unet_run *run, const md_unet_block *b, md_tensor *h);
md_status md_up_block_forward(const md_unet_run *run, const md_unet_block *b, md_tensor *h,
                              md_skip_stack *skips);

/* ---- time embedding ---- */
/* Sinusoidal embedding of n values into out [n, dim], computed as the
 * reference does in float32 (flip = cos first). */
void md_timestep_sinusoid(const float *t, int n, int dim, int flip_sin_to_cos, float freq_shift,
                          float *out);

typedef struct md_time_embed {
    int in_dim, dim;
    md_nn_linear l1, l2;
    /* SDXL "text_time" added conditioning */
    int text_time, add_time_dim, add_in_dim;
    md_nn_linear a1, a2;
} md_time_embed;

md_status md_time_embed_load(md_time_embed *te, md_weights *w, md_backend *be, md_error *err,
                             const md_unet_config *cfg);
/* temb [B, dim] = SiLU(emb); host_scratch holds at least
 * B * max(in_dim, add_in_dim) floats. */
md_status md_time_embed_forward(const md_time_embed *te, md_backend *be, const md_unet_config *cfg,
                                const md_unet_inputs *in, float *host_scratch, md_tensor *temb,
                                md_error *err);

#endif
