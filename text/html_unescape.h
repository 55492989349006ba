/* Python's html.unescape() on code points, as the CLIP tokenizer applies it
 * (twice) before splitting.
 *
 * Numeric references (&#NNN; &#xHHH;, the ';' optional) follow Python
 * exactly, including its remapping of C1 controls to windows-1252 and the
 * dropping of noncharacters. Named references cover a subset of the 2231
 * HTML5 names: all 106 that browsers also accept without ';' (the Latin-1
 * set plus AMP/LT/GT/QUOT/COPY/REG; these also match as a prefix, e.g.
 * "&ampx" -> "&x") and about a hundred common ';'-only ones (typographic
 * quotes and dashes, arrows, math, card suits, Greek letters, ...). Other
 * names are left as written. */
#ifndef MD_HTML_UNESCAPE_H
#define MD_HTML_UNESCAPE_H

#include <stddef.h>
#include <stdint.h>

/* Writes the unescaped text of in[0..n) to out (room for n code points;
 * the result is never longer) and returns its length. */
size_t md_html_unescape(const uint32_t *in, size_t n, uint32_t *out);

#endif
