#include "lora_set.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct md_lora_set {
    md_lora_file *files[MD_LORA_SET_MAX];
    int modules[MD_LORA_SET_MAX], matched[MD_LORA_SET_MAX];
    int n;
    int bound; /* bound to a model */
    md_lora_binding binding;
    md_backend *wrapper;
};

void md_lora_stem(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        n = (size_t)(dot - base);
    snprintf(out, cap, "%.*s", (int)n, base);
}

/* Modules of file `f` the binding's targets from `start` on name. */
static int count_matched(const md_lora_binding *b, int start, const md_lora_file *f)
{
    int n = 0;
    for (int i = 0; i < f->count; i++) {
        const md_lora_entry *e = &f->entries[i];
        for (int t = start; t < b->count; t++)
            if (b->targets[t].entry == e) {
                n++;
                break;
            }
    }
    return n;
}

static md_status check_deferred(const md_model *m, const md_lora_binding *b, int start,
                                const md_lora_file *f, md_error *err)
{
    if (!m->defer_experts)
        return MD_OK;
    for (int t = start; t < b->count; t++)
        if (strstr(b->targets[t].name, ".experts."))
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "%s: %s changes experts of an MoE layer, which this context loads "
                           "on demand (an expert memory bound at load on Vulkan); a LoRA cannot "
                           "reach those copies: create the context without max_expert_memory",
                           f->path, b->targets[t].entry->key);
    return MD_OK;
}

md_status md_lora_set_open(const md_model *m, const md_lora_use *uses, int n, int allow_unmatched,
                           md_lora_set **out, md_error *err)
{
    *out = NULL;
    if (n > MD_LORA_SET_MAX)
        return md_fail(err, MD_ERR_INVALID, "%d LoRAs: at most %d at once", n, MD_LORA_SET_MAX);
    md_lora_set *s = calloc(1, sizeof *s);
    if (!s)
        return md_fail(err, MD_ERR_NOMEM, "LoRA: out of memory");
    md_status st = MD_OK;
    for (int i = 0; st == MD_OK && i < n; i++) {
        st = md_lora_file_open(uses[i].path, &s->files[i], err);
        if (st != MD_OK)
            break;
        s->n++;
        s->modules[i] = s->files[i]->count;
        s->matched[i] = -1;
        if (!m)
            continue;
        int start = s->binding.count;
        st = md_lora_bind(&s->binding, m, s->files[i], uses[i].weight, allow_unmatched, err);
        if (st == MD_OK)
            st = check_deferred(m, &s->binding, start, s->files[i], err);
        if (st == MD_OK)
            s->matched[i] = count_matched(&s->binding, start, s->files[i]);
    }
    s->bound = m != NULL;
    if (st != MD_OK) {
        md_lora_set_free(s);
        return st;
    }
    *out = s;
    return MD_OK;
}

void md_lora_set_counts(const md_lora_set *s, int i, int *modules, int *matched)
{
    *modules = s->modules[i];
    *matched = s->matched[i];
}

md_status md_lora_set_backend(md_lora_set *s, md_backend *inner, md_lora_apply how,
                              md_backend **out, md_error *err)
{
    *out = inner;
    if (!s || !s->bound || s->binding.count == 0)
        return MD_OK;
    if (!s->wrapper)
        MD_TRY(md_lora_backend_new(inner, &s->binding, how, &s->wrapper, err));
    *out = s->wrapper;
    return MD_OK;
}

void md_lora_set_free(md_lora_set *s)
{
    if (!s)
        return;
    if (s->wrapper)
        s->wrapper->destroy(s->wrapper);
    md_lora_binding_clear(&s->binding);
    for (int i = 0; i < s->n; i++)
        md_lora_file_free(s->files[i]);
    free(s);
}
