/* mongo_backend.c - the warehouse in MongoDB, through mongo-c-driver: one
 * collection per backend collection ("users", "articles", "posts",
 * "repositories") in the URI's database ("twin" when it names none).
 *
 * A batch of puts is one ordered bulk write per collection, each an upsert
 * that replaces the document whose key field ("_id" for users, "link" for
 * documents) equals the key: importing the same export twice leaves the
 * warehouse as it was. flush executes the bulks in collection order and
 * stops at the first failure; what an earlier bulk wrote stays written (the
 * interface promises nothing of a failed batch).
 *
 * The handle holds one single-threaded mongoc_client_t: a warehouse is used
 * by one thread at a time, as the LMDB backend's write batch is. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include <mongoc/mongoc.h>

enum { N_COLLECTIONS = 4 };
static const char *const collection_names[N_COLLECTIONS] = {"users", "articles", "posts",
                                                            "repositories"};

/* Server selection and connecting give up after this long unless the URI
 * says otherwise, so that a wrong host fails the command in seconds rather
 * than the driver's 30 s. */
#define MONGO_DEFAULT_TIMEOUT_MS 5000

typedef struct mongo_warehouse {
    struct warehouse base; /* first: a (warehouse *) is a (mongo_warehouse *) */
    mongoc_client_t *client;
    mongoc_database_t *db;
    mongoc_collection_t *collections[N_COLLECTIONS];
    mongoc_bulk_operation_t *pending[N_COLLECTIONS]; /* created by the first put */
    size_t queued[N_COLLECTIONS];                    /* writes in each pending bulk */
    char *shown_uri; /* the URI with its password masked, for messages */
    int read_only;
} mongo_warehouse;

/* mongoc_init() sets up process-wide state (the SSL library, SASL, the
 * handshake's platform description) and must run before any other driver
 * call; it runs once per process here. mongoc_cleanup() is deliberately
 * never called: it tears down that process-wide state, which other code in
 * the process (a step plugin linked against the same libmongoc, or a second
 * warehouse) may still be using, and the driver does not support calling
 * mongoc_init() again after it. The operating system reclaims it at exit. */
static pthread_once_t mongo_once = PTHREAD_ONCE_INIT;

static void mongo_init_once(void) { mongoc_init(); }

static int collection_index(const char *collection) {
    for (int i = 0; i < N_COLLECTIONS; i++)
        if (strcmp(collection, collection_names[i]) == 0)
            return i;
    return -1;
}

/* Users are keyed by "_id", documents by "link". */
static const char *key_field(int index) { return index == 0 ? "_id" : "link"; }

/* Where uri's password would be: from the first ':' after the scheme to
 * the last '@'. A password is there whenever the URI has one, escaped or
 * not, and taking a little too much (an '@' in an option value) is
 * harmless. *begin is NULL when there is none. */
static void password_span(const char *uri, const char **begin, const char **end) {
    const char *scheme_end = strstr(uri, "://");
    const char *hosts = scheme_end ? scheme_end + 3 : uri;
    const char *at = strrchr(hosts, '@');
    const char *colon = at ? memchr(hosts, ':', (size_t)(at - hosts)) : NULL;
    *begin = colon ? colon + 1 : NULL;
    *end = colon ? at : NULL;
}

/* A copy of uri with the password replaced by "****" (bson_free it). */
static char *mask_uri(const char *uri) {
    const char *begin, *end;
    password_span(uri, &begin, &end);
    if (!begin)
        return bson_strdup(uri);
    return bson_strdup_printf("%.*s****%s", (int)(begin - uri), uri, end);
}

/* Replaces each occurrence of secret in msg by as many '*' (four at most):
 * error text from the driver never needs to show it. msg never grows. */
static void scrub(char *msg, const char *secret) {
    size_t slen = secret ? strlen(secret) : 0;
    if (slen < 3) /* too short to tell from ordinary text */
        return;
    size_t rlen = slen < 4 ? slen : 4;
    for (char *p = strstr(msg, secret); p; p = strstr(p + rlen, secret)) {
        memset(p, '*', rlen);
        memmove(p + rlen, p + slen, strlen(p + slen) + 1);
    }
}

/* Sets the error "MongoDB at URI: what: message" with any password removed
 * from the driver's message; returns code. */
