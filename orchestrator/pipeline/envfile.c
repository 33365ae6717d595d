/* envfile.c - .env files, read strictly: a line that is not KEY=VALUE, a
 * comment or blank is an error with its line, rather than a variable
 * silently missing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "authoring.h"

static int is_key_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_key(char c) { return is_key_start(c) || (c >= '0' && c <= '9'); }

static int dotenv_set(pipeline *p, const char *name, const char *val) {
    for (size_t i = 0; i < p->n_dotenv; i++)
        if (strcmp(p->dotenv[i].name, name) == 0) {
            p->dotenv[i].value = val;
            return 0;
        }
    dotenv_var *grown = arena_alloc(&p->arena, (p->n_dotenv + 1) * sizeof(*grown));
    if (!grown)
        return -ENOMEM;
    if (p->n_dotenv)
        memcpy(grown, p->dotenv, p->n_dotenv * sizeof(*grown));
    grown[p->n_dotenv++] = (dotenv_var){name, val};
    p->dotenv = grown;
    return 0;
}

const char *dotenv_get(const pipeline *p, const char *name) {
    for (size_t i = 0; i < p->n_dotenv; i++)
        if (strcmp(p->dotenv[i].name, name) == 0)
            return p->dotenv[i].value;
    return NULL;
}

const char *dotenv_effective(const pipeline *p, const char *name) {
    const char *file = dotenv_get(p, name), *real = getenv(name);
    if (p->settings.env_override)
        return file ? file : real;
    return real ? real : file;
}

static int blank(char c) { return c == ' ' || c == '\t'; }

int dotenv_parse(pipeline *p, const char *s, size_t len, const char *file, diag_list *d) {
    arena *a = &p->arena;
    unsigned line = 1;
    size_t i = 0;
    buf v = BUF_INIT;
    int rc = 0;
#define BAD(col, ...)                                                                              \
    do {                                                                                           \
        diag_add(d, DIAG_ERROR, file, line, (unsigned)(col), __VA_ARGS__);                         \
        goto skip;                                                                                 \
    } while (0)
    while (i < len && rc == 0) {
        size_t bol = i;
        while (i < len && blank(s[i]))
            i++;
        if (i >= len)
            break;
        if (s[i] == '\n' || s[i] == '\r' || s[i] == '#')
            goto skip;
        if (len - i > 7 && memcmp(s + i, "export", 6) == 0 && blank(s[i + 6])) {
            i += 7;
            while (i < len && blank(s[i]))
                i++;
        }
        size_t k0 = i;
        if (i >= len || !is_key_start(s[i]))
            BAD(i - bol + 1, "expected KEY=VALUE, KEY being letters, digits and '_' not "
                             "starting with a digit");
        while (i < len && is_key(s[i]))
            i++;
        size_t k1 = i;
        if (i >= len || s[i] != '=')
            BAD(i - bol + 1,
                "expected '=' right after the name '%.*s' (KEY=VALUE, no spaces "
                "around '=')",
                (int)(k1 - k0), s + k0);
        i++;
        buf_reset(&v);
        unsigned start_line = line;
        if (i < len && (s[i] == '\'' || s[i] == '"')) {
            char q = s[i++];
            int closed = 0;
            while (i < len) {
                char c = s[i++];
                if (c == q) {
                    closed = 1;
                    break;
                }
                if (c == '\n')
                    line++;
                if (q == '"' && c == '\\' && i < len) {
                    char e = s[i++];
                    c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
                    if (!strchr("ntr\\\"$", e)) {
                        BAD(k1 - bol + 2,
                            "unknown escape '\\%c' in the value of '%.*s' (use "
                            "\\n, \\t, \\r, \\\\, \\\" or \\$)",
                            e, (int)(k1 - k0), s + k0);
                    }
                }
                buf_append(&v, &c, 1);
            }
            if (!closed) {
                line = start_line;
                diag_add(d, DIAG_ERROR, file, line, (unsigned)(k1 - bol + 2),
                         "the value of '%.*s' opens a %s quote that is never closed",
                         (int)(k1 - k0), s + k0, q == '"' ? "double" : "single");
                break;
            }
            while (i < len && blank(s[i]))
                i++;
            if (i < len && s[i] != '\n' && s[i] != '\r' && s[i] != '#')
                BAD(i - bol + 1, "unexpected text after the quoted value of '%.*s'", (int)(k1 - k0),
                    s + k0);
        } else {
            size_t v0 = i;
            while (i < len && s[i] != '\n' && s[i] != '\r' &&
                   !(s[i] == '#' && i > v0 && blank(s[i - 1])))
                i++;
            size_t v1 = i;
            while (v1 > v0 && blank(s[v1 - 1]))
                v1--;
            buf_append(&v, s + v0, v1 - v0);
        }
        if (buf_failed(&v)) {
            rc = -ENOMEM;
            break;
        }
        char *name = arena_strndup(a, s + k0, k1 - k0);
        char *val = arena_strndup(a, buf_str(&v), v.len);
        if (!name || !val || memchr(buf_str(&v), '\0', v.len)) {
            rc = name && val ? 0 : -ENOMEM;
            if (rc == 0)
                BAD(k0 - bol + 1, "the value of '%s' holds a NUL byte", name);
            break;
        }
        rc = dotenv_set(p, name, val);
    skip:
        while (i < len && s[i] != '\n')
            i++;
        if (i < len) {
            i++;
            line++;
        }
    }
#undef BAD
    buf_free(&v);
    return rc;
}

int dotenv_load(pipeline *p, const char *path, const char *label_file, unsigned line, unsigned col,
                diag_list *d) {
    char *data = NULL;
    size_t len = 0;
    int rc = pipeline_read_text(path, AUTHORING_MAX_FILE_BYTES, &data, &len);
    if (rc == -ENOMEM)
        return rc;
    if (rc) {
        diag_add(d, DIAG_ERROR, label_file, line, col, "cannot read the .env file '%s': %s", path,
                 rc == -EFBIG ? "larger than 4 MiB" : strerror(-rc));
        return 0;
    }
    const char *file = arena_strdup(&p->arena, path);
    rc = file ? dotenv_parse(p, data, len, file, d) : -ENOMEM;
    free(data);
    return rc;
}
