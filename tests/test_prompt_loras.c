/* LoRA tags of a prompt as A1111 takes them out (<lora:NAME:WEIGHT>,
 * <lora:NAME>, <lyco:...>): the text left exactly as it was around each
 * tag, names and weights, text that only looks like a tag left alone, and
 * the refusals quoting the tag. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "test_support.h"
#include "text/prompt_loras.h"

typedef struct tag_case {
    const char *prompt, *stripped;
    int n;
    const char *names[2];
    float weights[2];
} tag_case;

static const tag_case k_cases[] = {
    {"a cat <lora:ink:0.8>", "a cat ", 1, {"ink"}, {0.8f}},
    {"<lora:ink>, a cat", ", a cat", 1, {"ink"}, {1.0f}},
    {"<lyco:y:-0.5>(a:1.2)", "(a:1.2)", 1, {"y"}, {-0.5f}},
    {"<lora:a:1><lora:styles/b: 2 >x", "x", 2, {"a", "styles/b"}, {1.0f, 2.0f}},
    {"a\n<lora:m:0.25>\nb", "a\n\nb", 1, {"m"}, {0.25f}},
    {"<embed:z> cat", "<embed:z> cat", 0, {0}, {0}},
    {"<lora:x", "<lora:x", 0, {0}, {0}},
    {"a <3 b>", "a <3 b>", 0, {0}, {0}},
    {"<LORA:x:1>", "<LORA:x:1>", 0, {0}, {0}},
    {"", "", 0, {0}, {0}},
};

static const struct {
    const char *prompt, *why;
} k_refused[] = {
    {"<lora::1>", "names no LoRA"},
    {"<lora:x:1:2>", "separate text-encoder and U-Net weights"},
    {"<lora:x:abc>", "the weight is not a number"},
    {"<lora:x:>", "the weight is not a number"},
    {"<lora:x:1e40>", "the weight is not a number"},
    {"<hypernet:h:1>", "hypernetworks are not supported"},
};

int main(void)
{
    char out[256];
    md_prompt_lora tags[4];
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
        const tag_case *c = &k_cases[i];
        int n = -1;
        md_error err = {0};
        md_status st = md_prompt_take_loras(c->prompt, out, sizeof out, tags, 4, &n, &err);
        CHECK(st == MD_OK && n == c->n && !strcmp(out, c->stripped),
              "'%s': status %d, %d tags, left '%s' (%s)", c->prompt, st, n, out, err.msg);
        for (int k = 0; st == MD_OK && k < n && k < c->n; k++)
            CHECK(!strcmp(tags[k].name, c->names[k]) && tags[k].weight == c->weights[k],
                  "'%s' tag %d: %s:%g", c->prompt, k, tags[k].name, (double)tags[k].weight);
    }
    for (size_t i = 0; i < sizeof k_refused / sizeof k_refused[0]; i++) {
        int n = 0;
        md_error err = {0};
        md_status st = md_prompt_take_loras(k_refused[i].prompt, out, sizeof out, tags, 4, &n, &err);
        CHECK(st != MD_OK && strstr(err.msg, k_refused[i].why) &&
                  strstr(err.msg, k_refused[i].prompt + 1),
              "'%s' refused: %s", k_refused[i].prompt, err.msg);
    }
    /* more tags than the caller takes */
    int n = 0;
    md_error err = {0};
    CHECK(md_prompt_take_loras("<lora:a><lora:b><lora:c>", out, sizeof out, tags, 2, &n, &err) ==
                  MD_ERR_INVALID &&
              strstr(err.msg, "more than 2"),
          "three tags, room for two: %s", err.msg);
    return md_test_finish("prompt loras");
}
