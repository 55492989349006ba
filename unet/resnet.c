/* ResnetBlock2D: GroupNorm+SiLU, conv, + time projection per channel,
 * GroupNorm+SiLU, conv, + shortcut (1x1 conv when the width changes). */
#include <stdio.h>

#include "unet_internal.h"

md_status md_resnet_load(md_resnet *r, md_weights *w, md_backend *be, md_error *err,
                         const char *prefix, int cin, int cout, int temb_dim, int groups, float eps)
{
    char p[256];
    r->cin = cin;
    r->cout = cout;
    r->groups = groups;
    r->eps = eps;
    if (cin % groups != 0 || cout % groups != 0)
        return md_fail(err, MD_ERR_INVALID, "%s: %s: %d/%d channels not divisible by %d groups",
                       md_weights_label(w), prefix, cin, cout, groups);
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.norm1", prefix));
    MD_TRY(md_nn_norm_load(&r->norm1, w, be, err, p, cin));
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.conv1", prefix));
    MD_TRY(md_nn_conv_load(&r->conv1, w, be, err, p, cin, cout, 3));
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.time_emb_proj", prefix));
    MD_TRY(md_nn_linear_load(&r->time_proj, w, be, err, p, temb_dim, cout, 1));
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.norm2", prefix));
    MD_TRY(md_nn_norm_load(&r->norm2, w, be, err, p, cout));
    MD_TRY(md_nn_name(p, sizeof(p), err, "%s.conv2", prefix));
    MD_TRY(md_nn_conv_load(&r->conv2, w, be, err, p, cout, cout, 3));
    r->shortcut.w = NULL;
    if (cin != cout) {
        MD_TRY(md_nn_name(p, sizeof(p), err, "%s.conv_shortcut", prefix));
        MD_TRY(md_nn_conv_load(&r->shortcut, w, be, err, p, cin, cout, 1));
    }
    return MD_OK;
}

md_status md_resnet_forward(const md_unet_run *run, const md_resnet *r, md_tensor *y,
                            const md_tensor *x)
{
    md_backend *be = run->be;
    const int64_t B = x->shape[0], H = x->shape[2], W = x->shape[3];
    size_t mark = be->arena_mark(be);
    md_tensor t, h, tp;
    MD_TRY(md_nn_tensor(be, &t, run->err, 4, (int64_t[]){B, r->cin, H, W}));
    MD_TRY(md_nn_tensor(be, &h, run->err, 4, (int64_t[]){B, r->cout, H, W}));
    MD_TRY(md_nn_tensor(be, &tp, run->err, 2, (int64_t[]){B, r->cout}));

    be->group_norm(be, &t, x, r->norm1.g, r->norm1.b, r->groups, r->eps, 1);
    be->conv2d(be, &h, &t, r->conv1.w, r->conv1.b, 1, 1);
    md_nn_linear_forward(be, &tp, run->temb, &r->time_proj);
    be->add_channel_bias(be, &h, &h, &tp);
    be->group_norm(be, &h, &h, r->norm2.g, r->norm2.b, r->groups, r->eps, 1);
    be->conv2d(be, y, &h, r->conv2.w, r->conv2.b, 1, 1);
    if (r->shortcut.w) {
        /* h is free again: reuse it for the projected input. */
        be->conv2d(be, &h, x, r->shortcut.w, r->shortcut.b, 1, 0);
        be->add(be, y, y, &h);
    } else {
        be->add(be, y, y, x);
    }
    be->arena_reset(be, mark);
    return MD_OK;
}
