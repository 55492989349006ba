/* CLIP tokenizer against the reference ids: every golden case folder with a
 * tokenizer/ (and tokenizer_2/) encodes golden.json "prompts" ("prompts_2")
 * and "te_prompts" to exactly tokenizer.ids (tokenizer_2.ids) and
 * text_encoder.ids (text_encoder_2.ids), both from the folder's files and
 * from the builtin vocabulary. Also: the builtin vocabulary equals the
 * folder's vocab.json id for id, reference ids of tricky text (html
 * references, case mapping, the split pattern's corners, invalid UTF-8),
 * cleaning equivalences, truncation and cap semantics, and load errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"
#include "text/tokenizer.h"

/* Ids of OpenAI CLIP's SimpleTokenizer (html entities restricted to the
 * documented subset) for text that exercises each cleaning and split rule. */
typedef struct ref_case {
    const char *text;
    int32_t ids[64];
    int n;
} ref_case;

static const ref_case k_ref_cases[] = {
    /* "'s" of the pattern splits a quote from a following s */
    {"\042double quoted\042 and 'single quoted' words",
     {257, 3200, 27706, 257, 537, 568, 17005, 27706, 262, 2709}, 10},
    {"it's DON'T we'LL i'M you'RE", {585, 568, 847, 713, 649, 1342, 328, 880, 592, 982}, 10},
    /* double unescape, prefix names, unknown names, numeric rules */
    {"a&amp;lt;b&gt;c &ampx &notit; &notin; &alpha &alpha; &#65;&#x263a; &#128;&#0;&#1;&#13;|&#xD800; "
     "&#99999999999 &#",
     {320, 283, 321, 285, 322, 261, 343, 126, 361, 585, 282, 126, 361, 530,
      282, 261, 8624, 138, 365, 320, 8703, 34919, 39802, 91, 39802, 39802, 5, 258}, 28},
    {"caf&eacute; &Eacute &nbsp;x &frac12 &copy2024",
     {15304, 4166, 343, 33613, 5811, 273, 271, 273, 275}, 9},
    /* final sigma, U+0130, Greek, Latin Extended, number forms, fullwidth */
    {"\316\237\316\224\316\237\316\243 \316\243 \316\243\316\221\316\243 a\316\243. \304\260stanbul "
     "\341\272\236 \307\205 \342\205\253 \342\222\266 \357\274\241\357\274\242\357\274\243",
     {138, 123, 138, 112, 138, 123, 139, 480, 139, 481, 139, 225, 138, 109, 139, 480, 64,
      139, 480, 269, 328, 16384, 11231, 127, 509, 131, 484, 158, 227, 375, 27400, 494, 171,
      121, 223, 171, 121, 224, 171, 121, 481}, 41},
    /* U+0345 matches no alternative of the case-insensitive pattern */
    {"a\315\205b !\315\205! 1\315\2052", {320, 321, 256, 256, 272, 273}, 6},
    /* special tokens only when spelled exactly */
    {"<|startoftext|>x<|endoftext|> <|ENDOFTEXT|> <|\305\277tartoftext|> !<|endoftext|>",
     {49406, 343, 49407, 49407, 27, 91, 129, 123, 2002, 6659, 18169, 91, 285, 0, 27, 347, 40786,
      4160, 91, 285}, 20},
    /* numbers one by one, emoji as symbols, several scripts */
    {"\302\262\302\263\302\275 \331\243\340\245\252 \360\235\237\230\360\235\220\200 "
     "\360\237\221\215\360\237\217\275 \342\235\244\357\270\217 "
     "\346\235\261\344\272\254\343\201\256\345\244\234\346\231\257 \355\225\234\352\265\255\354\226\264 "
     "\331\205\330\261\330\255\330\250\330\247 \327\251\327\234\327\225\327\235 "
     "\340\244\271\340\244\277\340\244\250\340\245\215\340\244\246\340\245\200",
     {41175, 126, 367, 33613, 149, 352, 7410, 359, 6874, 253, 502, 15889, 478, 43722, 1752, 48338,
      21078, 105, 21575, 23170, 250, 48132, 363, 15197, 250, 31871, 255, 31625, 368, 12986, 10948,
      25722, 16378, 22625, 147, 102, 147, 250, 147, 243, 147, 507, 29446, 26721, 26090, 19389,
      29552, 25751}, 48},
    /* Unicode whitespace collapses (U+200B is no space; U+001C only strips) */
    {"a\302\240b\343\200\200c\342\200\250d\342\200\213e\034f \034",
     {320, 321, 322, 323, 9844, 324, 472, 325}, 8},
    /* invalid UTF-8 decodes to U+FFFD as Python's errors="replace" */
    {"ok\377\303(\342\202 \355\240\200 \360\237\230",
     {2481, 47356, 47356, 7, 39802, 47356, 47356, 39802, 39802}, 9},
};

