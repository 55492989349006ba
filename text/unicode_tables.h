/* Unicode property tables for the CLIP tokenizer, generated from the same
 * Python `regex` module and str.lower() that the reference tokenizer uses
 * (text/gen_unicode_tables.py). */
#ifndef MD_UNICODE_TABLES_H
#define MD_UNICODE_TABLES_H

#include <stddef.h>
#include <stdint.h>

typedef struct md_uc_range {
    uint32_t first, last; /* inclusive */
} md_uc_range;

/* c in [first, last] with (c - first) % stride == 0 lowercases to c + delta. */
typedef struct md_uc_lower_run {
    uint32_t first, last;
    int32_t delta;
    int32_t stride;
} md_uc_lower_run;

extern const md_uc_range md_uc_letter[];          /* \p{L} */
extern const size_t md_uc_letter_count;
extern const md_uc_range md_uc_number[];          /* \p{N} */
extern const size_t md_uc_number_count;
extern const md_uc_range md_uc_regex_space[];     /* the regex module's \s */
extern const size_t md_uc_regex_space_count;
extern const md_uc_range md_uc_cased[];           /* \p{Cased} (final sigma rule) */
extern const size_t md_uc_cased_count;
extern const md_uc_range md_uc_case_ignorable[];  /* \p{Case_Ignorable} (final sigma rule) */
extern const size_t md_uc_case_ignorable_count;
extern const md_uc_lower_run md_uc_lower[];       /* single-code-point lowercase mapping */
extern const size_t md_uc_lower_count;

#endif
