/* dsgen.h - the dataset_gen step's samples: the set both ways of making
 * them (offline, dsgen_offline.h; through an API, dsgen_prompt.h) fill,
 * the checks every sample passes, the train/test split and the Handbook's
 * JSON layout it is written in (docs/dataset_gen.md). */
#ifndef SLUICE_STEPS_DSGEN_H
#define SLUICE_STEPS_DSGEN_H

#include <stddef.h>
#include <stdint.h>

#include "strtab.h"

typedef enum dsgen_kind {
    DSGEN_INSTRUCTION, /* {instruction, answer} */
    DSGEN_PREFERENCE,  /* {instruction, rejected, chosen} */
} dsgen_kind;

/* Why a sample (or all the samples of an extract) was dropped; each is a
 * metric "dropped_<name>" (dsgen_drop_name). */
typedef enum dsgen_drop {
    DSGEN_DROP_SHORT_EXTRACT, /* offline: no sentence span long enough */
    DSGEN_DROP_NO_TOPIC,      /* offline: only stop words to name a topic by */
    DSGEN_DROP_DUPLICATE,     /* an instruction seen before */
    DSGEN_DROP_SHORT_INSTRUCTION,
    DSGEN_DROP_SHORT_ANSWER,   /* answer (chosen) under min_answer_length */
    DSGEN_DROP_ANSWER_FORMAT,  /* answer not from a capital to . ! or ? */
    DSGEN_DROP_TRUNCATED,      /* the model stopped at max_tokens */
    DSGEN_DROP_MISSING_FIELD,  /* an item without a string field it needs */
    DSGEN_DROP_NOT_JSON,       /* a response whose content is no JSON */
    DSGEN_DROP_WRONG_SHAPE,    /* JSON, but no list of objects */
    DSGEN_DROP_FAILED_REQUEST, /* a request that failed after its retries */
    DSGEN_DROP_OVER_BUDGET,    /* a request not sent: max_requests or max_tokens_total */
    DSGEN_N_DROPS
} dsgen_drop;

const char *dsgen_drop_name(dsgen_drop d);

/* One sample. Strings are the set's (malloc'ed). answer is the chosen one
 * of a preference sample; rejected is NULL for instruction samples. */
typedef struct dsgen_sample {
    char *instruction, *answer, *rejected;
    uint32_t category; /* into dsgen_set.categories */
    size_t source;     /* the extract it came from (the caller's index) */
} dsgen_sample;

typedef struct dsgen_set {
    dsgen_kind kind;
    size_t min_instruction, min_answer; /* code points */
    dsgen_sample *s;
    size_t n, cap;
    strtab categories;   /* in the order first seen */
    strtab instructions; /* to refuse a duplicate */
    long dropped[DSGEN_N_DROPS];
} dsgen_set;

/* An empty set of kind; min lengths in code points. */
void dsgen_set_init(dsgen_set *set, dsgen_kind kind, size_t min_instruction, size_t min_answer);
void dsgen_set_free(dsgen_set *set);

/* Checks a sample of extract source and, when it passes, adds copies of
 * its strings to set (rejected ignored for instruction sets). Returns 1 added, 0 dropped
 * (counted in set->dropped under the reason), -ENOMEM. The checks, in
 * order: the instruction has at least min_instruction code points, the
 * answer (chosen) at least min_answer; a preference sample's chosen
 * answer begins with a capital letter or a digit and ends with '.', '!'
 * or '?' (the Handbook's filter_answer_format, which it applies to
 * preference data only; '"', '\'' or ')' after the mark is allowed) and
 * its rejected answer is there and unlike the chosen one; the instruction
 * is new. */
int dsgen_set_add(dsgen_set *set, size_t source, const char *category, const char *instruction,
                  const char *answer, const char *rejected);
/* The reason dsgen_set_add would drop the sample for, or -1 if none
 * (nothing counted). */
int dsgen_check(const dsgen_set *set, const char *instruction, const char *answer,
                const char *rejected);

/* Code points in s[0, len) (bad bytes count one each). */
size_t dsgen_cp_len(const char *s, size_t len);

/* A 64-bit hash of bytes and a seed (FNV-1a then a splitmix64 finish): the
 * root of every seeded choice, so that they depend on the content and the
 * seed, not on memory or time. */
uint64_t dsgen_hash(uint64_t seed, const void *data, size_t len);
/* splitmix64: the next value of the state. */
uint64_t dsgen_next(uint64_t *state);

/* The train/test split: for each category, ceil(test_size * n) of its
 * samples (but never all of them when there are two or more; none of one
 * alone) go to test, chosen by a Fisher-Yates shuffle seeded by seed and
 * the category's name; both splits keep the samples' order.
 * is_test[i] for every sample of set (n entries, the caller's). */
int dsgen_split(const dsgen_set *set, double test_size, uint64_t seed, unsigned char *is_test);

/* Where an extract came from: its chunk's id and its document's id (each
 * borrowed; NULL or "" when unknown). */
typedef struct dsgen_source {
    const char *extract_id, *document_id;
} dsgen_source;

/* Writes set to path in the Handbook's layout: {"id", "train": {CATEGORY:
 * {"id", "category", "samples": [{"id", "instruction", "answer"} or {"id",
 * "instruction", "rejected", "chosen"}]}}, "test": {...},
 * "test_split_size"}. With sources (indexed by dsgen_sample.source; may be
 * NULL) each sample also says where it came from: "extract_id" and
 * "document_id", after the Handbook's fields, which readers of the
 * Handbook's layout skip. The ids are UUIDs of the MD5 of the content
 * (text_chunk_id): a sample's of its texts, the dataset's of everything
 * the file says, so the same samples give the same bytes. Returns 0 or a
 * negative errno with err filled (naming path). */
int dsgen_write(const dsgen_set *set, const unsigned char *is_test, double test_size,
                const dsgen_source *sources, const char *path, char *err, size_t err_size);

/* The q-quantile (0..1, nearest rank) of the code point lengths of field
 * (0 instruction, 1 answer or chosen, 2 rejected) over all the samples. 0
 * when there are none; -1 on no memory. */
double dsgen_length_quantile(const dsgen_set *set, int field, double q);

#endif
