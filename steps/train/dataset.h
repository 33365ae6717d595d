/* dataset.h - the train step's examples as they come from a file: the
 * Handbook's instruction and preference datasets, and text to pretrain on.
 *
 * Layouts read (the first that fits the file):
 *   - the Handbook's JSON: one object {"train": {CATEGORY: {"samples":
 *     [...]}, ...}, "test": {...}} (artifacts/instruct_datasets.json,
 *     preference_datasets.json); a split's categories in the file's order;
 *   - a sluice artifact file {"artifact_data": [...]} (cleaned_documents);
 *   - JSON Lines, one record a line (a `dataset`, `chunks` or `documents`
 *     artifact). A record's optional "split" ("train" or "test"; none is
 *     train) and "category" say where it belongs.
 *
 * Fields: instruction examples {"instruction", "answer"} ("output", as the
 * Handbook's Hugging Face copy names it, is accepted for "answer");
 * preference examples {"instruction", "chosen", "rejected"} ("prompt" is
 * accepted for "instruction", as TRL names it); text {"content"} (chunks and
 * cleaned documents, as steps/chunk and steps/clean write them), whose
 * value must be a string.
 *
 * A missing or non-string field fails with the file and the record (the
 * record's line in JSON Lines, "train/articles sample 17" in the Handbook's
 * layout); a split without examples fails naming the file and split. */
#ifndef SLUICE_TRAIN_DATASET_H
#define SLUICE_TRAIN_DATASET_H

#include <stddef.h>

typedef enum dataset_kind {
    DATASET_INSTRUCTION, /* a = instruction, b = answer */
    DATASET_PREFERENCE,  /* a = instruction, b = chosen, c = rejected */
    DATASET_TEXT,        /* a = content */
} dataset_kind;

typedef struct dataset_example {
    const char *a, *b, *c; /* UTF-8, NUL-terminated, owned by the dataset */
    size_t category;       /* index into dataset.categories */
    /* Where the example was made from, when its record says (dataset_gen
     * writes them: docs/dataset_gen.md): "extract_id" (the chunk) and
     * "document_id"; NULL otherwise. Owned by the dataset. */
    const char *extract_id, *document_id;
} dataset_example;

typedef struct dataset {
    dataset_kind kind;
    size_t n;
    dataset_example *ex;
    size_t n_categories;
    char **categories; /* "" for records without one */
} dataset;

/* Reads the examples of split ("train" or "test") from path; *out is the
 * caller's, freed with dataset_free. */
int dataset_load(const char *path, dataset_kind kind, const char *split, dataset **out, char *err,
                 size_t err_size);
void dataset_free(dataset *d);
const char *dataset_kind_name(dataset_kind kind);

#endif