static void check_ref_cases(const md_tokenizer *tok, const char *which)
{
    for (size_t c = 0; c < sizeof k_ref_cases / sizeof k_ref_cases[0]; c++) {
        const ref_case *rc = &k_ref_cases[c];
        int32_t ids[128];
        md_error err = {0};
        int64_t n = md_tokenizer_encode_raw(tok, rc->text, ids, 128, &err);
        int same = n == rc->n;
        for (int i = 0; same && i < rc->n; i++)
            same = ids[i] == rc->ids[i];
        CHECK(same, "%s: reference case %zu (%.30s...) gives %lld ids, differs", which, c,
              rc->text, (long long)n);
    }
}

static int64_t encode(const md_tokenizer *tok, const char *text, int32_t *ids, int64_t cap)
{
    md_error err = {0};
    int64_t n = md_tokenizer_encode_raw(tok, text, ids, cap, &err);
    CHECK(n >= 0, "encode \"%s\": %s", text, err.msg);
    return n;
}

/* Texts that cleaning must make identical. */
static void check_equivalent(const md_tokenizer *tok, const char *a, const char *b)
{
    int32_t ia[256], ib[256];
    int64_t na = encode(tok, a, ia, 256), nb = encode(tok, b, ib, 256);
    int same = na == nb && na <= 256 && memcmp(ia, ib, (size_t)(na > 0 ? na : 0) * 4) == 0;
    CHECK(same, "\"%s\" and \"%s\" encode differently (%lld vs %lld ids)", a, b, (long long)na,
          (long long)nb);
}

static void check_semantics(const md_tokenizer *tok)
{
    CHECK(md_tokenizer_bos(tok) == 49406 && md_tokenizer_eos(tok) == 49407, "bos %d eos %d",
          md_tokenizer_bos(tok), md_tokenizer_eos(tok));
    CHECK(md_tokenizer_token_id(tok, "!") == 0, "'!' is id 0");
    CHECK(md_tokenizer_token_id(tok, "a</w>") == 320, "'a</w>' is id 320");
    CHECK(md_tokenizer_token_id(tok, "<|endoftext|>") == 49407, "eos by name");
    CHECK(md_tokenizer_token_id(tok, "no such token") == -1, "unknown token gives -1");

    check_equivalent(tok, "A Photo  OF\ta\n\ncat ", "a photo of a cat");
    check_equivalent(tok, "&lt;tag&gt; &amp;amp;", "<tag> &");
    check_equivalent(tok, "&#x41;&#66;c", "abc");
    check_equivalent(tok, "\320\234\320\236\320\241\320\232\320\222\320\220 \303\211COLE",
                     "\320\274\320\276\321\201\320\272\320\262\320\260 \303\251cole");
    check_equivalent(tok, "\316\243\316\237\316\244\316\221\316\243", /* ΣΟΤΑΣ: final sigma */
                     "\317\203\316\277\317\204\316\261\317\202");
    check_equivalent(tok, "", "   \t\n ");

    /* cap: the full count is returned, only cap ids are written */
    int32_t ids[8] = {-5, -5, -5, -5, -5, -5, -5, -5};
    int64_t n = encode(tok, "a photo of a cat", ids, 2);
    CHECK(n == 5 && ids[0] == 320 && ids[1] == 1125 && ids[2] == -5, "cap 2: n %lld ids %d %d %d",
          (long long)n, ids[0], ids[1], ids[2]);
    CHECK(encode(tok, "a photo of a cat", NULL, 0) == 5, "cap 0 counts");

    /* encode_77: BOS, 75 tokens, EOS; returns the count before truncation */
    char text[800] = "";
    for (int i = 0; i < 100; i++)
        strcat(text, "cat ");
    int32_t row[MD_CLIP_CONTEXT];
    md_error err = {0};
    n = md_tokenizer_encode_77(tok, text, 0, row, &err);
    CHECK(n == 100 && row[0] == 49406 && row[75] == 2368 && row[76] == 49407,
          "long prompt: n %lld, row[75] %d row[76] %d", (long long)n, row[75], row[76]);
    n = md_tokenizer_encode_77(tok, "a cat", 0, row, &err);
    CHECK(n == 2 && row[1] == 320 && row[2] == 2368 && row[3] == 49407 && row[4] == 0 &&
              row[76] == 0,
          "pad 0: n %lld row %d %d %d %d", (long long)n, row[1], row[2], row[3], row[4]);
    n = md_tokenizer_encode_77(tok, "", 49407, row, &err);
    CHECK(n == 0 && row[0] == 49406 && row[1] == 49407 && row[76] == 49407, "empty prompt");

    /* a long run without spaces stays fast and exact in length terms */
    size_t big = 200000;
    char *s = malloc(big + 1);
    if (s) {
        for (size_t i = 0; i < big; i++)
            s[i] = (char)('a' + (i * 7 + i / 3) % 10);
        s[big] = '\0';
        n = encode(tok, s, NULL, 0);
        CHECK(n > 1000 && n < (int64_t)big, "200000-letter word gives %lld tokens", (long long)n);
        free(s);
    }
}

