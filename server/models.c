#include "models.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_model(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    size_t n = strlen(name);
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path ||
        stat(path, &st) != 0)
        return 0;
    if (S_ISREG(st.st_mode))
        return n > 12 && !strcmp(name + n - 12, ".safetensors");
    if (!S_ISDIR(st.st_mode) ||
        (size_t)snprintf(path, sizeof path, "%s/%s/model_index.json", dir, name) >= sizeof path)
        return 0;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int md_models_list(const char *dir, char ***names)
{
    *names = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < 10000) {
        if (de->d_name[0] == '.' || !is_model(dir, de->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(*names, sizeof *grown * cap);
            if (!grown)
                break;
            *names = grown;
        }
        if (((*names)[n] = strdup(de->d_name)) != NULL)
            n++;
    }
    closedir(d);
    if (n)
        qsort(*names, n, sizeof **names, by_name);
    return n;
}

void md_models_free(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}
