/* A1111-compatible file hashes (host/file_hash.c): sha256 against the
 * published vectors and against coreutils' sha256sum, the safetensors
 * "addnet" hash against sha256sum of the data bytes written on their own,
 * errors naming the file, and the caches: memory and file hits proved by
 * changing a file's bytes while keeping its size and mtime, misses on a
 * new mtime, a corrupt cache file skipped, the file cache switched off. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include "host/file_hash.h"
#include "host/file_hash_cache.h"
#include "test_support.h"

#define SHA_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static char tmp[1024]; /* short: names are appended in 4096-byte buffers */

static const char *tpath(char *buf, const char *name)
{
    snprintf(buf, 4096, "%s/%s", tmp, name);
    return buf;
}

static int write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return (fclose(f) == 0) & ok;
}

static void set_mtime(const char *path, long sec, long nsec)
{
    struct timespec ts[2] = {{sec, nsec}, {sec, nsec}};
    CHECK(utimensat(AT_FDCWD, path, ts, 0) == 0, "utimensat %s", path);
}

/* coreutils' answer, independent of the code under test. */
static void sha256sum(const char *path, char out[65])
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    out[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (!p || fscanf(p, "%64s", out) != 1)
        FAIL("sha256sum %s", path);
    if (p)
        pclose(p);
}

static void random_bytes(unsigned char *b, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        b[i] = (unsigned char)(seed >> 24);
    }
}

static int hash_ok(const char *path, mdh_hash_kind kind, char hex[65])
{
    mdh_error err = {0};
    int rc = mdh_file_hash(path, kind, hex, &err);
    return CHECK(rc == MDIFF_OK, "%s: %d %s", path, rc, err.msg);
}

static void test_vectors(void)
{
    char p[4096], hex[65], want[65];
    write_file(tpath(p, "empty"), "", 0);
    if (hash_ok(p, MDH_HASH_FILE, hex))
        CHECK(strcmp(hex, SHA_EMPTY) == 0, "empty: %s", hex);
    write_file(tpath(p, "abc"), "abc", 3);
    if (hash_ok(p, MDH_HASH_FILE, hex))
        CHECK(strcmp(hex, SHA_ABC) == 0, "abc: %s", hex);
    /* More than two 4 MiB chunks and a ragged tail. */
    size_t n = (9u << 20) + 12345;
    unsigned char *b = malloc(n);
    random_bytes(b, n, 0x9e3779b97f4a7c15u);
    write_file(tpath(p, "big.bin"), b, n);
    free(b);
    sha256sum(p, want);
    if (hash_ok(p, MDH_HASH_FILE, hex))
        CHECK(strcmp(hex, want) == 0, "big: %s, sha256sum %s", hex, want);
}

/* A .safetensors file: LE length, JSON, data; the data alone in another file. */
static void write_safetensors(const char *path, const char *data_path, size_t data_n,
                              uint64_t seed)
{
    const char *json = "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}   ";
    uint64_t hl = strlen(json);
    unsigned char *b = malloc(8 + hl + data_n);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(hl >> (8 * i));
    memcpy(b + 8, json, hl);
    random_bytes(b + 8 + hl, data_n, seed);
    write_file(path, b, 8 + hl + data_n);
    if (data_path)
        write_file(data_path, b + 8 + hl, data_n);
    free(b);
}

static void test_safetensors_data(void)
{
    char p[4096], d[4096], hex[65], want[65];
    write_safetensors(tpath(p, "lora.safetensors"), tpath(d, "lora.data"), (5u << 20) + 7, 42);
    sha256sum(d, want);
    if (hash_ok(p, MDH_HASH_SAFETENSORS_DATA, hex))
        CHECK(strcmp(hex, want) == 0, "addnet: %s, sha256sum of the data %s", hex, want);
    sha256sum(p, want);
    if (hash_ok(p, MDH_HASH_FILE, hex))
        CHECK(strcmp(hex, want) == 0, "whole lora: %s, sha256sum %s", hex, want);
    /* A header reaching exactly to the end: no data, the empty hash. */
    write_safetensors(tpath(p, "nodata.safetensors"), NULL, 0, 1);
    if (hash_ok(p, MDH_HASH_SAFETENSORS_DATA, hex))
        CHECK(strcmp(hex, SHA_EMPTY) == 0, "no data: %s", hex);
}

