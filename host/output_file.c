#include "output_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* path split into its folder (opened) and its name in that folder. */
typedef struct target {
    int dir_fd;
    const char *name; /* points into path */
    char dir[PATH_MAX];
} target;

static const char *kind_of(mode_t m)
{
    return S_ISLNK(m)  ? "a symbolic link"
           : S_ISDIR(m) ? "a folder"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISSOCK(m) ? "a socket"
                         : "a device";
}

static int open_target(const char *path, target *t, mdh_error *err)
{
    t->dir_fd = -1;
    size_t len = strlen(path);
    if (len == 0)
        return mdh_fail(err, MDIFF_ERR_INVALID, "the output file name is empty");
    if (len >= PATH_MAX)
        return mdh_fail(err, MDIFF_ERR_INVALID, "%.200s...: the path is longer than %d bytes",
                        path, PATH_MAX - 1);
    const char *slash = strrchr(path, '/');
    t->name = slash ? slash + 1 : path;
    if (!*t->name)
        return mdh_fail(err, MDIFF_ERR_INVALID, "%s: is a folder name, not a file name", path);
    size_t name_len = strlen(t->name);
    if (!slash)
        snprintf(t->dir, sizeof t->dir, ".");
    else if (slash == path)
        snprintf(t->dir, sizeof t->dir, "/");
    else
        snprintf(t->dir, sizeof t->dir, "%.*s", (int)(slash - path), path);
    if (name_len > NAME_MAX)
        return mdh_fail(err, MDIFF_ERR_INVALID, "%.200s...: the name is longer than %d bytes",
                        path, NAME_MAX);
    t->dir_fd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (t->dir_fd < 0) {
        int e = errno;
        const char *why = e == ENOENT    ? "the folder does not exist"
                          : e == ENOTDIR ? "a part of it is not a folder"
                          : e == EACCES  ? "permission denied on the folder"
                          : e == ELOOP   ? "the folder path has a symbolic link loop"
                                         : strerror(e);
        return mdh_fail(err, MDIFF_ERR_IO, "%s: cannot write in %s: %s", path, t->dir, why);
    }
    long max = fpathconf(t->dir_fd, _PC_NAME_MAX);
    if (max > 0 && (long)name_len > max) {
        close(t->dir_fd);
        t->dir_fd = -1;
        return mdh_fail(err, MDIFF_ERR_INVALID, "%.200s...: the name is longer than %ld bytes",
                        path, max);
    }
    return MDIFF_OK;
}

/* A regular file or nothing at the target; anything else is refused. */
static int target_replaceable(const char *path, const target *t, mdh_error *err)
{
    struct stat sb;
    if (fstatat(t->dir_fd, t->name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            return MDIFF_OK;
        return mdh_fail(err, MDIFF_ERR_IO, "%s: %s", path, strerror(errno));
    }
    if (!S_ISREG(sb.st_mode))
        return mdh_fail(err, MDIFF_ERR_IO,
                        "%s: is %s, not a regular file: refusing to replace it", path,
                        kind_of(sb.st_mode));
    return MDIFF_OK;
}

uint64_t mdh_random_u64(void)
{
    uint64_t x;
    if (getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t)sizeof x) {
        /* no entropy yet (early boot): for names O_EXCL still makes them unique */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        x = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
        x *= 0x9E3779B97F4A7C15ULL;
    }
    return x;
}

static void random_name(char *buf, size_t cap)
{
    snprintf(buf, cap, MDH_OUTPUT_TMP_PREFIX "%016llx", (unsigned long long)mdh_random_u64());
}

int mdh_output_temp(int dir_fd, char *name, size_t cap)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        random_name(name, cap);
        int fd = openat(dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd >= 0) {
            if (flock(fd, LOCK_EX) != 0) {
                /* the lock only shields it from orphan removal: go on */
            }
            return fd;
        }
        if (errno != EEXIST)
            return -1;
    }
    errno = EEXIST;
    return -1;
}

