/* dataset_jsonl.c - 'sluice artifacts export ID PATH --jsonl': a dataset in
 * the LLM Engineer's Handbook's layout, one JSON object
 *
 *   {"id": ..., "train": {CATEGORY: {"id", "category", "samples": [ROW...]}},
 *    "test": {...}, "test_split_size": ...}
 *
 * written as JSON Lines, one ROW a line with its "category" and "split"
 * ("train" or "test") added, train rows first: the form most tools (and
 * the train step, docs/training.md) read as well.
 *
 * The orchestrator reads the layout itself, through the artifact formats
 * (formats.h, the JSON and JSON Lines code the SDK's sl_json_read and
 * sl_records_write wrap) rather than through the train step's reader: the
 * layers (docs/architecture.md) keep step code out of the orchestrator. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "formats.h"

static const char *const splits[] = {"train", "test"};

/* Writes the rows of every category of one split; counts them in *rows. */
static int write_split(jsonl_writer *w, const bson_t *doc, const char *split, size_t *rows,
                       char *err, size_t size) {
    bson_iter_t it, cats;
    if (!bson_iter_init_find(&it, doc, split))
        return 0; /* a dataset may lack a split (no test split asked for) */
    if (!BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &cats)) {
        snprintf(err, size, "\"%s\" is not an object of categories", split);
        return -EINVAL;
    }
    while (bson_iter_next(&cats)) {
        const char *category = bson_iter_key(&cats);
        bson_iter_t samples, row;
        if (!BSON_ITER_HOLDS_DOCUMENT(&cats) || !bson_iter_recurse(&cats, &samples) ||
            !bson_iter_find(&samples, "samples") || !BSON_ITER_HOLDS_ARRAY(&samples) ||
            !bson_iter_recurse(&samples, &row)) {
            snprintf(err, size, "%s/%s has no \"samples\" list", split, category);
            return -EINVAL;
        }
        for (size_t i = 1; bson_iter_next(&row); i++) {
            const uint8_t *data;
            uint32_t len;
            bson_t sample, out = BSON_INITIALIZER;
            if (!BSON_ITER_HOLDS_DOCUMENT(&row)) {
                snprintf(err, size, "%s/%s sample %zu is not an object", split, category, i);
                return -EINVAL;
            }
            bson_iter_document(&row, &len, &data);
            if (!bson_init_static(&sample, data, len)) {
                snprintf(err, size, "%s/%s sample %zu is corrupt", split, category, i);
                return -EINVAL;
            }
            bson_copy_to_excluding_noinit(&sample, &out, "category", "split", NULL);
            BSON_APPEND_UTF8(&out, "category", category);
            BSON_APPEND_UTF8(&out, "split", split);
            int rc = jsonl_write(w, &out, err, size);
            bson_destroy(&out);
            if (rc)
                return rc;
            (*rows)++;
        }
    }
    return 0;
}

int export_dataset_jsonl(const char *object, const char *dest) {
    struct stat st;
    if (stat(object, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "sluice artifacts: cannot export as JSON Lines: the artifact is a folder, "
                        "not a dataset file\n");
        return EXIT_BAD_INPUT;
    }
    if (lstat(dest, &st) == 0) {
        fprintf(stderr, "sluice artifacts: cannot export to %s: it exists already\n", dest);
        return EXIT_BAD_INPUT;
    }
    char err[512];
    bson_t *doc = NULL;
    bson_iter_t it;
    if (json_file_read(object, &doc, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice artifacts: cannot export as JSON Lines: %s\n", err);
        return EXIT_BAD_INPUT;
    }
    if (!bson_iter_init_find(&it, doc, "train") && !bson_iter_init_find(&it, doc, "test")) {
        fprintf(stderr,
                "sluice artifacts: cannot export as JSON Lines: the artifact is not a dataset in "
                "the Handbook's layout (an object with \"train\" and \"test\", each category -> "
                "{\"samples\": [...]})\n");
        bson_destroy(doc);
        return EXIT_BAD_INPUT;
    }
    jsonl_writer w;
    size_t rows[2] = {0, 0};
    int rc = jsonl_create(&w, dest, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "sluice artifacts: cannot export to %s: %s\n", dest, err);
        bson_destroy(doc);
        return EXIT_BAD_INPUT;
    }
    for (size_t i = 0; rc == 0 && i < 2; i++)
        rc = write_split(&w, doc, splits[i], &rows[i], err, sizeof(err));
    char close_err[512];
    int closed = jsonl_close(&w, close_err, sizeof(close_err));
    if (!rc && closed) {
        rc = closed;
        snprintf(err, sizeof(err), "%s", close_err);
    }
    bson_destroy(doc);
    if (rc) {
        unlink(dest); /* no half a dataset */
        fprintf(stderr, "sluice artifacts: cannot export to %s: %s\n", dest, err);
        return EXIT_BAD_INPUT;
    }
    printf("wrote %zu rows to %s (%zu train, %zu test)\n", rows[0] + rows[1], dest, rows[0],
           rows[1]);
    return EXIT_DONE;
}
