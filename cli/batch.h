/* `moe-diffuse batch`: many prompts from one file with the model loaded
 * once, a JSON Lines manifest, resume, and --shard K/N (docs/batch.md). */
#ifndef MD_CLI_BATCH_H
#define MD_CLI_BATCH_H

/* argv[0] is "batch" (or the program name); returns the process exit code:
 * 0 all lines ok, 1 one or more lines failed, 2 usage, 3 model, 4 I/O
 * (prompts file or manifest), 130 cancelled. */
int md_cli_batch_main(int argc, char **argv);

#endif
