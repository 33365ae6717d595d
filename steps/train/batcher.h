/* batcher.h - the order in which the train step sees its examples, and
 * batches of (B, T) token rows.
 *
 * Order: epoch e visits the examples in a Fisher-Yates shuffle (Durstenfeld's
 * form: for i = n-1 down to 1, swap i with a uniform j in [0, i]) driven by
 * xoshiro256** seeded with splitmix64 of seed + e * 0x9E3779B97F4A7C15
 * (sample.h); without shuffle, in the dataset's order. The order of an
 * epoch depends only on (seed, epoch), so a position (epoch, index, offset)
 * is all a checkpoint needs to continue where it stopped.
 *
 * Rows:
 *   - unpacked: one example per row, padded on the right with pad_id (mask
 *     0); every sequence must fit in T. A DPO batch of B pairs has 2B rows,
 *     chosen in rows [0, B) and rejected in [B, 2B) (TRL's
 *     concatenated_forward order). The last batch of an epoch may hold fewer
 *     examples: `rows` says how many; the rest are padding with mask 0.
 *   - packed (one sequence per example only): the epoch's examples
 *     concatenated in order and cut into rows of T tokens (TRL's
 *     ConstantLengthDataset; each example already ends with EOS). The
 *     epoch's last row is padded rather than dropped, so no token is lost.
 * mask[r*T + 0] is always 0: nothing in the row precedes it. */
#ifndef SLUICE_TRAIN_BATCHER_H
#define SLUICE_TRAIN_BATCHER_H

#include "examples.h"

#include <stddef.h>
#include <stdint.h>

typedef struct data_pos {
    uint64_t epoch;
    uint64_t index;  /* examples of the epoch consumed */
    uint64_t offset; /* packed: tokens of example `index` already consumed */
} data_pos;

typedef struct train_batch {
    size_t B, T;   /* examples per batch and tokens per row */
    size_t n_rows; /* rows in ids/mask: B, or 2B for pairs */
    size_t rows;   /* examples (or packed rows) really in this batch */
    int32_t *ids;  /* n_rows * T */
    uint8_t *mask; /* n_rows * T, 1 where the token is a loss target */
    size_t *len;   /* per row: tokens before the padding */
    data_pos pos;  /* the position after this batch */
    int epoch_end; /* this batch ends its epoch */
} train_batch;

typedef struct batcher batcher;

typedef struct batcher_opts {
    size_t B, T;
    int packed;
    int shuffle;
    int32_t pad_id;
    uint64_t seed;
} batcher_opts;

/* A batcher over ex (borrowed for its life); *out is the caller's, freed
 * with batcher_free. Fails (naming the example) when an unpacked sequence
 * is longer than T, or packing is asked for pairs. */
int batcher_new(const train_examples *ex, const batcher_opts *o, batcher **out, char *err,
                size_t err_size);
void batcher_free(batcher *b);
/* Batches per epoch. */
size_t batcher_steps_per_epoch(const batcher *b);
/* Fills the batch (owned by the batcher, valid until the next call) from
 * the current position and moves past it, into the next epoch after one
 * ends; never NULL. */
const train_batch *batcher_next(batcher *b);
data_pos batcher_pos(const batcher *b);
/* Continues from pos (a batch's pos, from a checkpoint); -EINVAL when it
 * does not belong to these examples. */
int batcher_seek(batcher *b, data_pos pos, char *err, size_t err_size);
/* The examples' order in epoch e (n indices, borrowed until the next call
 * of any batcher function). */
const size_t *batcher_order(batcher *b, uint64_t epoch);

/* The batch as next-token targets, the model library's form (model_forward's
 * targets): targets[r*T + k] is the id at k + 1 when that token is a loss
 * target, else -1 (the last position of each row too). targets holds
 * n_rows * T ids. */
void train_batch_targets(const train_batch *t, int32_t *targets);

/* Fills perm[0..n) with epoch's order from seed (the shuffle above). */
void train_shuffle(size_t *perm, size_t n, uint64_t seed, uint64_t epoch);

#endif
