/* launch.c - starting an attempt: in-process on the thread pool, in a child
 * 'sluice exec', or as a shell command; and what their ends report. */
#include "run_internal.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include "error.h"
#include "formats.h"

extern char **environ;

/* ---- in-process steps ------------------------------------------------- */

static void work_cb(uv_work_t *w) {
    attempt *at = w->data;
    const char *why = NULL;
    at->rc = host_ctx_run(&at->hc, &why);
    if (why)
        at->why = strdup(why);
}

static void after_work_cb(uv_work_t *w, int status) {
    attempt *at = w->data;
    run *r = at->r;
    (void)status;
    sched_drain_events(r); /* its last log lines belong before its end */
    if (at->abandoned) {
        r->abandoned--;
        sched_log(at->sr, SL_LOG_WARN, "an abandoned attempt returned at last");
    } else {
        sched_attempt_done(at, at->rc == SL_OK, at->why ? at->why : sl_status_message(at->rc));
    }
    sched_free_attempt(at);
    sched_maybe_finish(r);
}

/* The grace period after asking an in-process step to stop has passed. */
void sched_on_grace(uv_timer_t *t) {
    step_run *sr = t->data;
    attempt *at = sr->cur;
    if (!at || at->kind != ATT_IN_PROCESS)
        return;
    at->abandoned = 1;
    sr->r->abandoned++;
    sched_attempt_done(at, 0,
                       "it did not stop when asked (sl_cancelled); its thread was left running");
}

/* ---- child steps ------------------------------------------------------ */

static const char *signal_name(int sig) {
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGBUS:
        return "SIGBUS";
    case SIGABRT:
        return "SIGABRT";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    case SIGKILL:
        return "SIGKILL";
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGPIPE:
        return "SIGPIPE";
    default:
        return "signal";
    }
}

void sched_child_event(attempt *at, const char *line, size_t len) {
    bson_error_t err;
    bson_t *doc = bson_new_from_json((const uint8_t *)line, (ssize_t)len, &err);
    bson_iter_t it;
    if (!doc || !bson_iter_init_find(&it, doc, "t") || !BSON_ITER_HOLDS_UTF8(&it)) {
        sched_log(at->sr, SL_LOG_WARN, "an unreadable event from the step process");
        if (doc)
            bson_destroy(doc);
        return;
    }
    const char *t = bson_iter_utf8(&it, NULL);
    const char *text = NULL;
    double val = 0;
    int64_t a = 0, b = 0;
    int level = SL_LOG_INFO;
    bson_iter_t f;
    if (bson_iter_init(&f, doc))
        while (bson_iter_next(&f)) {
            const char *k = bson_iter_key(&f);
            if (BSON_ITER_HOLDS_UTF8(&f) && strcmp(k, "t") != 0)
                text = bson_iter_utf8(&f, NULL);
            else if (BSON_ITER_HOLDS_NUMBER(&f) && strcmp(k, "value") == 0)
                val = bson_iter_as_double(&f);
            else if (BSON_ITER_HOLDS_NUMBER(&f) && (strcmp(k, "a") == 0 || strcmp(k, "level") == 0))
                a = bson_iter_as_int64(&f);
            else if (BSON_ITER_HOLDS_NUMBER(&f) && strcmp(k, "b") == 0)
                b = bson_iter_as_int64(&f);
        }
    if (strcmp(t, "log") == 0) {
        level = (int)a;
        sched_log(at->sr, level, text ? text : "");
    } else if (strcmp(t, "progress") == 0) {
        report_step_progress(&at->r->rep, at->sr->index, at->sr->s->id, (uint64_t)a, (uint64_t)b);
    } else if (strcmp(t, "metric") == 0 && text) {
        sched_metric(at->sr, text, val, b);
    } else if (strcmp(t, "done") == 0) {
        at->reported_done = 1;
        at->reported_rc = (int)a;
        free(at->reported_error);
        at->reported_error = text ? strdup(text) : NULL;
    }
    bson_destroy(doc);
}

