/* Building a tokenizer from the embedded CLIP merges or from a diffusers
 * tokenizer/ folder (vocab.json + merges.txt). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text_io.h"
#include "tokenizer_internal.h"
#include "unicode_text.h"

extern const unsigned char md_clip_merges_gz[];
extern const unsigned long md_clip_merges_gz_size;

static const char k_bos[] = "<|startoftext|>";
static const char k_eos[] = "<|endoftext|>";

/* The UTF-8 form of byte b's character, optionally with "</w>"; returns
 * the length (at most 6). */
static size_t byte_token(unsigned char b, int word_end, char out[8])
{
    unsigned char u[4];
    size_t n = md_utf8_encode(md_byte_char(b), u);
    memcpy(out, u, n);
    if (word_end) {
        memcpy(out + n, "</w>", 4);
        n += 4;
    }
    return n;
}

/* Iterates "left right" lines after the header line. Stops after
 * MD_CLIP_NUM_MERGES merges, like the reference. */
typedef struct merge_iter {
    const char *p, *end;
    int line; /* 1-based number of the current line, for messages */
    int taken;
} merge_iter;

static void merge_iter_init(merge_iter *it, const char *text, size_t len)
{
    /* Python's str.strip() then split("\n")[1:]: skip leading whitespace
     * and the header line */
    const char *end = text + len;
    while (text < end && (*text == ' ' || *text == '\n' || *text == '\r' || *text == '\t'))
        text++;
    while (end > text && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\r' || end[-1] == '\t'))
        end--;
    const char *nl = memchr(text, '\n', (size_t)(end - text));
    it->p = nl ? nl + 1 : end;
    it->end = end;
    it->line = 1;
    it->taken = 0;
}

static int is_sep(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* 1: a merge in (a, alen, b, blen); 0: no more; -1: malformed line. */
static int merge_iter_next(merge_iter *it, const char **a, size_t *alen, const char **b,
                           size_t *blen)
{
    if (it->p >= it->end || it->taken >= MD_CLIP_NUM_MERGES)
        return 0;
    const char *nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
    const char *le = nl ? nl : it->end;
    const char *q = it->p;
    it->p = nl ? nl + 1 : it->end;
    it->line++;
    it->taken++;
    const char *parts[2];
    size_t lens[2];
    int np = 0;
    while (q < le) {
        while (q < le && is_sep(*q))
            q++;
        if (q >= le)
            break;
        const char *s = q;
        while (q < le && !is_sep(*q))
            q++;
        if (np == 2)
            return -1;
        parts[np] = s;
        lens[np] = (size_t)(q - s);
        np++;
    }
    if (np != 2)
        return -1;
    *a = parts[0];
    *alen = lens[0];
    *b = parts[1];
    *blen = lens[1];
    return 1;
}

/* The byte alphabet ids and BOS/EOS, looked up by string. */
static md_status resolve_fixed_ids(md_tokenizer *t, const char *what, md_error *err)
{
    char buf[8];
    for (int b = 0; b < 256; b++) {
        size_t n = byte_token((unsigned char)b, 0, buf);
        t->byte_id[b] = md_vocab_find(&t->vocab, buf, n);
        n = byte_token((unsigned char)b, 1, buf);
        t->byte_end_id[b] = md_vocab_find(&t->vocab, buf, n);
        if (t->byte_id[b] < 0 || t->byte_end_id[b] < 0)
            return md_fail(err, MD_ERR_FORMAT, "%s: the vocabulary lacks the token of byte 0x%02X",
                           what, (unsigned)b);
    }
    t->bos = md_vocab_find(&t->vocab, k_bos, sizeof k_bos - 1);
    t->eos = md_vocab_find(&t->vocab, k_eos, sizeof k_eos - 1);
    if (t->bos < 0 || t->eos < 0)
        return md_fail(err, MD_ERR_FORMAT, "%s: the vocabulary lacks %s or %s", what, k_bos, k_eos);
    return MD_OK;
}

/* Adds every merge of `text` to the BPE table; merged tokens must be in
 * the vocabulary. */
static md_status add_merges(md_tokenizer *t, const char *text, size_t len, const char *what,
                            md_error *err)
{
    md_status st = md_bpe_init(&t->bpe, MD_CLIP_NUM_MERGES, err);
    if (st != MD_OK)
        return st;
    merge_iter it;
    merge_iter_init(&it, text, len);
    const char *a, *b;
    size_t alen, blen;
    char joined[512];
    int r;
    while ((r = merge_iter_next(&it, &a, &alen, &b, &blen)) > 0) {
        if (alen + blen > sizeof joined)
            return md_fail(err, MD_ERR_FORMAT, "%s line %d: merge too long", what, it.line);
        memcpy(joined, a, alen);
        memcpy(joined + alen, b, blen);
        int32_t left = md_vocab_find(&t->vocab, a, alen);
        int32_t right = md_vocab_find(&t->vocab, b, blen);
        int32_t merged = md_vocab_find(&t->vocab, joined, alen + blen);
        if (left < 0 || right < 0 || merged < 0)
            return md_fail(err, MD_ERR_FORMAT,
                           "%s line %d: merge \"%.*s %.*s\" uses a token not in the vocabulary",
                           what, it.line, (int)alen, a, (int)blen, b);
        md_bpe_add(&t->bpe, left, right, merged);
    }
    if (r < 0)
        return md_fail(err, MD_ERR_FORMAT, "%s line %d: expected two tokens separated by a space",
                       what, it.line);
    if (it.taken == 0)
        return md_fail(err, MD_ERR_FORMAT, "%s: no merges", what);
    return MD_OK;
}

/* OpenAI CLIP derives the vocabulary from the merges: the 256 byte
 * characters, the same with "</w>", each merge joined, then BOS and EOS. */
static md_status vocab_from_merges(md_tokenizer *t, const char *text, size_t len, md_error *err)
{
    merge_iter it;
    merge_iter_init(&it, text, len);
    const char *a, *b;
    size_t alen, blen;
    int n = 0;
    size_t bytes = 256 * 2 * 11 + sizeof k_bos + sizeof k_eos;
    int r;
    while ((r = merge_iter_next(&it, &a, &alen, &b, &blen)) > 0) {
        n++;
        bytes += alen + blen + 1;
    }
    if (r < 0 || n == 0)
        return md_fail(err, MD_ERR_FORMAT, "builtin CLIP merges: malformed line %d", it.line);

    md_status st = md_vocab_init(&t->vocab, 512 + n + 2, bytes, err);
    if (st != MD_OK)
        return st;
    char buf[512];
    for (int pass = 0; pass < 2; pass++)
        for (int b8 = 0; b8 < 256; b8++) {
            size_t k = byte_token((unsigned char)b8, pass, buf);
            st = md_vocab_set(&t->vocab, pass * 256 + md_byte_order((unsigned char)b8), buf, k, err);
            if (st != MD_OK)
                return st;
        }
    merge_iter_init(&it, text, len);
    for (int i = 0; merge_iter_next(&it, &a, &alen, &b, &blen) > 0; i++) {
        if (alen + blen > sizeof buf)
            return md_fail(err, MD_ERR_FORMAT, "builtin CLIP merges line %d: too long", it.line);
        memcpy(buf, a, alen);
        memcpy(buf + alen, b, blen);
        st = md_vocab_set(&t->vocab, 512 + i, buf, alen + blen, err);
        if (st != MD_OK)
            return st;
    }
    st = md_vocab_set(&t->vocab, 512 + n, k_bos, sizeof k_bos - 1, err);
    if (st == MD_OK)
        st = md_vocab_set(&t->vocab, 512 + n + 1, k_eos, sizeof k_eos - 1, err);
    return st;
}

md_status md_tokenizer_load_builtin(md_tokenizer **out, md_error *err)
{
    *out = NULL;
    md_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return md_fail(err, MD_ERR_NOMEM, "tokenizer: out of memory");
    char *text = NULL;
    size_t len = 0;
    md_status st = md_gunzip(md_clip_merges_gz, md_clip_merges_gz_size, &text, &len, err);
    if (st != MD_OK)
        md_fail_context(err, "builtin CLIP merges: ");
    if (st == MD_OK)
        st = vocab_from_merges(t, text, len, err);
    if (st == MD_OK)
        st = add_merges(t, text, len, "builtin CLIP merges", err);
    if (st == MD_OK)
        st = resolve_fixed_ids(t, "builtin CLIP vocabulary", err);
    free(text);
    if (st != MD_OK) {
        md_tokenizer_free(t);
        return st;
    }
    *out = t;
    return MD_OK;
}

/* vocab.json: {"token": id, ...} */
static md_status vocab_from_json(md_tokenizer *t, const char *path, const char *text,
                                 md_error *err)
{
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return md_fail(err, MD_ERR_FORMAT, "%s: not a JSON object", path);
    }
    int32_t max_id = -1;
    size_t bytes = 0;
    const cJSON *e;
    md_status st = MD_OK;
    cJSON_ArrayForEach(e, root)
    {
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (v < 0 || v >= (1 << 24) || v != (double)(int32_t)v) {
            st = md_fail(err, MD_ERR_FORMAT, "%s: token \"%.64s\" has no valid id", path,
                         e->string);
            break;
        }
        if ((int32_t)v > max_id)
            max_id = (int32_t)v;
        bytes += strlen(e->string) + 1;
    }
    if (st == MD_OK)
        st = md_vocab_init(&t->vocab, max_id + 1, bytes, err);
    if (st == MD_OK) {
        cJSON_ArrayForEach(e, root)
        {
            st = md_vocab_set(&t->vocab, (int32_t)e->valuedouble, e->string, strlen(e->string),
                              err);
            if (st != MD_OK) {
                md_fail_context(err, "%s: ", path);
                break;
            }
        }
    }
    cJSON_Delete(root);
    return st;
}

md_status md_tokenizer_load_dir(const char *dir, md_tokenizer **out, md_error *err)
{
    *out = NULL;
    size_t dlen = strlen(dir);
    char *vpath = malloc(dlen + 16), *mpath = malloc(dlen + 16);
    md_tokenizer *t = calloc(1, sizeof *t);
    md_status st = MD_OK;
    if (!vpath || !mpath || !t)
        st = md_fail(err, MD_ERR_NOMEM, "tokenizer: out of memory");
    char *vtext = NULL, *mtext = NULL;
    size_t vlen = 0, mlen = 0;
    if (st == MD_OK) {
        snprintf(vpath, dlen + 16, "%s/vocab.json", dir);
        snprintf(mpath, dlen + 16, "%s/merges.txt", dir);
        st = md_read_whole_file(vpath, &vtext, &vlen, err);
    }
    if (st == MD_OK)
        st = md_read_whole_file(mpath, &mtext, &mlen, err);
    if (st == MD_OK)
        st = vocab_from_json(t, vpath, vtext, err);
    if (st == MD_OK)
        st = add_merges(t, mtext, mlen, mpath, err);
    if (st == MD_OK)
        st = resolve_fixed_ids(t, vpath, err);
    free(vtext);
    free(mtext);
    free(vpath);
    free(mpath);
    if (st != MD_OK) {
        md_tokenizer_free(t);
        return st;
    }
    *out = t;
    return MD_OK;
}
