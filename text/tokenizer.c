/* Encoding with the CLIP tokenizer: clean, split, byte-level BPE. */
#include <stdlib.h>
#include <string.h>

#include "clip_text.h"
#include "tokenizer_internal.h"
#include "unicode_text.h"

void md_tokenizer_free(md_tokenizer *tok)
{
    if (!tok)
        return;
    md_vocab_free(&tok->vocab);
    md_bpe_free(&tok->bpe);
    free(tok);
}

int32_t md_tokenizer_bos(const md_tokenizer *tok)
{
    return tok->bos;
}

int32_t md_tokenizer_eos(const md_tokenizer *tok)
{
    return tok->eos;
}

int32_t md_tokenizer_token_id(const md_tokenizer *tok, const char *token)
{
    return md_vocab_find(&tok->vocab, token, strlen(token));
}

/* Longest piece of cleaned text, in UTF-8 bytes (the BPE scratch size). */
static size_t longest_piece_bytes(const uint32_t *cps, size_t n)
{
    size_t pos = 0, s, e, best = 0;
    md_piece_kind kind;
    while (md_clip_next_piece(cps, n, &pos, &s, &e, &kind)) {
        size_t bytes = 0;
        unsigned char u[4];
        for (size_t i = s; i < e; i++)
            bytes += md_utf8_encode(cps[i], u);
        if (bytes > best)
            best = bytes;
    }
    return best;
}

int64_t md_tokenizer_encode_raw(const md_tokenizer *tok, const char *text, int32_t *ids, int64_t cap,
                                md_error *err)
{
    if (!tok || !text || cap < 0 || (cap > 0 && !ids))
        return md_fail(err, MD_ERR_INVALID, "tokenizer: invalid argument");
    uint32_t *cps = NULL;
    size_t n = 0;
    md_status st = md_clip_clean(text, strlen(text), &cps, &n, err);
    if (st != MD_OK)
        return st;

    size_t maxb = longest_piece_bytes(cps, n);
    md_bpe_scratch scratch = {0};
    int32_t *syms = NULL;
    if (maxb > INT32_MAX / 4) /* symbol positions are int32 */
        st = md_fail(err, MD_ERR_INVALID, "tokenizer: a %zu-byte word is too long", maxb);
    else
        st = md_bpe_scratch_init(&scratch, maxb, err);
    if (st == MD_OK)
        syms = malloc((maxb ? maxb : 1) * sizeof *syms);
    if (st == MD_OK && !syms)
        st = md_fail(err, MD_ERR_NOMEM, "tokenizer: out of memory");
    if (st != MD_OK) {
        free(syms);
        free(cps);
        md_bpe_scratch_free(&scratch);
        return st;
    }

    int64_t count = 0;
    size_t pos = 0, s, e;
    md_piece_kind kind;
    while (md_clip_next_piece(cps, n, &pos, &s, &e, &kind)) {
        size_t m = 0;
        if (kind != MD_PIECE_WORD) {
            syms[m++] = kind == MD_PIECE_BOS ? tok->bos : tok->eos;
        } else {
            unsigned char u[4], last = 0;
            for (size_t i = s; i < e; i++) {
                size_t k = md_utf8_encode(cps[i], u);
                for (size_t j = 0; j < k; j++)
                    syms[m++] = tok->byte_id[u[j]];
                last = u[k - 1];
            }
            /* the word's last byte carries the end-of-word marker */
            syms[m - 1] = tok->byte_end_id[last];
            m = md_bpe_merge_word(&tok->bpe, syms, m, &scratch);
        }
        for (size_t i = 0; i < m; i++, count++)
            if (count < cap)
                ids[count] = syms[i];
    }
    free(syms);
    free(cps);
    md_bpe_scratch_free(&scratch);
    return count;
}

int64_t md_tokenizer_encode_77(const md_tokenizer *tok, const char *text, int32_t pad_id,
                               int32_t ids[MD_CLIP_CONTEXT], md_error *err)
{
    if (!tok || !ids)
        return md_fail(err, MD_ERR_INVALID, "tokenizer: invalid argument");
    const int64_t room = MD_CLIP_CONTEXT - 2;
    int64_t n = md_tokenizer_encode_raw(tok, text, ids + 1, room, err);
    if (n < 0)
        return n;
    int64_t kept = n < room ? n : room;
    ids[0] = tok->bos;
    ids[1 + kept] = tok->eos;
    for (int64_t i = 2 + kept; i < MD_CLIP_CONTEXT; i++)
        ids[i] = pad_id;
    return n;
}
