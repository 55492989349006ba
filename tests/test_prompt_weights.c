/* Prompt emphasis and chunking: the parser against AUTOMATIC1111's
 * parse_prompt_attention results (its documented examples and more),
 * chunk layout and the length limit with the builtin CLIP vocabulary, and
 * the weighted conditioning on the tiny reference models: a plain prompt
 * gives md_encode_prompt's conditioning bit for bit; weights scale token
 * rows and keep the chunk mean; long prompts are chunks encoded alone. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/pipeline.h"
#include "text/prompt_weights.h"
#include "test_support.h"


typedef struct frag {
    const char *text;
    double weight;
} frag;

typedef struct parse_case {
    const char *prompt;
    frag want[12];
    int n;
} parse_case;

static const parse_case k_cases[] = {
    {"normal text", {{"normal text", 1.0}}, 1},
    {"an (important) word", {{"an ", 1.0}, {"important", 1.1}, {" word", 1.0}}, 3},
    {"(unbalanced", {{"unbalanced", 1.1}}, 1},
    {"\\(literal\\]", {{"(literal]", 1.0}}, 1},
    {"(unnecessary)(parens)", {{"unnecessaryparens", 1.1}}, 1},
    {"a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     {{"a ", 1.0},
      {"house", 1.3 * 1.1 * 1.1},
      {" ", 1.1},
      {"on", 1.0},
      {" a ", 1.1},
      {"hill", 0.55},
      {", sun, ", 1.1},
      {"sky", 1.1 * 1.1 * 1.1 * 1.1},
      {".", 1.1}},
     9},
    {"[word]", {{"word", 1.0 / 1.1}}, 1},
    {"[[word]]", {{"word", (1.0 / 1.1) * (1.0 / 1.1)}}, 1},
    {"((a))", {{"a", 1.1 * 1.1}}, 1},
    {"(a:1.3)", {{"a", 1.3}}, 1},
    {"( a : 0.5 )", {{" a ", 0.5}}, 1},
    {"(a:-1)", {{"a", -1.0}}, 1},
    {"a: b :c", {{"a: b :c", 1.0}}, 1},
    {"x:1.5) y", {{"x:1.5) y", 1.0}}, 1},
    {"a \\\\ b \\x", {{"a \\ b x", 1.0}}, 1},
    {"a BREAK b", {{"a", 1.0}, {"BREAK", -1.0}, {"b", 1.0}}, 3},
    {"aBREAK b", {{"aBREAK b", 1.0}}, 1},
    {"(x BREAK y)", {{"x", 1.1}, {"BREAK", -1.1}, {"y", 1.1}}, 3},
    {"", {{"", 1.0}}, 1},
    {"(a] b)", {{"a] b", 1.1}}, 1},
    {"[a (b:1.5) c]", {{"a ", 1.0 / 1.1}, {"b", 1.5 / 1.1}, {" c", 1.0 / 1.1}}, 3},
};

static void test_parser(void)
{
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
        const parse_case *c = &k_cases[i];
        md_prompt_parse p;
        md_error err = {0};
        md_status st = md_prompt_parse_weights(c->prompt, &p, &err);
        CHECK(st == MD_OK, "'%s': %s", c->prompt, err.msg);
        if (st != MD_OK)
            continue;
        CHECK(p.count == c->n, "'%s': %d fragments, want %d", c->prompt, p.count, c->n);
        for (int k = 0; k < p.count && k < c->n; k++) {
            CHECK(!strcmp(p.frags[k].text, c->want[k].text), "'%s' [%d]: text '%s', want '%s'",
                  c->prompt, k, p.frags[k].text, c->want[k].text);
            CHECK(fabs(p.frags[k].weight - c->want[k].weight) < 1e-12,
                  "'%s' [%d]: weight %.17g, want %.17g", c->prompt, k, p.frags[k].weight,
                  c->want[k].weight);
        }
        md_prompt_parse_free(&p);
    }
    md_prompt_parse p;
    md_error err = {0};
    CHECK(md_prompt_parse_weights("(a:1.2.3)", &p, &err) == MD_ERR_INVALID &&
              strstr(err.msg, "1.2.3"),
          "a weight that is not a number is an error naming it: %s", err.msg);
}

static char *repeat_word(const char *word, int n)
{
    size_t len = strlen(word);
    char *s = malloc((len + 1) * (size_t)n + 1);
    s[0] = '\0';
    for (int i = 0; i < n; i++) {
        strcat(s, word);
        strcat(s, " ");
    }
    return s;
}

static void test_chunks(const md_tokenizer *tok)
{
    md_prompt_chunks *c = malloc(sizeof *c);
    md_error err = {0};
    const int32_t bos = md_tokenizer_bos(tok), eos = md_tokenizer_eos(tok);
    int32_t ids77[MD_CLIP_CONTEXT];

    /* plain prompts: the ids of md_tokenizer_encode_77, with either padding */
    const char *plain[] = {"a photo of a cat", "", "an astronaut: riding, a horse on mars"};
    for (int k = 0; k < 3; k++)
        for (int pad = 0; pad < 2; pad++) {
            int32_t pid = pad ? eos : 0;
            CHECK(md_prompt_tokenize(tok, plain[k], pid, c, &err) == MD_OK, "%s", err.msg);
            md_tokenizer_encode_77(tok, plain[k], pid, ids77, &err);
            CHECK(c->count == 1 && !c->weighted, "'%s': one unweighted chunk", plain[k]);
            CHECK(!memcmp(c->ids[0], ids77, sizeof ids77), "'%s': ids differ from encode_77",
                  plain[k]);
        }

    /* 200 tokens: chunks of 75, 75, 50, each BOS ... EOS, padded */
    char *p200 = repeat_word("a", 200);
    CHECK(md_prompt_tokenize(tok, p200, eos, c, &err) == MD_OK, "200 tokens: %s", err.msg);
    CHECK(c->count == 3 && c->tokens == 200, "200 tokens: %d chunks, %d tokens", c->count,
          c->tokens);
    int32_t a_id = c->ids[0][1];
    for (int k = 0; k < 3; k++) {
        int n = k < 2 ? 75 : 50;
        CHECK(c->ids[k][0] == bos && c->ids[k][n + 1] == eos, "chunk %d: BOS/EOS", k);
        for (int t = 1; t <= n; t++)
            CHECK(c->ids[k][t] == a_id, "chunk %d token %d", k, t);
        for (int t = n + 2; t < MD_CLIP_CONTEXT; t++)
            CHECK(c->ids[k][t] == eos, "chunk %d pad %d", k, t);
    }
    free(p200);

    /* the limit: 8 chunks of 75 = 600 tokens pass, 601 do not */
    char *p600 = repeat_word("a", 600), *p601 = repeat_word("a", 601);
    CHECK(md_prompt_tokenize(tok, p600, eos, c, &err) == MD_OK && c->count == 8,
          "600 tokens: %d chunks (%s)", c->count, err.msg);
    err.msg[0] = '\0';
    CHECK(md_prompt_tokenize(tok, p601, eos, c, &err) == MD_ERR_INVALID &&
              strstr(err.msg, "601 tokens") && strstr(err.msg, "longer than the limit"),
          "601 tokens: a clear error, got '%s'", err.msg);
    free(p600);
    free(p601);

    /* weights land on the tokens; BREAK starts a chunk */
    CHECK(md_prompt_tokenize(tok, "(cat:1.5) [dog]", eos, c, &err) == MD_OK, "%s", err.msg);
    CHECK(c->weighted && c->tokens == 2 && c->weights[0][0] == 1.0f && c->weights[0][1] == 1.5f &&
              c->weights[0][2] == (float)(1 / 1.1) && c->weights[0][3] == 1.0f,
          "weights per token");
    CHECK(md_prompt_tokenize(tok, "a cat BREAK a dog", eos, c, &err) == MD_OK && c->count == 2 &&
              c->ids[0][3] == eos && c->ids[1][3] == eos && c->tokens == 4,
          "BREAK: two chunks of two tokens");
    free(c);
}

