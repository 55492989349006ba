/* md_unet_state: what one generation's U-Net calls write, kept apart from
 * the loaded (read-only) md_unet so that one model can serve several
 * generations at once. */
#include <stdlib.h>
#include <string.h>

#include "unet_internal.h"

md_status md_unet_state_new(const md_unet *u, md_unet_state **out, md_error *err)
{
    *out = NULL;
    md_unet_state *st = calloc(1, sizeof *st);
    if (!st)
        return md_fail(err, MD_ERR_NOMEM, "unet state: out of memory");
    st->unet = u;
    st->skip_cap = md_unet_skip_cap(u);
    st->nmoe = md_unet_moe_layers(u);
    st->nkv = md_unet_kv_slots(u);
    st->skips = calloc((size_t)st->skip_cap, sizeof *st->skips);
    st->moe = calloc(st->nmoe > 0 ? (size_t)st->nmoe : 1, sizeof *st->moe);
    st->kv = calloc(st->nkv > 0 ? 2 * (size_t)st->nkv : 1, sizeof *st->kv);
    int ok = st->skips && st->moe && st->kv;
    for (int i = 0; ok && i < st->nmoe; i++)
        ok = (st->moe[i] = md_moe_scratch_new()) != NULL;
    if (!ok) {
        md_unet_state_free(st);
        return md_fail(err, MD_ERR_NOMEM, "unet state: out of memory");
    }
    *out = st;
    return MD_OK;
}

void md_unet_state_free(md_unet_state *st)
{
    if (!st)
        return;
    for (int i = 0; st->moe && i < st->nmoe; i++)
        md_moe_scratch_free(st->moe[i]);
    free(st->moe);
    free(st->skips);
    free(st->host);
    free(st->kv);
    free(st->kv_context);
    free(st);
}

void md_unet_state_drop_kv(md_unet_state *st)
{
    if (!st)
        return;
    /* Only the top of the arena can be given back; a block under someone
     * else's live allocations goes when they reset below it. */
    if (st->kv_held && st->kv_be->arena_mark(st->kv_be) == st->kv_end)
        st->kv_be->arena_reset(st->kv_be, st->kv_mark);
    st->kv_held = st->kv_valid = 0;
    st->kv_be = NULL;
}

void md_unet_state_set_observer(md_unet_state *st, md_moe_observer fn, void *user)
{
    st->observer = fn;
    st->observer_user = user;
}

void md_unet_state_set_override(md_unet_state *st, md_moe_override_fn fn, void *user)
{
    st->override = fn;
    st->override_user = fn ? user : NULL;
}

void md_unet_state_set_moe(md_unet_state *st, const md_moe_options *opt)
{
    if (opt)
        st->moe_opt = *opt;
    else
        memset(&st->moe_opt, 0, sizeof st->moe_opt);
}

void md_unet_state_usage(const md_unet_state *st, int index, md_moe_usage *out)
{
    if (index < 0 || index >= st->nmoe) {
        *out = (md_moe_usage){0};
        return;
    }
    md_moe_usage_of(st->moe[index], out);
}

void md_unet_state_reset_usage(md_unet_state *st)
{
    for (int i = 0; i < st->nmoe; i++)
        md_moe_usage_reset(st->moe[i]);
}
