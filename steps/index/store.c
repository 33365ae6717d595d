/* store.c - the index file: index_save() and index_load(); the format is
 * described in index.h. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sluice/artifacts.h>
#include <unistd.h>

#include "index_internal.h"

#define MAGIC "SLUIDX1\n"
#define VERSION 2u /* 1 had no BM25 section: its postings are rebuilt from the texts */
#define HEADER 64u

static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static uint64_t get64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int w32(FILE *f, uint32_t v) {
    unsigned char b[4];
    put32(b, v);
    return fwrite(b, 4, 1, f) == 1 ? 0 : -1;
}

static int wstr(FILE *f, const char *s, size_t len) {
    if (len > UINT32_MAX || w32(f, (uint32_t)len))
        return -1;
    return len == 0 || fwrite(s, len, 1, f) == 1 ? 0 : -1;
}

static int wtab(FILE *f, const strtab *t) {
    if (w32(f, (uint32_t)t->n))
        return -1;
    for (size_t i = 0; i < t->n; i++)
        if (wstr(f, t->s[i], t->len[i]))
            return -1;
    return 0;
}

int index_save(const search_index *ix, const char *path, char *err, size_t errlen) {
    if (!ix || !path)
        return errbuf_set(err, errlen, -EINVAL, "index_save: index or path is NULL");
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 8);
    if (!tmp)
        return errbuf_set(err, errlen, -ENOMEM, "index_save: out of memory");
    snprintf(tmp, plen + 8, "%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return errbuf_set(err, errlen, -e, "index_save: %s: %s", path, strerror(e));
    }
    /* mkstemp makes 0600; an index is read by whoever may read the store. */
    FILE *f = fchmod(fd, 0644) == 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        free(tmp);
        return errbuf_set(err, errlen, -e, "index_save: %s", strerror(e));
    }
    uint64_t vec_off = HEADER, vec_len = (uint64_t)ix->n * ix->dim * 4;
    uint64_t meta_off = vec_off + vec_len;
    unsigned char h[HEADER] = {0};
    memcpy(h, MAGIC, 8);
    put32(h + 8, VERSION);
    put32(h + 12, (uint32_t)ix->dim);
    put64(h + 16, ix->n);
    put64(h + 24, vec_off);
    put64(h + 32, meta_off);
    /* meta_len and the file size are patched in once known. */
    int bad = fwrite(h, HEADER, 1, f) != 1;
    if (!bad && vec_len)
        bad = fwrite(ix->vec, 4, ix->n * ix->dim, f) != ix->n * ix->dim;
    bad = bad || wtab(f, &ix->authors) || wtab(f, &ix->categories) || wtab(f, &ix->docids);
    for (size_t r = 0; r < ix->n && !bad; r++)
        bad = w32(f, ix->author[r]) || w32(f, ix->category[r]) || w32(f, ix->docid[r]);
    for (size_t r = 0; r < ix->n && !bad; r++)
        bad = wstr(f, ix->text[r], strlen(ix->text[r]));
    /* Version 2: the BM25 postings, so that opening an index does not
     * tokenise every text again. */
    bad = bad || wtab(f, &ix->terms);
    for (size_t t = 0; t < ix->terms.n && !bad; t++) {
        const idx_postings *p = &ix->post[t];
        bad = w32(f, (uint32_t)p->n);
        for (size_t i = 0; i < p->n && !bad; i++)
            bad = w32(f, p->row[i]) || w32(f, p->tf[i]);
    }
    for (size_t r = 0; r < ix->n && !bad; r++)
        bad = w32(f, ix->doclen[r]);
    long end = bad ? -1 : ftell(f);
    if (end < 0)
        bad = 1;
    if (!bad) {
        put64(h + 40, (uint64_t)end - meta_off);
        put64(h + 48, (uint64_t)end);
        bad = fseek(f, 40, SEEK_SET) != 0 || fwrite(h + 40, 16, 1, f) != 1;
    }
    bad = bad || fflush(f) != 0 || fsync(fileno(f)) != 0;
    int e = errno ? errno : EIO;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        unlink(tmp);
        free(tmp);
        return errbuf_set(err, errlen, -e, "index_save: %s: %s", path, strerror(e));
    }
    free(tmp);
    return 0;
}

/* A bounds-checked reader over the metadata. */
typedef struct reader {
    const unsigned char *p, *end;
} reader;

static int r32(reader *r, uint32_t *v) {
    if (r->end - r->p < 4)
        return -1;
    *v = get32(r->p);
    r->p += 4;
    return 0;
}

