/* The parsers behind `moe-diffuse batch` (run under the sanitizers in CI):
 * --shard specs and auto/N from the Slurm and Kubernetes variables, the
 * prompts file and per-line overrides, output name clashes, and manifest
 * reading with a torn last line. The CLI sources are compiled in here
 * because the test executables link only the engine library (and the
 * sampler names come from libmoediffuse, as in the CLI). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../cli/batch_job.c"
#include "../cli/batch_record.c"
#include "../cli/engine.c"
#include "../cli/manifest.c"
#include "../cli/shard.c"
#include "test_support.h"


static void clear_env(void)
{
    unsetenv("SLURM_ARRAY_TASK_ID");
    unsetenv("SLURM_ARRAY_TASK_MIN");
    unsetenv("SLURM_ARRAY_TASK_MAX");
    unsetenv("JOB_COMPLETION_INDEX");
}

static long shard_k(const char *spec, char *msg)
{
    md_shard s;
    return md_shard_parse(spec, &s, msg, 256) ? -1 : s.k;
}

static void test_shard(void)
{
    char msg[256];
    clear_env();
    CHECK(shard_k("0/1", msg) == 0);
    CHECK(shard_k("2/3", msg) == 2);
    CHECK(shard_k("3/3", msg) == -1 && strstr(msg, "K must be an integer in 0..2"));
    CHECK(shard_k("-1/3", msg) == -1);
    CHECK(shard_k("1/0", msg) == -1 && strstr(msg, "N must be"));
    CHECK(shard_k("1/", msg) == -1);
    CHECK(shard_k("/3", msg) == -1);
    CHECK(shard_k("1", msg) == -1 && strstr(msg, "expects K/N"));
    CHECK(shard_k("1/2/3", msg) == -1);
    CHECK(shard_k("auto/3", msg) == -1 && strstr(msg, "JOB_COMPLETION_INDEX"));
    /* every index lands in exactly one of N shards */
    for (long n = 1; n <= 7; n++)
        for (long i = 0; i < 50; i++) {
            int owners = 0;
            for (long k = 0; k < n; k++) {
                md_shard s = {.k = k, .n = n};
                owners += md_shard_owns(&s, i);
            }
            CHECK(owners == 1);
        }
    /* 1-based and 0-based Slurm arrays and k8s indices map to the same K */
    for (int t = 0; t < 3; t++) {
        char id[16], id0[16];
        snprintf(id, sizeof id, "%d", t + 1);
        snprintf(id0, sizeof id0, "%d", t);
        clear_env();
        setenv("SLURM_ARRAY_TASK_ID", id, 1);
        setenv("SLURM_ARRAY_TASK_MIN", "1", 1);
        setenv("SLURM_ARRAY_TASK_MAX", "3", 1);
        CHECK(shard_k("auto/3", msg) == t);
        clear_env();
        setenv("SLURM_ARRAY_TASK_ID", id0, 1);
        CHECK(shard_k("auto/3", msg) == t);
        clear_env();
        setenv("JOB_COMPLETION_INDEX", id0, 1);
        CHECK(shard_k("auto/3", msg) == t);
    }
    clear_env();
    setenv("SLURM_ARRAY_TASK_ID", "2", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "2", 1);
    setenv("SLURM_ARRAY_TASK_MAX", "2", 1);
    CHECK(shard_k("auto/4", msg) == -1 && strstr(msg, "spans tasks 2..2"));
    clear_env();
    setenv("JOB_COMPLETION_INDEX", "5", 1);
    CHECK(shard_k("auto/3", msg) == -1 && strstr(msg, "outside 0..2"));
    clear_env();
}

static mdh_request base; /* the library's defaults, as batch's command line starts */

static md_batch_job resolve(const char *text, long index)
{
    char *copy = strdup(text);
    md_batch_entry e = {index, index + 1, copy};
    md_batch_job j;
    const md_batch_defaults defaults = {.request = &base, .base_seed = 1000};
    md_batch_job_resolve(&e, "p.jsonl", &defaults, &j);
    free(copy); /* jobs own their strings */
    return j;
}

static int error_has(const md_batch_job *j, const char *s)
{
    return !j->valid && j->error && strstr(j->error, s);
}

