#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "support.h"

static diag_list D;
static pipeline *P;

static void setup(void) {
    D = (diag_list)DIAG_LIST_INIT;
    P = NULL;
}

static void teardown(void) {
    pipeline_free(P);
    diag_clear(&D);
}

TestSuite(pipeline, .init = setup, .fini = teardown);

static int load(const char *text) { return load_text(text, NULL, &D, &P); }

static int load_with(const char *text, const pipeline_options *opt) {
    return load_text(text, opt, &D, &P);
}

static const value *with_arg(const step *s, const char *name) {
    for (size_t i = 0; i < s->n_with; i++)
        if (strcmp(s->with[i].name, name) == 0)
            return s->with[i].value;
    return NULL;
}

Test(pipeline, a_complete_pipeline_loads) {
    int rc = load("version: 1\n"
                  "pipeline: fe\n"
                  "description: clean and chunk\n"
                  "params: {authors: [Maxime Labonne], size: 500}\n"
                  "settings: {cache: false, jobs: 3, retries: 2, timeout: 1h, runner: slurm}\n"
                  "plugins: [./build/plugins, /opt/plugins]\n"
                  "steps:\n"
                  "  query:\n"
                  "    uses: warehouse_query\n"
                  "    with: {authors: \"${params.authors}\"}\n"
                  "  chunk:\n"
                  "    uses: chunk\n"
                  "    inputs: {documents: query.documents}\n"
                  "    with: {chunk_size: \"${params.size}\", label: \"size ${params.size}\"}\n"
                  "    retries: {max: 4, backoff: 250ms}\n"
                  "    timeout: 10m\n"
                  "    cache: true\n"
                  "    after: query\n"
                  "    isolation: process\n"
                  "    cache_on: {env: [CUDA_VISIBLE_DEVICES], files: [vocab.txt]}\n");
    cr_assert_eq(rc, 0, "%s", all_diags(&D));
    cr_expect_str_eq(P->name, "fe");
    cr_expect_str_eq(P->description, "clean and chunk");
    cr_expect_eq(P->settings.cache, 0);
    cr_expect_eq(P->settings.jobs, 3);
    cr_expect_eq(P->settings.retries, 2);
    cr_expect_eq(P->settings.timeout_ms, 3600000);
    cr_expect_str_eq(P->settings.runner, "slurm");
    cr_assert_eq(P->n_plugins, 2);
    cr_expect_str_eq(P->plugins[0], "/pipes/./build/plugins");
    cr_expect_str_eq(P->plugins[1], "/opt/plugins");
    cr_assert_eq(P->n_steps, 2);
    const step *q = &P->steps[0], *c = &P->steps[1];
    const value *authors = with_arg(q, "authors");
    cr_assert_not_null(authors);
    cr_expect_eq(authors->kind, VAL_LIST, "a whole-value reference keeps the list");
    cr_expect_eq(with_arg(c, "chunk_size")->kind, VAL_INT);
    cr_expect_str_eq(with_arg(c, "label")->u.str.s, "size 500");
    cr_expect_eq(c->n_inputs, 1);
    cr_expect_eq(c->inputs[0].from, 0);
    cr_expect_str_eq(c->inputs[0].from_output, "documents");
    cr_expect_eq(c->after[0].from, 0);
    cr_expect_eq(step_retries(P, c), 4);
    cr_expect_eq(step_retries(P, q), 2, "inherited from settings");
    cr_expect_eq(step_backoff_ms(P, c), 250);
    cr_expect_eq(step_timeout_ms(P, c), 600000);
    cr_expect_eq(step_timeout_ms(P, q), 3600000);
    cr_expect_eq(step_cache_enabled(P, c), 1);
    cr_expect_eq(step_cache_enabled(P, q), 0);
    cr_expect_eq(c->isolation, ISOLATION_PROCESS);
    cr_expect_str_eq(c->cache_on_env[0], "CUDA_VISIBLE_DEVICES");
    cr_expect_str_eq(c->cache_on_files[0], "vocab.txt");
}