/* Every entry of vocab.json has the same id in the builtin vocabulary. */
static void check_builtin_vocab(const md_tokenizer *builtin, const char *tokdir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/vocab.json", tokdir);
    cJSON *v = md_test_read_json(path);
    CHECK(v != NULL, "cannot read %s", path);
    if (!v)
        return;
    int n = 0, same = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        n++;
        same += md_tokenizer_token_id(builtin, e->string) == (int32_t)e->valuedouble;
    }
    printf("  builtin vocabulary: %d of %d vocab.json entries have the same id\n", same, n);
    CHECK(n == 49408 && same == n, "builtin vocabulary differs from %s", path);
    cJSON_Delete(v);
}

/* Encodes `key` prompts of golden.json and compares with record `rec`;
 * returns the number of matching rows. */
static int check_prompts(const char *kase, const cJSON *gj, const char *key,
                         const md_safetensors *g, const char *rec, const md_tokenizer *tok,
                         const md_tokenizer *builtin, int32_t pad)
{
    const cJSON *prompts = cJSON_GetObjectItemCaseSensitive(gj, key);
    if (!cJSON_IsArray(prompts) || !md_safetensors_find(g, rec))
        return 0;
    md_tensor desc = {0};
    int32_t *want = md_test_golden_i32(g, rec, &desc);
    const int nd = desc.ndim;
    const int64_t *dims = desc.shape;
    int np = cJSON_GetArraySize(prompts);
    CHECK(want && nd == 2 && dims[0] == np && dims[1] == MD_CLIP_CONTEXT, "%s %s: shape", kase,
          rec);
    if (!want || nd != 2 || dims[0] != np) {
        free(want);
        return 0;
    }
    int match = 0;
    for (int i = 0; i < np; i++) {
        const char *p = cJSON_GetStringValue(cJSON_GetArrayItem(prompts, i));
        int32_t a[MD_CLIP_CONTEXT], b[MD_CLIP_CONTEXT];
        md_error err = {0};
        int64_t na = md_tokenizer_encode_77(tok, p ? p : "", pad, a, &err);
        int64_t nb = md_tokenizer_encode_77(builtin, p ? p : "", pad, b, &err);
        int ok = na >= 0 && memcmp(a, want + (size_t)i * MD_CLIP_CONTEXT, sizeof a) == 0;
        match += ok;
        CHECK(ok, "%s %s row %d (\"%.40s\") differs", kase, rec, i, p ? p : "");
        CHECK(nb == na && memcmp(a, b, sizeof a) == 0, "%s %s row %d: builtin differs", kase, rec,
              i);
    }
    printf("  %-18s %-22s %d/%d prompts match\n", kase, rec, match, np);
    free(want);
    return match;
}

static int32_t json_int(const cJSON *j, const char *key, int32_t dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? (int32_t)v->valuedouble : dflt;
}

