/* One line of a batch prompts file: a plain prompt, or a JSON object with
 * per-line request fields, resolved into a job (name, seed, request).
 * The CLI's sources are compiled in, as tests/test_batch_parse.c does. */
#include <stdint.h>
#include <stdlib.h>

#include "../../cli/batch_job.c"
#include "../../cli/engine.c"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mdh_request base;
    static int ready;
    if (!ready) {
        mdh_request_init(&base);
        ready = 1;
    }
    char *text = md_fuzz_string(data, size);
    if (!text)
        return 0;
    md_batch_entry e = {.index = 3, .line = 4, .text = text};
    const md_batch_defaults d = {.request = &base, .base_seed = 1000};
    md_batch_job jobs[2];
    md_batch_job_resolve(&e, "prompts.jsonl", &d, &jobs[0]);
    e.index = 4;
    md_batch_job_resolve(&e, "prompts.jsonl", &d, &jobs[1]);
    /* The same line twice: the second must clash on an explicit name. */
    md_batch_jobs_check_names(jobs, 2, "prompts.jsonl");
    if (!jobs[0].valid && !jobs[0].error)
        __builtin_trap(); /* documented: a bad line says why */
    md_batch_job_clear(&jobs[0]);
    md_batch_job_clear(&jobs[1]);
    free(text);
    return 0;
}
