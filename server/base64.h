/* Base64 (RFC 4648, standard alphabet) for the images A1111's API carries
 * in JSON. */
#ifndef MD_SERVER_BASE64_H
#define MD_SERVER_BASE64_H

#include <stddef.h>

/* malloc'd, NUL-terminated; NULL when out of memory. */
char *md_base64_encode(const unsigned char *data, size_t size);

/* Decodes text, skipping a "data:...;base64," prefix (browsers and A1111
 * clients send data URLs) and whitespace; padding is optional. *out is
 * malloc'd. Returns 0, or -1 for a character outside the alphabet or a
 * dangling bit group, -2 when out of memory. */
int md_base64_decode(const char *text, unsigned char **out, size_t *size);

#endif
