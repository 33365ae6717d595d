/* dsgen.c - the dataset_gen step's sample set, checks, split and output
 * (dsgen.h). */
#include "dsgen.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "text.h"
#include "tok_impl.h"

static const char *const drop_names[DSGEN_N_DROPS] = {
    [DSGEN_DROP_SHORT_EXTRACT] = "short_extract",
    [DSGEN_DROP_NO_TOPIC] = "no_topic",
    [DSGEN_DROP_DUPLICATE] = "duplicate_instruction",
    [DSGEN_DROP_SHORT_INSTRUCTION] = "short_instruction",
    [DSGEN_DROP_SHORT_ANSWER] = "short_answer",
    [DSGEN_DROP_ANSWER_FORMAT] = "answer_format",
    [DSGEN_DROP_TRUNCATED] = "truncated",
    [DSGEN_DROP_MISSING_FIELD] = "missing_field",
    [DSGEN_DROP_NOT_JSON] = "not_json",
    [DSGEN_DROP_WRONG_SHAPE] = "wrong_shape",
    [DSGEN_DROP_FAILED_REQUEST] = "failed_request",
    [DSGEN_DROP_OVER_BUDGET] = "over_budget",
};

const char *dsgen_drop_name(dsgen_drop d) {
    return (unsigned)d < DSGEN_N_DROPS ? drop_names[d] : "unknown";
}

void dsgen_set_init(dsgen_set *set, dsgen_kind kind, size_t min_instruction, size_t min_answer) {
    memset(set, 0, sizeof(*set));
    set->kind = kind;
    set->min_instruction = min_instruction;
    set->min_answer = min_answer;
}

void dsgen_set_free(dsgen_set *set) {
    for (size_t i = 0; i < set->n; i++) {
        free(set->s[i].instruction);
        free(set->s[i].answer);
        free(set->s[i].rejected);
    }
    free(set->s);
    strtab_free(&set->categories);
    strtab_free(&set->instructions);
    memset(set, 0, sizeof(*set));
}

size_t dsgen_cp_len(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* The Handbook's filter_answer_format: chosen[0].isupper() and chosen[-1]
 * in ".!?". A non-ASCII first letter is let through (no case tables
 * here); a closing quote or bracket after the mark is allowed. */
static int well_formed(const char *a) {
    size_t n = strlen(a);
    if (n == 0)
        return 0;
    unsigned char first = (unsigned char)a[0];
    if (!((first >= 'A' && first <= 'Z') || (first >= '0' && first <= '9') || first >= 0xC0))
        return 0;
    while (n > 1 && (a[n - 1] == '"' || a[n - 1] == ')' || a[n - 1] == '\''))
        n--;
    return a[n - 1] == '.' || a[n - 1] == '!' || a[n - 1] == '?';
}

int dsgen_check(const dsgen_set *set, const char *instruction, const char *answer,
                const char *rejected) {
    if (dsgen_cp_len(instruction, strlen(instruction)) < set->min_instruction)
        return DSGEN_DROP_SHORT_INSTRUCTION;
    if (dsgen_cp_len(answer, strlen(answer)) < set->min_answer)
        return DSGEN_DROP_SHORT_ANSWER;
    if (set->kind == DSGEN_PREFERENCE && !well_formed(answer))
        return DSGEN_DROP_ANSWER_FORMAT;
    if (set->kind == DSGEN_PREFERENCE && (!rejected || !*rejected || strcmp(rejected, answer) == 0))
        return DSGEN_DROP_MISSING_FIELD;
    if (strtab_find(&set->instructions, instruction, strlen(instruction)) != STRTAB_NONE)
        return DSGEN_DROP_DUPLICATE;
    return -1;
}

int dsgen_set_add(dsgen_set *set, size_t source, const char *category, const char *instruction,
                  const char *answer, const char *rejected) {
    int why = dsgen_check(set, instruction, answer, rejected);
    if (why >= 0) {
        set->dropped[why]++;
        return 0;
    }
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 64;
        dsgen_sample *s = realloc(set->s, cap * sizeof(*s));
        if (!s)
            return -ENOMEM;
        set->s = s;
        set->cap = cap;
    }
    dsgen_sample *s = &set->s[set->n];
    uint32_t cat, ins;
    memset(s, 0, sizeof(*s));
    if (strtab_intern(&set->categories, category, strlen(category), &cat) != 0 ||
        !(s->instruction = strdup(instruction)) || !(s->answer = strdup(answer)) ||
        (set->kind == DSGEN_PREFERENCE && !(s->rejected = strdup(rejected))) ||
        strtab_intern(&set->instructions, instruction, strlen(instruction), &ins) != 0) {
        free(s->instruction);
        free(s->answer);
        free(s->rejected);
        return -ENOMEM;
    }
    s->category = cat;
    s->source = source;
    set->n++;
    return 1;
}

