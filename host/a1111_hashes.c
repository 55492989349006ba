#include "a1111_hashes.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "file_hash.h"

int mdh_model_hash(const mdiff_api *api, mdiff_context *ctx, char out[11], mdh_error *err)
{
    const mdiff_model_files_api *mf = api->get_feature(MDIFF_FEATURE_MODEL_FILES);
    char path[4096], hex[65];
    int n = mf ? mf->hash_file(ctx, path, sizeof path) : MDIFF_ERR_UNSUPPORTED;
    if (n < 0 || (size_t)n >= sizeof path)
        return mdh_fail(err, n < 0 ? n : MDIFF_ERR_INVALID, "the model's weights file is unknown");
    int rc = mdh_file_hash(path, MDH_HASH_FILE, hex, err);
    if (rc != MDIFF_OK)
        return rc;
    snprintf(out, 11, "%.10s", hex);
    return MDIFF_OK;
}

/* A .safetensors file's `sshs_model_hash` metadata (hex), if it has one. */
static int metadata_hash(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    unsigned char len8[8];
    int found = 0;
    if (f && fread(len8, 1, 8, f) == 8) {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = n << 8 | len8[i];
        char *h = n > 0 && n < (64u << 20) ? malloc(n + 1) : NULL;
        if (h && fread(h, 1, n, f) == n) {
            h[n] = '\0';
            cJSON *j = cJSON_Parse(h);
            const cJSON *meta = cJSON_GetObjectItemCaseSensitive(j, "__metadata__");
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, "sshs_model_hash");
            if (cJSON_IsString(v) && strlen(v->valuestring) >= 12 && strlen(v->valuestring) <= 64) {
                found = 1;
                for (const char *c = v->valuestring; *c; c++)
                    found &= isxdigit((unsigned char)*c) != 0;
                if (found)
                    snprintf(hex, 65, "%s", v->valuestring);
            }
            cJSON_Delete(j);
        }
        free(h);
    }
    if (f)
        fclose(f);
    return found;
}

static int is_safetensors(const char *path)
{
    size_t n = strlen(path);
    return n >= 12 && !strcasecmp(path + n - 12, ".safetensors");
}

int mdh_lora_hashes(const mdiff_api *api, mdiff_context *ctx, const mdiff_gen_params *p,
                    char **out, mdh_error *err)
{
    *out = NULL;
    const mdiff_lora_api *la = api->get_feature(MDIFF_FEATURE_LORA);
    if (!la)
        return MDIFF_OK;
    mdiff_lora_info *info = calloc(MDIFF_MAX_LORAS, sizeof *info);
    if (!info)
        return mdh_fail(err, MDIFF_ERR_NOMEM, "out of memory");
    for (int i = 0; i < MDIFF_MAX_LORAS; i++)
        info[i].struct_size = sizeof info[i];
    char msg[512];
    int n = la->list(ctx, p, info, MDIFF_MAX_LORAS, msg, sizeof msg);
    if (n < 0) {
        free(info);
        return mdh_fail(err, n, "%s", msg);
    }
    size_t cap = (size_t)n * (sizeof info[0].name + 16) + 1, len = 0;
    char *text = n ? malloc(cap) : NULL;
    int rc = n && !text ? mdh_fail(err, MDIFF_ERR_NOMEM, "out of memory") : MDIFF_OK;
    for (int i = 0; i < n && rc == MDIFF_OK; i++) {
        char hex[65];
        if (!(is_safetensors(info[i].path) && metadata_hash(info[i].path, hex)))
            rc = mdh_file_hash(info[i].path,
                               is_safetensors(info[i].path) ? MDH_HASH_SAFETENSORS_DATA
                                                            : MDH_HASH_FILE,
                               hex, err);
        if (rc != MDIFF_OK)
            break;
        if (len)
            len += (size_t)snprintf(text + len, cap - len, ", ");
        for (const char *c = info[i].name; *c; c++)
            if (*c != ':' && *c != ',')
                text[len++] = *c;
        len += (size_t)snprintf(text + len, cap - len, ": %.12s", hex);
        for (char *c = text + len - 12; *c; c++)
            *c = (char)tolower((unsigned char)*c);
    }
    free(info);
    if (rc != MDIFF_OK) {
        free(text);
        return rc;
    }
    *out = text;
    return MDIFF_OK;
}
