#include "request_loras.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../text/prompt_loras.h"

/* The smallest mdiff_lora a host may pass (1.6). */
#define LORA_STRUCT_MIN (offsetof(mdiff_lora, reserved) + sizeof(int32_t))

static md_status take_list(const mdiff_gen_params *p, md_request_loras *r, md_error *err)
{
    if (p->lora_count < 0 || p->lora_count > MDIFF_MAX_LORAS)
        return md_fail(err, MD_ERR_INVALID, "lora_count must be 0..%d (got %d)", MDIFF_MAX_LORAS,
                       p->lora_count);
    if (r->count + p->lora_count > MDIFF_MAX_LORAS)
        return md_fail(err, MD_ERR_INVALID, "%d LoRAs in the prompt and %d in loras: at most %d",
                       r->count, p->lora_count, MDIFF_MAX_LORAS);
    if (p->lora_count && !p->loras)
        return md_fail(err, MD_ERR_INVALID, "lora_count is %d but loras is NULL", p->lora_count);
    if (p->lora_flags & ~MDIFF_LORA_ALLOW_UNMATCHED)
        return md_fail(err, MD_ERR_INVALID, "unknown lora_flags 0x%x", p->lora_flags);
    size_t stride = p->lora_count ? p->loras[0].struct_size : 0;
    if (p->lora_count && (stride < LORA_STRUCT_MIN || stride > 4096))
        return md_fail(err, MD_ERR_INVALID, "loras[0].struct_size %zu: set it to sizeof(mdiff_lora)",
                       stride);
    for (int i = 0; i < p->lora_count; i++) {
        const mdiff_lora *l = (const mdiff_lora *)((const char *)p->loras + stride * (size_t)i);
        md_lora_use *u = &r->uses[r->count];
        if (!l->path || !l->path[0])
            return md_fail(err, MD_ERR_INVALID, "loras[%d]: no path", i);
        if (strlen(l->path) >= sizeof u->path)
            return md_fail(err, MD_ERR_INVALID, "loras[%d]: the path is longer than %zu bytes", i,
                           sizeof u->path - 1);
        if (!isfinite(l->weight) || fabsf(l->weight) > 1e6f)
            return md_fail(err, MD_ERR_INVALID, "%s: the LoRA weight %g is not a usable number",
                           l->path, (double)l->weight);
        struct stat st;
        if (stat(l->path, &st) != 0 || !S_ISREG(st.st_mode))
            return md_fail(err, MD_ERR_IO, "%s: no such LoRA file", l->path);
        snprintf(u->path, sizeof u->path, "%s", l->path);
        md_lora_stem(l->path, u->name, sizeof u->name);
        u->weight = l->weight;
        r->count++;
    }
    return MD_OK;
}

static md_status take_tags(const mdiff_gen_params *p, md_request_loras *r, md_error *err)
{
    size_t cap = strlen(p->prompt) + 1;
    if (!(r->prompt = malloc(cap)))
        return md_fail(err, MD_ERR_NOMEM, "out of memory for the prompt");
    if (p->prompt_syntax != MDIFF_PROMPT_WEIGHTED) {
        memcpy(r->prompt, p->prompt, cap);
        return MD_OK;
    }
    md_prompt_lora tags[MDIFF_MAX_LORAS];
    int n = 0;
    MD_TRY(md_prompt_take_loras(p->prompt, r->prompt, cap, tags, MDIFF_MAX_LORAS, &n, err));
    if (n && p->lora_dir && strlen(p->lora_dir) >= 4096)
        return md_fail(err, MD_ERR_INVALID, "lora_dir is longer than 4095 bytes");
    for (int i = 0; i < n; i++) {
        md_lora_use *u = &r->uses[r->count];
        MD_TRY(md_lora_find(p->lora_dir, tags[i].name, u->path, sizeof u->path, err));
        snprintf(u->name, sizeof u->name, "%.255s", tags[i].name);
        u->weight = tags[i].weight;
        u->from_prompt = 1;
        r->count++;
    }
    return MD_OK;
}

md_status md_request_loras_collect(const mdiff_gen_params *p, md_request_loras *out,
                                   md_error *err)
{
    memset(out, 0, sizeof *out);
    if (!(out->uses = calloc(MDIFF_MAX_LORAS, sizeof *out->uses)))
        return md_fail(err, MD_ERR_NOMEM, "out of memory for the LoRAs");
    /* The prompt's tags first: the `parameters` text writes loras[] as tags
     * after the prompt, and reading it back must apply them in the same
     * order (the sums round alike). */
    md_status st = take_tags(p, out, err);
    if (st == MD_OK)
        st = take_list(p, out, err);
    if (st != MD_OK)
        md_request_loras_free(out);
    return st;
}

void md_request_loras_free(md_request_loras *r)
{
    free(r->uses);
    free(r->prompt);
    memset(r, 0, sizeof *r);
}
