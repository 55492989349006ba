/* The moe-diffuse command line. */
#ifndef MD_CLI_H
#define MD_CLI_H

#include <stdint.h>

#include "pipeline/pipeline.h"

/* Exit codes (documented in README and --help). */
enum {
    MD_EXIT_OK = 0,
    MD_EXIT_FAILURE = 1,   /* generation failed */
    MD_EXIT_USAGE = 2,     /* bad command line */
    MD_EXIT_MODEL = 3,     /* model missing or malformed */
    MD_EXIT_IO = 4,        /* input or output file problem */
    MD_EXIT_CANCELLED = 130
};

typedef struct md_cli_options {
    const char *model;
    const char *output;
    const char *prompt;
    const char *negative_prompt;
    int steps;
    float cfg_scale;
    int sampler;
    int64_t seed;          /* -1 = random */
    int width, height;     /* 0 = the model's native size */
    int clip_skip;
    int threads;
    int quiet;
} md_cli_options;

/* Parses argv; on error prints a message and returns MD_EXIT_USAGE; returns
 * -1 when --help/--version was handled. */
int md_cli_parse(int argc, char **argv, md_cli_options *o);

/* Progress on stderr: a bar on a terminal, nothing when piped. */
typedef struct md_cli_progress {
    int tty;
    double start;
    volatile int *cancel_flag;
} md_cli_progress;
int md_cli_progress_cb(void *user, int step, int total);

#endif