static void expect_error(const char *path, mdh_hash_kind kind, int code, const char *what)
{
    char hex[65];
    mdh_error err = {0};
    int rc = mdh_file_hash(path, kind, hex, &err);
    CHECK(rc == code && err.code == code, "%s: %d, want %d (%s)", what, rc, code, err.msg);
    CHECK(strstr(err.msg, path) != NULL, "%s: message names the file: %s", what, err.msg);
}

static void test_errors(void)
{
    char p[4096];
    expect_error(tpath(p, "missing.safetensors"), MDH_HASH_FILE, MDIFF_ERR_IO, "missing");
    expect_error(tmp, MDH_HASH_FILE, MDIFF_ERR_IO, "directory");
    write_file(tpath(p, "short.safetensors"), "\x05\0\0\0\0", 5);
    expect_error(p, MDH_HASH_SAFETENSORS_DATA, MDIFF_ERR_FORMAT, "short");
    write_file(tpath(p, "long-header.safetensors"), "\xff\0\0\0\0\0\0\0{}", 10);
    expect_error(p, MDH_HASH_SAFETENSORS_DATA, MDIFF_ERR_FORMAT, "header past the end");
    /* The same file is fine as a whole file. */
    char hex[65];
    hash_ok(p, MDH_HASH_FILE, hex);
    if (geteuid() != 0) { /* root reads anything */
        write_file(tpath(p, "secret"), "x", 1);
        chmod(p, 0);
        expect_error(p, MDH_HASH_FILE, MDIFF_ERR_IO, "unreadable");
    }
    mdh_error err = {0};
    CHECK(mdh_file_hash(p, (mdh_hash_kind)7, hex, &err) == MDIFF_ERR_INVALID);
}

/* Same size, same mtime, other bytes: only a cache can give the old hash. */
static void rewrite_keeping_stat(const char *path, const char *text)
{
    write_file(path, text, strlen(text));
    set_mtime(path, 1700000000, 123456789);
}

static void test_memory_cache_without_file(void)
{
    char p[4096], home[4096], hex[65], want[65];
    setenv("MOEDIFFUSE_HASH_CACHE", "", 1);
    setenv("HOME", tpath(home, "home"), 1);
    mkdir(home, 0700);
    unsetenv("XDG_CACHE_HOME");
    char buf[4096];
    CHECK(mdh_hash_cache_path(buf, sizeof buf) == NULL, "empty MOEDIFFUSE_HASH_CACHE: no file");

    mdh_hash_memory_clear();
    rewrite_keeping_stat(tpath(p, "mem.txt"), "version 1");
    sha256sum(p, want);
    if (hash_ok(p, MDH_HASH_FILE, hex))
        CHECK(strcmp(hex, want) == 0, "first: %s", hex);
    rewrite_keeping_stat(p, "version 2");
    if (hash_ok(p, MDH_HASH_FILE, hex))
        CHECK(strcmp(hex, want) == 0, "memory hit: %s, want the old %s", hex, want);
    /* Memory gone and no file cache: hashed again. */
    mdh_hash_memory_clear();
    sha256sum(p, want);
    if (hash_ok(p, MDH_HASH_FILE, hex))
        CHECK(strcmp(hex, want) == 0, "no file cache: %s, want %s", hex, want);
    struct stat st;
    CHECK(stat(tpath(p, "home/.cache"), &st) != 0, "nothing written below $HOME");
}