static md_model *load(md_backend *be, const char *golden, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", golden, name);
    md_model_options mo = {.backend = be};
    md_model *m = NULL;
    md_error err = {0};
    if (md_model_load(path, &mo, &m, &err) != MD_OK) {
        CHECK(0, "%s: %s", path, err.msg);
        return NULL;
    }
    return m;
}

static void test_conditioning(md_model *m, const char *name)
{
    md_backend *be = md_unet_backend(m->unet);
    int sdxl = m->family == MD_FAMILY_SDXL;
    int dim = m->unet_cfg.cross_attention_dim;
    int pdim = sdxl ? m->te2_cfg.projection_dim : 1;
    size_t row = (size_t)MD_CLIP_CONTEXT * dim;
    float *a = calloc(3 * row, sizeof(float)), *b = calloc(3 * row, sizeof(float));
    float *pa = calloc((size_t)pdim, sizeof(float)), *pb = calloc((size_t)pdim, sizeof(float));
    md_error err = {0};
    int chunks = 0;

    /* plain prompts, with and without clip skip: bit-identical */
    for (int skip = 0; skip < 2; skip++) {
        const char *text = "a photo of a cat: sitting, on a mat";
        CHECK(md_encode_prompt(m, be, text, skip, a, sdxl ? pa : NULL, &err) == MD_OK, "%s",
              err.msg);
        CHECK(md_prompt_chunk_count(m, text, &chunks, &err) == MD_OK && chunks == 1, "%s", name);
        CHECK(md_encode_prompt_weighted(m, be, text, skip, 1, b, sdxl ? pb : NULL, &err) == MD_OK,
              "%s", err.msg);
        CHECK(!memcmp(a, b, row * sizeof(float)), "%s clip skip %d: plain prompt not identical",
              name, skip);
        CHECK(!sdxl || !memcmp(pa, pb, (size_t)pdim * sizeof(float)), "%s: pooled differs", name);
    }

    /* "(cat:1.5) dog": rows scaled by weight x r, r keeping the mean */
    md_encode_prompt(m, be, "cat dog", 0, a, NULL, &err);
    CHECK(md_encode_prompt_weighted(m, be, "(cat:1.5) dog", 0, 1, b, NULL, &err) == MD_OK, "%s",
          err.msg);
    double mean_a = 0, mean_b = 0, weighted = 0;
    for (int t = 0; t < MD_CLIP_CONTEXT; t++)
        for (int k = 0; k < dim; k++) {
            double v = a[(size_t)t * dim + k];
            mean_a += v;
            mean_b += b[(size_t)t * dim + k];
            weighted += v * (t == 1 ? 1.5 : 1.0);
        }
    CHECK(fabs(mean_a - mean_b) <= 1e-4 * fabs(mean_a) + 1e-6, "%s: mean %g -> %g", name, mean_a,
          mean_b);
    double r = mean_a / weighted;
    double worst = 0;
    for (int t = 0; t < MD_CLIP_CONTEXT; t++)
        for (int k = 0; k < dim; k++) {
            double want = a[(size_t)t * dim + k] * (t == 1 ? 1.5 : 1.0) * r;
            double d = fabs(b[(size_t)t * dim + k] - want);
            if (d > worst)
                worst = d;
        }
    CHECK(worst < 1e-5, "%s: weighted rows off by %g", name, worst);

    /* 76 tokens: two chunks; the first is the first 75 tokens alone, the
     * second a chunk of its own; padding to 3 adds the empty prompt */
    char *p76 = repeat_word("a", 76), *p75 = repeat_word("a", 75);
    CHECK(md_prompt_chunk_count(m, p76, &chunks, &err) == MD_OK && chunks == 2, "%s: 76 tokens",
          name);
    CHECK(md_encode_prompt_weighted(m, be, p76, 0, 3, b, NULL, &err) == MD_OK, "%s", err.msg);
    md_encode_prompt(m, be, p75, 0, a, NULL, &err);
    md_encode_prompt(m, be, "a", 0, a + row, NULL, &err);
    md_encode_prompt(m, be, "", 0, a + 2 * row, NULL, &err);
    CHECK(!memcmp(a, b, 3 * row * sizeof(float)), "%s: chunks are not the prompts encoded alone",
          name);
    free(p76);
    free(p75);
    free(a);
    free(b);
    free(pa);
    free(pb);
}

int main(void)
{
    test_parser();
    md_tokenizer *tok = NULL;
    md_error err = {0};
    if (md_tokenizer_load_builtin(&tok, &err) != MD_OK) {
        fprintf(stderr, "builtin tokenizer: %s\n", err.msg);
        return 1;
    }
    test_chunks(tok);
    md_tokenizer_free(tok);

    const char *golden = getenv("MD_GOLDEN_DIR");
    if (golden) {
        md_backend *be = NULL;
        CHECK(md_backend_cpu_create(&be, 2, &err) == MD_OK, "%s", err.msg);
        const char *models[] = {"tiny-sd-dense", "tiny-sdxl"};
        for (int i = 0; i < 2 && be; i++) {
            md_model *m = load(be, golden, models[i]);
            if (m)
                test_conditioning(m, models[i]);
            md_model_free(m);
        }
        md_backend_destroy(be);
    } else {
        fprintf(stderr, "MD_GOLDEN_DIR unset: conditioning checks skipped\n");
    }
    return md_test_finish("prompt weights");
}
