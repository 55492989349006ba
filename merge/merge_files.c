/* Folder copies, removal and JSON files of a merge (merge_files.h). */
#include "merge_files.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static md_status copy_file(const char *src, const char *dst, md_error *err)
{
    FILE *in = fopen(src, "rb");
    if (!in)
        return md_fail(err, MD_ERR_IO, "%s: cannot open: %s", src, strerror(errno));
    FILE *out = fopen(dst, "wbx");
    if (!out) {
        fclose(in);
        return md_fail(err, MD_ERR_IO, "%s: cannot create: %s", dst, strerror(errno));
    }
    static char buf[1 << 16];
    size_t n;
    md_status s = MD_OK;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) {
            s = md_fail(err, MD_ERR_IO, "%s: write failed: %s", dst, strerror(errno));
            break;
        }
    if (s == MD_OK && ferror(in))
        s = md_fail(err, MD_ERR_IO, "%s: read failed", src);
    fclose(in);
    if (fclose(out) != 0 && s == MD_OK)
        s = md_fail(err, MD_ERR_IO, "%s: write failed: %s", dst, strerror(errno));
    return s;
}

md_status md_merge_copy_dir(const char *src, const char *dst, md_error *err)
{
    DIR *d = opendir(src);
    if (!d)
        return md_fail(err, MD_ERR_IO, "%s: cannot open folder: %s", src, strerror(errno));
    if (mkdir(dst, 0755) != 0) {
        closedir(d);
        return md_fail(err, MD_ERR_IO, "%s: cannot create: %s", dst, strerror(errno));
    }
    md_status s = MD_OK;
    struct dirent *e;
    char a[2048], b[2048];
    while (s == MD_OK && (e = readdir(d))) {
        struct stat st;
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        if (e->d_name[0] == '.' || stat(a, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        s = copy_file(a, b, err);
    }
    closedir(d);
    return s;
}

void md_merge_remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        char p[2048];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                md_merge_remove_tree(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(path);
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

static void sort_keys(cJSON *j)
{
    if (!j)
        return;
    cJSON *c;
    cJSON_ArrayForEach(c, j) sort_keys(c);
    if (!cJSON_IsObject(j) || !j->child)
        return;
    int n = cJSON_GetArraySize(j);
    cJSON **items = malloc(sizeof *items * (size_t)n);
    if (!items)
        return; /* unsorted is still valid JSON */
    int i = 0;
    cJSON_ArrayForEach(c, j) items[i++] = c;
    qsort(items, (size_t)n, sizeof *items, cmp_key);
    for (i = 0; i < n; i++) {
        items[i]->prev = i ? items[i - 1] : items[n - 1]; /* cJSON: child->prev is the tail */
        items[i]->next = i + 1 < n ? items[i + 1] : NULL;
    }
    j->child = items[0];
    free(items);
}

md_status md_merge_write_json(const char *path, cJSON *json, md_error *err)
{
    sort_keys(json);
    char *text = cJSON_Print(json);
    if (!text)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    FILE *f = fopen(path, "wbx");
    md_status s = MD_OK;
    if (!f)
        s = md_fail(err, MD_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    else if (fputs(text, f) < 0 || fputc('\n', f) == EOF)
        s = md_fail(err, MD_ERR_IO, "%s: write failed", path);
    if (f && fclose(f) != 0 && s == MD_OK)
        s = md_fail(err, MD_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    free(text);
    return s;
}

cJSON *md_merge_read_json(const char *path, md_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        md_fail(err, MD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = len >= 0 && len < (1 << 24) ? malloc((size_t)len + 1) : NULL;
    size_t n = buf ? fread(buf, 1, (size_t)len, f) : 0;
    fclose(f);
    if (!buf) {
        md_fail(err, MD_ERR_FORMAT, "%s: cannot read", path);
        return NULL;
    }
    buf[n] = '\0';
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!j)
        md_fail(err, MD_ERR_FORMAT, "%s: not valid JSON", path);
    return j;
}
