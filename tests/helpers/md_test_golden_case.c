/* Test helper for the shell tests: derived golden case folders.
 *   md-test-golden-case moe-groups SRC OUT PREFIX LAYER CALL
 *     OUT = SRC's model (its entries symlinked) with only SRC's U-Net
 *     records (unet.call*, every unet.moe_<kind>.* group) plus a second
 *     MoE group: PREFIX.selected_experts, described as the choice of LAYER
 *     in call CALL. Its value is SRC's reference choice for that layer and
 *     call (golden.json moe_selected_experts_unet_calls); a layer without
 *     one gets experts 0..k-1, which no engine should produce since it is
 *     not a MoE layer.
 * No reference case records two groups, but tiny-sd-moe's model has MoE
 * ff and attention layers, and its reference choices for every layer are
 * recorded, so the second group is checked against reference values. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "io/safetensors.h"
#include "tools/golden_check/golden_json.h"

static int usage(void)
{
    fprintf(stderr, "usage: md-test-golden-case moe-groups SRC OUT PREFIX LAYER CALL\n");
    return 2;
}


/* The model files stay SRC's: every entry but the golden files. */
static int link_model(const char *src, const char *out)
{
    DIR *d = opendir(src);
    if (!d)
        return 1;
    struct dirent *ent;
    int bad = 0;
    while ((ent = readdir(d))) {
        if (ent->d_name[0] == '.' || strncmp(ent->d_name, "golden.", 7) == 0)
            continue;
        char from[4096], to[4096];
        snprintf(from, sizeof from, "%s/%s", src, ent->d_name);
        snprintf(to, sizeof to, "%s/%s", out, ent->d_name);
        char *abs = realpath(from, NULL);
        if (!abs || symlink(abs, to) != 0)
            bad = 1;
        free(abs);
    }
    closedir(d);
    return bad;
}

static int is_unet_record(const char *name)
{
    return strncmp(name, "unet.call", 9) == 0 || strncmp(name, "unet.moe_", 9) == 0;
}

/* SRC's recorded choice of `layer` in `call`, or NULL. */
static const cJSON *reference_choice(const cJSON *gj, const char *layer, int call)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(gj, "moe_selected_experts_unet_calls"))
    {
        const cJSON *n = cJSON_GetObjectItem(it, "call");
        if (cJSON_IsNumber(n) && n->valueint == call)
            return cJSON_GetObjectItem(cJSON_GetObjectItem(it, "selected_experts"), layer);
    }
    return NULL;
}

static int moe_groups(const char *src, const char *out, const char *prefix, const char *layer,
                      int call)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden.json", src);
    cJSON *gj = gc_read_json(path);
    snprintf(path, sizeof path, "%s/golden.safetensors", src);
    md_safetensors *st = NULL;
    md_error err = {0};
    if (!gj || md_safetensors_open(path, &st, &err) != MD_OK) {
        fprintf(stderr, "md-test-golden-case: cannot read the golden files of %s %s\n", src,
                err.msg);
        cJSON_Delete(gj);
        return 1;
    }
    if (mkdir(out, 0755) != 0 || link_model(src, out) != 0) {
        fprintf(stderr, "md-test-golden-case: cannot make %s\n", out);
        cJSON_Delete(gj);
        md_safetensors_close(st);
        return 1;
    }

    /* golden.json: what the U-Net records need, nothing that would start
     * other runners (pipelines, schedulers). */
    cJSON *nj = cJSON_CreateObject();
    static const char *const keep[] = {"case", "segmoe", "moe_selected_experts_unet_calls",
                                       "moe_min_relative_topk_margin"};
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
        const cJSON *v = cJSON_GetObjectItem(gj, keep[i]);
        if (v)
            cJSON_AddItemToObject(nj, keep[i], cJSON_Duplicate(v, 1));
    }
    cJSON *tensors = cJSON_AddObjectToObject(nj, "tensors");
    size_t n = md_safetensors_count(st), ne = 0;
    md_safetensors_entry *entries = calloc(n + 1, sizeof *entries);
    int top_k = 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, cJSON_GetObjectItem(gj, "tensors"))
    {
        const md_tensor *t = md_safetensors_find(st, rec->string);
        if (!is_unet_record(rec->string) || !t || !entries)
            continue;
        cJSON_AddItemToObject(tensors, rec->string, cJSON_Duplicate(rec, 1));
        entries[ne].name = rec->string;
        entries[ne++].tensor = *t;
        size_t len = strlen(rec->string);
        if (len > 17 && strcmp(rec->string + len - 17, ".selected_experts") == 0)
            top_k = (int)t->shape[0];
    }

    int32_t sel[16] = {0};
    const cJSON *want = reference_choice(gj, layer, call);
    int k = want ? cJSON_GetArraySize(want) : top_k;
    if (k < 1 || k > 16) {
        fprintf(stderr, "md-test-golden-case: %s records no MoE group to size the new one\n", src);
        k = 0;
    }
    for (int i = 0; i < k; i++)
        sel[i] = want ? cJSON_GetArrayItem(want, i)->valueint : i;
    char name[256], desc[512];
    snprintf(name, sizeof name, "%s.selected_experts", prefix);
    snprintf(desc, sizeof desc,
             "top-k experts of %s in call%d chosen from router_logits summed over all rows "
             "(descending logit-sum order)",
             layer, call);
    cJSON *r = cJSON_AddObjectToObject(tensors, name);
    int shape_k = k;
    cJSON_AddItemToObject(r, "shape", cJSON_CreateIntArray(&shape_k, 1));
    cJSON_AddStringToObject(r, "dtype", "int32");
    cJSON_AddNumberToObject(r, "tolerance", 0);
    cJSON_AddStringToObject(r, "description", desc);
    if (entries && k) {
        entries[ne].name = name;
        entries[ne].tensor = (md_tensor){.dtype = MD_I32, .ndim = 1, .shape = {k}, .data = sel};
        ne++;
    }

    int rc = 1;
    char *text = cJSON_Print(nj);
    snprintf(path, sizeof path, "%s/golden.json", out);
    FILE *f = text ? fopen(path, "wb") : NULL;
    if (f && fputs(text, f) >= 0 && fclose(f) == 0) {
        f = NULL;
        snprintf(path, sizeof path, "%s/golden.safetensors", out);
        if (k && md_safetensors_write(path, entries, ne, &err) == MD_OK)
            rc = 0;
        else
            fprintf(stderr, "md-test-golden-case: %s %s\n", path, err.msg);
    }
    if (f)
        fclose(f);
    free(text);
    free(entries);
    cJSON_Delete(nj);
    cJSON_Delete(gj);
    md_safetensors_close(st);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "moe-groups") == 0)
        return moe_groups(argv[2], argv[3], argv[4], argv[5], atoi(argv[6]));
    return usage();
}