static int fail_mongo(mongo_warehouse *m, int code, const char *what, const bson_error_t *error) {
    char msg[sizeof(error->message)];
    snprintf(msg, sizeof(msg), "%s", error->message);
    scrub(msg, mongoc_uri_get_password(mongoc_client_get_uri(m->client)));
    return warehouse_fail(&m->base, code, "MongoDB at %s: %s: %s", m->shown_uri, what, msg);
}

/* 1 when every key and string value in doc, nested ones included, is valid
 * UTF-8 (NUL allowed); else 0 and *bad_key names the element. Debian's
 * libbson 1.23.1 passes invalid string values through
 * bson_validate(BSON_VALIDATE_UTF8) (see CDRIVER-4448), and so the driver's
 * validation of a replacement lets them through too. */
static int utf8_valid_iter(bson_iter_t *it, const char **bad_key) {
    while (bson_iter_next(it)) {
        const char *k = bson_iter_key(it);
        *bad_key = k;
        if (!bson_utf8_validate(k, strlen(k), false))
            return 0;
        bson_iter_t child;
        if (BSON_ITER_HOLDS_UTF8(it)) {
            uint32_t len;
            const char *v = bson_iter_utf8(it, &len);
            if (!bson_utf8_validate(v, len, true))
                return 0;
        } else if ((BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it)) &&
                   (!bson_iter_recurse(it, &child) || !utf8_valid_iter(&child, bad_key))) {
            return 0;
        }
    }
    return 1;
}

static int utf8_valid(const bson_t *doc, const char **bad_key) {
    bson_iter_t it;
    *bad_key = "";
    return bson_iter_init(&it, doc) && utf8_valid_iter(&it, bad_key);
}

static int mongo_put(warehouse *w, const char *collection, const char *key, const bson_t *doc) {
    mongo_warehouse *m = (mongo_warehouse *)w;
    if (m->read_only)
        return warehouse_fail(w, -EPERM, "MongoDB at %s: the warehouse is open read-only",
                              m->shown_uri);
    int i = collection_index(collection);
    if (i < 0)
        return warehouse_fail(w, -EINVAL, "MongoDB at %s: no collection '%s'", m->shown_uri,
                              collection);
    /* A server stores any bytes, but its other clients (the Handbook's
     * Python) cannot read invalid UTF-8 back; the driver does not check. */
    const char *bad_key = NULL;
    if (!utf8_valid(doc, &bad_key))
        return warehouse_fail(w, -EINVAL, "MongoDB: %s '%.200s': \"%.100s\" is not valid UTF-8",
                              collection, key, bad_key);
    bson_error_t error;
    if (!m->pending[i]) {
        /* Ordered: a failure stops the rest of the collection's batch. */
        bson_t *opts = BCON_NEW("ordered", BCON_BOOL(true));
        if (!opts)
            return warehouse_fail(w, -ENOMEM, "MongoDB: out of memory");
        m->pending[i] = mongoc_collection_create_bulk_operation_with_opts(m->collections[i], opts);
        bson_destroy(opts);
        if (!m->pending[i])
            return warehouse_fail(w, -ENOMEM, "MongoDB: out of memory");
    }
    /* The driver's own checks of a replacement (1.23): a top-level key
     * beginning with '$' is refused (the server would read the document as
     * update operators), as is an empty key; keys with a '.' pass, as a
     * repository's content (file paths) needs. */
    bson_t *selector = BCON_NEW(key_field(i), BCON_UTF8(key));
    bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
    int rc = 0;
    if (!selector || !opts)
        rc = warehouse_fail(w, -ENOMEM, "MongoDB: out of memory");
    else if (!mongoc_bulk_operation_replace_one_with_opts(m->pending[i], selector, doc, opts,
                                                          &error))
        rc = warehouse_fail(w, -EINVAL, "MongoDB: %s '%.200s': %s", collection, key, error.message);
    else
        m->queued[i]++;
    bson_destroy(selector);
    bson_destroy(opts);
    return rc;
}

static void discard_pending(mongo_warehouse *m) {
    for (int i = 0; i < N_COLLECTIONS; i++) {
        mongoc_bulk_operation_destroy(m->pending[i]);
        m->pending[i] = NULL;
        m->queued[i] = 0;
    }
}