static void test_cache_path(void)
{
    char buf[4096];
    setenv("MOEDIFFUSE_HASH_CACHE", "/x/h.tsv", 1);
    const char *c = mdh_hash_cache_path(buf, sizeof buf);
    CHECK(c && strcmp(c, "/x/h.tsv") == 0, "%s", c ? c : "NULL");
    unsetenv("MOEDIFFUSE_HASH_CACHE");
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    setenv("HOME", "/home/u", 1);
    c = mdh_hash_cache_path(buf, sizeof buf);
    CHECK(c && strcmp(c, "/xdg/moe-diffuse/hashes.tsv") == 0, "%s", c ? c : "NULL");
    unsetenv("XDG_CACHE_HOME");
    c = mdh_hash_cache_path(buf, sizeof buf);
    CHECK(c && strcmp(c, "/home/u/.cache/moe-diffuse/hashes.tsv") == 0, "%s", c ? c : "NULL");
    CHECK(mdh_hash_cache_path(buf, 8) == NULL, "too long for the buffer");
}

/* Fields of the cache line naming `real`, or 0 fields when none does. */
static int cache_line_for(const char *cache, const char *real, const char *hex)
{
    size_t n;
    char *text = md_test_read_file(cache, &n);
    if (!text)
        return 0;
    int found = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        int tabs = 0;
        for (char *q = line; *q; q++)
            tabs += *q == '\t';
        char *last = strrchr(line, '\t');
        if (tabs == 5 && strncmp(line, "mdh1\t", 5) == 0 && last && strcmp(last + 1, real) == 0 &&
            strstr(line, hex))
            found = 1;
    }
    free(text);
    return found;
}

static void test_file_cache(void)
{
    char p[4096], cache[4096], dir[4096], hex[65], old[65], want[65];
    setenv("MOEDIFFUSE_HASH_CACHE", tpath(cache, "new/dir/hashes.tsv"), 1);
    mdh_hash_memory_clear();
    rewrite_keeping_stat(tpath(p, "model.ckpt"), "checkpoint A");
    sha256sum(p, old);
    if (hash_ok(p, MDH_HASH_FILE, hex))
        CHECK(strcmp(hex, old) == 0, "computed: %s", hex);
    struct stat st;
    CHECK(stat(tpath(dir, "new/dir"), &st) == 0 && (st.st_mode & 0777) == 0700,
          "cache folder made, mode 0700");
    char *real = realpath(p, NULL);
    CHECK(cache_line_for(cache, real, old), "a cache line for %s", real);

    /* Every CLI run is a new process: the memory cache starts empty. */
    mdh_hash_memory_clear();
    rewrite_keeping_stat(p, "checkpoint B");
    if (hash_ok(p, MDH_HASH_FILE, hex))
        CHECK(strcmp(hex, old) == 0, "file cache hit: %s, want the cached %s", hex, old);

    /* A new mtime (1 ns later) is a miss: hashed and appended again. */
    mdh_hash_memory_clear();
    set_mtime(p, 1700000000, 123456790);
    sha256sum(p, want);
    if (hash_ok(p, MDH_HASH_FILE, hex))
        CHECK(strcmp(hex, want) == 0 && strcmp(hex, old) != 0, "mtime miss: %s", hex);
    CHECK(cache_line_for(cache, real, want), "the new hash appended");
    mdh_hash_memory_clear();
    if (hash_ok(p, MDH_HASH_FILE, hex)) /* later lines win */
        CHECK(strcmp(hex, want) == 0, "the later line: %s", hex);

    /* The kinds are separate entries. */
    write_safetensors(tpath(p, "l.safetensors"), tpath(dir, "l.data"), 1000, 7);
    sha256sum(dir, want);
    char whole[65];
    sha256sum(p, whole);
    mdh_hash_memory_clear();
    hash_ok(p, MDH_HASH_FILE, hex);
    mdh_hash_memory_clear();
    if (hash_ok(p, MDH_HASH_SAFETENSORS_DATA, hex))
        CHECK(strcmp(hex, want) == 0, "data kind after a file-kind entry: %s", hex);
    mdh_hash_memory_clear();
    if (hash_ok(p, MDH_HASH_FILE, hex))
        CHECK(strcmp(hex, whole) == 0, "file kind after a data-kind entry: %s", hex);
    free(real);
}

