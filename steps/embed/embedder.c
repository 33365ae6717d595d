/* embedder.c - a BERT model or the built-in one, behind one interface. */
#include "embedder.h"

#include <sluice/artifacts.h>
#include <bson/bson.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bert.h"
#include "errbuf.h"
#include "text.h"

struct embedder {
    tfidf_model *tfidf; /* one of the two */
    bert_model *bert;
    char *dir; /* the BERT model's folder, for embedder_save() */
};

void embedder_free(embedder *e) {
    if (!e)
        return;
    tfidf_free(e->tfidf);
    bert_free(e->bert);
    free(e->dir);
    free(e);
}

/* Whether dir/config.json names the built-in model. A folder without a
 * readable config.json is left to bert_load(), whose error names it. */
static int is_builtin(const char *dir) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    bson_t *config;
    if (sl_json_read(path, &config, NULL, 0) != 0)
        return 0;
    bson_iter_t it;
    int yes = bson_iter_init_find(&it, config, "model_type") && BSON_ITER_HOLDS_UTF8(&it) &&
              strcmp(bson_iter_utf8(&it, NULL), TFIDF_MODEL_TYPE) == 0;
    bson_destroy(config);
    return yes;
}

int embedder_load(const char *dir, embedder **out, char *err, size_t err_size) {
    embedder *e = calloc(1, sizeof(*e));
    if (!e)
        return errbuf_set(err, err_size, -ENOMEM, "out of memory");
    int rc;
    if (is_builtin(dir)) {
        rc = tfidf_load(dir, &e->tfidf, err, err_size);
    } else {
        rc = bert_load(dir, &e->bert, err, err_size);
        if (rc == 0 && !(e->dir = strdup(dir)))
            rc = errbuf_set(err, err_size, -ENOMEM, "out of memory");
    }
    if (rc)
        embedder_free(e);
    else
        *out = e;
    return rc;
}

int embedder_fit(const char *const *texts, const size_t *lens, size_t n, const tfidf_params *p,
                 embedder **out, char *err, size_t err_size) {
    embedder *e = calloc(1, sizeof(*e));
    if (!e)
        return errbuf_set(err, err_size, -ENOMEM, "out of memory");
    int rc = tfidf_fit(texts, lens, n, p, &e->tfidf, err, err_size);
    if (rc)
        free(e);
    else
        *out = e;
    return rc;
}

size_t embedder_dim(const embedder *e) {
    return e->tfidf ? tfidf_dim(e->tfidf) : bert_model_config(e->bert)->hidden_size;
}

size_t embedder_max_tokens(const embedder *e) {
    return e->tfidf ? 0 : bert_model_config(e->bert)->max_position_embeddings;
}

const char *embedder_kind(const embedder *e) { return e->tfidf ? TFIDF_MODEL_TYPE : "bert"; }

const tfidf_model *embedder_tfidf(const embedder *e) { return e->tfidf; }

int embedder_embed(const embedder *e, const char *const *texts, const size_t *lens, size_t n,
                   size_t max_tokens, float *out, char *err, size_t err_size) {
    if (e->tfidf)
        return tfidf_embed(e->tfidf, texts, lens, n, out, err, err_size);
    return bert_embed(e->bert, texts, lens, n, max_tokens, out, err, err_size);
}

static int count_term(const char *term, size_t len, void *ctx) {
    (void)term, (void)len;
    ++*(size_t *)ctx;
    return 0;
}

int embedder_count_tokens(const embedder *e, const char *text, size_t len, size_t *n) {
    *n = 0;
    if (e->tfidf)
        return text_each_term(text, len, count_term, n);
    int rc = wordpiece_count(bert_model_tokenizer(e->bert), text, len, n);
    if (rc)
        return rc;
    size_t limit = bert_model_config(e->bert)->max_position_embeddings;
    *n = *n + 2 < limit ? *n + 2 : limit;
    return 0;
}

/* A copy, never a link: the source may be a user's folder that changes
 * later, and what lands in the store must not. */
static int copy_file(const char *src, const char *dst, char *err, size_t err_size) {
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return errbuf_set(err, err_size, -errno, "%s: %s", src, strerror(errno));
    int outfd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (outfd < 0) {
        int rc = -errno;
        close(in);
        return errbuf_set(err, err_size, rc, "%s: %s", dst, strerror(-rc));
    }
    char buf[1 << 16];
    ssize_t got;
    int rc = 0;
    while (rc == 0 && (got = read(in, buf, sizeof(buf))) != 0) {
        if (got < 0) {
            if (errno != EINTR)
                rc = errbuf_set(err, err_size, -errno, "%s: %s", src, strerror(errno));
            continue;
        }
        for (ssize_t off = 0; rc == 0 && off < got;) {
            ssize_t put = write(outfd, buf + off, (size_t)(got - off));
            if (put == 0)
                rc = errbuf_set(err, err_size, -EIO, "%s: nothing written", dst);
            else if (put < 0 && errno != EINTR)
                rc = errbuf_set(err, err_size, -errno, "%s: %s", dst, strerror(errno));
            off += put > 0 ? put : 0;
        }
    }
    close(in);
    if (close(outfd) != 0 && rc == 0)
        rc = errbuf_set(err, err_size, -errno, "%s: %s", dst, strerror(errno));
    return rc;
}

int embedder_save(const embedder *e, const char *dir, char *err, size_t err_size) {
    if (e->tfidf)
        return tfidf_save(e->tfidf, dir, err, err_size);
    static const char *const files[] = {"config.json", "model.safetensors", "vocab.txt",
                                        "tokenizer_config.json"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char src[4096], dst[4096];
        snprintf(src, sizeof(src), "%s/%s", e->dir, files[i]);
        snprintf(dst, sizeof(dst), "%s/%s", dir, files[i]);
        if (i == 3 && access(src, F_OK) != 0)
            continue; /* optional: BERT's casing defaults apply without it */
        int rc = copy_file(src, dst, err, err_size);
        if (rc)
            return rc;
    }
    return 0;
}