static int mongo_flush(warehouse *w) {
    mongo_warehouse *m = (mongo_warehouse *)w;
    int rc = 0;
    for (int i = 0; i < N_COLLECTIONS && rc == 0; i++) {
        if (!m->queued[i]) /* the driver refuses an empty bulk */
            continue;
        bson_t reply;
        bson_error_t error;
        /* 0 on any failure, a write concern error included; the reply is
         * initialised either way. */
        if (!mongoc_bulk_operation_execute(m->pending[i], &reply, &error)) {
            char what[64];
            snprintf(what, sizeof(what), "writing %s", collection_names[i]);
            rc = fail_mongo(m, -EIO, what, &error);
        }
        bson_destroy(&reply);
    }
    discard_pending(m); /* executed, empty, or left unexecuted by a failure */
    return rc;
}

/* Runs a find on collection and calls visit for each document until it
 * returns nonzero; 0, or negative with w's message. */
typedef int (*visit_fn)(void *ud, const bson_t *doc);

static int run_find(mongo_warehouse *m, const char *collection, const bson_t *filter,
                    const bson_t *opts, visit_fn visit, void *ud) {
    int i = collection_index(collection);
    if (i < 0)
        return warehouse_fail(&m->base, -EINVAL, "MongoDB at %s: no collection '%s'", m->shown_uri,
                              collection);
    mongoc_cursor_t *cursor =
        mongoc_collection_find_with_opts(m->collections[i], filter, opts, NULL);
    if (!cursor)
        return warehouse_fail(&m->base, -ENOMEM, "MongoDB: out of memory");
    const bson_t *doc;
    int stopped = 0;
    while (!stopped && mongoc_cursor_next(cursor, &doc))
        stopped = visit(ud, doc);
    bson_error_t error;
    int rc = 0;
    if (!stopped && mongoc_cursor_error(cursor, &error)) {
        char what[64];
        snprintf(what, sizeof(what), "reading %s", collection);
        rc = fail_mongo(m, -EIO, what, &error);
    }
    mongoc_cursor_destroy(cursor);
    return rc;
}

typedef struct find_ctx {
    bson_t *found;
    int hit;
} find_ctx;

static int find_visit(void *ud, const bson_t *doc) {
    find_ctx *f = ud;
    bson_copy_to(doc, f->found);
    f->hit = 1;
    return 1;
}

static int mongo_find(warehouse *w, const char *collection, const char *field, const char *value,
                      bson_t *found) {
    mongo_warehouse *m = (mongo_warehouse *)w;
    bson_t *filter = BCON_NEW(field, BCON_UTF8(value));
    bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
    find_ctx f = {found, 0};
    int rc = filter && opts ? run_find(m, collection, filter, opts, find_visit, &f)
                            : warehouse_fail(w, -ENOMEM, "MongoDB: out of memory");
    bson_destroy(filter);
    bson_destroy(opts);
    return rc ? rc : f.hit;
}

typedef struct each_ctx {
    const char *category;
    warehouse_fn fn;
    void *ud;
} each_ctx;

static int each_visit(void *ud, const bson_t *doc) {
    each_ctx *e = ud;
    return e->fn(e->ud, e->category, doc);
}

static int mongo_each(warehouse *w, const char *collection, const char *category, warehouse_fn fn,
                      void *ud) {
    mongo_warehouse *m = (mongo_warehouse *)w;
    int i = collection_index(collection);
    if (i < 0)
        return warehouse_fail(w, -EINVAL, "MongoDB at %s: no collection '%s'", m->shown_uri,
                              collection);
    /* In key order, as the LMDB backend walks: strings compare by their
     * bytes when no collation is given. */
    bson_t filter = BSON_INITIALIZER;
    bson_t *opts = BCON_NEW("sort", "{", key_field(i), BCON_INT32(1), "}");
    each_ctx e = {category, fn, ud};
    int rc = opts ? run_find(m, collection, &filter, opts, each_visit, &e)
                  : warehouse_fail(w, -ENOMEM, "MongoDB: out of memory");
    bson_destroy(&filter);
    bson_destroy(opts);
    return rc;
}

static void mongo_close(warehouse *w) {
    mongo_warehouse *m = (mongo_warehouse *)w;
    discard_pending(m);
    for (int i = 0; i < N_COLLECTIONS; i++)
        mongoc_collection_destroy(m->collections[i]);
    mongoc_database_destroy(m->db);
    mongoc_client_destroy(m->client);
    bson_free(m->shown_uri);
    free(m);
}

static const warehouse_ops mongo_ops = {mongo_put, mongo_flush, mongo_find, mongo_each,
                                        mongo_close};

