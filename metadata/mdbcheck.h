/* mdbcheck.h - checking an LMDB data file's structure before LMDB maps it.
 *
 * LMDB trusts its file: a truncated data.mdb makes it touch pages past the
 * end of its map (SIGBUS), and a damaged page makes it follow offsets and
 * page numbers anywhere (SIGSEGV, assertions). These checks read the file
 * with pread(), never through a map, and say what is wrong instead:
 *   - the two meta pages: magic 0xBEEFC0DE, data version 1, a page size
 *     that is a power of two, the newer one's last page inside the file;
 *   - the walk: every page reachable from the meta page of one transaction
 *     (the free list, the main database, each named database and their
 *     overflow pages) has its own number, a known kind, bounds and nodes
 *     inside the page, children and overflow runs at or below the last
 *     page, and leaves at the depth the database says.
 * The layout is LMDB 0.9's (lmdb.h's MDB_VERSION_MAJOR 0), 64-bit pages
 * numbers, as liblmdb0 writes it; a data version other than 1 is refused. */
#ifndef SLUICE_METADATA_MDBCHECK_H
#define SLUICE_METADATA_MDBCHECK_H

#include <stddef.h>
#include <stdint.h>

/* Checks the meta pages of the data file open as fd. *txnid (may be NULL)
 * gets the newer meta page's transaction id. Returns 0, -EUCLEAN with why
 * saying what is wrong, or -errno. */
int mdbcheck_header(int fd, uint64_t *txnid, char *why, size_t size);

/* Walks every page of the snapshot of transaction txnid (the one a read
 * transaction holds, so that no writer reuses its pages meanwhile).
 * Returns 0, -EAGAIN when neither meta page holds txnid any more (a writer
 * committed twice since: take a new snapshot), -EUCLEAN with why, or
 * -errno. */
int mdbcheck_walk(int fd, uint64_t txnid, char *why, size_t size);

#endif
