#include "claim.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../host/output_file.h"
#include "fnv1a.h"

static void claim_name(const char *name, char *out, size_t cap)
{
    if (strlen(name) + sizeof ".claim" <= NAME_MAX) {
        snprintf(out, cap, ".%s.claim", name);
        return;
    }
    uint64_t h = md_fnv1a64(MD_FNV1A64_INIT, name, strlen(name));
    snprintf(out, cap, ".claim-%016llx", (unsigned long long)h);
}

static int same_file(int dir_fd, const char *name, int fd)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && fstatat(dir_fd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
           a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* A locked file holding "pid N on HOST", given the claim's name; 1 done,
 * 0 the name exists, -1 error (errno). */
static int publish(md_claim *c)
{
    char tmp[64];
    int fd = mdh_output_temp(c->dir_fd, tmp, sizeof tmp);
    if (fd < 0)
        return -1;
    char host[256] = "unknown", id[320];
    gethostname(host, sizeof host - 1);
    int n = snprintf(id, sizeof id, "pid %ld on %s\n", (long)getpid(), host);
    if (write(fd, id, (size_t)n) != n) {
        int e = errno;
        unlinkat(c->dir_fd, tmp, 0);
        close(fd);
        errno = e;
        return -1;
    }
    int linked = linkat(c->dir_fd, tmp, c->dir_fd, c->name, 0);
    int e = errno;
    unlinkat(c->dir_fd, tmp, 0);
    if (linked == 0) {
        c->fd = fd;
        return 1;
    }
    close(fd);
    if (e == EPERM || e == EOPNOTSUPP || e == EMLINK) {
        /* no hard links here: made in place, locked at once after */
        fd = openat(c->dir_fd, c->name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0)
            return errno == EEXIST ? 0 : -1;
        flock(fd, LOCK_EX);
        if (write(fd, id, (size_t)n) != n) {
            /* the lock is the claim; the text only names its owner */
        }
        c->fd = fd;
        return 1;
    }
    errno = e;
    return e == EEXIST ? 0 : -1;
}

md_claim_result md_claim_take(const char *dir, const char *name, md_claim *c, char *owner,
                              size_t cap, mdh_error *err)
{
    c->fd = -1;
    claim_name(name, c->name, sizeof c->name);
    c->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c->dir_fd < 0) {
        mdh_fail(err, MDIFF_ERR_IO, "%s: cannot open the folder: %s", dir, strerror(errno));
        return MD_CLAIM_ERROR;
    }
    for (int attempt = 0; attempt < 8; attempt++) {
        int r = publish(c);
        if (r == 1)
            return MD_CLAIM_TAKEN;
        if (r < 0)
            break;
        int fd = openat(c->dir_fd, c->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ELOOP) /* a planted symlink: the link goes, never its target */
                unlinkat(c->dir_fd, c->name, 0);
            else if (errno != ENOENT) /* ENOENT: released meanwhile */
                break;
            continue;
        }
        struct stat sb;
        if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && flock(fd, LOCK_EX | LOCK_NB) != 0) {
            ssize_t n = pread(fd, owner, cap > 1 ? cap - 1 : 0, 0);
            owner[n > 0 ? n : 0] = '\0';
            owner[strcspn(owner, "\n")] = '\0';
            close(fd);
            return MD_CLAIM_BUSY;
        }
        /* Its run died (the lock went with it), or it is no claim file:
         * removed when it is still the one at that name, then retried. */
        if (same_file(c->dir_fd, c->name, fd))
            unlinkat(c->dir_fd, c->name, 0);
        close(fd);
    }
    mdh_fail(err, MDIFF_ERR_IO, "%s/%s: cannot claim the entry: %s", dir, c->name,
             errno ? strerror(errno) : "it keeps changing");
    close(c->dir_fd);
    c->dir_fd = -1;
    return MD_CLAIM_ERROR;
}

void md_claim_release(md_claim *c)
{
    if (c->fd >= 0) {
        if (same_file(c->dir_fd, c->name, c->fd))
            unlinkat(c->dir_fd, c->name, 0);
        close(c->fd);
    }
    if (c->dir_fd >= 0)
        close(c->dir_fd);
    c->fd = c->dir_fd = -1;
}
