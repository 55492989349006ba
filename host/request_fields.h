/* The generation request's fields by name, for every host: one table of
 * mdiff_gen_params' fields, so batch JSON Lines, manifests, the server and
 * the `parameters` text read and write each field the same way. A new
 * request field is one row here (plus its place in moediffuse.h and the
 * library); every host then takes it.
 *
 * Images are file paths at this level: an mdh_request keeps the paths and
 * the host loads them into init_image / mask when it generates. */
#ifndef MDH_REQUEST_FIELDS_H
#define MDH_REQUEST_FIELDS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "host_error.h"
#include "moediffuse.h"

typedef enum mdh_field_type {
    MDH_FIELD_TEXT,   /* const char *: prompt, negative prompt (NULL allowed) */
    MDH_FIELD_NAME,   /* const char *: a sampler name (NULL = the default) */
    MDH_FIELD_PATH,   /* an image file (init_image, mask): kept in mdh_request */
    MDH_FIELD_INT,    /* int32_t */
    MDH_FIELD_SEED,   /* uint64_t, at most 2^53 - 1 (exact as a JSON number) */
    MDH_FIELD_FLOAT,  /* float */
    MDH_FIELD_CHOICE, /* int32_t stored as one of `choices` (index = value) */
    MDH_FIELD_FLAG,   /* uint32_t 0 or 1 (JSON true / false; text true, false, 1, 0) */
    MDH_FIELD_LORAS,  /* the LoRA list (loras, lora_count): JSON [{"path": P, "weight": W}] or
                         ["P", "P:W"]; text "P" or "P:W" appends one */
    MDH_FIELD_BYTES   /* uint64_t bytes: a number, or text with a unit ("512M", "1.5G",
                         "2GiB": powers of 1024) or a percentage of the model's expert
                         memory ("50%", kept in mdh_request until the host resolves it) */
} mdh_field_type;

typedef struct mdh_field {
    const char *name;            /* the ABI field name, also the JSON key */
    mdh_field_type type;
    size_t offset;               /* in mdiff_gen_params (unused for PATH) */
    const char *infotext;        /* key in the `parameters` text for fields the A1111 keys
                                    (infotext.c) do not cover; NULL = not written there */
    const char *const *choices;  /* MDH_FIELD_CHOICE: value names, NULL-terminated */
} mdh_field;

#define MDH_SEED_MAX 9007199254740991.0 /* 2^53 - 1 */

const mdh_field *mdh_request_fields(int *count);
const mdh_field *mdh_request_field(const char *name); /* NULL when unknown */

/* A request with its strings and image paths owned. */
typedef struct mdh_request {
    mdiff_gen_params p;          /* p.prompt / negative_prompt / sampler / moe_schedule /
                                    lora_dir point into text[], p.loras into loras */
    char *text[5];               /* owned copies (prompt, negative, sampler, moe_schedule,
                                    lora_dir) */
    mdiff_lora *loras;           /* p.lora_count entries, paths owned */
    char *init_image, *mask;     /* image files; NULL = none */
    char *moe_routes;            /* routes file (moe_routes is its text); NULL = none */
    float expert_memory_percent; /* max_expert_memory given as a percentage of the model's
                                    expert memory, 0 = given in bytes (or not given) */
} mdh_request;

/* p from the library's gen_params_init; nothing owned yet. */
void mdh_request_init(mdh_request *r);
/* Deep copy (strings and paths); MDIFF_ERR_NOMEM on failure (dst then cleared). */
int mdh_request_copy(mdh_request *dst, const mdh_request *src);
void mdh_request_clear(mdh_request *r);

/* Sets a string field (TEXT, NAME or PATH) to a copy of value (NULL clears it). */
int mdh_request_set_string(mdh_request *r, const mdh_field *f, const char *value);
/* Sets a field from JSON (null = the field's "none" / default where it has
 * one); errors name the key and what it takes. */
int mdh_request_set_json(mdh_request *r, const mdh_field *f, const cJSON *value, mdh_error *err);
/* Sets a field from text as a command line or the `parameters` text gives
 * it (numbers, choice names). */
int mdh_request_set_text(mdh_request *r, const mdh_field *f, const char *text, mdh_error *err);
/* A string field's value (TEXT, NAME, or a PATH field's path); NULL = none. */
const char *mdh_request_string(const mdh_request *r, const mdh_field *f);
/* The field's value as JSON (NULL when out of memory). */
cJSON *mdh_request_get_json(const mdh_request *r, const mdh_field *f);
/* The field's value as text ("" for a NULL string); returns the length. */
int mdh_request_format(const mdh_request *r, const mdh_field *f, char *buf, size_t cap);
/* Copies one number or choice field (not a string or path) from src. */
void mdh_request_copy_value(mdh_request *dst, const mdh_request *src, const mdh_field *f);
/* The request's max_expert_memory in bytes: as given, or its percentage of
 * `expert_memory` (model_info's). */
uint64_t mdh_request_expert_memory(const mdh_request *r, uint64_t expert_memory);
/* Appends a LoRA (a copy of path). */
int mdh_request_add_lora(mdh_request *r, const char *path, float weight);
/* The prompt as the `parameters` text records it: the prompt, then a
 * <lora:STEM:WEIGHT> tag for each entry of loras (A1111 keeps LoRAs in the
 * prompt), so reading it back with the LoRAs' folder as lora_dir applies the
 * same LoRAs. With the plain prompt syntax, where a tag is text, the prompt
 * alone (the text's "LoRAs" key then lists the files). malloc'd; NULL = out
 * of memory. */
char *mdh_request_prompt_with_loras(const mdh_request *r);
/* The shortest decimal that reads back as the same float. */
int mdh_format_float(char *buf, size_t cap, float v);
/* 1 when the field holds gen_params_init's default (or no string / path). */
int mdh_request_is_default(const mdh_request *r, const mdh_field *f);

#endif