static void on_child_line(child *c, int stream, const char *line, size_t len) {
    attempt *at = c->data;
    if (stream == 3) {
        sched_child_event(at, line, len);
        return;
    }
    char *copy = strndup(line, len);
    if (copy) {
        sched_log(at->sr, stream == 2 ? SL_LOG_WARN : SL_LOG_INFO, copy);
        free(copy);
    }
}

static char *metrics_path(attempt *at);

/* Records the metrics a shell step appended to $SLUICE_METRICS: JSON lines
 * {"name": TEXT, "value": NUMBER, "step": INTEGER (optional)}, as a
 * plugin's sl_metric(name, value, step). A line that is not one is logged
 * as a warning naming it, and the lines after it are left unread. */
#define SHELL_METRICS_MAX_BYTES (16u << 20)
void sched_read_shell_metrics(attempt *at) {
    const char *path = metrics_path(at);
    struct stat st;
    if (!path || lstat(path, &st) != 0)
        return;
    char err[600];
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > SHELL_METRICS_MAX_BYTES) {
        snprintf(err, sizeof(err), "$SLUICE_METRICS (%s) was not read: %s", path,
                 S_ISREG(st.st_mode) ? "larger than 16 MiB" : "not a regular file");
        sched_log(at->sr, SL_LOG_WARN, err);
        return;
    }
    jsonl_reader rd;
    if (jsonl_open(&rd, path, err, sizeof(err)) != 0) {
        sched_log(at->sr, SL_LOG_WARN, err);
        return;
    }
    bson_t doc;
    int got;
    while ((got = jsonl_next(&rd, &doc, err, sizeof(err))) == 1) {
        bson_iter_t name, val, at_step;
        int ok = bson_iter_init_find(&name, &doc, "name") && BSON_ITER_HOLDS_UTF8(&name) &&
                 bson_iter_init_find(&val, &doc, "value") && BSON_ITER_HOLDS_NUMBER(&val);
        int has_step = bson_iter_init_find(&at_step, &doc, "step");
        if (ok && has_step && !BSON_ITER_HOLDS_INT(&at_step))
            ok = 0;
        if (ok)
            sched_metric(at->sr, bson_iter_utf8(&name, NULL), bson_iter_as_double(&val),
                         has_step ? bson_iter_as_int64(&at_step) : 0);
        bson_destroy(&doc);
        if (!ok) {
            snprintf(err, sizeof(err),
                     "%s:%llu: a metric is {\"name\": TEXT, \"value\": NUMBER, \"step\": "
                     "INTEGER (optional)}; the lines from here on were not recorded",
                     path, (unsigned long long)rd.line);
            got = -EINVAL;
            break;
        }
    }
    if (got < 0)
        sched_log(at->sr, SL_LOG_WARN, err);
    jsonl_close_reader(&rd);
}

static void on_child_done(child *c, int64_t status, int sig) {
    attempt *at = c->data;
    char why[512];
    int ok = 0;
    if (at->kind == ATT_SHELL && !c->spawn_error)
        sched_read_shell_metrics(at);
    if (c->spawn_error) {
        snprintf(why, sizeof(why), "could not start: %s", uv_strerror(c->spawn_error));
    } else if (sig) {
        const char *desc = strsignal(sig);
        if (at->sr->timed_out || at->r->cancelling)
            snprintf(why, sizeof(why), "stopped (%s)", signal_name(sig));
        else
            snprintf(why, sizeof(why), "crashed: killed by %s (%s)", signal_name(sig),
                     desc ? desc : "unknown signal");
    } else if (at->kind == ATT_SHELL) {
        ok = status == 0;
        snprintf(why, sizeof(why), "the command exited with status %lld", (long long)status);
    } else if (at->reported_done) {
        ok = at->reported_rc == SL_OK && status == 0;
        snprintf(why, sizeof(why), "%s",
                 at->reported_error ? at->reported_error : sl_status_message(at->reported_rc));
    } else {
        snprintf(why, sizeof(why), "the step process exited with status %lld without reporting",
                 (long long)status);
    }
    sched_attempt_done(at, ok, ok ? NULL : why);
    sched_free_attempt(at);
}

/* ---- starting attempts ------------------------------------------------ */

