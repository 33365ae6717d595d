/* batcher.c - example order and (B, T) batches (batcher.h). */
#include "batcher.h"

#include "sample.h"
#include "errbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct batcher {
    const train_examples *ex;
    batcher_opts o;
    size_t *perm;
    uint64_t perm_epoch; /* the epoch perm holds */
    int perm_valid;
    data_pos pos;
    train_batch batch;
};

void train_shuffle(size_t *perm, size_t n, uint64_t seed, uint64_t epoch) {
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    sample_rng r;
    sample_rng_seed(&r, seed + epoch * 0x9E3779B97F4A7C15ull);
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)sample_rng_below(&r, (uint64_t)i + 1);
        size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

const size_t *batcher_order(batcher *b, uint64_t epoch) {
    if (!b->perm_valid || b->perm_epoch != epoch) {
        size_t n = b->ex->n;
        if (b->o.shuffle)
            train_shuffle(b->perm, n, b->o.seed, epoch);
        else
            for (size_t i = 0; i < n; i++)
                b->perm[i] = i;
        b->perm_epoch = epoch;
        b->perm_valid = 1;
    }
    return b->perm;
}

int batcher_new(const train_examples *ex, const batcher_opts *o, batcher **out, char *err,
                size_t err_size) {
    *out = NULL;
    if (o->B == 0 || o->T < 2)
        return errbuf_set(err, err_size, -EINVAL,
                          "batches need at least one row of two tokens (B %zu, T %zu)", o->B, o->T);
    if (o->packed && ex->n_seq != 1)
        return errbuf_set(err, err_size, -EINVAL, "pairs of sequences (DPO) cannot be packed");
    if (!o->packed)
        for (size_t i = 0; i < ex->n * ex->n_seq; i++)
            if (ex->seq[i].len > o->T)
                return errbuf_set(err, err_size, -EINVAL,
                                  "example %zu has %zu tokens, more than a row's %zu (max_seq_len)",
                                  ex->source[i / ex->n_seq] + 1, ex->seq[i].len, o->T);
    batcher *b = calloc(1, sizeof(*b));
    size_t n_rows = o->B * ex->n_seq;
    if (!b || !(b->perm = malloc((ex->n ? ex->n : 1) * sizeof(size_t))) ||
        !(b->batch.ids = malloc(n_rows * o->T * sizeof(int32_t))) ||
        !(b->batch.mask = malloc(n_rows * o->T)) ||
        !(b->batch.len = malloc(n_rows * sizeof(size_t)))) {
        batcher_free(b);
        return errbuf_set(err, err_size, -ENOMEM, "out of memory for batches of %zu x %zu", n_rows,
                          o->T);
    }
    b->ex = ex;
    b->o = *o;
    b->batch.B = o->B;
    b->batch.T = o->T;
    b->batch.n_rows = n_rows;
    *out = b;
    return 0;
}

void batcher_free(batcher *b) {
    if (!b)
        return;
    free(b->perm);
    free(b->batch.ids);
    free(b->batch.mask);
    free(b->batch.len);
    free(b);
}

static uint64_t packed_rows(const batcher *b) {
    uint64_t tokens = 0;
    for (size_t i = 0; i < b->ex->n; i++)
        tokens += b->ex->seq[i].len;
    return (tokens + b->o.T - 1) / b->o.T;
}

size_t batcher_steps_per_epoch(const batcher *b) {
    uint64_t units = b->o.packed ? packed_rows(b) : b->ex->n;
    return (size_t)((units + b->o.B - 1) / b->o.B);
}

data_pos batcher_pos(const batcher *b) { return b->pos; }

int batcher_seek(batcher *b, data_pos pos, char *err, size_t err_size) {
    const train_examples *ex = b->ex;
    int bad = pos.index > ex->n || (pos.offset && (!b->o.packed || pos.index == ex->n));
    if (!bad && pos.offset) {
        const size_t *order = batcher_order(b, pos.epoch);
        bad = pos.offset >= ex->seq[order[pos.index]].len;
    }
    if (bad)
        return errbuf_set(err, err_size, -EINVAL,
                          "data position epoch %llu, example %llu, token %llu is not in these %zu "
                          "examples (another dataset or max_seq_len?)",
                          (unsigned long long)pos.epoch, (unsigned long long)pos.index,
                          (unsigned long long)pos.offset, ex->n);
    b->pos = pos;
    return 0;
}

