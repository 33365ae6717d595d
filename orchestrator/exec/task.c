#include "task.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "value_json.h"

static int append_ports(bson_t *doc, const char *key, const task_port *ports, size_t n) {
    bson_t child;
    if (!bson_append_document_begin(doc, key, -1, &child))
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        bool ok = ports[i].path ? BSON_APPEND_UTF8(&child, ports[i].name, ports[i].path)
                                : BSON_APPEND_NULL(&child, ports[i].name);
        if (!ok)
            return -ENOMEM;
    }
    return bson_append_document_end(doc, &child) ? 0 : -ENOMEM;
}

int task_to_bson(const task *t, bson_t *doc) {
    bson_t params;
    if (!BSON_APPEND_UTF8(doc, "step_id", t->step_id) ||
        !BSON_APPEND_UTF8(doc, "step", t->step_name) ||
        !BSON_APPEND_UTF8(doc, "plugin", t->plugin_path) ||
        !BSON_APPEND_UTF8(doc, "work_dir", t->work_dir) ||
        !BSON_APPEND_UTF8(doc, "store", t->store_dir ? t->store_dir : "") ||
        !BSON_APPEND_INT32(doc, "attempt", t->attempt) ||
        !BSON_APPEND_DOCUMENT_BEGIN(doc, "params", &params))
        return -ENOMEM;
    for (size_t i = 0; i < t->n_params; i++) {
        bson_t p;
        if (!BSON_APPEND_DOCUMENT_BEGIN(&params, t->params[i].name, &p) ||
            !BSON_APPEND_INT32(&p, "kind", t->params[i].kind) ||
            value_append_bson(&p, "value", 5, t->params[i].value, 0) ||
            !bson_append_document_end(&params, &p))
            return -ENOMEM;
    }
    if (!bson_append_document_end(doc, &params))
        return -ENOMEM;
    int rc = append_ports(doc, "inputs", t->inputs, t->n_inputs);
    return rc ? rc : append_ports(doc, "outputs", t->outputs, t->n_outputs);
}

static const char *get_str(arena *a, const bson_t *doc, const char *key) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_UTF8(&it))
        return NULL;
    return arena_strdup(a, bson_iter_utf8(&it, NULL));
}

static int read_ports(arena *a, const bson_t *doc, const char *key, task_port **out, size_t *n) {
    bson_iter_t it, child;
    *n = 0;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
        !bson_iter_recurse(&it, &child))
        return -EINVAL;
    size_t count = 0;
    while (bson_iter_next(&child))
        count++;
    *out = arena_calloc(a, count + 1, sizeof(task_port));
    if (!*out)
        return -ENOMEM;
    bson_iter_recurse(&it, &child);
    while (bson_iter_next(&child)) {
        task_port *p = &(*out)[(*n)++];
        if (!(p->name = arena_strdup(a, bson_iter_key(&child))))
            return -ENOMEM;
        if (BSON_ITER_HOLDS_UTF8(&child) &&
            !(p->path = arena_strdup(a, bson_iter_utf8(&child, NULL))))
            return -ENOMEM;
    }
    return 0;
}

int task_from_bson(arena *a, const bson_t *doc, task *t, char *err, size_t err_size) {
    memset(t, 0, sizeof(*t));
    t->step_id = get_str(a, doc, "step_id");
    t->step_name = get_str(a, doc, "step");
    t->plugin_path = get_str(a, doc, "plugin");
    t->work_dir = get_str(a, doc, "work_dir");
    t->store_dir = get_str(a, doc, "store");
    bson_iter_t it, params;
    if (bson_iter_init_find(&it, doc, "attempt"))
        t->attempt = (int)bson_iter_as_int64(&it);
    if (!t->step_id || !t->step_name || !t->plugin_path || !t->work_dir) {
        snprintf(err, err_size, "the manifest lacks step_id, step, plugin or work_dir");
        return -EINVAL;
    }
    if (!bson_iter_init_find(&it, doc, "params") || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
        !bson_iter_recurse(&it, &params)) {
        snprintf(err, err_size, "the manifest has no params document");
        return -EINVAL;
    }
    size_t count = 0;
    bson_iter_t scan = params;
    while (bson_iter_next(&scan))
        count++;
    t->params = arena_calloc(a, count + 1, sizeof(task_param));
    if (!t->params)
        return -ENOMEM;
    while (bson_iter_next(&params)) {
        task_param *p = &t->params[t->n_params++];
        bson_iter_t field;
        p->name = arena_strdup(a, bson_iter_key(&params));
        if (!p->name || !BSON_ITER_HOLDS_DOCUMENT(&params) || !bson_iter_recurse(&params, &field)) {
            snprintf(err, err_size, "bad parameter entry in the manifest");
            return -EINVAL;
        }
        while (bson_iter_next(&field)) {
            if (strcmp(bson_iter_key(&field), "kind") == 0)
                p->kind = (int)bson_iter_as_int64(&field);
            else if (strcmp(bson_iter_key(&field), "value") == 0 &&
                     value_from_bson(a, &field, &p->value) != 0) {
                snprintf(err, err_size, "bad value of parameter '%s' in the manifest", p->name);
                return -EINVAL;
            }
        }
        if (!p->value) {
            snprintf(err, err_size, "parameter '%s' has no value in the manifest", p->name);
            return -EINVAL;
        }
    }
    int rc = read_ports(a, doc, "inputs", &t->inputs, &t->n_inputs);
    if (rc == 0)
        rc = read_ports(a, doc, "outputs", &t->outputs, &t->n_outputs);
    if (rc == -EINVAL)
        snprintf(err, err_size, "the manifest's inputs or outputs are malformed");
    return rc;
}

const task_param *task_find_param(const task *t, const char *name) {
    for (size_t i = 0; i < t->n_params; i++)
        if (strcmp(t->params[i].name, name) == 0)
            return &t->params[i];
    return NULL;
}

const task_port *task_find_port(const task_port *ports, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(ports[i].name, name) == 0)
            return &ports[i];
    return NULL;
}
