/* Prompts at the edges: emphasis weights that overflow a float are refused
 * at parse time (else they reach the conditioning as Inf), and parsing plus
 * tokenizing a 16 KB prompt of pathological content (deep nesting, one
 * 16 KB word, thousands of fragments) stays linear in its length. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text/prompt_weights.h"
#include "text/tokenizer.h"
#include "test_support.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void test_weight_range(void)
{
    const char *bad[] = {
        "(word:1000000000000000000000000000000000000000)", /* 1e39 */
        "((word:100000000000000000000):100000000000000000000)", /* 1e40 by nesting */
        "(word:-1000000000000000000000000000000000000000)",
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        md_prompt_parse p = {0};
        md_error err = {0};
        md_status st = md_prompt_parse_weights(bad[k], &p, &err);
        CHECK(st == MD_ERR_INVALID && strstr(err.msg, "out of range"),
              "'%s': status %d (%s), want an out-of-range refusal", bad[k], st, err.msg);
        md_prompt_parse_free(&p);
    }
    md_prompt_parse p = {0};
    md_error err = {0};
    CHECK(md_prompt_parse_weights("(word:1000)", &p, &err) == MD_OK && p.count == 1 &&
              p.frags[0].weight == 1000.0,
          "a large finite weight stays allowed: %s", err.msg);
    md_prompt_parse_free(&p);
}

/* n bytes of `unit` repeated (n a multiple of its length). */
static char *repeat(const char *unit, size_t n)
{
    size_t u = strlen(unit);
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        s[i] = unit[i % u];
    s[n] = '\0';
    return s;
}

/* Seconds for parse + tokenize of `text` (the chunk limit may refuse it:
 * only the time counts). */
static double time_prompt(const md_tokenizer *tok, const char *text, md_prompt_chunks *c)
{
    double t0 = now();
    md_error err = {0};
    md_prompt_tokenize(tok, text, md_tokenizer_eos(tok), c, &err);
    return now() - t0;
}

static void test_linear(const md_tokenizer *tok)
{
    const char *units[] = {"(", "((a)", "a", ":", "\\(", "a:", "(a:1.1)", "[", "a)", "BREAK ",
                           "(a BREAK)"};
    md_prompt_chunks *c = malloc(sizeof *c);
    for (size_t k = 0; k < sizeof units / sizeof *units; k++) {
        size_t big = 16384 - 16384 % strlen(units[k]), small = big / 8;
        char *sb = repeat(units[k], big), *ss = repeat(units[k], small);
        double ts = time_prompt(tok, ss, c), tb = time_prompt(tok, sb, c);
        /* Linear: 16 KB takes ~8x the 2 KB time; quadratic ~64x. The
         * absolute floor keeps timer noise on fast inputs from failing. */
        CHECK(tb < 0.05 || tb < 20.0 * ts, "'%s' x %zu: %.3f s, %.4f s for 1/8 of it: not linear",
              units[k], big / strlen(units[k]), tb, ts);
        CHECK(tb < 1.0, "'%s' x %zu: %.3f s", units[k], big / strlen(units[k]), tb);
        if (getenv("MD_TEST_VERBOSE"))
            printf("%-10s 16K %.4f s  2K %.4f s\n", units[k], tb, ts);
        free(sb);
        free(ss);
    }
    free(c);
}

int main(void)
{
    test_weight_range();
    md_tokenizer *tok = NULL;
    md_error err = {0};
    if (CHECK(md_tokenizer_load_builtin(&tok, &err) == MD_OK, "%s", err.msg)) {
        test_linear(tok);
        md_tokenizer_free(tok);
    }
    return md_test_finish("test_prompt_limits");
}