/* The path of output `name` of the step that feeds `in`. */
static const char *input_path(run *r, const step_input *in) {
    if (in->artifact)
        return in->artifact_path;
    const step_run *src = &r->steps[in->from];
    for (size_t i = 0; i < src->n_out; i++)
        if (strcmp(src->out_names[i], in->from_output) == 0)
            return src->out_paths[i];
    return NULL;
}

/* An input fed by a fan-out step's instances (in[0..list_len), in item
 * order): port NAME is a file listing their paths, one a line, and
 * NAME_0..NAME_n-1 each path, so a plugin reads input_path("NAME") and a
 * shell step $SLUICE_INPUT_NAME or $SLUICE_INPUT_NAME_0... The listing is
 * written beside the attempt's folder, as its metrics are. */
static int list_input(attempt *at, const step_input *in) {
    task *t = &at->t;
    buf listing = BUF_INIT;
    for (size_t j = 0; j < in->list_len; j++) {
        const char *path = input_path(at->r, &in[j]);
        task_port *port = &t->inputs[t->n_inputs++];
        port->name = step_input_key(&in[j]);
        port->path = path;
        buf_printf(&listing, "%s\n", path ? path : "");
        if (!port->name) {
            buf_free(&listing);
            return -ENOMEM;
        }
    }
    task_port *all = &t->inputs[t->n_inputs++];
    all->name = in->port;
    all->path = arena_printf(&at->a, "%s.input-%s.list", at->dir, in->port);
    int rc = buf_failed(&listing) || !all->path ? -ENOMEM : 0;
    FILE *f = rc ? NULL : fopen(all->path, "wbe");
    if (!rc && !f)
        rc = -errno;
    if (f && fwrite(listing.data, 1, listing.len, f) != listing.len)
        rc = -EIO;
    if (f && fclose(f) != 0 && !rc)
        rc = -errno;
    buf_free(&listing);
    return rc;
}

/* Fills at->t for a step: parameters, inputs, outputs, work folder. */
int sched_build_task(attempt *at) {
    step_run *sr = at->sr;
    const step *s = sr->s;
    task *t = &at->t;
    arena *a = &at->a;
    t->step_id = s->id;
    t->work_dir = at->dir;
    t->store_dir = at->r->store.root;
    t->attempt = at->number;
    t->n_params = s->n_args;
    t->params = arena_calloc(a, s->n_args + 1, sizeof(task_param));
    size_t n_lists = 0;
    for (size_t i = 0; i < s->n_inputs; i++)
        n_lists += s->inputs[i].list_len && s->inputs[i].index == 0;
    t->inputs = arena_calloc(a, s->n_inputs + n_lists + 1, sizeof(task_port));
    if (!t->params || !t->inputs)
        return -ENOMEM;
    for (size_t i = 0; i < s->n_args; i++) {
        t->params[i].name = s->args[i].name;
        t->params[i].kind = s->impl ? s->impl->step->params[i].kind : 0;
        t->params[i].value = s->args[i].value;
    }
    t->n_inputs = 0;
    for (size_t i = 0; i < s->n_inputs;) {
        const step_input *in = &s->inputs[i];
        if (!in->list_len) {
            t->inputs[t->n_inputs].name = in->port;
            t->inputs[t->n_inputs++].path = input_path(sr->r, in);
            i++;
            continue;
        }
        int rc = list_input(at, in);
        if (rc)
            return rc;
        i += in->list_len;
    }
    if (s->impl) {
        const plugin_step *ps = s->impl;
        t->step = ps->step;
        t->step_name = ps->step->name;
        t->plugin_path = ps->lib->real_path;
        t->n_outputs = ps->n_outputs;
        t->outputs = arena_calloc(a, ps->n_outputs + 1, sizeof(task_port));
        if (!t->outputs)
            return -ENOMEM;
        for (size_t i = 0; i < ps->n_outputs; i++) {
            t->outputs[i].name = ps->step->outputs[i].name;
            t->outputs[i].path = arena_printf(a, "%s/out/%s", at->dir, ps->step->outputs[i].name);
            if (!t->outputs[i].path)
                return -ENOMEM;
        }
        return 0; /* the host makes the folders when the step asks for a path */
    }
    const value *outs = step_known_outputs(s);
    t->step_name = STEP_SHELL;
    t->n_outputs = outs ? outs->u.map.n : 0;
    t->outputs = arena_calloc(a, t->n_outputs + 1, sizeof(task_port));
    if (!t->outputs)
        return -ENOMEM;
    for (size_t i = 0; i < t->n_outputs; i++) {
        t->outputs[i].name = outs->u.map.keys[i];
        t->outputs[i].path = arena_printf(a, "%s/%s", at->dir, outs->u.map.vals[i]->u.str.s);
        if (!t->outputs[i].path)
            return -ENOMEM;
    }
    return 0;
}