static void test_jobs(void)
{
    mdh_request_init(&base);
    md_batch_job j = resolve("a plain prompt", 4);
    const mdiff_gen_params *p = &j.req.p;
    CHECK(j.valid && !strcmp(p->prompt, "a plain prompt") && p->seed == 1004 && p->steps == 20 &&
          !strcmp(j.name, "00004.png") && !p->negative_prompt &&
          p->guidance == MDIFF_GUIDANCE_MODEL);
    md_batch_job_clear(&j);

    /* "cfg_scale" is the old name of "guidance" */
    j = resolve("{\"prompt\":\"fox\",\"negative_prompt\":\"blur\",\"seed\":7,\"steps\":3,"
                "\"cfg_scale\":4.5,\"sampler\":\"ddim\",\"width\":24,\"height\":32,"
                "\"output\":\"fox\",\"clip_skip\":2}",
                0);
    p = &j.req.p;
    CHECK(j.valid && !strcmp(p->prompt, "fox") && !strcmp(p->negative_prompt, "blur") &&
          p->seed == 7 && p->steps == 3 && p->guidance == 4.5f && !strcmp(p->sampler, "ddim") &&
          p->width == 24 && p->height == 32 && p->clip_skip == 2 && !strcmp(j.name, "fox.png"));
    md_batch_job_clear(&j);

    /* every request field under its library name, images and MoE included */
    j = resolve("{\"prompt\":\"fox\",\"guidance\":3,\"init_image\":\"in.png\",\"mask\":\"m.png\","
                "\"strength\":0.5,\"moe_top_k\":1,\"moe_routing\":\"token\","
                "\"prompt_syntax\":\"plain\",\"original_width\":640}",
                0);
    p = &j.req.p;
    CHECK(j.valid && p->guidance == 3.0f && !strcmp(j.req.init_image, "in.png") &&
          !strcmp(j.req.mask, "m.png") && p->strength == 0.5f && p->moe_top_k == 1 &&
          p->moe_routing == MDIFF_ROUTING_TOKEN && p->prompt_syntax == MDIFF_PROMPT_PLAIN &&
          p->original_width == 640);
    /* the manifest record lists every field; the resume rule matches it
     * only for the same request */
    md_batch_run_info ri = {.prompts = "p.jsonl", .model = "m", .shard = "0/1"};
    cJSON *rec = md_batch_record(&j, &ri, "o/fox.png", "ok", NULL, 1, 1, NULL, NULL);
    CHECK(rec && cJSON_IsNumber(cJSON_GetObjectItem(rec, "moe_top_k")) &&
          cJSON_IsString(cJSON_GetObjectItem(rec, "init_image")));
    CHECK(rec && matches(rec, &j));
    j.req.p.moe_top_k = 2;
    CHECK(rec && !matches(rec, &j));
    cJSON_Delete(rec);
    md_batch_job_clear(&j);

    static const struct {
        const char *line, *error;
    } bad[] = {
        {"{\"prompt\":\"x\",", "p.jsonl:3: malformed JSON"},
        {"{\"prompt\":\"x\"} trailing", "malformed JSON"},
        {"[1]", NULL}, /* not '{': a plain prompt */
        {"{\"prompt\":\"x\",\"foo\":1}", "unknown key \"foo\""},
        {"{\"prompt\":\"x\",\"steps\":2,\"steps\":3}", "appears twice"},
        {"{\"prompt\":\"x\",\"width\":100}", "multiple of 8, got 100"},
        {"{\"prompt\":\"x\",\"width\":\"64\"}", "\"width\" must be an integer"},
        {"{\"prompt\":\"x\",\"steps\":2.5}", "\"steps\" must be an integer"},
        {"{\"prompt\":\"x\",\"seed\":-1}", "\"seed\" must be an integer"},
        {"{\"prompt\":\"x\",\"cfg_scale\":101}", "guidance"},
        {"{\"prompt\":\"x\",\"moe_top_k\":17}", "moe_top_k must be 0..16"},
        {"{\"prompt\":\"x\",\"moe_routing\":\"nearest\"}", "\"moe_routing\" must be one of"},
        {"{\"prompt\":\"x\",\"mask\":\"m.png\"}", "needs \"init_image\""},
        {"{\"prompt\":\"x\",\"sampler\":\"plms\"}", "unknown sampler 'plms'"},
        {"{\"prompt\":\"x\",\"output\":\"../evil\"}", "plain file name"},
        {"{\"prompt\":\"x\",\"output\":\"a.gif\"}", "must end in .png"},
        {"{\"prompt\":\"x\",\"output\":\"a%d\"}", "must not contain"},
        {"{\"steps\":3}", "\"prompt\" is missing"},
        {"{\"prompt\":\"\"}", "\"prompt\" is missing or empty"},
        {"{}", "\"prompt\" is missing"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = resolve(bad[i].line, 2);
        if (bad[i].error ? !error_has(&j, bad[i].error) : !j.valid) {
            fprintf(stderr, "line %s: got %s\n", bad[i].line, j.valid ? "valid" : j.error);
            md_test_failf(__FILE__, __LINE__, "see above");
        }
        md_batch_job_clear(&j);
    }

    /* clashes: the lowest index keeps a name, later ones fail */
    md_batch_job js[3] = {resolve("a", 0), resolve("{\"prompt\":\"b\",\"output\":\"00000\"}", 1),
                          resolve("{\"prompt\":\"c\",\"output\":\"00001.png\"}", 2)};
    md_batch_jobs_check_names(js, 3, "p.jsonl");
    CHECK(js[0].valid && error_has(&js[1], "already used by line 1") && js[2].valid);
    for (int i = 0; i < 3; i++)
        md_batch_job_clear(&js[i]);
}

static void test_file_and_manifest(void)
{
    char dir[] = "/tmp/md_batch_test_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], mpath[256];
    snprintf(path, sizeof path, "%s/p.txt", dir);
    snprintf(mpath, sizeof mpath, "%s/manifest.jsonl", dir);
    FILE *f = fopen(path, "wb");
    fputs("\xEF\xBB\xBF# comment\r\n\r\n  first  \r\n\t# indented comment\n{\"prompt\":\"b\"}\nlast", f);
    fclose(f);
    md_batch_file bf;
    mdh_error err = {0};
    CHECK(md_batch_file_read(path, &bf, &err) == MDIFF_OK);
    CHECK(bf.count == 3);
    if (bf.count == 3) {
        CHECK(!strcmp(bf.entries[0].text, "first") && bf.entries[0].line == 3);
        CHECK(bf.entries[1].line == 5 && bf.entries[2].line == 6 && !strcmp(bf.entries[2].text, "last"));
    }
    md_batch_file_free(&bf);

    md_manifest_writer w;
    CHECK(md_manifest_open(mpath, &w, &err) == MDIFF_OK);
    md_manifest_writer w2;
    CHECK(md_manifest_open(mpath, &w2, &err) == MDIFF_ERR_IO && strstr(err.msg, "in use"));
    cJSON *rec = cJSON_Parse("{\"index\":1,\"status\":\"ok\",\"name\":\"x.png\",\"base_seed\":9,"
                             "\"base_seed_random\":true}");
    CHECK(md_manifest_append(&w, rec, &err) == MDIFF_OK);
    cJSON_Delete(rec);
    CHECK(write(w.fd, "{\"index\":2,\"sta", 15) == 15); /* a crash mid-append */
    md_manifest_close(&w);
    /* reopening terminates the torn line; the next record parses */
    CHECK(md_manifest_open(mpath, &w, &err) == MDIFF_OK);
    rec = cJSON_Parse("{\"index\":0,\"status\":\"error\",\"error\":\"x\"}");
    CHECK(md_manifest_append(&w, rec, &err) == MDIFF_OK);
    cJSON_Delete(rec);
    md_manifest_close(&w);
    md_manifest_done d;
    md_manifest_done_init(&d, 3);
    CHECK(md_manifest_read(mpath, &d, &err) == MDIFF_OK);
    CHECK(d.records == 1 && d.skipped == 1 && md_manifest_done_get(&d, 1) &&
          !md_manifest_done_get(&d, 0) && !md_manifest_done_get(&d, 2));
    CHECK(d.have_base_seed && d.base_seed == 9);
    md_manifest_done_free(&d);
    unlink(mpath);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    test_shard();
    test_jobs();
    test_file_and_manifest();
    mdh_request_clear(&base);
    return md_test_finish("batch parsers");
}