static int rtab(reader *r, strtab *t) {
    uint32_t n;
    if (r32(r, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len, id;
        if (r32(r, &len) || (size_t)(r->end - r->p) < len)
            return -1;
        int rc = strtab_intern(t, (const char *)r->p, len, &id);
        if (rc)
            return rc;
        if (id != i) /* a repeated string: not a file index_save writes */
            return -1;
        r->p += len;
    }
    return 0;
}

/* Version 2's BM25 section: the terms, each term's postings (rows in
 * increasing order, counts of at least 1), and each row's length, which
 * must be the sum of its counts. -1 for a malformed section. */
static int read_postings(reader *r, search_index *ix, size_t n) {
    int rc = rtab(r, &ix->terms);
    if (rc)
        return rc;
    size_t terms = ix->terms.n;
    ix->post = calloc(terms ? terms : 1, sizeof(*ix->post));
    uint64_t *sum = calloc(n ? n : 1, sizeof(*sum));
    if (!ix->post || !sum) {
        free(sum);
        return -ENOMEM;
    }
    ix->post_cap = terms;
    for (size_t t = 0; t < terms && !rc; t++) {
        idx_postings *p = &ix->post[t];
        uint32_t count;
        if (r32(r, &count) || count > n || (size_t)(r->end - r->p) / 8 < count) {
            rc = -1;
            break;
        }
        p->row = malloc((count ? count : 1) * sizeof(*p->row));
        p->tf = malloc((count ? count : 1) * sizeof(*p->tf));
        if (!p->row || !p->tf) {
            rc = -ENOMEM;
            break;
        }
        p->cap = count;
        for (uint32_t i = 0; i < count && !rc; i++) {
            uint32_t row, tf;
            if (r32(r, &row) || r32(r, &tf) || row >= n || tf == 0 || (i && row <= p->row[i - 1]))
                rc = -1;
            else {
                p->row[i] = row;
                p->tf[i] = tf;
                p->n = i + 1;
                sum[row] += tf;
            }
        }
    }
    for (size_t i = 0; i < n && !rc; i++) {
        uint32_t len;
        if (r32(r, &len) || len != sum[i])
            rc = -1;
        else {
            ix->doclen[i] = len;
            ix->total_len += len;
        }
    }
    free(sum);
    return rc;
}

int index_load(const char *path, search_index **out, char *err, size_t errlen) {
    if (!path || !out)
        return errbuf_set(err, errlen, -EINVAL, "index_load: path or out is NULL");
    void *map;
    size_t size;
    char why_not[512];
    int mapped = sl_file_map(path, &map, &size, why_not, sizeof(why_not));
    if (mapped)
        return errbuf_set(err, errlen, mapped, "index_load: %s", why_not);
    if (size < HEADER) {
        sl_file_unmap(map, size);
        return errbuf_set(err, errlen, -EINVAL, "index_load: %s: truncated header (%zu bytes)",
                          path, size);
    }
    const unsigned char *h = map;
    uint32_t dim = get32(h + 12);
    uint64_t n = get64(h + 16), vec_off = get64(h + 24), meta_off = get64(h + 32);
    uint64_t meta_len = get64(h + 40), fsize = get64(h + 48);
    const char *why = NULL;
    uint32_t version = get32(h + 8);
    if (memcmp(h, MAGIC, 8) != 0)
        why = "not a sluice index (bad magic)";
    else if (version != 1 && version != VERSION)
        why = "unsupported format version";
    else if (dim < 1 || dim > 65536 || n > UINT32_MAX - 1)
        why = "bad dimension or row count";
    else if (fsize != size)
        why = "file size does not match its header (truncated?)";
    else if (vec_off < HEADER || vec_off % 64 || vec_off > size || n > (size - vec_off) / 4 / dim ||
             meta_off != vec_off + n * dim * 4 || meta_off > size || meta_len != size - meta_off)
        why = "section offsets do not match (truncated?)";
    search_index *ix = NULL;
    int rc = 0;
    if (!why) {
        rc = index_new(dim, &ix, err, errlen);
        if (rc) {
            sl_file_unmap(map, size);
            return rc;
        }
        ix->map = map;
        ix->map_len = size;
        ix->vec = (float *)((unsigned char *)map + vec_off);
        rc = idx_reserve_rows(ix, (size_t)n, 0);
        reader r = {h + meta_off, h + size};
        if (!rc) {
            rc = rtab(&r, &ix->authors);
            if (!rc)
                rc = rtab(&r, &ix->categories);
            if (!rc)
                rc = rtab(&r, &ix->docids);
        }
        for (size_t i = 0; i < n && !rc; i++) {
            uint32_t a, c, d;
            if (r32(&r, &a) || r32(&r, &c) || r32(&r, &d) || a >= ix->authors.n ||
                c >= ix->categories.n || d >= ix->docids.n)
                rc = -1;
            else {
                ix->author[i] = a;
                ix->category[i] = c;
                ix->docid[i] = d;
            }
        }
        for (size_t i = 0; i < n && !rc; i++) {
            uint32_t len;
            if (r32(&r, &len) || (size_t)(r.end - r.p) < len || memchr(r.p, '\0', len) != NULL) {
                rc = -1;
                break;
            }
            char *t = malloc((size_t)len + 1);
            if (!t) {
                rc = -ENOMEM;
                break;
            }
            memcpy(t, r.p, len);
            t[len] = '\0';
            r.p += len;
            rc = version == 1 ? idx_bm25_add(ix, (uint32_t)i, t) : 0;
            if (rc) {
                free(t);
                break;
            }
            ix->text[i] = t;
            ix->n = i + 1; /* index_free frees what is loaded so far */
        }
        if (!rc && version == VERSION)
            rc = read_postings(&r, ix, (size_t)n);
        if (!rc && r.p != r.end)
            rc = -1;
        if (rc == -1)
            why = "malformed metadata (truncated?)";
        /* A NaN or infinite component would make every score it touches
         * NaN, and the ranking meaningless. */
        for (size_t k = 0; !why && !rc && k < (size_t)n * dim; k++) {
            float v;
            memcpy(&v, ix->vec + k, sizeof(v));
            if (!isfinite(v)) {
                snprintf(why_not, sizeof(why_not), "vector %zu holds a non-finite value (%g)",
                         k / dim, (double)v);
                why = why_not;
            }
        }
    }
    if (why || rc) {
        if (ix)
            index_free(ix); /* unmaps */
        else
            sl_file_unmap(map, size);
        if (why)
            return errbuf_set(err, errlen, -EINVAL, "index_load: %s: %s", path, why);
        return errbuf_set(err, errlen, rc, "index_load: %s: out of memory", path);
    }
    ix->n = (size_t)n;
    *out = ix;
    return 0;
}