uint64_t dsgen_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t dsgen_hash(uint64_t seed, const void *data, size_t len) {
    uint64_t h = 0xCBF29CE484222325ull;
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001B3ull;
    uint64_t state = h ^ seed;
    return dsgen_next(&state);
}

int dsgen_split(const dsgen_set *set, double test_size, uint64_t seed, unsigned char *is_test) {
    memset(is_test, 0, set->n ? set->n : 1);
    size_t *idx = malloc((set->n ? set->n : 1) * sizeof(*idx));
    if (!idx)
        return -ENOMEM;
    for (uint32_t c = 0; c < (uint32_t)set->categories.n; c++) {
        size_t m = 0;
        for (size_t i = 0; i < set->n; i++)
            if (set->s[i].category == c)
                idx[m++] = i;
        size_t n_test = (size_t)ceil(test_size * (double)m);
        if (m > 0 && n_test >= m)
            n_test = m - 1;
        uint64_t state = dsgen_hash(seed, set->categories.s[c], set->categories.len[c]);
        for (size_t i = m; i > 1; i--) {
            size_t j = (size_t)(dsgen_next(&state) % i);
            size_t t = idx[i - 1];
            idx[i - 1] = idx[j];
            idx[j] = t;
        }
        for (size_t i = 0; i < n_test; i++)
            is_test[idx[i]] = 1;
    }
    free(idx);
    return 0;
}

/* The shortest decimal that reads back as v, as Python's repr writes it. */
static void shortest_double(double v, char out[32]) {
    for (int p = 1; p <= 17; p++) {
        snprintf(out, 32, "%.*g", p, v);
        if (strtod(out, NULL) == v)
            break;
    }
    if (!strpbrk(out, ".eEn")) /* 1 -> 1.0: a float, as json.dump writes it */
        strcat(out, ".0");
}

/* A UUID of the MD5 of the parts joined by NUL bytes. */
static int content_id(tok_buf *scratch, const char *const *parts, size_t n, char id[37]) {
    scratch->n = 0;
    for (size_t i = 0; i < n; i++)
        if (tok_buf_add(scratch, parts[i] ? parts[i] : "", parts[i] ? strlen(parts[i]) + 1 : 1))
            return -ENOMEM;
    return text_chunk_id(scratch->p ? scratch->p : "", scratch->n, id);
}

static int write_sample(tok_buf *b, tok_buf *scratch, const dsgen_set *set,
                        const dsgen_source *sources, const dsgen_sample *s, int first) {
    const char *parts[] = {s->instruction, s->answer, s->rejected};
    char id[37];
    if (content_id(scratch, parts, 3, id))
        return -ENOMEM;
    int rc = tok_buf_printf(b,
                            "%s\n                {\n                    \"id\": \"%s\",\n"
                            "                    \"instruction\": ",
                            first ? "" : ",", id);
    rc = rc ? rc : tok_buf_json_str(b, s->instruction, strlen(s->instruction));
    if (set->kind == DSGEN_PREFERENCE) {
        rc = rc ? rc : tok_buf_printf(b, ",\n                    \"rejected\": ");
        rc = rc ? rc : tok_buf_json_str(b, s->rejected, strlen(s->rejected));
        rc = rc ? rc : tok_buf_printf(b, ",\n                    \"chosen\": ");
    } else {
        rc = rc ? rc : tok_buf_printf(b, ",\n                    \"answer\": ");
    }
    rc = rc ? rc : tok_buf_json_str(b, s->answer, strlen(s->answer));
    const char *where[2] = {sources ? sources[s->source].extract_id : NULL,
                            sources ? sources[s->source].document_id : NULL};
    static const char *const names[2] = {"extract_id", "document_id"};
    for (int k = 0; k < 2 && !rc; k++)
        if (where[k] && *where[k]) {
            rc = tok_buf_printf(b, ",\n                    \"%s\": ", names[k]);
            rc = rc ? rc : tok_buf_json_str(b, where[k], strlen(where[k]));
        }
    return rc ? rc : tok_buf_printf(b, "\n                }");
}