static void test_corrupt_cache(void)
{
    char p[4096], q[4096], cache[4096], hex[65], want[65];
    setenv("MOEDIFFUSE_HASH_CACHE", tpath(cache, "corrupt.tsv"), 1);
    rewrite_keeping_stat(tpath(p, "planted.bin"), "planted");
    rewrite_keeping_stat(tpath(q, "honest.bin"), "honest");
    char *rp = realpath(p, NULL), *rq = realpath(q, NULL);
    const char *ff = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    const char *ee = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
    FILE *f = fopen(cache, "wb");
    unsigned char junk[3000];
    random_bytes(junk, sizeof junk, 5);
    fwrite(junk, 1, sizeof junk, f);
    fprintf(f, "\nmdh1\tfile\t6\t1700000000123456789\t%.63s\t%s\n", ff, rq); /* 63 digits */
    fprintf(f, "mdh1\tfile\t6\t1700000000123456789\t%s\n", ff);                 /* no path */
    fprintf(f, "mdh1\tfile\t99999999999999999999\t1700000000123456789\t%s\t%s\n", ff, rq);
    fprintf(f, "mdh1\tbogus\t6\t1700000000123456789\t%s\t%s\n", ff, rq);
    fprintf(f, "mdh2\tfile\t6\t1700000000123456789\t%s\t%s\n", ff, rq);
    fprintf(f, "mdh1\tfile\t6\t1700000000123456789\t%s\t%s\textra\n", ff, rq);
    fprintf(f, "mdh1\tfile\t6\t1700000000123456789\t%s\tx%s\n", ff, rq); /* relative */
    fprintf(f, "MDH1\tfile\t6\t1700000000123456789\t%s\t%s\n", ff, rq);
    fprintf(f, "mdh1\tfile\t7\t1700000000123456789\t%s\t%s\n", ee, rp);
    for (int i = 0; i < (2 << 20); i++) /* a 2 MiB line */
        fputc('a' + i % 26, f);
    fprintf(f, "\nmdh1\tfile\t7\t1700000000123456789\t%s\t%s\n", ff, rp);
    fprintf(f, "mdh1\tfile\t7\t1700000000123456789\t%s\t%s", ee, rp); /* unterminated */
    fclose(f);

    mdh_hash_memory_clear();
    if (hash_ok(p, MDH_HASH_FILE, hex))
        CHECK(strcmp(hex, ff) == 0, "the planted line after the junk wins: %s", hex);
    sha256sum(q, want);
    if (hash_ok(q, MDH_HASH_FILE, hex))
        CHECK(strcmp(hex, want) == 0, "malformed lines skipped: %s, want %s", hex, want);

    /* A cache that cannot be a file: hashed anyway. */
    setenv("MOEDIFFUSE_HASH_CACHE", tmp, 1);
    mdh_hash_memory_clear();
    if (hash_ok(q, MDH_HASH_FILE, hex))
        CHECK(strcmp(hex, want) == 0, "cache path is a folder: %s", hex);
    setenv("MOEDIFFUSE_HASH_CACHE", "/proc/no/such/hashes.tsv", 1);
    mdh_hash_memory_clear();
    if (hash_ok(q, MDH_HASH_FILE, hex))
        CHECK(strcmp(hex, want) == 0, "cache not writable: %s", hex);
    free(rp);
    free(rq);
}

