#include "file_hash.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "file_hash_cache.h"

/* Large reads keep a multi-GB checkpoint at disk speed without mapping it. */
#define MDH_HASH_CHUNK (4u << 20)
/* Entries kept in memory; a host names a handful of files. */
#define MDH_HASH_MEMORY_MAX 256

/* ---- the in-memory table ------------------------------------------- */

typedef struct mem_entry {
    mdh_hash_kind kind;
    int64_t size, mtime_ns;
    char hex[65];
    char *path; /* real path */
} mem_entry;

static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
static mem_entry mem[MDH_HASH_MEMORY_MAX];
static int mem_n, mem_next;

static int mem_find(const mdh_hash_record *k, char hex[65])
{
    int hit = 0;
    pthread_mutex_lock(&mem_lock);
    for (int i = 0; i < mem_n; i++)
        if (mem[i].kind == k->kind && mem[i].size == k->size && mem[i].mtime_ns == k->mtime_ns &&
            strcmp(mem[i].path, k->path) == 0) {
            memcpy(hex, mem[i].hex, 65);
            hit = 1;
            break;
        }
    pthread_mutex_unlock(&mem_lock);
    return hit;
}

static void mem_store(const mdh_hash_record *r)
{
    char *p = strdup(r->path);
    if (!p)
        return; /* only a missed speed-up */
    pthread_mutex_lock(&mem_lock);
    int slot = -1;
    for (int i = 0; i < mem_n && slot < 0; i++)
        if (mem[i].kind == r->kind && strcmp(mem[i].path, r->path) == 0)
            slot = i; /* the file changed: its old entry is stale */
    if (slot < 0 && mem_n < MDH_HASH_MEMORY_MAX)
        slot = mem_n++;
    if (slot < 0) {
        slot = mem_next; /* full: replace round-robin */
        mem_next = (mem_next + 1) % MDH_HASH_MEMORY_MAX;
    }
    free(mem[slot].path);
    mem[slot] = (mem_entry){.kind = r->kind, .size = r->size, .mtime_ns = r->mtime_ns, .path = p};
    memcpy(mem[slot].hex, r->hex, 65);
    pthread_mutex_unlock(&mem_lock);
}

void mdh_hash_memory_clear(void)
{
    pthread_mutex_lock(&mem_lock);
    for (int i = 0; i < mem_n; i++)
        free(mem[i].path);
    memset(mem, 0, sizeof mem);
    mem_n = mem_next = 0;
    pthread_mutex_unlock(&mem_lock);
}

/* ---- the cache file ------------------------------------------------ */

const char *mdh_hash_cache_path(char *buf, size_t cap)
{
    const char *env = getenv("MOEDIFFUSE_HASH_CACHE");
    int w;
    if (env)
        w = *env ? snprintf(buf, cap, "%s", env) : -1;
    else if ((env = getenv("XDG_CACHE_HOME")) && env[0] == '/')
        w = snprintf(buf, cap, "%s/moe-diffuse/hashes.tsv", env);
    else if ((env = getenv("HOME")) && *env)
        w = snprintf(buf, cap, "%s/.cache/moe-diffuse/hashes.tsv", env);
    else
        w = -1;
    return w >= 0 && (size_t)w < cap ? buf : NULL;
}

/* The whole cache file, or NULL when it is missing, not a regular file,
 * past MDH_HASH_CACHE_BYTES_MAX or unreadable (caller frees). */
static char *cache_read(const char *file, size_t *n)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        (uint64_t)st.st_size <= MDH_HASH_CACHE_BYTES_MAX && (buf = malloc((size_t)st.st_size))) {
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        *n = got; /* a file that shrank meanwhile: what was read */
    }
    close(fd);
    return buf;
}

/* mkdir -p of file's folder; new folders are private (mode 0700). */
static void make_parent(const char *file)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", file) >= (int)sizeof dir)
        return;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0700);
            *p = '/';
        }
    mkdir(dir, 0700);
}

/* One write() of the whole line with O_APPEND: concurrent writers' lines
 * land whole, one after another. A file past the size cap starts afresh. */
static void cache_append(const char *file, const mdh_hash_record *r)
{
    char line[MDH_HASH_CACHE_LINE_MAX + 2];
    size_t len = mdh_hash_cache_format_line(line, sizeof line, r);
    if (len == 0)
        return;
    make_parent(file);
    int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0600);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        if ((uint64_t)st.st_size + len > MDH_HASH_CACHE_BYTES_MAX && ftruncate(fd, 0) != 0) {
            close(fd);
            return;
        }
        ssize_t w;
        do
            w = write(fd, line, len);
        while (w < 0 && errno == EINTR);
    }
    close(fd);
}

/* ---- hashing ------------------------------------------------------- */

/* Unsigned arithmetic: a timestamp past the year 2262 wraps instead of
 * overflowing; it still names one mtime, which is all a key needs. */
