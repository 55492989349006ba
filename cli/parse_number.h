/* Numbers from command-line arguments, for `moe-diffuse` and its
 * subcommands: a whole-string parse with a range, and a message naming the
 * program, the flag and the value when it fails. */
#ifndef MD_CLI_PARSE_NUMBER_H
#define MD_CLI_PARSE_NUMBER_H

/* 1 and *out on success; 0 after printing "PROG: FLAG expects ..." */
int md_cli_parse_long(const char *prog, const char *flag, const char *s, long lo, long hi,
                      long *out);
int md_cli_parse_double(const char *prog, const char *flag, const char *s, double lo, double hi,
                        double *out);

#endif