static void check_case(const char *root, const char *kase, const md_tokenizer *builtin,
                       int *cases)
{
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/%s/tokenizer", root, kase);
    snprintf(path, sizeof path, "%s/%s/golden.safetensors", root, kase);
    if (!md_test_exists(dir) || !md_test_exists(path))
        return;
    md_safetensors *g = md_test_open_safetensors(path);
    snprintf(path, sizeof path, "%s/%s/golden.json", root, kase);
    cJSON *gj = md_test_read_json(path);
    CHECK(g && gj, "%s: cannot read golden files", kase);
    md_tokenizer *tok = NULL, *tok2 = NULL;
    md_error err = {0};
    md_status st = md_tokenizer_load_dir(dir, &tok, &err);
    CHECK(st == MD_OK, "%s: %s", dir, err.msg);
    if (g && gj && st == MD_OK) {
        (*cases)++;
        if (*cases == 1)
            check_builtin_vocab(builtin, dir);
        int32_t pad = json_int(gj, "pad_token_id", 49407);
        check_prompts(kase, gj, "prompts", g, "tokenizer.ids", tok, builtin, pad);
        check_prompts(kase, gj, "te_prompts", g, "text_encoder.ids", tok, builtin, pad);
        snprintf(dir, sizeof dir, "%s/%s/tokenizer_2", root, kase);
        if (md_test_exists(dir)) {
            st = md_tokenizer_load_dir(dir, &tok2, &err);
            CHECK(st == MD_OK, "%s: %s", dir, err.msg);
            int32_t pad2 = json_int(gj, "pad_token_id_2", 0);
            if (st == MD_OK) {
                CHECK(md_tokenizer_token_id(tok2, "!") == pad2, "%s: pad id 2", kase);
                check_prompts(kase, gj, "prompts_2", g, "tokenizer_2.ids", tok2, builtin, pad2);
                check_prompts(kase, gj, "te_prompts", g, "text_encoder_2.ids", tok2, builtin,
                              pad2);
            }
        }
    }
    md_tokenizer_free(tok);
    md_tokenizer_free(tok2);
    cJSON_Delete(gj);
    md_safetensors_close(g);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot write %s", path);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* A hand-made tiny vocabulary loads; broken ones fail with messages. */
static void check_load_errors(void)
{
    md_tokenizer *tok = NULL;
    md_error err = {0};
    md_status st = md_tokenizer_load_dir("/nonexistent/tokenizer", &tok, &err);
    CHECK(st == MD_ERR_IO && tok == NULL && strstr(err.msg, "/nonexistent/tokenizer/vocab.json"),
          "missing folder: %d %s", st, err.msg);

    char dir[256];
    if (!md_test_make_temp_dir(dir, sizeof dir, "md_tok_")) {
        FAIL("mkdtemp failed");
        return;
    }
    char vpath[512], mpath[512];
    snprintf(vpath, sizeof vpath, "%s/vocab.json", dir);
    snprintf(mpath, sizeof mpath, "%s/merges.txt", dir);

    /* a complete byte alphabet (ids in CLIP order) plus two merges */
    size_t cap = 64 * 1024, len = 0;
    char *json = malloc(cap);
    len += (size_t)snprintf(json + len, cap - len, "{");
    int id = 0;
    for (int pass = 0; pass < 2; pass++) {
        /* the printable bytes, then U+0100.. for the others */
        for (int k = 0; k < 256; k++) {
            int b = k < 94 ? 33 + k : k < 106 ? 161 + (k - 94) : k < 188 ? 174 + (k - 106) : -1;
            unsigned cp = b >= 0 ? (unsigned)b : 256u + (unsigned)(k - 188);
            char u[8];
            int ul = cp < 0x80 ? (u[0] = (char)cp, 1)
                               : (u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F)), 2);
            u[ul] = '\0';
            const char *esc = (cp == '"' || cp == '\\') ? "\\" : "";
            len += (size_t)snprintf(json + len, cap - len, "%s\"%s%s%s\": %d", id ? ", " : "", esc,
                                    u, pass ? "</w>" : "", id);
            id++;
        }
    }
    len += (size_t)snprintf(json + len, cap - len,
                            ", \"ca\": %d, \"cat</w>\": %d, \"<|startoftext|>\": %d, "
                            "\"<|endoftext|>\": %d}",
                            id, id + 1, id + 2, id + 3);
    write_file(vpath, json);
    write_file(mpath, "#version: 0.2\nc a\nca t</w>\n");
    st = md_tokenizer_load_dir(dir, &tok, &err);
    CHECK(st == MD_OK, "tiny vocabulary: %s", err.msg);
    if (st == MD_OK) {
        int32_t ids[4];
        md_error e2 = {0};
        int64_t n = md_tokenizer_encode_raw(tok, "Cat cat ca", ids, 4, &e2);
        /* "ca" + "</w>": c, a</w> ("ca</w>" is not a merge) */
        CHECK(n == 4 && ids[0] == 513 && ids[1] == 513 && ids[2] == 66 && ids[3] == 256 + 64,
              "tiny vocabulary: n %lld ids %d %d %d %d", (long long)n, ids[0], ids[1], ids[2],
              ids[3]);
        CHECK(md_tokenizer_bos(tok) == 514 && md_tokenizer_eos(tok) == 515, "tiny bos/eos");
        md_tokenizer_free(tok);
        tok = NULL;
    }

    write_file(mpath, "#version: 0.2\nc a\nx yz\n");
    st = md_tokenizer_load_dir(dir, &tok, &err);
    CHECK(st == MD_ERR_FORMAT && strstr(err.msg, "line 3") && strstr(err.msg, "merges.txt"),
          "merge with unknown token: %d %s", st, err.msg);
    write_file(mpath, "#version: 0.2\nc a t\n");
    st = md_tokenizer_load_dir(dir, &tok, &err);
    CHECK(st == MD_ERR_FORMAT && strstr(err.msg, "line 2"), "three-part merge: %d %s", st,
          err.msg);
    write_file(mpath, "#version: 0.2\nc a\n");
    write_file(vpath, "{\"a\": 0, \"b\": 0}");
    st = md_tokenizer_load_dir(dir, &tok, &err);
    CHECK(st == MD_ERR_FORMAT && strstr(err.msg, "twice"), "duplicate id: %d %s", st, err.msg);
    write_file(vpath, "{\"a\": -1}");
    st = md_tokenizer_load_dir(dir, &tok, &err);
    CHECK(st == MD_ERR_FORMAT, "negative id: %d %s", st, err.msg);
    write_file(vpath, "[1, 2");
    st = md_tokenizer_load_dir(dir, &tok, &err);
    CHECK(st == MD_ERR_FORMAT && strstr(err.msg, "vocab.json"), "bad JSON: %d %s", st, err.msg);
    write_file(vpath, "{\"c\": 0, \"a\": 1, \"ca\": 2}");
    st = md_tokenizer_load_dir(dir, &tok, &err);
    CHECK(st == MD_ERR_FORMAT && strstr(err.msg, "byte"), "no byte alphabet: %d %s", st, err.msg);
    CHECK(tok == NULL, "failed loads leave *out NULL");

    free(json);
    md_test_remove_tree(dir);
}

