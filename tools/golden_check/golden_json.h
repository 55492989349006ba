/* A reference case's JSON file (golden.json, case.json), parsed with
 * Python's -Infinity / Infinity read as null. NULL when unreadable or not
 * JSON. */
#ifndef MD_GOLDEN_JSON_H
#define MD_GOLDEN_JSON_H

#include <cjson/cJSON.h>

cJSON *gc_read_json(const char *path);

#endif
