/* train_ckpt.h - the train step's checkpoints: everything but the weights
 * needed to continue a run (the step, the data position, the PRNG, AdamW's
 * moments), in a folder per checkpoint that appears whole or not at all.
 *
 * Layout, under the step's work folder ROOT:
 *
 *   ROOT/checkpoint-N/trainer_state.json   {"format": 1, "step": N,
 *        "epoch", "index", "offset", "rng": ["16 hex digits" x 4],
 *        "tensors": count}
 *   ROOT/checkpoint-N/optimizer.safetensors  F32 tensors NAME.exp_avg and
 *        NAME.exp_avg_sq per parameter (PyTorch's AdamW state names)
 *   ROOT/checkpoint-N/...                    the caller's own files (weights)
 *
 * A checkpoint is written into ROOT/.checkpoint-N.tmp, each file synced,
 * then renamed to checkpoint-N and ROOT synced: a crash leaves either the
 * whole folder or a .tmp one, which is ignored (and removed by the next
 * writer). On resume, ckpt_latest takes the highest N whose folder holds a
 * state that reads back with that step and an optimizer file that opens;
 * anything else is passed over. */
#ifndef SLUICE_TRAIN_CKPT_H
#define SLUICE_TRAIN_CKPT_H

#include <stddef.h>
#include <stdint.h>

typedef struct ckpt_state {
    uint64_t step;
    uint64_t epoch, index, offset; /* batcher.h's data_pos */
    uint64_t rng[4];               /* sample_rng's state */
} ckpt_state;

typedef struct ckpt_writer ckpt_writer;

/* Starts checkpoint step under root (created if missing); *w is the
 * caller's until ckpt_writer_commit or ckpt_writer_abort. */
int ckpt_writer_begin(const char *root, uint64_t step, ckpt_writer **w, char *err, size_t err_size);
/* The temporary folder, for the caller's own files (valid until commit or
 * abort). */
const char *ckpt_writer_dir(const ckpt_writer *w);
/* Adds a parameter's first and second moments (count floats each, shape
 * ndim dimensions whose product is count); m and v are borrowed until
 * commit. */
int ckpt_writer_add_moments(ckpt_writer *w, const char *name, const float *m, const float *v,
                            size_t ndim, const uint64_t *shape, char *err, size_t err_size);
/* Writes the state and the moments, syncs and renames the folder into
 * place (replacing an older checkpoint-N); frees w, also on error (the
 * temporary folder is then removed). */
int ckpt_writer_commit(ckpt_writer *w, const ckpt_state *st, char *err, size_t err_size);
/* Removes the temporary folder and frees w. */
void ckpt_writer_abort(ckpt_writer *w);

/* The newest complete checkpoint under root: 1 with its folder in path (of
 * path_size bytes) and its step in *step, 0 when there is none, or a
 * negative error. */
int ckpt_latest(const char *root, uint64_t *step, char *path, size_t path_size, char *err,
                size_t err_size);
/* Reads a checkpoint folder's state. */
int ckpt_read_state(const char *dir, ckpt_state *st, char *err, size_t err_size);
/* Reads a parameter's moments (count floats each) from a checkpoint
 * folder; -ENOENT naming it when missing, -EINVAL when its size differs. */
int ckpt_read_moments(const char *dir, const char *name, float *m, float *v, uint64_t count,
                      char *err, size_t err_size);
/* Removes all but the newest keep complete checkpoints (keep >= 1), and
 * leftover temporary folders. */
int ckpt_prune(const char *root, size_t keep, char *err, size_t err_size);

#endif
