/* Output files made safely: checked before any work, written to a fresh
 * temporary beside the target and renamed over it, so a failed, cancelled
 * or killed run never leaves a partial file, and a planted symlink, FIFO or
 * device node is never followed or replaced (docs/robustness.md). */
#ifndef MDH_OUTPUT_FILE_H
#define MDH_OUTPUT_FILE_H

#include <stdint.h>
#include <stdio.h>

#include "host_error.h"

/* Temporaries are named this prefix + 16 random hex digits, in the
 * target's folder (a rename across folders would not be atomic). */
#define MDH_OUTPUT_TMP_PREFIX ".moe-diffuse-tmp-"

/* Checks, before anything is generated, that `path` can be written: its
 * name fits the file system (MDIFF_ERR_INVALID: "name is longer than"), its
 * folder exists and accepts a new file (probed by creating and removing a
 * temporary), and whatever is at `path` now is a regular file or nothing
 * (a symlink, FIFO, device or folder is MDIFF_ERR_IO, never replaced). */
int mdh_output_check(const char *path, mdh_error *err);

/* Writes the file's bytes to f; returns 1 on success, 0 on failure. */
typedef int (*mdh_output_writer)(FILE *f, void *user);

/* Writes `path` through `write`: a new temporary opened relative to the
 * folder with O_CREAT|O_EXCL|O_NOFOLLOW, locked (flock) while it exists so
 * mdh_output_remove_orphans leaves it alone, flushed, fsync'd and renamed
 * over `path` (refused when `path` is no longer a regular file). On any
 * failure, a full disk or a file-size limit included, the temporary is
 * removed and `path` is untouched. The file names in messages are `path`. */
int mdh_output_write(const char *path, mdh_output_writer write, void *user, mdh_error *err);

/* 64 random bits from getrandom (a time and pid mix when the kernel has
 * no entropy yet): temporary names, random seeds. */
uint64_t mdh_random_u64(void);

/* A new empty temporary in the folder dir_fd (O_CREAT|O_EXCL|O_NOFOLLOW,
 * random name written to name, cap >= 40), locked with flock. Returns its
 * fd, or -1 with errno set. For files that get their final name another
 * way than mdh_output_write (e.g. linkat). */
int mdh_output_temp(int dir_fd, char *name, size_t cap);

/* Removes the temporaries in `dir` that no writer holds: those a killed
 * run left behind (symlinks and other non-files with the prefix included;
 * a symlink is removed, never its target). Returns how many were removed,
 * or -1 with err set when the folder cannot be read. */
int mdh_output_remove_orphans(const char *dir, mdh_error *err);

#endif