Test(pipeline, every_error_in_one_pass_with_exact_positions) {
    int rc = load("pipeline: Bad Name\n"                                     /* 1 */
                  "descripton: typo\n"                                       /* 2 */
                  "settings: {jobs: two, cache: maybe, runner: k8s}\n"       /* 3 */
                  "steps:\n"                                                 /* 4 */
                  "  a:\n"                                                   /* 5 */
                  "    uses: shell\n"                                        /* 6 */
                  "    with: {run: echo, outputs: {out: a.txt}}\n"           /* 7 */
                  "    timeout: 10x\n"                                       /* 8 */
                  "    isolaton: process\n"                                  /* 9 */
                  "  b:\n"                                                   /* 10 */
                  "    uses: x\n"                                            /* 11 */
                  "    inputs: {in: a.nope, other: ghost.out, bad: noref}\n" /* 12 */
                  "    after: [zz]\n"                                        /* 13 */
                  "    retries: {max: -1}\n"                                 /* 14 */
                  "    cache: sometimes\n"                                   /* 15 */
                  "  c: {with: {}}\n"                                        /* 16 */
                  "  B: {uses: x}\n"                                         /* 17 */
                  "  d: [1]\n");                                             /* 18 */
    cr_expect_eq(rc, -EINVAL);
    expect_diag(&D, 1, 11, "bad pipeline name 'Bad Name'");
    expect_diag(&D, 2, 1,
                "unknown key 'descripton' at the top level (did you mean 'description'?)");
    expect_diag(&D, 3, 18, "'settings.jobs' must be an integer, not 'two'");
    expect_diag(&D, 3, 30, "'settings.cache' must be true or false, not 'maybe'");
    expect_diag(&D, 3, 45, "'settings.runner' must be local or slurm, not 'k8s'");
    expect_diag(&D, 8, 14, "bad duration '10x' for 'timeout'");
    expect_diag(&D, 9, 5, "unknown key 'isolaton' in step 'a' (did you mean 'isolation'?)");
    expect_diag(&D, 12, 18, "step 'a' has no output 'nope' (it declares: out)");
    expect_diag(&D, 12, 33, "an input of step 'b' names unknown step 'ghost'");
    expect_diag(&D, 12, 49, "input 'bad' must name another step's output as STEP.OUTPUT");
    expect_diag(&D, 13, 13, "'after' of step 'b' names unknown step 'zz'");
    expect_diag(&D, 14, 20, "'retries.max' must be between 0 and 100, not -1");
    expect_diag(&D, 15, 12, "'cache' must be true or false, not 'sometimes'");
    expect_diag(&D, 16, 3, "step 'c' has no 'uses'");
    expect_diag(&D, 17, 3, "bad step id 'B'");
    expect_diag(&D, 18, 6, "step 'd' must be a mapping with at least 'uses', not a list");
    cr_expect_eq(D.errors, 16, "%s", all_diags(&D));
}

Test(pipeline, missing_required_fields) {
    cr_expect_eq(load("description: nothing else\n"), -EINVAL);
    expect_diag(&D, 1, 1, "missing required key 'pipeline'");
    expect_diag(&D, 1, 1, "missing required key 'steps'");
}

Test(pipeline, empty_and_non_mapping_files) {
    cr_expect_eq(load(""), -EINVAL);
    expect_diag(&D, 1, 1, "the file is empty");
    pipeline_free(P);
    P = NULL;
    diag_clear(&D);
    cr_expect_eq(load("- a\n- b\n"), -EINVAL);
    expect_diag(&D, 1, 1, "a pipeline file must be a mapping");
    pipeline_free(P);
    P = NULL;
    diag_clear(&D);
    cr_expect_eq(load("pipeline: x\nsteps: {}\n"), -EINVAL);
    expect_diag(&D, 2, 8, "'steps' is empty");
}

Test(pipeline, unsupported_version) {
    cr_expect_eq(load("version: 2\npipeline: x\nsteps: {a: {uses: x}}\n"), -EINVAL);
    expect_diag(&D, 1, 10, "pipeline format version 2 is not supported");
}