/* A new temporary in the target's folder, locked; -1 with err set. */
static int create_temp(const char *path, const target *t, char *name, size_t cap,
                       mdh_error *err)
{
    int fd = mdh_output_temp(t->dir_fd, name, cap);
    if (fd < 0)
        mdh_fail(err, MDIFF_ERR_IO, "%s: cannot create a file in %s: %s", path, t->dir,
                 strerror(errno));
    return fd;
}

int mdh_output_check(const char *path, mdh_error *err)
{
    target t;
    int st = open_target(path, &t, err);
    if (st == MDIFF_OK)
        st = target_replaceable(path, &t, err);
    if (st == MDIFF_OK) {
        char name[64];
        int fd = create_temp(path, &t, name, sizeof name, err);
        if (fd < 0)
            st = MDIFF_ERR_IO;
        else {
            unlinkat(t.dir_fd, name, 0);
            close(fd);
        }
    }
    if (t.dir_fd >= 0)
        close(t.dir_fd);
    return st;
}

int mdh_output_write(const char *path, mdh_output_writer write, void *user, mdh_error *err)
{
    target t;
    int st = open_target(path, &t, err);
    if (st != MDIFF_OK)
        return st;
    char name[64];
    int fd = create_temp(path, &t, name, sizeof name, err);
    if (fd < 0) {
        close(t.dir_fd);
        return MDIFF_ERR_IO;
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        unlinkat(t.dir_fd, name, 0);
        close(fd);
        close(t.dir_fd);
        return mdh_fail(err, MDIFF_ERR_NOMEM, "%s: out of memory", path);
    }
    /* The file stays open (and locked) until it has its final name. */
    int ok = write(f, user);
    ok = fflush(f) == 0 && !ferror(f) && ok;
    int e = errno;
    if (!ok)
        st = mdh_fail(err, MDIFF_ERR_IO, "%s: cannot write the file: %s", path,
                      e == EFBIG    ? "the file size limit was reached"
                      : e == ENOSPC ? "no space left on the device"
                      : e           ? strerror(e)
                                    : "write failed");
    else if (fsync(fd) != 0 && errno != EINVAL)
        st = mdh_fail(err, MDIFF_ERR_IO, "%s: cannot write the file: %s", path, strerror(errno));
    else if ((st = target_replaceable(path, &t, err)) == MDIFF_OK &&
             renameat(t.dir_fd, name, t.dir_fd, t.name) != 0)
        st = mdh_fail(err, MDIFF_ERR_IO, "%s: cannot rename the finished file: %s", path,
                      strerror(errno));
    if (st != MDIFF_OK)
        unlinkat(t.dir_fd, name, 0);
    fclose(f);
    close(t.dir_fd);
    return st;
}

static int is_temp_name(const char *name)
{
    return strncmp(name, MDH_OUTPUT_TMP_PREFIX, sizeof MDH_OUTPUT_TMP_PREFIX - 1) == 0;
}

/* 1 when the entry is no writer's: a non-file, or a file nobody locks. */
static int is_orphan(int dir_fd, const char *name)
{
    struct stat sb;
    if (fstatat(dir_fd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
        return 0;
    if (!S_ISREG(sb.st_mode))
        return !S_ISDIR(sb.st_mode);
    /* O_NONBLOCK: never wait on anything swapped in since the fstatat */
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno == ELOOP;
    struct stat now;
    int orphan = fstat(fd, &now) == 0 && now.st_ino == sb.st_ino && now.st_dev == sb.st_dev &&
                 flock(fd, LOCK_EX | LOCK_NB) == 0;
    close(fd);
    return orphan;
}

int mdh_output_remove_orphans(const char *dir, mdh_error *err)
{
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return mdh_fail(err, MDIFF_ERR_IO, "%s: cannot read the folder: %s", dir, strerror(errno)),
               -1;
    DIR *dp = fdopendir(dir_fd);
    if (!dp) {
        close(dir_fd);
        return mdh_fail(err, MDIFF_ERR_IO, "%s: cannot read the folder: %s", dir, strerror(errno)),
               -1;
    }
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL)
        if (is_temp_name(de->d_name) && is_orphan(dir_fd, de->d_name) &&
            unlinkat(dir_fd, de->d_name, 0) == 0)
            removed++;
    closedir(dp);
    return removed;
}
