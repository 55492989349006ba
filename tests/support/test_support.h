/* What the unit tests share: counted checks with a closing summary, the
 * golden reference set (MD_GOLDEN_DIR, golden.json, golden.safetensors),
 * the relative error the references are judged by, a deterministic PRNG
 * and temporary folders. Linked into every tests/test_*.c. */
#ifndef MD_TEST_SUPPORT_H
#define MD_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "io/safetensors.h"
#include "runtime/backend.h"

/* ---- checks ----------------------------------------------------------
 * CHECK(cond) or CHECK(cond, fmt, ...): counts one check; a failed one
 * prints file:line and the message (or the condition's text). The value
 * is cond as 0/1, so `if (!CHECK(...))` can stop a test early. FAIL(fmt,
 * ...) counts a failed check. A test's main ends with
 * `return md_test_finish("name");`. */
int md_test_pass(void);
int md_test_fail(const char *file, int line, const char *text);
int md_test_failf(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int md_test_failures(void);
/* Prints "<name>: N passed, N failed"; the exit status (0 when none failed). */
int md_test_finish(const char *name);

/* One argument or more picks the plain or the formatted form. */
#define MD_TEST_PICK_(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, \
                      which, ...)                                                            \
    which
/* The message's arguments are evaluated only when the check fails. */
#define MD_TEST_CHECK1_(text, cond)                                                         \
    ((cond) ? md_test_pass() : md_test_fail(__FILE__, __LINE__, text))
#define MD_TEST_CHECKF_(text, cond, ...)                                                    \
    ((cond) ? md_test_pass() : md_test_failf(__FILE__, __LINE__, __VA_ARGS__))
#define CHECK(...)                                                                          \
    MD_TEST_PICK_(__VA_ARGS__, MD_TEST_CHECKF_, MD_TEST_CHECKF_, MD_TEST_CHECKF_,           \
                  MD_TEST_CHECKF_, MD_TEST_CHECKF_, MD_TEST_CHECKF_, MD_TEST_CHECKF_,       \
                  MD_TEST_CHECKF_, MD_TEST_CHECKF_, MD_TEST_CHECKF_, MD_TEST_CHECKF_,       \
                  MD_TEST_CHECKF_, MD_TEST_CHECKF_, MD_TEST_CHECKF_, MD_TEST_CHECKF_,       \
                  MD_TEST_CHECK1_, unused)(#__VA_ARGS__, __VA_ARGS__)
#define FAIL(...) md_test_failf(__FILE__, __LINE__, __VA_ARGS__)
/* CHECK that ends the calling (void) function when it fails. */
#define REQUIRE(...)                                                                        \
    do {                                                                                    \
        if (!CHECK(__VA_ARGS__))                                                            \
            return;                                                                         \
    } while (0)

/* ---- the golden reference set ------------------------------------- */
/* MD_GOLDEN_DIR, or NULL when it is unset or empty; the _required form
 * then says so on stderr (for a main that cannot run without it). */
const char *md_test_golden_dir(void);
const char *md_test_golden_dir_required(void);
/* "<MD_GOLDEN_DIR>/<rel>" in buf; NULL when unset or too long for cap. */
const char *md_test_golden_path(char *buf, size_t cap, const char *rel);
/* The case folders below root that are models (not the LoRA and merge
 * cases of CHECKING.md item 8), sorted; their count in *n. Free with
 * md_test_free_names. NULL (and *n 0) when root cannot be read. */
char **md_test_list_cases(const char *root, int *n);
void md_test_free_names(char **names, int n);
int md_test_exists(const char *path);
/* The whole file plus a terminating NUL (caller frees), its size in *n;
 * NULL when it cannot be read. */
char *md_test_read_file(const char *path, size_t *n);

/* A JSON file as Python's json module writes it (golden.json): the bare
 * -Infinity, Infinity and NaN it emits outside strings, which cJSON
 * rejects, are read as null. NULL when the file cannot be read or parsed. */
cJSON *md_test_read_json(const char *path);
/* A config read the way the loader reads it (md_json_read_file); NULL
 * and a counted failure naming the problem otherwise. The _golden forms
 * take a path below MD_GOLDEN_DIR. */
cJSON *md_test_load_config(const char *path);
cJSON *md_test_load_golden_config(const char *rel);

/* md_safetensors_open with a counted failure naming the problem. Opens
 * golden.safetensors too: its 5-dim records fit MD_MAX_DIMS. */
md_safetensors *md_test_open_safetensors(const char *path);
md_safetensors *md_test_open_golden_safetensors(const char *rel);
/* Record `name` of dtype `dt` (mapped, valid until close); NULL and a
 * counted failure when it is missing or of another dtype. */
const md_tensor *md_test_golden_tensor(const md_safetensors *st, const char *name, md_dtype dt);
/* A copy of an F32 / I32 record (caller frees); its dtype and shape in
 * *desc when desc is non-NULL (desc->data NULL). NULL as above. */
float *md_test_golden_f32(const md_safetensors *st, const char *name, md_tensor *desc);
int32_t *md_test_golden_i32(const md_safetensors *st, const char *name, md_tensor *desc);

/* max|a-b| / max|b|; where max|b| is 0 the values must be equal (0, else
 * infinity); a NaN difference is infinity. */
double md_test_rel_err(const float *a, const float *b, size_t n);

/* ---- backends and a deterministic PRNG (xorshift64) ----------------- */
/* The CPU backend (threads 0: all cores), or NULL after a message. */
md_backend *md_test_cpu_backend(int threads);

typedef struct md_test_rng {
    uint64_t state; /* any non-zero seed */
} md_test_rng;
/* Uniform in [0, 1), 53 bits. */
double md_test_uniform(md_test_rng *r);

/* ---- temporary folders ---------------------------------------------- */
/* Creates "$TMPDIR/<prefix>XXXXXX" (TMPDIR defaults to /tmp) and writes its
 * path to buf; 0 with a message on stderr when that fails. */
int md_test_make_temp_dir(char *buf, size_t cap, const char *prefix);
/* Removes a folder and everything below it; links are removed, never
 * followed. 0 when all is gone, with a message on stderr otherwise. */
int md_test_remove_tree(const char *path);

/* Host buffers a test case allocates and frees together when it ends. */
#define MD_TEST_BAG_MAX 256
typedef struct md_test_bag {
    void *p[MD_TEST_BAG_MAX];
    int n;
} md_test_bag;
/* Zeroed memory owned by the bag; exits (2) when out of memory or room. */
void *md_test_bag_alloc(md_test_bag *b, size_t bytes);
void md_test_bag_clear(md_test_bag *b);

/* Elements of a shape. */
int64_t md_test_numel(int ndim, const int64_t *shape);

#endif
