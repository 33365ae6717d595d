#include "mdbcheck.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* LMDB 0.9's on-disk layout (mdb.c): a page starts with its number (8
 * bytes), a pad, its flags, and the lower and upper bounds of its free
 * space (or, for an overflow page, the number of pages in its run). */
#define PAGEHDRSZ 16
#define P_BRANCH 0x01
#define P_LEAF 0x02
#define P_OVERFLOW 0x04
#define P_META 0x08
#define P_KIND_MASK 0x6f /* all but P_DIRTY and LMDB's in-memory marks */
#define F_BIGDATA 0x01
#define F_SUBDATA 0x02
#define F_DUPDATA 0x04
#define NODESIZE 8
#define DBSIZE 48 /* an MDB_db record */
#define MDB_INTEGERKEY 0x08
/* Database flags that only change how keys compare; the others (duplicate
 * keys: DUPSORT, DUPFIXED, INTEGERDUP, REVERSEDUP) change the pages'
 * layout, and the walk does not know those layouts. */
#define KEY_ONLY_FLAGS 0x0a
#define P_INVALID UINT64_MAX
#define MAX_DEPTH 32 /* LMDB's cursor stack */
#define META_MAGIC 0xBEEFC0DEu
#define DATA_VERSION 1u

/* Offsets in a meta page. */
enum {
    M_MAGIC = 16,
    M_VERSION = 20,
    M_FREE_DB = 40, /* its md_pad holds the page size */
    M_MAIN_DB = 88,
    M_LAST_PG = 136,
    M_TXNID = 144,
    M_END = 152,
};
/* Offsets in an MDB_db record. */
enum { D_PAD = 0, D_FLAGS = 4, D_DEPTH = 6, D_ROOT = 40 };

static uint16_t u16(const unsigned char *p) {
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}
static uint32_t u32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}
static uint64_t u64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

__attribute__((format(printf, 3, 4))) static int say(char *why, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, size, fmt, ap);
    va_end(ap);
    return -EUCLEAN;
}

static int read_at(int fd, void *buf, size_t len, uint64_t off) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ENODATA;
        got += (size_t)n;
    }
    return 0;
}

typedef struct meta_page {
    uint32_t psize;
    uint64_t last_pg, txnid;
    unsigned char free_db[DBSIZE], main_db[DBSIZE];
} meta_page;

/* Reads and checks meta page i (psize 0: page 0, which gives the size). */
static int read_meta(int fd, int i, uint32_t psize, meta_page *m, char *why, size_t size) {
    unsigned char p[M_END];
    int rc = read_at(fd, p, sizeof(p), (uint64_t)i * psize);
    if (rc == -ENODATA)
        return say(why, size, "it ends before its meta page %d", i);
    if (rc)
        return rc;
    if (u32(p + M_MAGIC) != META_MAGIC)
        return say(why, size,
                   "meta page %d lacks LMDB's magic number (not an LMDB file, or overwritten)", i);
    if (u32(p + M_VERSION) != DATA_VERSION)
        return say(why, size, "meta page %d has data version %u, not %u", i, u32(p + M_VERSION),
                   DATA_VERSION);
    if (u64(p) != (uint64_t)i || !(u16(p + 10) & P_META))
        return say(why, size, "meta page %d is not marked as one", i);
    m->psize = u32(p + M_FREE_DB + D_PAD);
    if (m->psize < 256 || m->psize > 65536 || (m->psize & (m->psize - 1)))
        return say(why, size, "meta page %d gives a page size of %u bytes", i, m->psize);
    if (psize && m->psize != psize)
        return say(why, size, "its meta pages disagree on the page size (%u, %u)", psize, m->psize);
    m->last_pg = u64(p + M_LAST_PG);
    m->txnid = u64(p + M_TXNID);
    memcpy(m->free_db, p + M_FREE_DB, DBSIZE);
    memcpy(m->main_db, p + M_MAIN_DB, DBSIZE);
    return 0;
}

/* Both meta pages, and the newer one (LMDB's choice) into *newer. */
static int read_metas(int fd, meta_page metas[2], char *why, size_t size) {
    int rc = read_meta(fd, 0, 0, &metas[0], why, size);
    if (rc == 0)
        rc = read_meta(fd, 1, metas[0].psize, &metas[1], why, size);
    return rc;
}

static int check_extent(int fd, const meta_page *m, char *why, size_t size) {
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (m->last_pg < 1 || m->last_pg > UINT64_MAX / m->psize - 1)
        return say(why, size, "its meta page names last page %llu", (unsigned long long)m->last_pg);
    uint64_t need = (m->last_pg + 1) * m->psize;
    if ((uint64_t)st.st_size < need)
        return say(why, size,
                   "it is %llu bytes long but its database runs to byte %llu (truncated?)",
                   (unsigned long long)st.st_size, (unsigned long long)need);
    return 0;
}

