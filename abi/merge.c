/* api->merge (ABI 1.6): the merge/ module behind the public header. */
#include <stddef.h>
#include <string.h>

#include "../merge/merge.h"
#include "abi_internal.h"

_Static_assert(sizeof(mdiff_merge_params) == 72, "mdiff_merge_params 1.6 layout");
_Static_assert(sizeof(mdiff_merge_progress) == 32, "mdiff_merge_progress 1.6 layout");

typedef struct merge_host {
    const mdiff_merge_params *p;
} merge_host;

static int progress(void *user, md_merge_phase phase, int expert, int experts, int step,
                    int steps)
{
    const mdiff_merge_params *p = ((merge_host *)user)->p;
    if (p->cancel && *p->cancel)
        return 1;
    if (!p->progress)
        return 0;
    static const int32_t stage[] = {MDIFF_MERGE_BASE, MDIFF_MERGE_EXPERT, MDIFF_MERGE_GATE_STEP,
                                    MDIFF_MERGE_WRITE};
    mdiff_merge_progress pr = {.struct_size = sizeof pr, .stage = stage[phase],
                               .expert = expert, .experts = experts, .step = step,
                               .steps = steps};
    return p->progress(p->progress_user, &pr);
}

int abi_merge(const mdiff_merge_params *params, char *msg, size_t msg_cap)
{
    abi_message(msg, msg_cap, "");
    mdiff_merge_params p;
    if (!params || abi_read_struct(&p, sizeof p, params, sizeof p) != MDIFF_OK) {
        abi_message(msg, msg_cap, "merge: params missing or struct_size too small");
        return MDIFF_ERR_INVALID;
    }
    if (!p.config_path || !p.output_path) {
        abi_message(msg, msg_cap, "merge: config_path and output_path are required");
        return MDIFF_ERR_INVALID;
    }
    if (p.dtype_bits != 0 && p.dtype_bits != 16 && p.dtype_bits != 32) {
        abi_message(msg, msg_cap, "merge: dtype_bits must be 16 or 32");
        return MDIFF_ERR_INVALID;
    }
    if (p.gate_init < MDIFF_MERGE_GATE_INIT_CONFIG || p.gate_init > MDIFF_MERGE_GATE_INIT_RANDOM ||
        p.threads < 0) {
        abi_message(msg, msg_cap, "merge: gate_init or threads out of range");
        return MDIFF_ERR_INVALID;
    }
    md_merge_options opt = {
        .dtype = p.dtype_bits == 32 ? MD_F32 : MD_F16,
        .gate_init = p.gate_init == MDIFF_MERGE_GATE_INIT_CONFIG   ? -1
                     : p.gate_init == MDIFF_MERGE_GATE_INIT_RANDOM ? MD_MERGE_INIT_RANDOM
                                                                   : MD_MERGE_INIT_HIDDEN,
        .seed = p.seed,
        .threads = p.threads,
    };
    merge_host host = {.p = &p};
    md_merge_hooks hooks = {.user = &host, .progress = progress};
    md_error err = {0};
    md_status s = md_merge(p.config_path, p.output_path, &opt, &hooks, &err);
    if (s != MD_OK)
        abi_message(msg, msg_cap, err.msg);
    return abi_status(s);
}