static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t)((uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec);
}

/* sha256 of fd's bytes from `offset` to the end, as hex. */
static int sha256_fd(int fd, int64_t offset, const char *path, char hex[65], mdh_error *err)
{
    unsigned char *buf = malloc(MDH_HASH_CHUNK);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = MDIFF_OK;
    if (!buf || !ctx) {
        rc = mdh_fail(err, MDIFF_ERR_NOMEM, "%s: out of memory for hashing", path);
        goto done;
    }
    if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        rc = mdh_fail(err, MDIFF_ERR_UNSUPPORTED, "%s: OpenSSL has no sha256", path);
        goto done;
    }
    for (;;) {
        ssize_t r = pread(fd, buf, MDH_HASH_CHUNK, (off_t)offset);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = mdh_fail(err, MDIFF_ERR_IO, "%s: reading: %s", path, strerror(errno));
            goto done;
        }
        if (r == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)r);
        offset += r;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
done:
    EVP_MD_CTX_free(ctx);
    free(buf);
    return rc;
}

/* Where the hashed bytes start: 0, or after a .safetensors header (an
 * 8-byte little-endian length, then that many bytes of JSON). */
static int data_offset(int fd, const struct stat *st, mdh_hash_kind kind, const char *path,
                       int64_t *offset, mdh_error *err)
{
    *offset = 0;
    if (kind == MDH_HASH_FILE)
        return MDIFF_OK;
    unsigned char b[8];
    if (st->st_size < 8 || pread(fd, b, 8, 0) != 8)
        return mdh_fail(err, MDIFF_ERR_FORMAT, "%s: too short for a safetensors header", path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | b[i];
    /* A1111 would hash nothing past the end; a header longer than the
     * file is a broken file, said so rather than given a hash. */
    if (n > (uint64_t)st->st_size - 8)
        return mdh_fail(err, MDIFF_ERR_FORMAT,
                        "%s: safetensors header of %" PRIu64 " bytes is longer than the file",
                        path, n);
    *offset = (int64_t)(8 + n);
    return MDIFF_OK;
}

static int open_regular(const char *path, const char *real, int *fd, struct stat *st,
                        mdh_error *err)
{
    /* stat first: opening a FIFO would block. */
    if (stat(real, st) != 0)
        return mdh_fail(err, MDIFF_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st->st_mode))
        return mdh_fail(err, MDIFF_ERR_IO, "%s: is a directory, not a file", path);
    if (!S_ISREG(st->st_mode))
        return mdh_fail(err, MDIFF_ERR_IO, "%s: not a regular file", path);
    *fd = open(real, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (*fd < 0)
        return mdh_fail(err, MDIFF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(*fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(*fd);
        return mdh_fail(err, MDIFF_ERR_IO, "%s: not a regular file", path);
    }
    return MDIFF_OK;
}

int mdh_file_hash(const char *path, mdh_hash_kind kind, char hex[65], mdh_error *err)
{
    if (!path || !*path || !hex || (unsigned)kind > 1u)
        return mdh_fail(err, MDIFF_ERR_INVALID, "file hash: no file or an unknown kind");
    char *real = realpath(path, NULL);
    if (!real)
        return mdh_fail(err, MDIFF_ERR_IO, "%s: %s", path, strerror(errno));
    int fd = -1;
    struct stat st;
    int rc = open_regular(path, real, &fd, &st, err);
    if (rc != MDIFF_OK) {
        free(real);
        return rc;
    }
    mdh_hash_record key = {.kind = kind, .size = st.st_size, .mtime_ns = mtime_ns(&st),
                           .path = real, .path_len = strlen(real)};
    if (mem_find(&key, hex))
        goto done;

    char cache_buf[PATH_MAX];
    const char *cache = mdh_hash_cache_path(cache_buf, sizeof cache_buf);
    size_t n = 0;
    char *text = cache ? cache_read(cache, &n) : NULL;
    mdh_hash_record found;
    int hit = text && mdh_hash_cache_find(text, n, kind, real, &found) &&
              found.size == key.size && found.mtime_ns == key.mtime_ns;
    free(text);
    if (hit) {
        memcpy(hex, found.hex, 65);
        memcpy(key.hex, hex, 65);
        mem_store(&key);
        goto done;
    }

    int64_t offset;
    rc = data_offset(fd, &st, kind, path, &offset, err);
    if (rc == MDIFF_OK)
        rc = sha256_fd(fd, offset, path, hex, err);
    /* A file written while it was hashed gets its hash, but no entry. */
    struct stat after;
    if (rc == MDIFF_OK && fstat(fd, &after) == 0 && after.st_size == st.st_size &&
        mtime_ns(&after) == key.mtime_ns) {
        memcpy(key.hex, hex, 65);
        mem_store(&key);
        if (cache)
            cache_append(cache, &key);
    }
done:
    close(fd);
    free(real);
    return rc;
}
