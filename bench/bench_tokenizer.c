/* bench_tokenizer - byte-level BPE (steps/tokenizer) on the Handbook's
 * articles (../shared/handbook, cleaned and raw, ~2.5 MB): training time,
 * then encode throughput with a cold and a warm word cache, beside a memory
 * copy of the same bytes (the physical floor) and the Python reference
 * (tests/ref/bpe_ref.py, which caches words too) on the same file, in one
 * run. Times are CPU times of the process (the machine is shared).
 *
 *     bench_tokenizer [HANDBOOK_DIR] */
#include <bson/bson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#include "tokenizer.h"

#define VOCAB 8000

typedef struct corpus {
    char **v;
    size_t *len;
    size_t n, bytes;
} corpus;

static void add(corpus *c, const char *s, size_t len) {
    c->v = realloc(c->v, (c->n + 1) * sizeof(*c->v));
    c->len = realloc(c->len, (c->n + 1) * sizeof(*c->len));
    c->v[c->n] = malloc(len + 1);
    memcpy(c->v[c->n], s, len);
    c->v[c->n][len] = '\0';
    c->len[c->n++] = len;
    c->bytes += len;
}

/* The string contents of the artifact's documents (and of their content
 * objects, for the raw ones). */
static int load(const char *dir, const char *name, corpus *c) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/artifacts/%s", dir, name);
    bson_error_t err;
    bson_json_reader_t *r = bson_json_reader_new_from_file(path, &err);
    if (!r)
        return -1;
    bson_t doc = BSON_INITIALIZER;
    int ok = bson_json_reader_read(r, &doc, &err) == 1;
    bson_json_reader_destroy(r);
    bson_iter_t it, a, d, x;
    if (!ok || !bson_iter_init_find(&it, &doc, "artifact_data") || !bson_iter_recurse(&it, &a))
        return -1;
    while (bson_iter_next(&a)) {
        if (!bson_iter_recurse(&a, &d) || !bson_iter_find(&d, "content"))
            continue;
        uint32_t n;
        if (BSON_ITER_HOLDS_UTF8(&d)) {
            const char *s = bson_iter_utf8(&d, &n);
            add(c, s, n);
        } else if (BSON_ITER_HOLDS_DOCUMENT(&d) && bson_iter_recurse(&d, &x)) {
            while (bson_iter_next(&x))
                if (BSON_ITER_HOLDS_UTF8(&x)) {
                    const char *s = bson_iter_utf8(&x, &n);
                    add(c, s, n);
                }
        }
    }
    bson_destroy(&doc);
    return 0;
}

