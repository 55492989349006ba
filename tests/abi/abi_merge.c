/* ABI 1.6 api->merge through the public header only: the golden SegMoE
 * case merges with progress per expert and per gate-init step, the result
 * loads as a 2-expert top-1 MoE model and generates; an existing output is
 * refused; a cancel from the progress callback or the cancel flag leaves
 * no folder behind; random gates follow the seed. */
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "abi_test.h"

typedef struct counts {
    int base, expert, steps, write, cancel_at; /* cancel_at: gate step that cancels, 0 none */
} counts;

static int on_progress(void *user, const mdiff_merge_progress *p)
{
    counts *c = user;
    switch (p->stage) {
    case MDIFF_MERGE_BASE: c->base++; break;
    case MDIFF_MERGE_EXPERT: c->expert++; break;
    case MDIFF_MERGE_GATE_STEP: c->steps++; break;
    case MDIFF_MERGE_WRITE: c->write++; break;
    }
    return c->cancel_at && c->steps >= c->cancel_at;
}

/* Entries in dir (a cancelled merge must leave none). */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* The merged U-Net file's bytes (random gates are compared by content). */
static char *slurp(const char *folder, long *len)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", folder);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)*len);
    if (b && fread(b, 1, (size_t)*len, f) != (size_t)*len)
        free(b), b = NULL;
    fclose(f);
    return b;
}

static void remove_merged(const char *folder)
{
    static const char *const files[] = {
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors", "text_encoder/config.json",
        "text_encoder/model.safetensors", "tokenizer/merges.txt", "tokenizer/vocab.json",
        "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
        "scheduler/scheduler_config.json", "model_index.json"};
    static const char *const dirs[] = {"unet", "vae", "text_encoder", "tokenizer", "scheduler"};
    char p[1200];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        snprintf(p, sizeof p, "%s/%s", folder, files[i]), unlink(p);
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
        snprintf(p, sizeof p, "%s/%s", folder, dirs[i]), rmdir(p);
    rmdir(folder);
}

int main(void)
{
    const mdiff_api *api = test_api();
    CHECK(api->struct_size >= offsetof(mdiff_api, merge) + sizeof api->merge && api->merge,
          "the api table has merge (struct_size %zu)", api->struct_size);
    if (!api->merge)
        return test_report("abi_merge");
    char tmp[] = "/tmp/abi-merge-XXXXXX", config[1100], out[1100], msg[1024];
    CHECK(mkdtemp(tmp) != NULL, "a scratch folder");
    snprintf(config, sizeof config, "%s/segmoe_config.yaml", test_model("tiny-segmoe-merge"));
    snprintf(out, sizeof out, "%s/merged", tmp);

    counts c = {0};
    mdiff_merge_params p = {.struct_size = sizeof p, .config_path = config, .output_path = out,
                            .threads = 2, .progress = on_progress, .progress_user = &c};
    int rc = api->merge(&p, msg, sizeof msg);
    CHECK(rc == MDIFF_OK, "merge: %s: %s", api->status_name(rc), msg);
    CHECK(c.base == 1 && c.expert == 2 && c.steps == 50 && c.write == 1,
          "progress: base %d, experts %d, gate steps %d (25 per expert), write %d", c.base,
          c.expert, c.steps, c.write);

    mdiff_context *ctx = test_context_at(api, out, "cpu");
    mdiff_model_info info = {.struct_size = sizeof info};
    CHECK(api->model_info(ctx, &info) == MDIFF_OK && info.num_experts == 2 && info.top_k == 1 &&
              info.moe_layers == 18,
          "the merged model: %d MoE layers of %d experts, top-%d", info.moe_layers,
          info.num_experts, info.top_k);
    mdiff_gen_params g;
    api->gen_params_init(&g, sizeof g);
    g.prompt = "a photo of an astronaut";
    g.steps = 3;
    g.seed = 1;
    uint64_t h1 = test_generate_hash(api, ctx, &g);
    CHECK(h1 == test_generate_hash(api, ctx, &g), "the merged model generates repeatably");
    api->context_destroy(ctx);

    rc = api->merge(&p, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_IO && strstr(msg, "exists"), "an existing output: %s: '%s'",
          api->status_name(rc), msg);
    remove_merged(out);
    CHECK(!exists(out) && entries(tmp) == 0, "scratch folder emptied");

    /* Cancelled by the callback during expert 2's run: nothing left. */
    c = (counts){.cancel_at = 30};
    rc = api->merge(&p, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_CANCELLED && entries(tmp) == 0,
          "cancel from the callback: %s, %d entries left", api->status_name(rc), entries(tmp));
    /* Cancelled by the flag before anything is written. */
    volatile int flag = 1;
    p.cancel = (const volatile int *)&flag;
    p.progress = NULL;
    rc = api->merge(&p, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_CANCELLED && entries(tmp) == 0, "cancel by the flag: %s",
          api->status_name(rc));
    p.cancel = NULL;

    /* Random gates: the same seed gives the same file, another seed others. */
    p.gate_init = MDIFF_MERGE_GATE_INIT_RANDOM;
    p.seed = 5;
    long l1 = 0, l2 = 0, l3 = 0;
    CHECK(api->merge(&p, msg, sizeof msg) == MDIFF_OK, "random merge: %s", msg);
    char *a = slurp(out, &l1);
    remove_merged(out);
    CHECK(api->merge(&p, msg, sizeof msg) == MDIFF_OK, "random merge again: %s", msg);
    char *b = slurp(out, &l2);
    remove_merged(out);
    p.seed = 6;
    CHECK(api->merge(&p, msg, sizeof msg) == MDIFF_OK, "random merge, seed 6: %s", msg);
    char *d = slurp(out, &l3);
    remove_merged(out);
    CHECK(a && b && d && l1 == l2 && l1 == l3 && !memcmp(a, b, (size_t)l1) &&
              memcmp(a, d, (size_t)l1),
          "random gates follow the seed (%ld, %ld, %ld bytes)", l1, l2, l3);
    free(a), free(b), free(d);

    /* Bad params. */
    mdiff_merge_params bad = p;
    bad.struct_size = 8;
    CHECK(api->merge(&bad, msg, sizeof msg) == MDIFF_ERR_INVALID, "struct_size too small");
    bad = p;
    bad.dtype_bits = 8;
    CHECK(api->merge(&bad, msg, sizeof msg) == MDIFF_ERR_INVALID && strstr(msg, "dtype_bits"),
          "dtype_bits 8: '%s'", msg);
    CHECK(entries(tmp) == 0, "nothing left after the failures");
    rmdir(tmp);
    return test_report("abi_merge");
}
