/* md-tokenize: prints the 77 CLIP token ids (BOS, tokens, EOS, EOS padding)
 * of each stdin line as a JSON array, one line per prompt. The training tools
 * use it so that Python sees exactly the ids the engine will produce. */
#include <stdio.h>
#include <string.h>

#include "text/tokenizer.h"

int main(void)
{
    md_error err = {0};
    md_tokenizer *tok = NULL;
    if (md_tokenizer_load_builtin(&tok, &err) != MD_OK) {
        fprintf(stderr, "md-tokenize: %s\n", err.msg);
        return 1;
    }
    const int32_t pad = md_tokenizer_eos(tok); /* SD 1.x pads with <|endoftext|> */
    char line[4096];
    int rc = 0;
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        int32_t ids[MD_CLIP_CONTEXT];
        if (md_tokenizer_encode_77(tok, line, pad, ids, &err) < 0) {
            fprintf(stderr, "md-tokenize: %s\n", err.msg);
            rc = 1;
            break;
        }
        putchar('[');
        for (int i = 0; i < MD_CLIP_CONTEXT; i++)
            printf(i ? ",%d" : "%d", (int)ids[i]);
        puts("]");
    }
    md_tokenizer_free(tok);
    return rc;
}