static const value *shell_arg(const step *s, const char *name) {
    for (size_t i = 0; i < s->n_args; i++)
        if (strcmp(s->args[i].name, name) == 0)
            return s->args[i].value;
    return NULL;
}

/* The file a shell step appends its metrics to, one JSON object a line. */
static char *metrics_path(attempt *at) { return arena_printf(&at->a, "%s.metrics.jsonl", at->dir); }

/* Whether the environment entry NAME=VALUE gives way to a .env file's. */
static int dotenv_replaces(const pipeline *p, const char *entry) {
    if (!p->settings.env_override)
        return 0;
    const char *eq = strchr(entry, '=');
    size_t len = eq ? (size_t)(eq - entry) : strlen(entry);
    for (size_t i = 0; i < p->n_dotenv; i++)
        if (strlen(p->dotenv[i].name) == len && memcmp(p->dotenv[i].name, entry, len) == 0)
            return 1;
    return 0;
}

/* The environment of a shell step: sluice's own, then the step's
 * SLUICE_* variables, the secrets its command reads (SLUICE_SECRET_n, see
 * secret_command), then its 'env'. Allocated in at->a. */
char **sched_shell_env(attempt *at) {
    const value *extra = shell_arg(at->sr->s, "env");
    const pipeline *p = at->r->p;
    size_t n_env = 0, n_extra = extra && extra->kind == VAL_MAP ? extra->u.map.n : 0;
    while (environ[n_env])
        n_env++;
    size_t cap =
        n_env + at->t.n_inputs + at->t.n_outputs + n_extra + p->n_secrets + p->n_dotenv + 8;
    char **env = arena_calloc(&at->a, cap, sizeof(char *));
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++)
        if (strncmp(environ[i], "SLUICE_INPUT_", 13) && strncmp(environ[i], "SLUICE_OUTPUT_", 14) &&
            strncmp(environ[i], "SLUICE_SECRET_", 14) &&
            strncmp(environ[i], "SLUICE_METRICS=", 15) && !dotenv_replaces(p, environ[i]))
            env[k++] = environ[i];
    /* The .env files' variables, under the real environment's unless
     * settings.env_override (then the real ones were left out above). */
    for (size_t i = 0; i < p->n_dotenv; i++)
        if (p->settings.env_override || !getenv(p->dotenv[i].name))
            env[k++] = arena_printf(&at->a, "%s=%s", p->dotenv[i].name, p->dotenv[i].value);
    env[k++] = arena_printf(&at->a, "SLUICE_METRICS=%s", metrics_path(at));
    for (size_t i = 0; i < p->n_secrets; i++)
        env[k++] = arena_printf(&at->a, "SLUICE_SECRET_%zu=%s", i + 1, p->secrets[i]);
    env[k++] = arena_printf(&at->a, "SLUICE_STEP=%s", at->t.step_id);
    env[k++] = arena_printf(&at->a, "SLUICE_WORK_DIR=%s", at->dir);
    env[k++] = arena_printf(&at->a, "SLUICE_ATTEMPT=%d", at->number);
    env[k++] = arena_printf(&at->a, "SLUICE_RUN_ID=%s", at->r->run_id);
    env[k++] = arena_printf(&at->a, "SLUICE_PIPELINE_DIR=%s", at->r->pipeline_dir);
    for (size_t i = 0; i < at->t.n_inputs; i++)
        env[k++] = arena_printf(&at->a, "SLUICE_INPUT_%s=%s", at->t.inputs[i].name,
                                at->t.inputs[i].path ? at->t.inputs[i].path : "");
    for (size_t i = 0; i < at->t.n_outputs; i++)
        env[k++] = arena_printf(&at->a, "SLUICE_OUTPUT_%s=%s", at->t.outputs[i].name,
                                at->t.outputs[i].path);
    for (size_t i = 0; i < n_extra; i++) {
        buf b = BUF_INIT;
        value_write_text(&b, extra->u.map.vals[i]);
        if (extra->u.map.vals[i]->secret) { /* the real value, not the mask */
            buf_reset(&b);
            buf_append(&b, extra->u.map.vals[i]->u.str.s, extra->u.map.vals[i]->u.str.len);
        }
        env[k++] = buf_failed(&b)
                       ? NULL
                       : arena_printf(&at->a, "%s=%s", extra->u.map.keys[i], buf_str(&b));
        buf_free(&b);
    }
    for (size_t i = 0; i < k; i++)
        if (!env[i])
            return NULL;
    env[k] = NULL;
    return env;
}