/* CPU seconds of this process: the machine is shared, and a busy neighbour
 * stretches wall time. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double encode_all(tok_tokenizer *t, const corpus *c, size_t *n_ids) {
    tok_ids ids = {0};
    char err[256];
    double t0 = cpu_now();
    *n_ids = 0;
    for (size_t i = 0; i < c->n; i++) {
        ids.n = 0;
        if (tok_encode(t, c->v[i], c->len[i], 0, &ids, err, sizeof(err)) != 0) {
            fprintf(stderr, "bench_tokenizer: %s\n", err);
            exit(1);
        }
        *n_ids += ids.n;
    }
    double dt = cpu_now() - t0;
    tok_ids_free(&ids);
    return dt;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : NULL;
    static const char *const dirs[] = {SLUICE_SOURCE_DIR "/../shared/handbook",
                                       SLUICE_SOURCE_DIR "/../../shared/handbook"};
    corpus c = {0};
    for (size_t i = 0; !dir && i < 2; i++)
        if (load(dirs[i], "cleaned_documents.json", &c) == 0)
            dir = dirs[i];
    if (!dir || (argc > 1 && load(dir, "cleaned_documents.json", &c) != 0) ||
        load(dir, "raw_documents.json", &c) != 0) {
        fprintf(stderr,
                "bench_tokenizer: the Handbook's artifacts are not at ../shared/handbook\n");
        return 1;
    }
    double mb = (double)c.bytes / (1 << 20);
    char err[512];

    const char *specials[] = {"<|endoftext|>"};
    tok_trainer *tr;
    double t0 = cpu_now();
    if (tok_trainer_new(VOCAB, specials, 1, 0, &tr, err, sizeof(err)) != 0)
        return fprintf(stderr, "bench_tokenizer: %s\n", err), 1;
    for (size_t i = 0; i < c.n; i++)
        if (tok_trainer_feed(tr, c.v[i], c.len[i], err, sizeof(err)) != 0)
            return fprintf(stderr, "bench_tokenizer: %s\n", err), 1;
    char path[] = "/tmp/sluice-bench-tok-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    if (tok_trainer_save(tr, path, err, sizeof(err)) != 0)
        return fprintf(stderr, "bench_tokenizer: %s\n", err), 1;
    double train_t = cpu_now() - t0;
    tok_trainer_free(tr);

    tok_tokenizer *t;
    if (tok_load(path, &t, err, sizeof(err)) != 0)
        return fprintf(stderr, "bench_tokenizer: %s\n", err), 1;
    size_t n_ids;
    double cold = encode_all(t, &c, &n_ids), warm = 1e9;
    for (int r = 0; r < 3; r++) {
        double x = encode_all(t, &c, &n_ids);
        if (x < warm)
            warm = x;
    }
    tok_free(t);

    char *all = malloc(c.bytes), *copy = malloc(c.bytes);
    for (size_t i = 0, off = 0; i < c.n; off += c.len[i], i++)
        memcpy(all + off, c.v[i], c.len[i]);
    double best_copy = 1e9;
    for (int r = 0; r < 20; r++) {
        double s = cpu_now();
        memcpy(copy, all, c.bytes);
        double x = cpu_now() - s;
        if (x < best_copy)
            best_copy = x;
    }
    volatile char sink = copy[c.bytes / 2];
    (void)sink;

    printf("bench_tokenizer: the Handbook's articles, %zu texts, %.2f MB; vocabulary %d\n", c.n, mb,
           VOCAB);
    printf("  train (C)            %8.2f s      %.2f MB/s\n", train_t, mb / train_t);
    printf("  memcpy (floor)       %8.0f MB/s\n", mb / best_copy);
    printf("  encode, cold cache   %8.1f MB/s  %.4f of memcpy, %zu ids (%.2f bytes/id)\n",
           mb / cold, best_copy / cold, n_ids, (double)c.bytes / (double)n_ids);
    printf("  encode, warm cache   %8.1f MB/s  %.4f of memcpy\n", mb / warm, best_copy / warm);

    /* The Python reference on the same texts and file, timed inside. */
    if (system("/usr/bin/python3 -c 'import regex' 2>/dev/null") == 0) {
        char texts[] = "/tmp/sluice-bench-texts-XXXXXX";
        fd = mkstemp(texts);
        close(fd);
        bson_t wrap = BSON_INITIALIZER, arr;
        bson_append_array_begin(&wrap, "texts", -1, &arr);
        for (size_t i = 0; i < c.n; i++) {
            char key[24];
            snprintf(key, sizeof(key), "%zu", i);
            bson_append_utf8(&arr, key, -1, c.v[i], (int)c.len[i]);
        }
        bson_append_array_end(&wrap, &arr);
        size_t jlen;
        char *j = bson_as_relaxed_extended_json(&wrap, &jlen);
        FILE *f = fopen(texts, "wb");
        if (f) {
            fwrite(j, 1, jlen, f);
            fclose(f);
        }
        bson_free(j);
        bson_destroy(&wrap);
        char cmd[2048];
        snprintf(cmd, sizeof(cmd),
                 "/usr/bin/python3 -c 'import sys,json,time\n"
                 "sys.path.insert(0,\"%s/tests/ref\")\n"
                 "import bpe_ref\n"
                 "tok=bpe_ref.Tokenizer(sys.argv[1])\n"
                 "ts=json.load(open(sys.argv[2],encoding=\"utf-8\"))[\"texts\"]\n"
                 "s=time.process_time()\n"
                 "n=sum(len(tok.encode(x,False)) for x in ts)\n"
                 "print(time.process_time()-s, n)' %s %s",
                 SLUICE_SOURCE_DIR, path, texts);
        FILE *py = popen(cmd, "r");
        double py_t = 0;
        size_t py_ids = 0;
        if (py && fscanf(py, "%lf %zu", &py_t, &py_ids) == 2 && py_t > 0)
            printf("  Python reference     %8.2f MB/s  sluice (cold) is %.0fx faster%s\n",
                   mb / py_t, py_t / cold, py_ids == n_ids ? ", same ids" : ", IDS DIFFER");
        if (py)
            pclose(py);
        unlink(texts);
    } else {
        printf("  Python reference     not run (/usr/bin/python3 with regex is needed)\n");
    }
    unlink(path);
    for (size_t i = 0; i < c.n; i++)
        free(c.v[i]);
    free(c.v);
    free(c.len);
    free(all);
    free(copy);
    return 0;
}
