/* Finding a LoRA by name in a folder, as A1111's <lora:NAME> does. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lora_set.h"

#define SEARCH_DEPTH 8

static int is_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A name may hold subfolders but never climbs out of the folder. */
static int safe_name(const char *name)
{
    if (!name[0] || name[0] == '/')
        return 0;
    for (const char *p = name; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || (n == 2 && !strncmp(p, "..", 2)) || (n == 1 && *p == '.'))
            return 0;
        p += n + (e != NULL);
    }
    return 1;
}

/* Counts files called `file` below dir (depth-limited; symlinked folders are
 * not followed, so a link loop cannot trap the search); the first found goes
 * to path. */
static int search(const char *dir, const char *file, int depth, char *path, size_t cap, int found)
{
    DIR *d = opendir(dir);
    if (!d)
        return found;
    struct dirent *de;
    char sub[4096];
    while ((de = readdir(d)) != NULL && found < 2) {
        if (de->d_name[0] == '.')
            continue;
        if ((size_t)snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name) >= sizeof sub)
            continue;
        struct stat st;
        if (lstat(sub, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth > 0) {
            found = search(sub, file, depth - 1, path, cap, found);
        } else if (!strcmp(de->d_name, file) && is_regular(sub)) {
            if (found++ == 0)
                snprintf(path, cap, "%s", sub);
            else
                snprintf(path + strlen(path), cap - strlen(path), "\n%s", sub);
        }
    }
    closedir(d);
    return found;
}

md_status md_lora_find(const char *dir, const char *name, char *path, size_t cap, md_error *err)
{
    if (!dir || !dir[0])
        return md_fail(err, MD_ERR_IO,
                       "prompt: <lora:%s>: no LoRA folder given to look it up in (lora_dir, "
                       "--lora-dir)", name);
    if (!safe_name(name))
        return md_fail(err, MD_ERR_INVALID,
                       "prompt: <lora:%s>: a LoRA name must stay inside the LoRA folder", name);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return md_fail(err, MD_ERR_IO, "%s: the LoRA folder is not a readable folder", dir);
    const char *ext = strrchr(name, '.');
    int has_ext = ext && !strcmp(ext, ".safetensors");
    char file[600];
    snprintf(file, sizeof file, "%s%s", name, has_ext ? "" : ".safetensors");
    if ((size_t)snprintf(path, cap, "%s/%s", dir, file) < cap && is_regular(path))
        return MD_OK;
    static const char *const pickles[] = {".pt", ".ckpt", ".pth", ".bin"};
    for (int i = 0; i < 4 && !has_ext; i++) {
        char pickle[4096];
        snprintf(pickle, sizeof pickle, "%s/%s%s", dir, name, pickles[i]);
        if (is_regular(pickle))
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "%s: a pickle checkpoint; loading one can run code, so only "
                           ".safetensors LoRA files are read (convert it first)", pickle);
    }
    const char *slash = strrchr(file, '/');
    char found_paths[8192] = "";
    int found = search(dir, slash ? slash + 1 : file, SEARCH_DEPTH, found_paths,
                       sizeof found_paths, 0);
    if (found == 1 && !slash) {
        snprintf(path, cap, "%s", found_paths);
        return MD_OK;
    }
    if (found > 1 && !slash) {
        char *nl = strchr(found_paths, '\n');
        if (nl)
            *nl = ' ';
        return md_fail(err, MD_ERR_INVALID,
                       "prompt: <lora:%s>: two files of that name in %s (%s): name one with its "
                       "subfolder, <lora:SUB/%s>", name, dir, found_paths, name);
    }
    return md_fail(err, MD_ERR_IO, "prompt: <lora:%s>: no %s in the LoRA folder %s", name, file,
                   dir);
}