/* A command with nothing for a shell to interpret (no quotes, variables,
 * globs, redirections, operators) is split on blanks and run directly, as
 * make does: one exec instead of two. Returns the word count, 0 when the
 * command needs /bin/sh, -ENOMEM. */
#define DIRECT_MAX_WORDS 32
static int split_simple(arena *a, const char *cmd, char **words) {
    if (strpbrk(cmd, "\"'`$\\|&;<>()*?[]{}~#=%!\n"))
        return 0;
    int n = 0;
    for (const char *p = cmd; *p;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        const char *end = p;
        while (*end && *end != ' ' && *end != '\t')
            end++;
        if (n == DIRECT_MAX_WORDS)
            return 0;
        if (!(words[n++] = arena_strndup(a, p, (size_t)(end - p))))
            return -ENOMEM;
        p = end;
    }
    words[n] = NULL;
    /* A shell builtin or keyword is no program to exec ('exit 3', 'cd x'):
     * make keeps the same list for the same reason (job.c, sh_cmds). */
    static const char *const sh_words[] = {
        ".",      ":",       "alias", "break",   "case",  "cd",   "command", "continue",
        "do",     "done",    "elif",  "else",    "esac",  "eval", "exec",    "exit",
        "export", "fi",      "for",   "getopts", "hash",  "if",   "read",    "readonly",
        "return", "set",     "shift", "then",    "times", "trap", "type",    "ulimit",
        "umask",  "unalias", "unset", "until",   "wait",  "while"};
    for (size_t i = 0; n > 0 && i < sizeof(sh_words) / sizeof(sh_words[0]); i++)
        if (strcmp(words[0], sh_words[i]) == 0)
            return 0;
    return n;
}

/* The path of a program, from the run's cache or a PATH search: a run has
 * few distinct programs, so the cache is a short list. A program not found
 * is left to exec to report. */
static int program_path(run *r, const char *name, const char **out) {
    for (size_t i = 0; i < r->n_programs; i++)
        if (strcmp(r->programs[i].name, name) == 0) {
            *out = r->programs[i].path;
            return 0;
        }
    char found[4096];
    *out = name;
    if (find_program(name, found, sizeof(found)) != 0)
        return 0;
    program_path_entry *grown = realloc(r->programs, (r->n_programs + 1) * sizeof(*grown));
    if (!grown)
        return -ENOMEM;
    r->programs = grown;
    program_path_entry *p = &r->programs[r->n_programs];
    p->name = strdup(name);
    p->path = strdup(found);
    if (!p->name || !p->path) {
        free(p->name);
        free(p->path);
        return -ENOMEM;
    }
    r->n_programs++;
    *out = p->path;
    return 0;
}

/* The command with every secret the pipeline resolved replaced by a
 * reference to the environment variable SLUICE_SECRET_n that holds it
 * (shell_env), quoted for where it stands, so that no secret is on the
 * command line of the shell, which ps shows to every user. The scan
 * follows quotes and backslashes as sh reads them; inside single quotes
 * the reference closes and reopens them. Appends to out. */