Test(pipeline, duplicate_step_ids) {
    cr_expect_eq(load("pipeline: x\nsteps:\n  a: {uses: x}\n  b: {uses: x}\n  a: {uses: y}\n"),
                 -EINVAL);
    expect_diag(&D, 5, 3, "duplicate key 'a' (first given at line 3)");
    cr_expect_eq(P->n_steps, 2);
}

Test(pipeline, cycles_are_named_by_their_path) {
    cr_expect_eq(load("pipeline: x\n"
                      "steps:\n"
                      "  a: {uses: x, after: c}\n"
                      "  b: {uses: x, after: a}\n"
                      "  c: {uses: x, inputs: {in: b.out}}\n"
                      "  d: {uses: x, after: e}\n"
                      "  e: {uses: x, after: d}\n"
                      "  f: {uses: x, after: f}\n"
                      "  g: {uses: x, inputs: {own: g.out}}\n"),
                 -EINVAL);
    expect_diag(&D, 3, 3, "cycle: a -> b -> c -> a");
    expect_diag(&D, 6, 3, "cycle: d -> e -> d");
    expect_diag(&D, 8, 23, "step 'f' cannot run after itself");
    expect_diag(&D, 9, 30, "step 'g' cannot take its own output 'out' as input");
    cr_expect_eq(D.errors, 4, "%s", all_diags(&D));
}

Test(pipeline, did_you_mean_for_step_references) {
    cr_expect_eq(load("pipeline: x\nsteps:\n  clean: {uses: x}\n  chunk: {uses: x, inputs: {d: "
                      "claen.documents}}\n"),
                 -EINVAL);
    expect_diag(&D, 4, 32, "names unknown step 'claen' (did you mean 'clean'?)");
}

Test(pipeline, shell_steps_are_checked) {
    cr_expect_eq(
        load("pipeline: x\n"
             "steps:\n"
             "  a: {uses: shell, with: {cmd: ls}}\n"
             "  b: {uses: shell, with: {run: [ls], outputs: [x]}}\n"
             "  c: {uses: shell, with: {run: ls, outputs: {o: 3}, env: {E: [1]}}}\n"
             "  e: {uses: shell, with: {run: ls, outputs: {up: ../x, abs: /etc/x, ok: a/b}}}\n"),
        -EINVAL);
    expect_diag(&D, 3, 27, "the shell step has no parameter 'cmd'");
    expect_diag(&D, 3, 13, "step 'a' uses shell but gives no 'run' command");
    expect_diag(&D, 4, 32, "'run' must be a string");
    expect_diag(&D, 4, 47, "'outputs' of a shell step must be a mapping");
    expect_diag(&D, 5, 49, "output 'o' must be a file path inside the step's work folder");
    expect_diag(&D, 5, 62, "environment variable 'E' must be a scalar");
    expect_diag(&D, 6, 50, "output 'up' must be a file path inside");
    expect_diag(&D, 6, 61, "output 'abs' must be a file path inside");
    cr_expect_eq(D.errors, 8, "%s", all_diags(&D));
}

static const char *fake_env(void *ud, const char *name) {
    (void)ud;
    if (strcmp(name, "HOME_DIR") == 0)
        return "/home/twin";
    if (strcmp(name, "JOBS") == 0)
        return "4";
    return NULL;
}

static const char *fake_secret(void *ud, const char *name) {
    (void)ud;
    return strcmp(name, "API_KEY") == 0 ? "sk-123" : NULL;
}

