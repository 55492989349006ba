/* The moe-diffuse command line. */
#ifndef MD_CLI_H
#define MD_CLI_H

#include <signal.h>
#include <stdint.h>

#include "moediffuse.h"
#include "../host/request_fields.h"

#ifndef MD_VERSION
#define MD_VERSION "0.1.0"
#endif
#ifndef MD_DEFAULT_MODEL
#define MD_DEFAULT_MODEL "models/demo"
#endif

/* Exit codes (documented in README, --help and the man page). */
enum {
    MD_EXIT_OK = 0,
    MD_EXIT_FAILURE = 1, /* generation failed */
    MD_EXIT_USAGE = 2,   /* bad command line or parameter */
    MD_EXIT_MODEL = 3,   /* model missing or malformed */
    MD_EXIT_IO = 4,      /* input or output file problem */
    MD_EXIT_CANCELLED = 130
};

typedef struct md_cli_options {
    const char *model;
    const char *output;    /* may hold one %d (%03d, ...) for the image number */
    int output_given;
    mdh_request req;       /* the request of the first image (owned strings); the
                              library resolves its defaults */
    int random_seed;       /* --seed -1 or none: a random base seed */
    unsigned char given[64]; /* per request field (mdh_request_fields order): set on the
                                command line, so --from-png leaves it */
    int batch_count;
    int threads;
    const char *backend; /* "cpu", "vulkan" or "auto" (default) */
    int device;          /* Vulkan device index; -1 = the best */
    int profile;         /* --profile */
    int verbose, quiet, json;
    const char *from_png;
    char png_model_hash[16]; /* the PNG's "Model hash", checked once the model is loaded */
    const char *moe_stats; /* JSON path (may hold %d like -o); heatmap beside it */
} md_cli_options;

/* Parses argv (reading --prompt-file, --negative-prompt-file and
 * --from-png); on error prints a message and returns MD_EXIT_USAGE (or
 * MD_EXIT_IO for an unreadable file); returns -1 when --help or --version
 * was handled. Free with md_cli_options_free in every case. */
int md_cli_parse(int argc, char **argv, md_cli_options *o);
void md_cli_options_free(md_cli_options *o);

/* -o patterns: at most one printf integer directive (%d, %03d, %i; "%%" is
 * a literal %). Returns 0 and prints why when the pattern is refused. */
int md_cli_output_pattern_ok(const char *pattern);
/* Whether a pattern holds the image-number directive ("%%d" does not: it is
 * a literal "%d"), i.e. whether its images get names of their own. */
int md_cli_output_pattern_numbered(const char *pattern);
/* The name of image `index` (1-based); 0 when it does not fit. */
int md_cli_output_name(const char *pattern, int index, char *out, size_t cap);
/* --moe-stats names of image `index`: the JSON file and its heatmap (the
 * JSON name with .json replaced by .png, or .png appended). 0 when too long. */
int md_cli_stats_names(const char *pattern, int index, char *json, char *png, size_t cap);
/* 1 (with the reason printed) when a statistics file of any image of the
 * run would have the name of an output image or of another statistics
 * file: nothing is ever overwritten by the run's own files. */
int md_cli_stats_collide(const char *stats_pattern, const char *output_pattern, int images);

/* Progress of one image: a bar on a terminal, plain lines when stderr is
 * not one, nothing with --quiet; with --json one JSON object per line on
 * stdout instead (events start, step, done, error). */
typedef enum md_progress_mode {
    MD_PROGRESS_NONE = 0,
    MD_PROGRESS_BAR,
    MD_PROGRESS_LINES,
    MD_PROGRESS_JSON
} md_progress_mode;

typedef struct md_cli_progress {
    md_progress_mode mode;
    int image, images;                  /* 1-based image number, count */
    double start;                       /* first step's start (monotonic s) */
    int last_line;                      /* last step printed in line mode */
    int bar_open;                       /* a bar is on screen without its newline */
    volatile sig_atomic_t *cancel_flag; /* set by SIGINT */
} md_cli_progress;

/* Step callback: returns non-zero to cancel. */
int md_cli_progress_cb(void *user, int step, int total);
/* The same as the library's progress callback (mdiff_progress_fn). */
int md_cli_progress_fn(void *user, const mdiff_progress *progress);
void md_cli_progress_start(md_cli_progress *p, const char *output, uint64_t seed, int width,
                           int height, int steps);
void md_cli_progress_done(md_cli_progress *p, const char *output, int width, int height,
                          double seconds);
/* Error report (also prints the message on stderr in every mode). */
void md_cli_progress_error(md_cli_progress *p, int exit_code, const char *message);

/* `moe-diffuse info MODEL` (cli/info.c). */
int md_cli_info_main(int argc, char **argv);
/* `moe-diffuse devices` (cli/devices.c). */
int md_cli_devices_main(int argc, char **argv);
/* `moe-diffuse serve` (server/serve_main.c, linked in when built). */
int md_serve_main(int argc, char **argv);
/* `moe-diffuse merge CONFIG.yaml OUT` (cli/merge.c). */
int md_cli_merge_main(int argc, char **argv);

#endif
