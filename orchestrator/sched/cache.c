#include "cache.h"
#include "authoring.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "value_json.h"
#include "registry.h"

/* SHA-256, or HMAC-SHA-256 (RFC 2104) under a key: the inner hash is
 * hash_ctx's, fed (key ^ ipad) first; the outer one is made at the end. */
typedef struct keyed {
    hash_ctx *h;
    const unsigned char *key; /* CACHE_SECRET_BYTES, or NULL: plain SHA-256 */
} keyed;

enum { BLOCK = 64 };

static int keyed_init(keyed *k, const unsigned char *key) {
    k->key = key;
    if (!(k->h = hash_new()))
        return -ENOMEM;
    if (key) {
        unsigned char pad[BLOCK] = {0};
        memcpy(pad, key, CACHE_SECRET_BYTES);
        for (size_t i = 0; i < BLOCK; i++)
            pad[i] ^= 0x36;
        hash_update(k->h, pad, BLOCK);
    }
    return 0;
}

static int unhex(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

static int keyed_finish(keyed *k, char hex[HASH_HEX_LEN + 1]) {
    hash_finish(k->h, hex);
    if (!k->key)
        return 0;
    unsigned char pad[BLOCK] = {0}, inner[HASH_HEX_LEN / 2];
    memcpy(pad, k->key, CACHE_SECRET_BYTES);
    for (size_t i = 0; i < BLOCK; i++)
        pad[i] ^= 0x5c;
    for (size_t i = 0; i < sizeof(inner); i++)
        inner[i] = (unsigned char)(unhex(hex[2 * i]) << 4 | unhex(hex[2 * i + 1]));
    hash_ctx *outer = hash_new();
    if (!outer)
        return -ENOMEM;
    hash_update(outer, pad, BLOCK);
    hash_update(outer, inner, sizeof(inner));
    hash_finish(outer, hex);
    return 0;
}

/* Hashes text and appends the hash under name, for the parts document. */
static void part(keyed *key, bson_t *parts, const char *name, const char *text, size_t len) {
    char hex[HASH_HEX_LEN + 1];
    keyed h;
    if (keyed_init(&h, key->key) == 0) {
        hash_update(h.h, text, len);
        if (keyed_finish(&h, hex) == 0)
            BSON_APPEND_UTF8(parts, name, hex);
    }
    hash_update(key->h, name, strlen(name));
    hash_update(key->h, "\0", 1);
    hash_update(key->h, text, len);
    hash_update(key->h, "\n", 1);
}

static int has_secret(const value *v) {
    if (v->secret)
        return 1;
    if (v->kind == VAL_LIST)
        for (size_t i = 0; i < v->u.list.n; i++)
            if (has_secret(v->u.list.items[i]))
                return 1;
    if (v->kind == VAL_MAP)
        for (size_t i = 0; i < v->u.map.n; i++)
            if (has_secret(v->u.map.vals[i]))
                return 1;
    return 0;
}

int cache_key_needs_secret(const pipeline *p, const step *s) {
    for (size_t i = 0; i < s->n_args; i++)
        if (has_secret(s->args[i].value))
            return 1;
    for (size_t i = 0; i < s->n_cache_on_env; i++) {
        const char *v = dotenv_effective(p, s->cache_on_env[i]); /* as the step sees it */
        for (size_t k = 0; v && k < p->n_secrets; k++)
            if (strcmp(v, p->secrets[k]) == 0)
                return 1;
    }
    return 0;
}

int cache_store_secret(const char *store_root, int create,
                       unsigned char secret[CACHE_SECRET_BYTES]) {
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/cache.key", store_root) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
        unsigned char fresh[CACHE_SECRET_BYTES];
        if (RAND_bytes(fresh, sizeof(fresh)) != 1)
            return -EIO;
        /* Written whole under a temporary name, then linked into place, so
         * a reader never sees half a key and two runs agree on one. */
        char tmp[4200];
        snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path); /* one per thread: steps key at once */
        int w = mkstemp(tmp);                          /* mode 0600 */
        if (w < 0)
            return -errno;
        fcntl(w, F_SETFD, FD_CLOEXEC);
        int ok = write(w, fresh, sizeof(fresh)) == (ssize_t)sizeof(fresh) && fsync(w) == 0;
        close(w);
        int linked = ok && link(tmp, path) == 0 ? 0 : ok && errno == EEXIST ? 0 : -EIO;
        unlink(tmp);
        if (linked)
            return linked;
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0)
        return -errno;
    struct stat st;
    ssize_t got =
        fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, secret, CACHE_SECRET_BYTES) : -1;
    close(fd);
    return got == CACHE_SECRET_BYTES ? 0 : -EINVAL;
}