Test(pipeline, substitution) {
    pipeline_options opt = {.lookup_env = fake_env, .lookup_secret = fake_secret};
    int rc = load_with("pipeline: x\n"
                       "params: {n: 3, name: twin, dir: \"${env.HOME_DIR}/data\"}\n"
                       "settings: {jobs: \"${env.JOBS}\"}\n"
                       "steps:\n"
                       "  a:\n"
                       "    uses: shell\n"
                       "    with:\n"
                       "      run: echo ${params.name} $HOME ${HOME} $${params.name} x${params.n}\n"
                       "      env:\n"
                       "        KEY: \"${secret.API_KEY}\"\n"
                       "        FALLBACK: ${env.NOPE:-none}\n"
                       "        QUOTED: \"${env.JOBS}\"\n"
                       "        PLAIN: ${env.JOBS}\n"
                       "        DIR: ${params.dir}\n"
                       "        AUTH: Bearer ${secret.API_KEY}\n",
                       &opt);
    cr_assert_eq(rc, 0, "%s", all_diags(&D));
    cr_expect_eq(P->settings.jobs, 4,
                 "a quoted env value still reads as an integer in an integer field");
    const step *a = &P->steps[0];
    cr_expect_str_eq(with_arg(a, "run")->u.str.s, "echo twin $HOME ${HOME} ${params.name} x3");
    const value *env = with_arg(a, "env");
    cr_assert_eq(env->kind, VAL_MAP);
    cr_expect_str_eq(env->u.map.vals[0]->u.str.s, "sk-123");
    cr_expect(env->u.map.vals[0]->secret);
    cr_expect_str_eq(env->u.map.vals[1]->u.str.s, "none");
    cr_expect_eq(env->u.map.vals[2]->kind, VAL_STR, "environment values are text");
    cr_expect_eq(env->u.map.vals[3]->kind, VAL_STR, "quoted or not");
    cr_expect_str_eq(env->u.map.vals[4]->u.str.s, "/home/twin/data");
    cr_expect_str_eq(env->u.map.vals[5]->u.str.s, "Bearer sk-123", "the step gets the real value");
    cr_expect(env->u.map.vals[5]->secret, "and the whole text is secret");
    cr_expect_eq(P->n_secrets, 1);
}

Test(pipeline, substitution_errors) {
    pipeline_options opt = {
        .lookup_env = fake_env, .lookup_secret = fake_secret, .require_secrets = 1};
    int rc = load_with("pipeline: x\n"
                       "params: {list: [a, b], p: \"${params.list}\"}\n"
                       "steps:\n"
                       "  a:\n"
                       "    uses: x\n"
                       "    with:\n"
                       "      a: ${params.nope}\n"
                       "      b: x ${params.list} y\n"
                       "      c: ${env.UNSET_VAR}\n"
                       "      d: ${secret.MISSING}\n"
                       "      e: ${parms.list}\n"
                       "      f: abc ${params.list\n"
                       "      g: ${params.lst}\n"
                       "      h: ${secret.API_KEY:-x}\n",
                       &opt);
    cr_expect_eq(rc, -EINVAL);
    expect_diag(&D, 2, 27, "a parameter's default cannot refer to '${params.list}'");
    expect_diag(&D, 7, 10, "unknown parameter 'nope'");
    expect_diag(&D, 8, 12, "'${params.list}' is a list and cannot be embedded in text");
    expect_diag(&D, 9, 10, "environment variable 'UNSET_VAR' is not set");
    expect_diag(&D, 10, 10, "secret 'MISSING' is not set");
    expect_diag(&D, 11, 10, "unknown namespace 'parms'");
    expect_diag(&D, 12, 14, "unterminated '${'");
    expect_diag(&D, 13, 10, "unknown parameter 'lst' (did you mean 'list'?)");
    expect_diag(&D, 14, 10, "only ${env.X} takes a default");
    cr_expect_eq(D.errors, 9, "%s", all_diags(&D));
}

Test(pipeline, validate_tolerates_missing_secrets_and_masks_them) {
    int rc = load(
        "pipeline: x\nsteps:\n  a: {uses: x, with: {key: \"${secret.SLUICE_NO_SUCH_SECRET}\"}}\n");
    cr_assert_eq(rc, 0, "%s", all_diags(&D));
    const value *v = with_arg(&P->steps[0], "key");
    cr_expect(v->secret);
    cr_expect_str_eq(v->u.str.s, "***");
}

