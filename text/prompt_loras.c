#include "prompt_loras.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A1111's extra-network pattern is <(\w+):([^>]+)>: a word, a colon, then
 * anything up to the first '>'. Returns the tag's length at s (0: none)
 * and its kind's length. */
static size_t tag_at(const char *s, size_t *kind_len)
{
    if (*s != '<')
        return 0;
    size_t k = 1;
    while (isalnum((unsigned char)s[k]) || s[k] == '_')
        k++;
    if (k == 1 || s[k] != ':' || s[k + 1] == '>' || !s[k + 1])
        return 0;
    const char *end = strchr(s + k + 1, '>');
    if (!end)
        return 0;
    *kind_len = k - 1;
    return (size_t)(end - s) + 1;
}

static int is_lora_kind(const char *kind, size_t n)
{
    return (n == 4 && !strncmp(kind, "lora", 4)) || (n == 4 && !strncmp(kind, "lyco", 4));
}

/* NAME[:WEIGHT] of one tag's arguments (args, n bytes). */
static md_status parse_args(const char *tag, size_t tag_len, const char *args, size_t n,
                            md_prompt_lora *out, md_error *err)
{
    const char *colon = memchr(args, ':', n);
    size_t name_len = colon ? (size_t)(colon - args) : n;
    while (name_len && isspace((unsigned char)args[name_len - 1]))
        name_len--;
    while (name_len && isspace((unsigned char)*args)) {
        args++, n--, name_len--;
    }
    colon = memchr(args, ':', n);
    if (name_len == 0)
        return md_fail(err, MD_ERR_INVALID, "prompt: %.*s names no LoRA", (int)tag_len, tag);
    if (name_len >= MD_PROMPT_LORA_NAME_MAX)
        return md_fail(err, MD_ERR_INVALID, "prompt: a LoRA name longer than %d bytes in %.64s...",
                       MD_PROMPT_LORA_NAME_MAX - 1, tag);
    memcpy(out->name, args, name_len);
    out->name[name_len] = '\0';
    out->weight = 1.0f;
    if (!colon)
        return MD_OK;
    const char *w = colon + 1;
    size_t wn = n - (size_t)(w - args);
    if (memchr(w, ':', wn))
        return md_fail(err, MD_ERR_INVALID,
                       "prompt: %.*s: separate text-encoder and U-Net weights are not supported; "
                       "use <lora:NAME:WEIGHT>", (int)tag_len, tag);
    char num[64];
    if (wn == 0 || wn >= sizeof num)
        return md_fail(err, MD_ERR_INVALID, "prompt: %.*s: the weight is not a number",
                       (int)tag_len, tag);
    memcpy(num, w, wn);
    num[wn] = '\0';
    char *end;
    double v = strtod(num, &end);
    while (isspace((unsigned char)*end))
        end++;
    if (end == num || *end || !isfinite(v) || fabs(v) > 1e6)
        return md_fail(err, MD_ERR_INVALID, "prompt: %.*s: the weight is not a number",
                       (int)tag_len, tag);
    out->weight = (float)v;
    return MD_OK;
}

md_status md_prompt_take_loras(const char *prompt, char *stripped, size_t cap,
                               md_prompt_lora *tags, int cap_tags, int *count, md_error *err)
{
    size_t o = 0;
    *count = 0;
    for (const char *s = prompt; *s;) {
        size_t kind_len = 0, len = tag_at(s, &kind_len);
        if (len && kind_len == 8 && !strncmp(s + 1, "hypernet", 8))
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "prompt: %.*s: hypernetworks are not supported (only <lora:...>)",
                           (int)(len < 200 ? len : 200), s);
        if (len && is_lora_kind(s + 1, kind_len)) {
            if (*count >= cap_tags)
                return md_fail(err, MD_ERR_INVALID, "prompt: more than %d LoRA tags", cap_tags);
            const char *args = s + 1 + kind_len + 1;
            MD_TRY(parse_args(s, len, args, len - kind_len - 3, &tags[*count], err));
            (*count)++;
            s += len;
            continue;
        }
        if (o + 1 >= cap)
            return md_fail(err, MD_ERR_INVALID, "prompt: too long");
        stripped[o++] = *s++;
    }
    if (cap)
        stripped[o] = '\0';
    return MD_OK;
}