static void secret_command(const pipeline *p, const char *cmd, buf *out) {
    enum { BARE, SINGLE, DOUBLE } state = BARE;
    for (const char *c = cmd; *c;) {
        size_t best = 0, which = 0;
        for (size_t i = 0; i < p->n_secrets; i++) {
            size_t len = strlen(p->secrets[i]);
            /* As in masking, a secret of one or two characters would match
             * inside words and variable names and break the command. */
            if (len >= MASK_MIN_LEN && len > best && strncmp(c, p->secrets[i], len) == 0) {
                best = len;
                which = i + 1;
            }
        }
        if (best) {
            buf_printf(out,
                       state == SINGLE   ? "'\"${SLUICE_SECRET_%zu}\"'"
                       : state == DOUBLE ? "${SLUICE_SECRET_%zu}"
                                         : "\"${SLUICE_SECRET_%zu}\"",
                       which);
            c += best;
            continue;
        }
        if (*c == '\\' && state != SINGLE && c[1]) {
            buf_append(out, c, 2);
            c += 2;
            continue;
        }
        if (*c == '\'' && state != DOUBLE)
            state = state == SINGLE ? BARE : SINGLE;
        else if (*c == '"' && state != SINGLE)
            state = state == DOUBLE ? BARE : DOUBLE;
        buf_putc(out, *c++);
    }
}

/* Whether /bin/sh takes -o pipefail (bash, busybox and dash from 0.5.13
 * do; older dash refuses it). Asked once per process. */
static int sh_has_pipefail(void) {
    static int known = -1;
    if (known >= 0)
        return known;
    known = 0;
    char *args[] = {"sh", "-o", "pipefail", "-c", ":", NULL};
    pid_t pid;
    int status;
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return known;
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawn(&pid, "/bin/sh", &fa, NULL, args, environ) == 0 &&
        waitpid(pid, &status, 0) == pid)
        known = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    posix_spawn_file_actions_destroy(&fa);
    return known;
}

int sched_shell_command(attempt *at, const char **cmd_out, int *strict_out) {
    /* 'run: true' is YAML's boolean: any scalar runs as the text it reads as. */
    const step *s = at->sr->s;
    const value *run_arg = shell_arg(s, "run");
    const value *strict_arg = shell_arg(s, "strict");
    int strict = !(strict_arg && strict_arg->kind == VAL_BOOL && !strict_arg->u.boolean);
    buf text = BUF_INIT;
    if (run_arg && run_arg->secret)
        secret_command(at->r->p, run_arg->u.str.s, &text);
    else if (run_arg)
        value_write_text(&text, run_arg);
    const value *cmd = buf_failed(&text) ? NULL : value_new_str(&at->a, buf_str(&text), text.len);
    buf_free(&text);
    if (!cmd)
        return -ENOMEM;
    *cmd_out = cmd->u.str.s;
    *strict_out = strict;
    return 0;
}

static int launch_shell(attempt *at) {
    const char *cmd_text;
    int strict;
    int rc = sched_shell_command(at, &cmd_text, &strict);
    if (rc)
        return rc;
    char **env = sched_shell_env(at);
    if (!env)
        return -ENOMEM;
    char *words[DIRECT_MAX_WORDS + 1];
    int n = split_simple(&at->a, cmd_text, words);
    if (n < 0)
        return n;
    /* Strict: a failing line, an unset variable or (where sh has it) a
     * failing stage of a pipe fails the step, as in CI runners. */
    char *sh[8];
    size_t k = 0;
    sh[k++] = "sh";
    if (strict) {
        sh[k++] = "-eu";
        if (strchr(cmd_text, '|') && sh_has_pipefail()) {
            sh[k++] = "-o";
            sh[k++] = "pipefail";
        }
    }
    sh[k++] = "-c";
    sh[k++] = (char *)cmd_text;
    sh[k] = NULL;
    const char *program = "/bin/sh";
    if (n) {
        /* Look the program up once per run, not once per step and PATH entry. */
        rc = program_path(at->r, words[0], &program);
        if (rc)
            return rc;
    }
    child_options o = {.file = program,
                       .args = n ? words : sh,
                       .env = env,
                       .cwd = at->dir,
                       .supervisor = at->r->supervisor[0] ? at->r->supervisor : NULL};
    child_spawn(&at->ch, &at->r->reaper, &o, on_child_line, on_child_done, at);
    return 0;
}

