#include "json_get.h"

#include <math.h>
#include <string.h>

static const cJSON *member(const cJSON *j, const char *key)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, key);
    return (m && !cJSON_IsNull(m)) ? m : NULL;
}

static int as_int(const cJSON *m, int *out)
{
    if (!cJSON_IsNumber(m))
        return 0;
    double v = m->valuedouble;
    if (v != floor(v) || v < -2147483648.0 || v > 2147483647.0)
        return 0;
    *out = (int)v;
    return 1;
}

md_status md_json_int(const cJSON *j, const char *key, int def, const char *file, int *out,
                      md_error *err)
{
    const cJSON *m = member(j, key);
    if (!m) {
        *out = def;
        return MD_OK;
    }
    if (!as_int(m, out))
        return md_fail(err, MD_ERR_INVALID, "%s: \"%s\" must be an integer", file, key);
    return MD_OK;
}

md_status md_json_float(const cJSON *j, const char *key, float def, const char *file, float *out,
                        md_error *err)
{
    const cJSON *m = member(j, key);
    if (!m) {
        *out = def;
        return MD_OK;
    }
    if (!cJSON_IsNumber(m))
        return md_fail(err, MD_ERR_INVALID, "%s: \"%s\" must be a number", file, key);
    *out = (float)m->valuedouble;
    return MD_OK;
}

md_status md_json_bool(const cJSON *j, const char *key, int def, const char *file, int *out,
                       md_error *err)
{
    const cJSON *m = member(j, key);
    if (!m) {
        *out = def;
        return MD_OK;
    }
    if (!cJSON_IsBool(m))
        return md_fail(err, MD_ERR_INVALID, "%s: \"%s\" must be true or false", file, key);
    *out = cJSON_IsTrue(m) ? 1 : 0;
    return MD_OK;
}

md_status md_json_string(const cJSON *j, const char *key, const char *def, const char *file,
                         const char **out, md_error *err)
{
    const cJSON *m = member(j, key);
    if (!m) {
        *out = def;
        return MD_OK;
    }
    if (!cJSON_IsString(m))
        return md_fail(err, MD_ERR_INVALID, "%s: \"%s\" must be a string", file, key);
    *out = m->valuestring;
    return MD_OK;
}

md_status md_json_int_or_list(const cJSON *j, const char *key, int def, int n, const char *file,
                              int *out, md_error *err)
{
    const cJSON *m = member(j, key);
    int v = def;
    if (m && cJSON_IsArray(m)) {
        if (cJSON_GetArraySize(m) != n)
            return md_fail(err, MD_ERR_INVALID, "%s: \"%s\" has %d entries but there are %d levels",
                           file, key, cJSON_GetArraySize(m), n);
        int i = 0;
        for (const cJSON *e = m->child; e; e = e->next, i++)
            if (!as_int(e, &out[i]))
                return md_fail(err, MD_ERR_INVALID, "%s: \"%s\" must hold integers", file, key);
        return MD_OK;
    }
    if (m && !as_int(m, &v))
        return md_fail(err, MD_ERR_INVALID, "%s: \"%s\" must be an integer or a list", file, key);
    for (int i = 0; i < n; i++)
        out[i] = v;
    return MD_OK;
}

md_status md_json_uniform_int(const cJSON *j, const char *key, int def, const char *file,
                              int *out, md_error *err)
{
    const cJSON *m = member(j, key);
    if (m && cJSON_IsArray(m)) {
        int first = 0;
        for (const cJSON *e = m->child; e; e = e->next) {
            int v;
            if (!as_int(e, &v))
                return md_fail(err, MD_ERR_INVALID, "%s: \"%s\" must hold integers", file, key);
            if (e != m->child && v != first)
                return md_fail(err, MD_ERR_UNSUPPORTED,
                               "%s: \"%s\" with different values per block is not supported",
                               file, key);
            first = v;
        }
        if (!m->child)
            return md_fail(err, MD_ERR_INVALID, "%s: \"%s\" is an empty list", file, key);
        *out = first;
        return MD_OK;
    }
    return md_json_int(j, key, def, file, out, err);
}

md_status md_json_expect_string(const cJSON *j, const char *key, const char *expected,
                                const char *file, md_error *err)
{
    const cJSON *m = member(j, key);
    if (!m)
        return MD_OK;
    if (expected && cJSON_IsString(m) && strcmp(m->valuestring, expected) == 0)
        return MD_OK;
    if (cJSON_IsString(m))
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: \"%s\": \"%s\" is not supported%s%s%s", file,
                       key, m->valuestring, expected ? " (only \"" : "", expected ? expected : "",
                       expected ? "\")" : "");
    return md_fail(err, MD_ERR_UNSUPPORTED, "%s: \"%s\" has an unsupported value", file, key);
}

md_status md_json_expect_number(const cJSON *j, const char *key, double expected,
                                const char *file, md_error *err)
{
    const cJSON *m = member(j, key);
    if (!m || (cJSON_IsNumber(m) && m->valuedouble == expected))
        return MD_OK;
    if (cJSON_IsNumber(m))
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: \"%s\": %g is not supported (only %g)", file,
                       key, m->valuedouble, expected);
    return md_fail(err, MD_ERR_UNSUPPORTED, "%s: \"%s\" has an unsupported value", file, key);
}

md_status md_json_expect_bool(const cJSON *j, const char *key, int expected, const char *file,
                              md_error *err)
{
    const cJSON *m = member(j, key);
    if (!m || (cJSON_IsBool(m) && (cJSON_IsTrue(m) ? 1 : 0) == (expected ? 1 : 0)))
        return MD_OK;
    return md_fail(err, MD_ERR_UNSUPPORTED, "%s: \"%s\" must be %s (other values are not supported)",
                   file, key, expected ? "true" : "false");
}

md_status md_json_expect_null(const cJSON *j, const char *key, const char *file, md_error *err)
{
    if (!member(j, key))
        return MD_OK;
    return md_fail(err, MD_ERR_UNSUPPORTED, "%s: \"%s\" is set, which is not supported", file, key);
}

static int listed(const char *const *list, const char *key)
{
    for (; list && *list; list++)
        if (strcmp(*list, key) == 0)
            return 1;
    return 0;
}

md_status md_json_check_keys(const cJSON *j, const char *const *known, const char *const *ignored,
                             const char *file, const char *what, md_error *err)
{
    for (const cJSON *m = j ? j->child : NULL; m; m = m->next) {
        /* cJSON leaves the name NULL only for array entries; be safe anyway. */
        const char *key = m->string ? m->string : "";
        if (!listed(known, key) && !listed(ignored, key))
            return md_fail(err, MD_ERR_UNSUPPORTED, "%s: %s: unknown key \"%s\"", file, what, key);
    }
    return MD_OK;
}
