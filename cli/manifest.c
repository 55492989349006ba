#include "manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

void md_manifest_done_init(md_manifest_done *d, long count)
{
    memset(d, 0, sizeof *d);
    d->count = count;
    d->by_index = count > 0 ? calloc((size_t)count, sizeof *d->by_index) : NULL;
}

void md_manifest_done_free(md_manifest_done *d)
{
    for (long i = 0; d->by_index && i < d->count; i++)
        cJSON_Delete(d->by_index[i]);
    free(d->by_index);
    free(d->sources);
    memset(d, 0, sizeof *d);
}

const cJSON *md_manifest_done_get(const md_manifest_done *d, long index)
{
    return (d->by_index && index >= 0 && index < d->count) ? d->by_index[index] : NULL;
}

/* A whole number in [0, 2^53): exact in a double, safe to convert. */
static int whole_number(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9007199254740992.0 &&
           v->valuedouble == floor(v->valuedouble);
}

/* Takes ownership of rec. Returns 1 when it was a valid record. */
static int add_record(md_manifest_done *d, cJSON *rec, int take_base_seed)
{
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(rec, "index");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(rec, "status");
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(rec, "base_seed");
    /* a random base seed is read back (a given one is the command line's) */
    int random_seed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "base_seed_random"));
    if (!cJSON_IsObject(rec) || !whole_number(idx) || !cJSON_IsString(st) ||
        (random_seed && !whole_number(bs))) {
        cJSON_Delete(rec);
        return 0;
    }
    if (take_base_seed && random_seed) {
        d->have_base_seed = 1;
        d->base_seed = (uint64_t)bs->valuedouble;
    }
    double i = idx->valuedouble;
    if (strcmp(st->valuestring, "ok") != 0 || i >= (double)d->count) {
        cJSON_Delete(rec);
        return 1;
    }
    long k = (long)i;
    if (!d->by_index[k] && !(d->by_index[k] = cJSON_CreateArray())) {
        cJSON_Delete(rec);
        return 1;
    }
    cJSON_AddItemToArray(d->by_index[k], rec);
    d->records++;
    return 1;
}

static md_manifest_source *source_of(md_manifest_done *d, const struct stat *sb)
{
    for (int i = 0; i < d->nsources; i++)
        if (d->sources[i].dev == sb->st_dev && d->sources[i].ino == sb->st_ino)
            return &d->sources[i];
    if (d->nsources == d->cap_sources) {
        int cap = d->cap_sources ? 2 * d->cap_sources : 8;
        md_manifest_source *s = realloc(d->sources, (size_t)cap * sizeof *s);
        if (!s)
            return NULL;
        d->sources = s;
        d->cap_sources = cap;
    }
    md_manifest_source *s = &d->sources[d->nsources++];
    *s = (md_manifest_source){sb->st_dev, sb->st_ino, 0};
    return s;
}

/* The whole lines of fd after what was read of it before. */
static int read_new_lines(int fd, const struct stat *sb, const char *path, md_manifest_done *d,
                          int take_base_seed, mdh_error *err)
{
    md_manifest_source *src = source_of(d, sb);
    if (!src) {
        close(fd);
        return mdh_fail(err, MDIFF_ERR_NOMEM, "%s: out of memory", path);
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return mdh_fail(err, MDIFF_ERR_NOMEM, "%s: out of memory", path);
    }
    if (fseeko(f, src->offset, SEEK_SET) != 0) {
        fclose(f);
        return mdh_fail(err, MDIFF_ERR_IO, "%s: cannot read the manifest: %s", path,
                        strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0 && line[len - 1] == '\n') {
        src->offset += len;
        if (len == 1)
            continue;
        /* a line cut short by a crash and ended by the next writer is not
         * valid JSON: it is skipped */
        cJSON *rec = cJSON_ParseWithLength(line, (size_t)len);
        if (!rec || !add_record(d, rec, take_base_seed))
            d->skipped++;
    }
    int bad = ferror(f);
    free(line);
    fclose(f);
    if (bad)
        return mdh_fail(err, MDIFF_ERR_IO, "%s: read error", path);
    return MDIFF_OK;
}

/* Opens a manifest without following a symlink or waiting on a FIFO.
 * Returns the fd, -2 when there is no such file, or -1 with err set. */
static int open_manifest(int dir_fd, const char *name, const char *path, struct stat *sb,
                         mdh_error *err)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return -2;
        if (errno == ELOOP)
            mdh_fail(err, MDIFF_ERR_IO,
                     "%s: is a symbolic link, not a regular file: refusing to read it", path);
        else
            mdh_fail(err, MDIFF_ERR_IO, "%s: cannot read the manifest: %s", path,
                     strerror(errno));
        return -1;
    }
    if (fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode)) {
        close(fd);
        mdh_fail(err, MDIFF_ERR_IO, "%s: not a regular file: refusing to read it", path);
        return -1;
    }
    return fd;
}