static int launch_process(attempt *at) {
    bson_t doc = BSON_INITIALIZER;
    int rc = task_to_bson(&at->t, &doc);
    size_t len = 0;
    if (rc == 0)
        at->manifest = bson_as_relaxed_extended_json(&doc, &len);
    bson_destroy(&doc);
    if (!at->manifest)
        return -ENOMEM;
    char *args[] = {"sluice", "exec", NULL};
    child_options o = {.file = at->r->o->exe,
                       .args = args,
                       .cwd = at->dir,
                       .input = at->manifest,
                       .input_len = len,
                       .events = 1,
                       .supervisor = at->r->supervisor[0] ? at->r->supervisor : NULL};
    child_spawn(&at->ch, &at->r->reaper, &o, on_child_line, on_child_done, at);
    return 0;
}

static int launch_in_process(attempt *at) {
    /* A plugin the registry knew from its cache is loaded now, the first
     * time one of its steps runs here. */
    const plugin_step *ps = at->sr->s->impl;
    char why[512];
    if (ps && registry_materialize(ps, why, sizeof(why)) != 0) {
        sched_log(at->sr, SL_LOG_ERROR, why);
        return -EINVAL;
    }
    if (ps)
        at->t.step = ps->step;
    task_sink sink = {sched_sink_log, sched_sink_progress, sched_sink_metric, at};
    int rc = host_ctx_init(&at->hc, &at->t, &sink);
    if (rc)
        return rc;
    at->hc_ready = 1;
    at->work.data = at;
    return uv_queue_work(&at->r->loop, &at->work, work_cb, after_work_cb);
}

void sched_on_timeout(uv_timer_t *t) {
    step_run *sr = t->data;
    attempt *at = sr->cur;
    if (!at)
        return;
    sr->timed_out = 1;
    sched_log(sr, SL_LOG_ERROR, "the step ran past its timeout: stopping it");
    if (at->kind == ATT_IN_PROCESS) {
        atomic_store(&at->hc.cancel, 1);
        uv_timer_start(&sr->grace, sched_on_grace, INPROC_GRACE_MS, 0);
    } else if (at->kind == ATT_SLURM) {
        sched_slurm_cancel(at);
    } else {
        child_kill(&at->ch, KILL_GRACE_MS);
    }
}

/* Starts the attempt's work, or ends the attempt when rc says it cannot. */
void sched_launch(attempt *at, int rc) {
    if (rc == 0 && (at->sr->timed_out || at->r->cancelling))
        rc = UV_ECANCELED;
    if (rc == 0 && sched_is_builtin(at->sr->s)) {
        char why[1400] = "";
        int ok = sched_run_builtin(at, why, sizeof(why));
        sched_attempt_done(at, ok, why);
        sched_free_attempt(at);
        return;
    }
    if (rc == 0)
        rc = at->kind == ATT_SLURM     ? sched_slurm_launch(at)
             : at->kind == ATT_SHELL   ? launch_shell(at)
             : at->kind == ATT_PROCESS ? launch_process(at)
                                       : launch_in_process(at);
    if (rc == 0)
        return;
    char why[256];
    snprintf(why, sizeof(why), "could not start: %s",
             rc == UV_ECANCELED ? "stopped before it started" : sluice_strerror(rc));
    sched_attempt_done(at, 0, why);
    sched_free_attempt(at);
}

void sched_on_dir_ready(uv_fs_t *req) {
    attempt *at = req->data;
    int rc = req->result < 0 && req->result != UV_EEXIST ? (int)req->result : 0;
    uv_fs_req_cleanup(req);
    sched_launch(at, rc);
}
