#include "cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/fsutil.h"
#include "pipeline/value_json.h"
#include "plugins/registry.h"

/* Hashes text and appends the hash under name, for the parts document. */
static void part(hash_ctx *key, bson_t *parts, const char *name, const char *text, size_t len) {
    char hex[HASH_HEX_LEN + 1];
    hash_ctx *h = hash_new();
    if (h) {
        hash_update(h, text, len);
        hash_finish(h, hex);
        BSON_APPEND_UTF8(parts, name, hex);
    }
    hash_update(key, name, strlen(name));
    hash_update(key, "\0", 1);
    hash_update(key, text, len);
    hash_update(key, "\n", 1);
}

int cache_key(const pipeline *p, const step *s, const char *plugin_hash,
              const cache_input *inputs, size_t n_inputs, char key[HASH_HEX_LEN + 1],
              bson_t *parts) {
    hash_ctx *k = hash_new();
    if (!k)
        return -ENOMEM;
    hash_update(k, "sluice-cache-1\n", 15);
    buf b = BUF_INIT;
    part(k, parts, "step", s->uses, strlen(s->uses));
    const char *version = s->impl ? s->impl->step->version : "builtin";
    part(k, parts, "version", version, strlen(version));
    if (plugin_hash)
        part(k, parts, "plugin", plugin_hash, strlen(plugin_hash));
    /* Parameters in schema order (a plugin's) or as written (shell), each
     * hashed on its own so that a later run can name the one that changed. */
    bson_t params;
    BSON_APPEND_DOCUMENT_BEGIN(parts, "params", &params);
    for (size_t i = 0; i < s->n_args; i++) {
        buf_reset(&b);
        value_write_json(&b, s->args[i].value, 0);
        part(k, &params, s->args[i].name, buf_str(&b), b.len);
    }
    bson_append_document_end(parts, &params);
    bson_t in;
    BSON_APPEND_DOCUMENT_BEGIN(parts, "inputs", &in);
    for (size_t i = 0; i < n_inputs; i++) {
        const char *h = inputs[i].hash ? inputs[i].hash : "-";
        BSON_APPEND_UTF8(&in, inputs[i].port, h);
        hash_update(k, "input\0", 6);
        hash_update(k, inputs[i].port, strlen(inputs[i].port));
        hash_update(k, "=", 1);
        hash_update(k, h, strlen(h));
        hash_update(k, "\n", 1);
    }
    bson_append_document_end(parts, &in);
    bson_t env;
    BSON_APPEND_DOCUMENT_BEGIN(parts, "env", &env);
    for (size_t i = 0; i < s->n_cache_on_env; i++) {
        const char *v = getenv(s->cache_on_env[i]);
        buf_reset(&b);
        buf_printf(&b, "%s", v ? v : "");
        char label[128];
        snprintf(label, sizeof(label), "%s", s->cache_on_env[i]);
        part(k, &env, label, v ? buf_str(&b) : "\x01unset", v ? b.len : 6);
    }
    bson_append_document_end(parts, &env);
    bson_t files;
    BSON_APPEND_DOCUMENT_BEGIN(parts, "files", &files);
    int rc = 0;
    for (size_t i = 0; i < s->n_cache_on_files && rc == 0; i++) {
        char path[4096], hex[HASH_HEX_LEN + 1];
        const char *f = s->cache_on_files[i];
        snprintf(path, sizeof(path), "%s%s%s", f[0] == '/' ? "" : p->dir, f[0] == '/' ? "" : "/", f);
        /* Checked when the pipeline was loaded; checked again, as a FIFO
         * made since would hold this thread until something writes to it. */
        int got = path_special_kind(path) ? -EINVAL : hash_path(path, hex, NULL);
        if (got == -ENOENT)
            snprintf(hex, sizeof(hex), "missing");
        else if (got)
            rc = got;
        BSON_APPEND_UTF8(&files, f, hex);
        hash_update(k, "file\0", 5);
        hash_update(k, f, strlen(f));
        hash_update(k, hex, strlen(hex));
    }
    bson_append_document_end(parts, &files);
    buf_free(&b);
    hash_finish(k, key);
    return rc;
}