/* Connects and pings the server: an unreachable server or failed
 * authentication is reported at open, not at the first write. */
static int mongo_connect(mongo_warehouse *m, mongoc_uri_t *uri) {
    bson_error_t error;
    m->client = mongoc_client_new_from_uri_with_error(uri, &error);
    if (!m->client) {
        scrub(error.message, mongoc_uri_get_password(uri));
        return warehouse_fail(&m->base, -EINVAL, "MongoDB at %s: %s", m->shown_uri, error.message);
    }
    /* Server errors in the MONGOC_ERROR_SERVER domain with the server's
     * own codes, as the driver recommends. */
    mongoc_client_set_error_api(m->client, MONGOC_ERROR_API_VERSION_2);
    if (!mongoc_uri_get_option_as_utf8(uri, MONGOC_URI_APPNAME, NULL))
        mongoc_client_set_appname(m->client, "sluice");
    const char *name = mongoc_uri_get_database(uri);
    m->db = mongoc_client_get_database(m->client, name && *name ? name : "twin");
    if (!m->db)
        return warehouse_fail(&m->base, -ENOMEM, "MongoDB: out of memory");
    for (int i = 0; i < N_COLLECTIONS; i++)
        if (!(m->collections[i] = mongoc_database_get_collection(m->db, collection_names[i])))
            return warehouse_fail(&m->base, -ENOMEM, "MongoDB: out of memory");
    bson_t *ping = BCON_NEW("ping", BCON_INT32(1));
    if (!ping)
        return warehouse_fail(&m->base, -ENOMEM, "MongoDB: out of memory");
    int ok = mongoc_client_command_simple(m->client, "admin", ping, NULL, NULL, &error);
    bson_destroy(ping);
    if (!ok) {
        scrub(error.message, mongoc_uri_get_password(uri));
        return warehouse_fail(&m->base, -EIO, "MongoDB at %s: %s", m->shown_uri, error.message);
    }
    return 0;
}

int warehouse_mongo_open(warehouse **out, const char *uri_string, int read_only, char *err,
                         size_t err_size) {
    *out = NULL;
    pthread_once(&mongo_once, mongo_init_once);
    mongo_warehouse *m = calloc(1, sizeof(*m));
    char *shown = mask_uri(uri_string);
    if (!m || !shown) {
        free(m);
        bson_free(shown);
        snprintf(err, err_size, "MongoDB: out of memory");
        return -ENOMEM;
    }
    m->base.ops = &mongo_ops;
    m->shown_uri = shown;
    m->read_only = read_only;

    /* The driver splits user and hosts at the first '@', so a password
     * with an unescaped '@' would reach messages as part of a host name. */
    const char *scheme_end = strstr(uri_string, "://");
    const char *hosts = scheme_end ? scheme_end + 3 : uri_string;
    size_t n_at = 0;
    for (const char *p = hosts; *p && *p != '/' && *p != '?'; p++)
        n_at += *p == '@';
    bson_error_t error;
    mongoc_uri_t *uri = NULL;
    int rc = 0;
    if (n_at > 1)
        rc = warehouse_fail(&m->base, -EINVAL,
                            "MongoDB URI %s: write an '@' in the user name or password as %%40",
                            m->shown_uri);
    else if (!(uri = mongoc_uri_new_with_error(uri_string, &error))) {
        /* The parser's messages name options, not credentials; scrub what
         * would be the password anyway, as the parse that finds it failed. */
        const char *begin, *end;
        password_span(uri_string, &begin, &end);
        if (begin) {
            char *secret = bson_strndup(begin, (size_t)(end - begin));
            scrub(error.message, secret);
            bson_free(secret);
        }
        rc = warehouse_fail(&m->base, -EINVAL, "MongoDB URI %s: %s", m->shown_uri, error.message);
    } else {
        if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
            mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                           MONGO_DEFAULT_TIMEOUT_MS);
        if (!mongoc_uri_has_option(uri, MONGOC_URI_CONNECTTIMEOUTMS))
            mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS,
                                           MONGO_DEFAULT_TIMEOUT_MS);
        rc = mongo_connect(m, uri);
        mongoc_uri_destroy(uri);
    }
    if (rc) {
        snprintf(err, err_size, "%s", m->base.err);
        mongo_close(&m->base);
        return rc;
    }
    *out = &m->base;
    return 0;
}