int md_manifest_read(const char *path, md_manifest_done *d, mdh_error *err)
{
    struct stat sb;
    int fd = open_manifest(AT_FDCWD, path, path, &sb, err);
    if (fd == -2)
        return MDIFF_OK;
    if (fd < 0)
        return MDIFF_ERR_IO;
    return read_new_lines(fd, &sb, path, d, 1, err);
}

static int is_manifest_name(const char *name)
{
    size_t n = strlen(name);
    return n >= 14 && strncmp(name, "manifest", 8) == 0 && strcmp(name + n - 6, ".jsonl") == 0;
}

int md_manifest_read_dir(const char *dir, const char *own, md_manifest_done *d,
                               mdh_error *err)
{
    struct stat own_st;
    int have_own = own && stat(own, &own_st) == 0;
    DIR *dp = opendir(dir);
    if (!dp)
        return errno == ENOENT ? MDIFF_OK
                               : mdh_fail(err, MDIFF_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    struct dirent *de;
    int st = MDIFF_OK;
    while (st == MDIFF_OK && (de = readdir(dp)) != NULL) {
        if (!is_manifest_name(de->d_name))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat sb;
        mdh_error ignored = {0};
        /* a planted symlink or FIFO among the manifests is passed over */
        int fd = open_manifest(dirfd(dp), de->d_name, path, &sb, &ignored);
        if (fd < 0)
            continue;
        if (have_own && sb.st_dev == own_st.st_dev && sb.st_ino == own_st.st_ino) {
            close(fd);
            continue;
        }
        st = read_new_lines(fd, &sb, path, d, 0, err);
    }
    closedir(dp);
    return st;
}

int md_manifest_open(const char *path, md_manifest_writer *w, mdh_error *err)
{
    w->fd = -1;
    snprintf(w->path, sizeof w->path, "%s", path);
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ELOOP)
        return mdh_fail(err, MDIFF_ERR_IO,
                        "%s: is a symbolic link, not a regular file: refusing to open the "
                        "manifest through it",
                        path);
    if (fd < 0)
        return mdh_fail(err, MDIFF_ERR_IO, "%s: cannot open the manifest: %s", path, strerror(errno));
    struct stat kind;
    if (fstat(fd, &kind) != 0 || !S_ISREG(kind.st_mode)) {
        close(fd);
        return mdh_fail(err, MDIFF_ERR_IO, "%s: not a regular file: refusing to use it as the "
                                           "manifest", path);
    }
    /* flock, not fcntl: an fcntl lock would be dropped as soon as this
     * process closes any other descriptor of the file (the reader does). */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return mdh_fail(err, MDIFF_ERR_IO,
                           "%s: the manifest is in use by another process; is the same shard "
                           "running twice?",
                           path);
        return mdh_fail(err, MDIFF_ERR_IO, "%s: cannot lock the manifest: %s", path, strerror(e));
    }
    /* Terminate a partial line left by a crash so the next record starts on
     * a line of its own. */
    struct stat sb;
    char last = '\n';
    if (fstat(fd, &sb) == 0 && sb.st_size > 0 && pread(fd, &last, 1, sb.st_size - 1) != 1)
        last = '\n';
    if (last != '\n' && (write(fd, "\n", 1) != 1 || fsync(fd) != 0)) {
        close(fd);
        return mdh_fail(err, MDIFF_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    w->fd = fd;
    return MDIFF_OK;
}

int md_manifest_append(md_manifest_writer *w, const cJSON *record, mdh_error *err)
{
    if (w->fd < 0)
        return mdh_fail(err, MDIFF_ERR_IO, "%s: the manifest is not open", w->path);
    char *text = cJSON_PrintUnformatted(record);
    if (!text)
        return mdh_fail(err, MDIFF_ERR_NOMEM, "%s: out of memory", w->path);
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (!line) {
        free(text);
        return mdh_fail(err, MDIFF_ERR_NOMEM, "%s: out of memory", w->path);
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    ssize_t wrote = write(w->fd, line, n + 1);
    int e = errno;
    free(line);
    if (wrote != (ssize_t)(n + 1)) {
        /* A short write leaves a partial line; end it so that later
         * records stay parseable, then give up on this manifest. */
        if (wrote > 0 && write(w->fd, "\n", 1) != 1) {
            /* nothing more to do: the reader skips the damaged line */
        }
        close(w->fd);
        w->fd = -1;
        return mdh_fail(err, MDIFF_ERR_IO, "%s: cannot append a record: %s", w->path,
                       wrote < 0 ? strerror(e) : "short write (disk full?)");
    }
    if (fsync(w->fd) != 0)
        return mdh_fail(err, MDIFF_ERR_IO, "%s: fsync failed: %s", w->path, strerror(errno));
    return MDIFF_OK;
}

void md_manifest_close(md_manifest_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}