int mdbcheck_header(int fd, uint64_t *txnid, char *why, size_t size) {
    meta_page metas[2];
    int rc = read_metas(fd, metas, why, size);
    if (rc)
        return rc;
    const meta_page *newer = &metas[metas[0].txnid < metas[1].txnid];
    if ((rc = check_extent(fd, newer, why, size)))
        return rc;
    if (txnid)
        *txnid = newer->txnid;
    return 0;
}

/* ---- the walk ---------------------------------------------------------- */

typedef enum { DB_FREE, DB_MAIN, DB_NAMED } db_kind;

typedef struct walker {
    int fd;
    uint32_t psize;
    uint64_t last_pg;
    char *why;
    size_t size;
    char db[128];        /* the database being walked, for messages */
    unsigned char *seen; /* a bit a page: claimed by a tree, a big value or the free list */
} walker;

static int bad(walker *w, uint64_t pgno, const char *what) {
    return say(w->why, w->size, "page %llu of database '%s' is damaged: %s",
               (unsigned long long)pgno, w->db, what);
}

static int read_page(walker *w, uint64_t pgno, unsigned char *buf) {
    int rc = read_at(w->fd, buf, w->psize, pgno * w->psize);
    return rc == -ENODATA ? bad(w, pgno, "it is past the end of the file") : rc;
}

static int in_range(const walker *w, uint64_t pgno) { return pgno >= 2 && pgno <= w->last_pg; }

/* Every page of a snapshot is in one place only: a tree, a big value's
 * run or the free list. A page in two would be written for one and read
 * for the other: LMDB's writes crash on such files (found by fuzz_meta). */
static int claim(walker *w, uint64_t from, uint64_t pgno, uint64_t count) {
    for (uint64_t i = pgno; i < pgno + count; i++) {
        if (w->seen[i / 8] & (1u << (i % 8)))
            return bad(w, from, "a page it names is used twice");
        w->seen[i / 8] |= (unsigned char)(1u << (i % 8));
    }
    return 0;
}

/* A free-list entry: a count, then that many page numbers. */
static int check_free_list(walker *w, uint64_t pgno, const unsigned char *data, uint64_t len) {
    if (len < 8 || u64(data) > len / 8 - 1)
        return bad(w, pgno, "a free-list entry's count exceeds its size");
    for (uint64_t i = 1; i <= u64(data); i++) {
        if (!in_range(w, u64(data + 8 * i)))
            return bad(w, pgno, "the free list names a page outside the file");
        int rc = claim(w, pgno, u64(data + 8 * i), 1);
        if (rc)
            return rc;
    }
    return 0;
}

/* The overflow run holding a big value: its pages exist and are marked. */
static int check_overflow(walker *w, uint64_t from, uint64_t pgno, uint64_t len, int free_list) {
    if (!in_range(w, pgno))
        return bad(w, from, "a big value's overflow page is outside the file");
    unsigned char *head = malloc(w->psize);
    if (!head)
        return -ENOMEM;
    int rc = read_page(w, pgno, head);
    uint64_t pages = rc ? 0 : u32(head + 12);
    if (rc == 0 && (u64(head) != pgno || !(u16(head + 10) & P_OVERFLOW) || pages < 1 ||
                    pgno + pages - 1 > w->last_pg || len > pages * w->psize - PAGEHDRSZ))
        rc = bad(w, pgno, "its overflow run does not match the value it holds");
    if (rc == 0)
        rc = claim(w, from, pgno, pages);
    free(head);
    if (rc || !free_list)
        return rc;
    unsigned char *data = malloc(len ? len : 1);
    if (!data)
        return -ENOMEM;
    rc = read_at(w->fd, data, len, pgno * w->psize + PAGEHDRSZ);
    if (rc == -ENODATA)
        rc = bad(w, pgno, "it is past the end of the file");
    if (rc == 0)
        rc = check_free_list(w, pgno, data, len);
    free(data);
    return rc;
}

static int walk_db(walker *w, const unsigned char *db, db_kind kind, const char *name, size_t nlen);

/* LMDB's order of keys: the free list's are integers (MDB_INTEGERKEY),
 * the others' bytes (memcmp, then the shorter first). Keys out of order
 * send a write's search to the wrong place (found by fuzz_meta). */
