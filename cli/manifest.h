/* The batch manifest: JSON Lines, one object per finished or failed entry.
 * Each record is appended with a single write() of a whole line and then
 * fsync'd, so a crash leaves at worst one partial trailing line, which
 * readers skip and the next writer terminates before appending. */
#ifndef MD_CLI_MANIFEST_H
#define MD_CLI_MANIFEST_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../host/host_error.h"

/* How far one manifest file has been read (files are only appended to). */
typedef struct md_manifest_source {
    dev_t dev;
    ino_t ino;
    off_t offset; /* after the last whole line read */
} md_manifest_source;

/* Records with status "ok" from earlier runs, by entry index. */
typedef struct md_manifest_done {
    cJSON **by_index; /* [count]: a JSON array of ok records, or NULL */
    long count;
    long records;     /* ok records kept */
    long skipped;     /* lines that were not a valid record (partial, corrupt,
                         a number out of range) */
    int have_base_seed;
    uint64_t base_seed; /* a random base seed recorded earlier, reused on resume */
    md_manifest_source *sources;
    int nsources, cap_sources;
} md_manifest_done;

void md_manifest_done_init(md_manifest_done *d, long count);
void md_manifest_done_free(md_manifest_done *d);

/* Adds the ok records of one manifest file; a missing file adds nothing,
 * a symlink, FIFO or other non-file there is an error (never followed or
 * waited on). A number out of range (an index or base seed that is not a
 * whole number in [0, 2^53)) makes its line unreadable. Only whole lines
 * are read: a line still being written is read by a later call. */
int md_manifest_read(const char *path, md_manifest_done *d, mdh_error *err);

/* Reads every manifest*.jsonl in dir but `own` (other shards' and earlier
 * layouts' manifests count too, so changing N still resumes), skipping
 * entries that are not regular files. Called again, it reads only what was
 * appended since (and new files): concurrent runs see each other's
 * records. */
int md_manifest_read_dir(const char *dir, const char *own, md_manifest_done *d,
                               mdh_error *err);

/* The ok records for an entry index (a JSON array) or NULL. */
const cJSON *md_manifest_done_get(const md_manifest_done *d, long index);

typedef struct md_manifest_writer {
    int fd;
    char path[1024];
} md_manifest_writer;

/* Opens for appending (never through a symlink; a FIFO or other non-file
 * is refused without blocking) and takes an exclusive lock (flock), so two
 * processes never share one manifest (a shard started twice fails here). */
int md_manifest_open(const char *path, md_manifest_writer *w, mdh_error *err);
/* One record = one line, written with one write() and fsync'd. */
int md_manifest_append(md_manifest_writer *w, const cJSON *record, mdh_error *err);
void md_manifest_close(md_manifest_writer *w);

#endif
