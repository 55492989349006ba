#include "base64.h"

#include <stdlib.h>
#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *md_base64_encode(const unsigned char *data, size_t size)
{
    size_t n = (size + 2) / 3 * 4;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (size_t i = 0; i < size; i += 3) {
        unsigned v = (unsigned)data[i] << 16;
        if (i + 1 < size)
            v |= (unsigned)data[i + 1] << 8;
        if (i + 2 < size)
            v |= data[i + 2];
        *o++ = alphabet[v >> 18 & 63];
        *o++ = alphabet[v >> 12 & 63];
        *o++ = i + 1 < size ? alphabet[v >> 6 & 63] : '=';
        *o++ = i + 2 < size ? alphabet[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static int value_of(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-') /* '-' and '_': the URL-safe alphabet, also seen */
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int md_base64_decode(const char *text, unsigned char **out, size_t *size)
{
    *out = NULL;
    *size = 0;
    if (!strncmp(text, "data:", 5)) {
        const char *comma = strchr(text, ',');
        if (!comma)
            return -1;
        text = comma + 1;
    }
    size_t len = strlen(text);
    unsigned char *buf = malloc(len / 4 * 3 + 3);
    if (!buf)
        return -2;
    size_t n = 0;
    unsigned v = 0;
    int bits = 0, pad = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
            continue;
        if (*p == '=') {
            pad++;
            continue;
        }
        int d = value_of(*p);
        if (d < 0 || pad) { /* nothing but padding after padding */
            free(buf);
            return -1;
        }
        v = (v << 6 | (unsigned)d) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (unsigned char)(v >> bits);
        }
    }
    if (bits >= 6) { /* a lone sixth of a byte cannot come from any input */
        free(buf);
        return -1;
    }
    *out = buf;
    *size = n;
    return 0;
}
