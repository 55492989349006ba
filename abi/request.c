/* The request at the ABI: a host's struct read over the defaults, its
 * image structs checked, then the engine's one validation
 * (pipeline/request.c). gen_params_init, resolve_params and generate all
 * come here. */
#include <stdio.h>
#include <string.h>

#include "../pipeline/request.h"
#include "abi_internal.h"
#include "image_convert.h"

int abi_resolve_request(mdiff_context *ctx, const mdiff_gen_params *in, mdiff_gen_params *out,
                        char *msg, size_t cap)
{
    const mdiff_image *imgs[2] = {in->init_image, in->mask};
    const char *names[2] = {"init_image", "mask"};
    for (int i = 0; i < 2; i++) {
        const char *why = imgs[i] ? abi_image_problem(imgs[i]) : NULL;
        if (why) {
            char buf[300];
            snprintf(buf, sizeof buf, "%s: %s", names[i], why);
            abi_message(msg, cap, buf);
            return MDIFF_ERR_INVALID;
        }
    }
    md_error err = {0};
    md_request_context rc = {.model = ctx ? ctx->model : NULL,
                             .top_k = ctx ? ctx->top_k : 0,
                             .expert_budget = ctx ? ctx->expert_budget : 0};
    md_status st = md_request_resolve(&rc, in, out, &err);
    if (st != MD_OK)
        abi_message(msg, cap, err.msg);
    return abi_status(st);
}

/* The host's struct read over the defaults, as generate and resolve_params
 * take it. */
int abi_read_gen_params(const mdiff_gen_params *host, mdiff_gen_params *p)
{
    md_request_defaults(p, host->struct_size);
    if (abi_read_struct(p, sizeof *p, host, ABI_1_0_GEN_PARAMS_SIZE) != MDIFF_OK)
        return MDIFF_ERR_INVALID;
    /* Hosts built before 1.2 got plain prompts truncated at 75 tokens. */
    if (host->struct_size < offsetof(mdiff_gen_params, prompt_syntax) + sizeof p->prompt_syntax)
        p->prompt_syntax = MDIFF_PROMPT_PLAIN;
    return MDIFF_OK;
}

static int resolve_fail(char *msg, size_t cap, int status, const char *text)
{
    abi_message(msg, cap, text);
    return status;
}

int abi_resolve_params(mdiff_context *ctx, const mdiff_gen_params *params, mdiff_gen_params *out,
                       char *msg, size_t msg_cap)
{
    abi_message(msg, msg_cap, "");
    if (!params || !out || out->struct_size < ABI_1_0_GEN_PARAMS_SIZE)
        return resolve_fail(msg, msg_cap, MDIFF_ERR_INVALID,
                            "resolve_params: params and out (struct_size set) are required");
    mdiff_gen_params p, r;
    if (abi_read_gen_params(params, &p) != MDIFF_OK)
        return resolve_fail(msg, msg_cap, MDIFF_ERR_INVALID,
                            "resolve_params: params struct_size too small (use gen_params_init)");
    if (ctx && abi_enter(ctx) != MDIFF_OK)
        return resolve_fail(msg, msg_cap, MDIFF_ERR_BUSY, "resolve_params: the context is busy");
    int rc = abi_resolve_request(ctx, &p, &r, msg, msg_cap);
    if (ctx)
        abi_leave(ctx);
    if (rc != MDIFF_OK)
        return rc;
    abi_write_struct(out, &r, sizeof r);
    return MDIFF_OK;
}