int main(void)
{
    md_tokenizer *builtin = NULL;
    md_error err = {0};
    md_status st = md_tokenizer_load_builtin(&builtin, &err);
    CHECK(st == MD_OK, "builtin: %s", err.msg);
    if (st != MD_OK)
        return 1;
    check_ref_cases(builtin, "builtin");
    check_semantics(builtin);
    check_load_errors();

    const char *root = md_test_golden_dir();
    int ncase = 0, cases = 0;
    char **names = root ? md_test_list_cases(root, &ncase) : NULL;
    CHECK(names && ncase > 0, "MD_GOLDEN_DIR is not set or empty");
    for (int i = 0; i < ncase; i++)
        check_case(root, names[i], builtin, &cases);
    md_test_free_names(names, ncase);
    CHECK(cases >= 2, "only %d golden cases with a tokenizer", cases);

    /* the same checks from a folder-loaded tokenizer */
    if (root) {
        char dir[4096];
        md_tokenizer *tok = NULL;
        snprintf(dir, sizeof dir, "%s/tiny-sd-dense/tokenizer", root);
        if (md_tokenizer_load_dir(dir, &tok, &err) == MD_OK) {
            check_ref_cases(tok, dir);
            md_tokenizer_free(tok);
        }
    }
    md_tokenizer_free(builtin);
    return md_test_finish("test_tokenizer");
}
