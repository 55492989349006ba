/* Typed reads of config.json members with defaults and messages that name
 * the file and the field. An absent member or JSON null gives the default. */
#ifndef MD_JSON_GET_H
#define MD_JSON_GET_H

#include <cjson/cJSON.h>

#include "../runtime/status.h"

md_status md_json_int(const cJSON *j, const char *key, int def, const char *file, int *out,
                      md_error *err);
md_status md_json_float(const cJSON *j, const char *key, float def, const char *file, float *out,
                        md_error *err);
md_status md_json_bool(const cJSON *j, const char *key, int def, const char *file, int *out,
                       md_error *err);
/* *out points into j (or is def). */
md_status md_json_string(const cJSON *j, const char *key, const char *def, const char *file,
                         const char **out, md_error *err);
/* An int (repeated n times) or a list of exactly n ints. */
md_status md_json_int_or_list(const cJSON *j, const char *key, int def, int n, const char *file,
                              int *out, md_error *err);
/* An int, or a list whose entries are all equal (for fields this engine
 * keeps as one value). */
md_status md_json_uniform_int(const cJSON *j, const char *key, int def, const char *file,
                              int *out, md_error *err);

/* Fails with MD_ERR_UNSUPPORTED unless the member is absent, null or equal
 * to the given value (expected == NULL: must be null). */
md_status md_json_expect_string(const cJSON *j, const char *key, const char *expected,
                                const char *file, md_error *err);
md_status md_json_expect_number(const cJSON *j, const char *key, double expected,
                                const char *file, md_error *err);
md_status md_json_expect_bool(const cJSON *j, const char *key, int expected, const char *file,
                              md_error *err);
/* Must be absent or null. */
md_status md_json_expect_null(const cJSON *j, const char *key, const char *file, md_error *err);

/* Every member of object j must be named in `known` (what the caller reads)
 * or `ignored` (accepted on purpose and not used); both lists end with
 * NULL, `ignored` may be NULL. Otherwise MD_ERR_UNSUPPORTED:
 * "<file>: <what>: unknown key \"k\"", so nothing is dropped silently. */
md_status md_json_check_keys(const cJSON *j, const char *const *known, const char *const *ignored,
                             const char *file, const char *what, md_error *err);

#endif