/* The hash of what path names, "missing" when nothing is there. A path
 * was checked when the pipeline was loaded; it is checked again, as a FIFO
 * made since would hold this thread until something writes to it. */
static int content_hash(const char *path, char hex[HASH_HEX_LEN + 1]) {
    int got = path_special_kind(path) ? -EINVAL : hash_path(path, hex, NULL);
    if (got == -ENOENT) {
        snprintf(hex, HASH_HEX_LEN + 1, "missing");
        return 0;
    }
    if (got)
        snprintf(hex, HASH_HEX_LEN + 1, "unreadable");
    return got;
}

int cache_key(const pipeline *p, const step *s, const char *plugin_hash, const cache_input *inputs,
              size_t n_inputs, const unsigned char *secret, char key[HASH_HEX_LEN + 1],
              bson_t *parts) {
    keyed k;
    if (keyed_init(&k, secret))
        return -ENOMEM;
    if (secret)
        hash_update(k.h, "sluice-cache-keyed-1\n", 21);
    else
        hash_update(k.h, "sluice-cache-1\n", 15);
    buf b = BUF_INIT;
    part(&k, parts, "step", s->uses, strlen(s->uses));
    const char *version = s->impl ? s->impl->step->version : "builtin";
    part(&k, parts, "version", version, strlen(version));
    if (plugin_hash)
        part(&k, parts, "plugin", plugin_hash, strlen(plugin_hash));
    /* Parameters in schema order (a plugin's) or as written (shell), each
     * hashed on its own so that a later run can name the one that changed. */
    bson_t params;
    BSON_APPEND_DOCUMENT_BEGIN(parts, "params", &params);
    int rc = 0;
    for (size_t i = 0; i < s->n_args && rc == 0; i++) {
        const value *v = s->args[i].value;
        buf_reset(&b);
        if (s->impl && s->impl->step->params[i].kind == SL_PARAM_PATH && v->kind == VAL_STR &&
            v->u.str.len) {
            /* What the path names, not where: the same model moved along
             * with the project is still a hit, a rewritten one is not. */
            char hex[HASH_HEX_LEN + 1];
            rc = content_hash(v->u.str.s, hex);
            buf_printf(&b, "path %s", hex);
        } else {
            value_write_json(&b, v, 0);
        }
        part(&k, &params, s->args[i].name, buf_str(&b), b.len);
    }
    bson_append_document_end(parts, &params);
    bson_t in;
    BSON_APPEND_DOCUMENT_BEGIN(parts, "inputs", &in);
    for (size_t i = 0; i < n_inputs; i++) {
        const char *h = inputs[i].hash ? inputs[i].hash : "-";
        BSON_APPEND_UTF8(&in, inputs[i].port, h);
        hash_update(k.h, "input\0", 6);
        hash_update(k.h, inputs[i].port, strlen(inputs[i].port));
        hash_update(k.h, "=", 1);
        hash_update(k.h, h, strlen(h));
        hash_update(k.h, "\n", 1);
    }
    bson_append_document_end(parts, &in);
    bson_t env;
    BSON_APPEND_DOCUMENT_BEGIN(parts, "env", &env);
    for (size_t i = 0; i < s->n_cache_on_env; i++) {
        const char *v = dotenv_effective(p, s->cache_on_env[i]); /* as the step sees it */
        buf_reset(&b);
        buf_printf(&b, "%s", v ? v : "");
        char label[128];
        snprintf(label, sizeof(label), "%s", s->cache_on_env[i]);
        part(&k, &env, label, v ? buf_str(&b) : "\x01unset", v ? b.len : 6);
    }
    bson_append_document_end(parts, &env);
    bson_t files;
    BSON_APPEND_DOCUMENT_BEGIN(parts, "files", &files);
    for (size_t i = 0; i < s->n_cache_on_files && rc == 0; i++) {
        char path[4096], hex[HASH_HEX_LEN + 1];
        const char *f = s->cache_on_files[i];
        int w = snprintf(path, sizeof(path), "%s%s%s", f[0] == '/' ? "" : p->dir,
                         f[0] == '/' ? "" : "/", f);
        /* A path cut short would key the step on another file. */
        rc = w < 0 || (size_t)w >= sizeof(path) ? -ENAMETOOLONG : content_hash(path, hex);
        BSON_APPEND_UTF8(&files, f, hex);
        hash_update(k.h, "file\0", 5);
        hash_update(k.h, f, strlen(f));
        hash_update(k.h, hex, strlen(hex));
    }
    bson_append_document_end(parts, &files);
    buf_free(&b);
    int done = keyed_finish(&k, key);
    return rc ? rc : done;
}