static int key_cmp(db_kind kind, const unsigned char *a, size_t alen, const unsigned char *b,
                   size_t blen) {
    if (kind == DB_FREE && alen == 8 && blen == 8)
        return u64(a) < u64(b) ? -1 : u64(a) > u64(b);
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

static int walk_page(walker *w, uint64_t pgno, unsigned level, unsigned depth, db_kind kind) {
    unsigned char *p = malloc(w->psize);
    if (!p)
        return -ENOMEM;
    int rc = read_page(w, pgno, p);
    if (rc) {
        free(p);
        return rc;
    }
    uint16_t flags = u16(p + 10) & P_KIND_MASK, lower = u16(p + 12), upper = u16(p + 14);
    int leaf = flags == P_LEAF;
    if ((rc = claim(w, pgno, pgno, 1)))
        ;
    else if (u64(p) != pgno)
        rc = bad(w, pgno, "it says it is another page");
    else if (flags != P_LEAF && flags != P_BRANCH)
        rc = bad(w, pgno, "it is neither a branch nor a leaf of the tree");
    else if (leaf != (level == depth))
        rc = bad(w, pgno, "it is at the wrong depth of the tree");
    else if (lower < PAGEHDRSZ || lower > upper || upper > w->psize || (lower - PAGEHDRSZ) % 2)
        rc = bad(w, pgno, "its free space bounds are out of the page");
    else if (!leaf && lower == PAGEHDRSZ)
        rc = bad(w, pgno, "a branch without children");
    size_t n = rc ? 0 : (size_t)(lower - PAGEHDRSZ) / 2;
    const unsigned char *prev_key = NULL;
    size_t prev_len = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t off = u16(p + PAGEHDRSZ + 2 * i);
        if (off < upper || off + NODESIZE > w->psize) {
            rc = bad(w, pgno, "a node lies outside the page");
            break;
        }
        const unsigned char *node = p + off;
        uint64_t lo = u16(node), hi = u16(node + 2), nflags = u16(node + 4);
        size_t ksize = u16(node + 6), end = off + NODESIZE + ksize;
        if (end > w->psize) {
            rc = bad(w, pgno, "a key runs past the end of the page");
            break;
        }
        /* A branch's first key is never compared: it stands for all below. */
        const unsigned char *key = node + NODESIZE;
        if (prev_key && key_cmp(kind, prev_key, prev_len, key, ksize) >= 0) {
            rc = bad(w, pgno, "its keys are out of order");
            break;
        }
        if (leaf || i > 0) {
            prev_key = key;
            prev_len = ksize;
        }
        if (!leaf) {
            uint64_t child = lo | hi << 16 | nflags << 32;
            rc = in_range(w, child) ? walk_page(w, child, level + 1, depth, kind)
                                    : bad(w, pgno, "a branch points outside the file");
            continue;
        }
        uint64_t dsize = lo | hi << 16;
        if (nflags & ~(uint64_t)(F_BIGDATA | F_SUBDATA) || nflags & F_DUPDATA) {
            rc = bad(w, pgno, "a node has flags sluice's databases never use");
        } else if (nflags & F_BIGDATA) {
            rc = end + 8 > w->psize ? bad(w, pgno, "a big value's page number is cut off")
                                    : check_overflow(w, pgno, u64(p + end), dsize, kind == DB_FREE);
        } else if (end + dsize > w->psize) {
            rc = bad(w, pgno, "a value runs past the end of the page");
        } else if (nflags & F_SUBDATA) {
            if (kind != DB_MAIN || dsize != DBSIZE)
                rc = bad(w, pgno, "a database record is out of place or of the wrong size");
            else
                rc = walk_db(w, p + end, DB_NAMED, (const char *)node + NODESIZE, ksize);
        } else if (kind == DB_FREE) {
            rc = check_free_list(w, pgno, p + end, dsize);
        }
    }
    free(p);
    return rc;
}

static int walk_db(walker *w, const unsigned char *db, db_kind kind, const char *name,
                   size_t nlen) {
    char saved[sizeof(w->db)];
    memcpy(saved, w->db, sizeof(saved));
    snprintf(w->db, sizeof(w->db), "%.*s", (int)(nlen < 64 ? nlen : 64), name);
    uint16_t flags = u16(db + D_FLAGS), depth = u16(db + D_DEPTH);
    uint64_t root = u64(db + D_ROOT);
    int rc = 0;
    if (kind == DB_FREE ? flags != MDB_INTEGERKEY : (flags & ~KEY_ONLY_FLAGS) != 0)
        rc = say(w->why, w->size, "database '%s' has flags %#x sluice never sets", w->db, flags);
    else if (root == P_INVALID)
        rc = depth == 0
                 ? 0
                 : say(w->why, w->size, "database '%s' is empty but has depth %u", w->db, depth);
    else if (!in_range(w, root) || depth < 1 || depth > MAX_DEPTH)
        rc = say(w->why, w->size, "database '%s' has root page %llu and depth %u", w->db,
                 (unsigned long long)root, depth);
    else
        rc = walk_page(w, root, 1, depth, kind);
    if (rc == 0)
        memcpy(w->db, saved, sizeof(saved));
    return rc;
}

int mdbcheck_walk(int fd, uint64_t txnid, char *why, size_t size) {
    meta_page metas[2];
    int rc = read_metas(fd, metas, why, size);
    if (rc)
        return rc;
    const meta_page *m = metas[0].txnid == txnid   ? &metas[0]
                         : metas[1].txnid == txnid ? &metas[1]
                                                   : NULL;
    if (!m)
        return -EAGAIN;
    if ((rc = check_extent(fd, m, why, size)))
        return rc;
    walker w = {fd, m->psize, m->last_pg, why, size, "", calloc(m->last_pg / 8 + 1, 1)};
    if (!w.seen)
        return -ENOMEM;
    rc = walk_db(&w, m->free_db, DB_FREE, "(free pages)", 12);
    if (rc == 0)
        rc = walk_db(&w, m->main_db, DB_MAIN, "(main)", 6);
    free(w.seen);
    return rc;
}