Test(pipeline, overrides_are_typed_and_checked) {
    const char *ov[] = {"size=800",
                        "authors=[Paul Iusztin, Maxime Labonne]",
                        "rate=3",
                        "version=1.10",
                        "name=Paul Iusztin",
                        "flag=false"};
    pipeline_options opt = {.overrides = ov, .n_overrides = 6};
    int rc =
        load_with("pipeline: x\n"
                  "params: {size: 500, authors: [a], rate: 0.5, version: \"1.0\", name: a,"
                  " flag: true}\n"
                  "steps: {a: {uses: x, with: {s: \"${params.size}\", r: \"${params.rate}\"}}}\n",
                  &opt);
    cr_assert_eq(rc, 0, "%s", all_diags(&D));
    cr_expect_eq(P->params[0].value->u.integer, 800);
    cr_expect(P->params[0].overridden);
    cr_expect_eq(P->params[1].value->u.list.n, 2);
    cr_expect_eq(P->params[2].value->kind, VAL_FLOAT);
    cr_expect_str_eq(P->params[3].value->u.str.s, "1.10");
    cr_expect_str_eq(P->params[4].value->u.str.s, "Paul Iusztin");
    cr_expect_eq(P->params[5].value->u.boolean, 0);
    cr_expect_eq(with_arg(&P->steps[0], "s")->u.integer, 800, "steps see the override");
}

Test(pipeline, bad_overrides) {
    const char *ov[] = {"size=big", "nosuch=1", "noequals", "sise=3", "size=[1"};
    pipeline_options opt = {.overrides = ov, .n_overrides = 5};
    int rc = load_with("pipeline: x\nparams: {size: 500}\nsteps: {a: {uses: x}}\n", &opt);
    cr_expect_eq(rc, -EINVAL);
    expect_diag(&D, 0, 0, "-p size=big: parameter 'size' expects an integer, got a string");
    expect_diag(&D, 0, 0, "-p nosuch=1: the pipeline has no parameter 'nosuch'");
    expect_diag(&D, 0, 0, "-p noequals: expected NAME=VALUE");
    expect_diag(&D, 0, 0, "-p sise=3: the pipeline has no parameter 'sise' (did you mean 'size'?)");
    expect_diag(&D, 0, 0, "-p size=[1: malformed YAML");
}

Test(pipeline, the_dag_of_a_pipeline) {
    int rc = load("pipeline: x\nsteps:\n"
                  "  a: {uses: x}\n"
                  "  b: {uses: x, inputs: {i: a.o}}\n"
                  "  c: {uses: x, after: [a, b], inputs: {j: b.o}}\n");
    cr_assert_eq(rc, 0, "%s", all_diags(&D));
    dag g;
    cr_assert_eq(pipeline_dag(P, &g), 0);
    cr_expect(g.acyclic);
    cr_expect_eq(g.level[2], 2);
    cr_expect_eq(g.pred_start[3] - g.pred_start[2], 2, "c needs a and b once each");
    dag_free(&g);
}

Test(pipeline, an_input_may_name_an_artifact_in_the_store) {
    int rc = load("pipeline: p\n"
                  "steps:\n"
                  "  a: {uses: x, inputs: {d: \"artifact:4f0c2a9e\", e: \"artifact:latest:b.o\"}}\n"
                  "  b: {uses: x, inputs: {d: a.o}}\n");
    cr_assert_eq(rc, 0, "%s", all_diags(&D));
    const step *a = &P->steps[0];
    cr_assert_eq(a->n_inputs, 2);
    cr_expect_str_eq(a->inputs[0].artifact, "4f0c2a9e");
    cr_expect_str_eq(a->inputs[1].artifact, "latest:b.o");
    cr_expect_null(a->inputs[0].from_step);
    cr_expect_eq(a->inputs[0].from, UINT32_MAX); /* no edge: nothing runs before a */
    cr_expect_null(a->inputs[0].artifact_hash);  /* found in the store when it runs */
    cr_expect_null(P->steps[1].inputs[0].artifact);
}

Test(pipeline, an_artifact_input_with_no_id_is_an_error) {
    int rc = load("pipeline: p\n"
                  "steps:\n"
                  "  a: {uses: x, inputs: {d: \"artifact:\", e: \"artifact:a b\"}}\n");
    cr_expect_eq(rc, -EINVAL);
    expect_diag(&D, 3, 28, "input 'd': 'artifact:' names no artifact");
    expect_diag(&D, 3, 44, "input 'e': 'artifact:a b' names no artifact");
    cr_expect_eq(D.errors, 2, "%s", all_diags(&D));
}