static void pad_rows(train_batch *t, size_t from, size_t to, int32_t pad) {
    for (size_t r = from; r < to; r++) {
        for (size_t k = 0; k < t->T; k++)
            t->ids[r * t->T + k] = pad;
        memset(t->mask + r * t->T, 0, t->T);
        t->len[r] = 0;
    }
}

/* One example per row (pairs: chosen at row i, rejected at row B + i). */
static void fill_unpacked(batcher *b) {
    train_batch *t = &b->batch;
    const train_examples *ex = b->ex;
    const size_t *order = batcher_order(b, b->pos.epoch);
    size_t rows = 0;
    while (rows < t->B && b->pos.index < ex->n) {
        size_t i = order[b->pos.index++];
        for (size_t s = 0; s < ex->n_seq; s++) {
            const train_seq *q = &ex->seq[i * ex->n_seq + s];
            size_t r = s * t->B + rows;
            int32_t *ids = t->ids + r * t->T;
            uint8_t *mask = t->mask + r * t->T;
            memcpy(ids, q->ids, q->len * sizeof(*ids));
            memcpy(mask, q->mask, q->len);
            for (size_t k = q->len; k < t->T; k++) {
                ids[k] = b->o.pad_id;
                mask[k] = 0;
            }
            mask[0] = 0;
            t->len[r] = q->len;
        }
        rows++;
    }
    t->rows = rows;
    for (size_t s = 0; s < ex->n_seq; s++)
        pad_rows(t, s * t->B + rows, (s + 1) * t->B, b->o.pad_id);
}

/* Rows of T tokens cut from the epoch's examples end to end. */
static void fill_packed(batcher *b) {
    train_batch *t = &b->batch;
    const train_examples *ex = b->ex;
    const size_t *order = batcher_order(b, b->pos.epoch);
    size_t rows = 0;
    while (rows < t->B && b->pos.index < ex->n) {
        int32_t *ids = t->ids + rows * t->T;
        uint8_t *mask = t->mask + rows * t->T;
        size_t k = 0;
        while (k < t->T && b->pos.index < ex->n) {
            const train_seq *q = &ex->seq[order[b->pos.index]];
            size_t take = q->len - b->pos.offset;
            if (take > t->T - k)
                take = t->T - k;
            memcpy(ids + k, q->ids + b->pos.offset, take * sizeof(*ids));
            memcpy(mask + k, q->mask + b->pos.offset, take);
            k += take;
            b->pos.offset += take;
            if (b->pos.offset == q->len) {
                b->pos.index++;
                b->pos.offset = 0;
            }
        }
        for (size_t j = k; j < t->T; j++) {
            ids[j] = b->o.pad_id;
            mask[j] = 0;
        }
        mask[0] = 0;
        t->len[rows] = k;
        rows++;
    }
    t->rows = rows;
    pad_rows(t, rows, t->B, b->o.pad_id);
}

const train_batch *batcher_next(batcher *b) {
    train_batch *t = &b->batch;
    if (b->pos.index >= b->ex->n) { /* the last batch ended the epoch */
        b->pos.epoch++;
        b->pos.index = 0;
        b->pos.offset = 0;
    }
    if (b->o.packed)
        fill_packed(b);
    else
        fill_unpacked(b);
    t->epoch_end = b->pos.index >= b->ex->n;
    t->pos = b->pos;
    return t;
}

void train_batch_targets(const train_batch *t, int32_t *targets) {
    for (size_t r = 0; r < t->n_rows; r++)
        for (size_t k = 0; k < t->T; k++) {
            size_t at = r * t->T + k;
            targets[at] = k + 1 < t->T && t->mask[at + 1] ? t->ids[at + 1] : -1;
        }
}