/* One split: {CATEGORY: {"id", "category", "samples": [...]}, ...}. */
static int write_split(tok_buf *b, tok_buf *scratch, const dsgen_set *set,
                       const dsgen_source *sources, const unsigned char *is_test, int test) {
    const char *split = test ? "test" : "train";
    int rc = tok_buf_printf(b, "    \"%s\": {", split);
    for (uint32_t c = 0; rc == 0 && c < (uint32_t)set->categories.n; c++) {
        const char *cat = set->categories.s[c];
        const char *parts[] = {set->kind == DSGEN_PREFERENCE ? "preference" : "instruction", split,
                               cat};
        char id[37];
        if ((rc = content_id(scratch, parts, 3, id)))
            break;
        rc = tok_buf_printf(b, "%s\n        ", c ? "," : "");
        rc = rc ? rc : tok_buf_json_str(b, cat, strlen(cat));
        rc = rc ? rc
                : tok_buf_printf(
                      b, ": {\n            \"id\": \"%s\",\n            \"category\": ", id);
        rc = rc ? rc : tok_buf_json_str(b, cat, strlen(cat));
        rc = rc ? rc : tok_buf_printf(b, ",\n            \"samples\": [");
        int first = 1;
        for (size_t i = 0; rc == 0 && i < set->n; i++) {
            if (set->s[i].category != c || !is_test[i] != !test)
                continue;
            rc = write_sample(b, scratch, set, sources, &set->s[i], first);
            first = 0;
        }
        rc = rc ? rc : tok_buf_printf(b, "%s]\n        }", first ? "" : "\n            ");
    }
    return rc ? rc : tok_buf_printf(b, "%s}", set->categories.n ? "\n    " : "");
}

int dsgen_write(const dsgen_set *set, const unsigned char *is_test, double test_size,
                const dsgen_source *sources, const char *path, char *err, size_t err_size) {
    tok_buf b = {NULL, 0, 0}, scratch = {NULL, 0, 0};
    char ts[32], id[37];
    shortest_double(test_size, ts);
    /* The dataset's id: of its kind, its split size and every sample id's
     * content, i.e. of what the file says. */
    int rc = 0;
    const char *kind = set->kind == DSGEN_PREFERENCE ? "preference" : "instruction";
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        const dsgen_source *src = sources ? &sources[set->s[i].source] : NULL;
        const char *parts[] = {set->s[i].instruction,
                               set->s[i].answer,
                               set->s[i].rejected,
                               is_test[i] ? "test" : "train",
                               set->categories.s[set->s[i].category],
                               src ? src->extract_id : NULL,
                               src ? src->document_id : NULL};
        for (size_t p = 0; rc == 0 && p < 7; p++)
            rc = tok_buf_add(&b, parts[p] ? parts[p] : "", parts[p] ? strlen(parts[p]) + 1 : 1);
    }
    rc = rc ? rc : tok_buf_add(&b, kind, strlen(kind) + 1);
    rc = rc ? rc : tok_buf_add(&b, ts, strlen(ts));
    rc = rc ? rc : text_chunk_id(b.p, b.n, id);
    b.n = 0;
    rc = rc ? rc : tok_buf_printf(&b, "{\n    \"id\": \"%s\",\n", id);
    rc = rc ? rc : write_split(&b, &scratch, set, sources, is_test, 0);
    rc = rc ? rc : tok_buf_printf(&b, ",\n");
    rc = rc ? rc : write_split(&b, &scratch, set, sources, is_test, 1);
    rc = rc ? rc : tok_buf_printf(&b, ",\n    \"test_split_size\": %s\n}\n", ts);
    free(scratch.p);
    if (rc) {
        free(b.p);
        return errbuf_set(err, err_size, -ENOMEM, "%s: out of memory writing the dataset", path);
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        rc = -errno;
        free(b.p);
        return errbuf_set(err, err_size, rc, "%s: %s", path, strerror(-rc));
    }
    size_t w = fwrite(b.p, 1, b.n, f);
    int bad = w != b.n || fflush(f) != 0;
    rc = bad ? -errno : 0;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        rc = -errno;
    }
    free(b.p);
    if (bad)
        return errbuf_set(err, err_size, rc ? rc : -EIO, "%s: cannot write: %s", path,
                          strerror(rc ? -rc : EIO));
    return 0;
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

double dsgen_length_quantile(const dsgen_set *set, int field, double q) {
    if (set->n == 0)
        return 0;
    size_t *len = malloc(set->n * sizeof(*len));
    if (!len)
        return -1;
    for (size_t i = 0; i < set->n; i++) {
        const char *s = field == 0   ? set->s[i].instruction
                        : field == 1 ? set->s[i].answer
                                     : set->s[i].rejected;
        len[i] = s ? dsgen_cp_len(s, strlen(s)) : 0;
    }
    qsort(len, set->n, sizeof(*len), cmp_size);
    size_t rank = (size_t)ceil(q * (double)set->n);
    double v = (double)len[rank ? rank - 1 : 0];
    free(len);
    return v;
}