static void test_parse_line(void)
{
    const char *h = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char line[9000];
    mdh_hash_record r;
    snprintf(line, sizeof line, "mdh1\tsafetensors-data\t12\t-5\t%s\t/a b/c", h);
    CHECK(mdh_hash_cache_parse_line(line, strlen(line), &r) && r.kind == MDH_HASH_SAFETENSORS_DATA &&
          r.size == 12 && r.mtime_ns == -5 && strcmp(r.hex, h) == 0 && r.path_len == 6 &&
          memcmp(r.path, "/a b/c", 6) == 0);
    char again[9000];
    size_t n = mdh_hash_cache_format_line(again, sizeof again, &r);
    CHECK(n == strlen(line) + 1 && memcmp(again, line, n - 1) == 0 && again[n - 1] == '\n');
    static const char *const bad[] = {
        "mdh1\tfile\t-1\t0\t%s\t/p",                    /* negative size */
        "mdh1\tfile\t1\t9223372036854775808\t%s\t/p",   /* mtime past int64 */
        "mdh1\tfile\t+1\t0\t%s\t/p",                    /* a sign */
        "mdh1\tfile\t\t0\t%s\t/p",                      /* empty number */
        "mdh1\tfile\t1\t0\t%s\t/p\r",                   /* CR */
        "mdh1\tfile\t1\t0\t%s\t/p\tq",                  /* tab in the path */
        "mdh1\tfile\t1\t0\t%s\t",                       /* empty path */
        "mdh1\tfile\t1\t0\t%sA\t/p",                    /* 65 digits */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(line, sizeof line, bad[i], h);
        CHECK(!mdh_hash_cache_parse_line(line, strlen(line), &r), "accepted: %s", line);
    }
    snprintf(line, sizeof line, "mdh1\tfile\t1\t0\t%s\t/p", h);
    line[20] = 'A'; /* uppercase hex */
    CHECK(!mdh_hash_cache_parse_line(line, strlen(line), &r), "uppercase hex accepted");
    /* A path that cannot round-trip is never written. */
    r = (mdh_hash_record){.kind = MDH_HASH_FILE, .size = 1, .path = "/a\tb", .path_len = 4};
    memcpy(r.hex, h, 65);
    CHECK(mdh_hash_cache_format_line(again, sizeof again, &r) == 0, "tab in a path written");
    r.path = "/a\nb";
    CHECK(mdh_hash_cache_format_line(again, sizeof again, &r) == 0, "newline in a path written");
}

/* Threads hashing one file at once: one answer, whole cache lines. */
static void *hash_thread(void *arg)
{
    char *hex = arg; /* the file's path follows the 65 bytes of the answer */
    mdh_error err = {0};
    if (mdh_file_hash(hex + 65, MDH_HASH_FILE, hex, &err) != MDIFF_OK)
        snprintf(hex, 65, "error");
    return NULL;
}

static void test_threads(void)
{
    char p[4096], cache[4096], want[65];
    setenv("MOEDIFFUSE_HASH_CACHE", tpath(cache, "threads.tsv"), 1);
    size_t n = (3u << 20) + 1;
    unsigned char *b = malloc(n);
    random_bytes(b, n, 99);
    write_file(tpath(p, "threads.bin"), b, n);
    free(b);
    sha256sum(p, want);
    mdh_hash_memory_clear();
    enum { T = 4 };
    pthread_t th[T];
    char out[T][65 + 4096];
    for (int i = 0; i < T; i++) {
        snprintf(out[i] + 65, 4096, "%s", p);
        pthread_create(&th[i], NULL, hash_thread, out[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        CHECK(strncmp(out[i], want, 64) == 0, "thread %d: %.64s", i, out[i]);
    }
    char *real = realpath(p, NULL);
    CHECK(cache_line_for(cache, real, want), "threads' line in the cache");
    free(real);
}

int main(void)
{
    if (!md_test_make_temp_dir(tmp, sizeof tmp, "file-hash-"))
        return 1;
    /* Never the user's own cache file. */
    char cache[4096];
    setenv("MOEDIFFUSE_HASH_CACHE", tpath(cache, "main.tsv"), 1);
    test_vectors();
    test_safetensors_data();
    test_errors();
    test_cache_path();
    test_memory_cache_without_file();
    test_file_cache();
    test_corrupt_cache();
    test_parse_line();
    test_threads();
    md_test_remove_tree(tmp);
    return md_test_finish("test_file_hash");
}
