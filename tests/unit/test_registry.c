/* Unit tests of plugins/registry.c and registry_cache.c, in process: real
 * plugin files (tests/plugins) loaded, checked and refused with their
 * reasons; descriptors refused for their ABI before any pointer is
 * followed; the registry cache file that lets a later registry know a
 * plugin without opening it, and forgets it when the file changes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host.h"
#include "registry.h"
#include "registry_cache.h"

#define GOOD SLUICE_TEST_PLUGINS "/good"
#define BAD SLUICE_TEST_PLUGINS "/bad"

static char dir[64], cache_path[128];
static plugin_registry reg;
static diag_list d;

/* Each test: a fresh registry, and a plugin cache file of its own. */
static void setup(void) {
    snprintf(dir, sizeof(dir), "/tmp/sluice-registry-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cache_path, sizeof(cache_path), "%s/plugins.json", dir);
    setenv("SLUICE_PLUGIN_CACHE", cache_path, 1);
    reg = (plugin_registry)PLUGIN_REGISTRY_INIT(host_registry());
    d = (diag_list)DIAG_LIST_INIT;
}

static void teardown(void) {
    registry_free(&reg);
    diag_clear(&d);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(registry, .init = setup, .fini = teardown);

/* The diagnostics' messages, one a line, for assertion messages. */
static const char *messages(const diag_list *list) {
    static char out[4096];
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < list->n && used < sizeof(out) - 1; i++)
        used +=
            (size_t)snprintf(out + used, sizeof(out) - used, "%s: %s\n",
                             list->items[i].file ? list->items[i].file : "", list->items[i].msg);
    return out;
}

static int has_message(const diag_list *list, const char *needle) {
    for (size_t i = 0; i < list->n; i++)
        if (strstr(list->items[i].msg, needle))
            return 1;
    return 0;
}

/* ---- loading files ---- */

Test(registry, a_good_plugin_loads_with_its_steps_ports_and_defaults) {
    const plugin_lib *lib = NULL;
    cr_assert_eq(registry_load_file(&reg, GOOD "/teststeps.so", &d, &lib), 0);
    cr_assert_not_null(lib, "%s", messages(&d));
    cr_expect_eq(d.n, 0, "%s", messages(&d));
    cr_expect_str_eq(lib->desc.name, "teststeps");
    cr_expect_eq(lib->lazy, 0);
    cr_expect_not_null(lib->handle);
    cr_expect_eq(lib->real_path[0], '/');

    const plugin_step *echo = registry_find(&reg, "echo");
    cr_assert_not_null(echo);
    cr_expect_eq(echo->lib, lib);
    cr_expect_eq(echo->n_inputs, 1);
    cr_expect_eq(echo->n_outputs, 1);
    cr_expect_not_null(plugin_step_input(echo, "in"));
    cr_expect_null(plugin_step_input(echo, "out"));
    cr_expect_not_null(plugin_step_output(echo, "out"));
    size_t index = 99;
    const sl_param *prefix = plugin_step_param(echo, "prefix", &index);
    cr_assert_not_null(prefix);
    cr_expect_eq(index, 0);
    cr_expect_eq(prefix->kind, SL_PARAM_STRING);
    cr_expect_not_null(echo->defaults[0], "the default \"> \" is parsed");
    cr_expect_null(plugin_step_param(echo, "no_such", NULL));
    cr_expect_null(registry_find(&reg, "no_such_step"));

    /* emit's required 'text' has no default; its 'count' has 1. */
    const plugin_step *emit = registry_find(&reg, "emit");
    cr_assert_not_null(emit);
    size_t text_at, count_at;
    cr_assert_not_null(plugin_step_param(emit, "text", &text_at));
    cr_assert_not_null(plugin_step_param(emit, "count", &count_at));
    cr_expect_null(emit->defaults[text_at]);
    cr_expect_not_null(emit->defaults[count_at]);
}

Test(registry, loading_a_file_twice_returns_the_first_load) {
    const plugin_lib *first = NULL, *second = NULL;
    cr_assert_eq(registry_load_file(&reg, GOOD "/teststeps.so", &d, &first), 0);
    cr_assert_eq(registry_load_file(&reg, GOOD "/../good/teststeps.so", &d, &second), 0);
    cr_expect_eq(first, second);
    cr_expect_eq(reg.n_libs, 1);
    cr_expect_eq(d.n, 0, "%s", messages(&d));
}

/* Each deliberately broken plugin is refused whole, naming its file and
 * why; nothing of it is registered. */
static void refused(const char *file, const char *why) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", BAD, file);
    const plugin_lib *lib = (const plugin_lib *)1;
    cr_assert_eq(registry_load_file(&reg, path, &d, &lib), 0);
    cr_expect_null(lib, "%s was accepted", file);
    cr_expect_eq(reg.n_libs, 0);
    cr_expect_eq(reg.n_steps, 0);
    cr_assert_geq(d.n, 1);
    cr_expect_str_eq(d.items[d.n - 1].file, path);
    cr_expect_eq(d.items[d.n - 1].level, DIAG_ERROR);
    cr_expect(has_message(&d, why), "want '%s' in:\n%s", why, messages(&d));
}

Test(registry, a_library_without_the_entry_point_is_refused) {
    refused("no_symbol.so", SL_PLUGIN_ENTRY_NAME);
}
Test(registry, a_future_major_abi_is_refused) { refused("wrong_abi.so", "rebuild it"); }
Test(registry, a_step_declared_twice_is_refused) { refused("twice.so", "twice"); }
Test(registry, a_port_without_a_type_is_refused) { refused("bad_port.so", "no valid type"); }
Test(registry, a_default_of_the_wrong_kind_is_refused) { refused("bad_default.so", "default"); }
Test(registry, a_step_without_run_is_refused) { refused("no_run.so", "no run function"); }
Test(registry, a_failing_init_is_refused_with_its_message) {
    refused("init_fails.so", "its init failed");
}

Test(registry, a_file_that_is_not_a_shared_object_is_refused) {
    char path[128];
    snprintf(path, sizeof(path), "%s/fake.so", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("not an ELF file\n", f);
    fclose(f);
    const plugin_lib *lib = (const plugin_lib *)1;
    cr_assert_eq(registry_load_file(&reg, path, &d, &lib), 0);
    cr_expect_null(lib);
    cr_expect(has_message(&d, "cannot load plugin"), "%s", messages(&d));
    lib = (const plugin_lib *)1;
    cr_assert_eq(registry_load_file(&reg, "/nonexistent/x.so", &d, &lib), 0);
    cr_expect_null(lib);
    cr_expect_eq(d.n, 2, "%s", messages(&d));
}

/* A step name two plugins declare: the first in search order keeps it. */
Test(registry, a_step_another_plugin_declared_first_refuses_the_later_plugin) {
    const plugin_lib *first = NULL, *later = (const plugin_lib *)1;
    cr_assert_eq(registry_load_file(&reg, GOOD "/teststeps.so", &d, &first), 0);
    cr_assert_eq(registry_load_file(&reg, BAD "/dup_across.so", &d, &later), 0);
    cr_expect_not_null(first);
    cr_expect_null(later);
    cr_expect(has_message(&d, "already declared"), "%s", messages(&d));
    cr_expect_eq(registry_find(&reg, "noop")->lib, first);
}

/* ---- folders ---- */

Test(registry, a_folder_loads_its_plugins_and_reports_each_refusal) {
    cr_assert_eq(registry_load_dir(&reg, BAD, 0, &d), 0);
    /* every plugin of bad/ but dup_across (alone it is fine) is refused */
    cr_expect_eq(reg.n_libs, 1, "%s", messages(&d));
    cr_expect_not_null(registry_find(&reg, "noop"));
    cr_expect_geq(d.errors, 7, "%s", messages(&d));
}

Test(registry, a_missing_folder_is_an_error_only_when_not_optional) {
    cr_assert_eq(registry_load_dir(&reg, "/nonexistent/plugins", 1, &d), 0);
    cr_expect_eq(d.n, 0);
    cr_assert_eq(registry_load_dir(&reg, "/nonexistent/plugins", 0, &d), 0);
    cr_expect_eq(d.errors, 1);
    cr_expect(has_message(&d, "cannot read plugin folder"), "%s", messages(&d));
}

Test(registry, the_default_path_reads_sluice_plugin_path_in_order) {
    setenv("SLUICE_PLUGIN_PATH", "/nonexistent:" GOOD ":" BAD, 1);
    cr_assert_eq(registry_load_default(&reg, NULL, &d), 0);
    /* good/ before bad/: teststeps keeps noop, dup_across is refused */
    cr_expect_not_null(registry_find(&reg, "sleep"));
    cr_expect_str_eq(registry_find(&reg, "noop")->lib->desc.name, "teststeps");
    cr_expect(has_message(&d, "already declared"), "%s", messages(&d));
}

/* ---- descriptors refused for their ABI ---- */

static int ok_run(sl_ctx *c) {
    (void)c;
    return SL_OK;
}

static const sl_step mem_steps[] = {{"mem_step", "1", NULL, NULL, NULL, NULL, ok_run}};

static sl_plugin mem_plugin(void) {
    return (sl_plugin){.abi_version = SL_ABI_VERSION,
                       .size = sizeof(sl_plugin),
                       .signature = SL_BUILD_SIGNATURE,
                       .name = "mem",
                       .version = "1",
                       .steps = mem_steps,
                       .n_steps = 1,
                       .step_size = sizeof(sl_step),
                       .port_size = sizeof(sl_port),
                       .param_size = sizeof(sl_param)};
}

static void abi_refused(sl_plugin desc, const char *why) {
    const plugin_lib *lib = (const plugin_lib *)1;
    cr_assert_eq(registry_add(&reg, "mem.so", "mem.so", NULL, &desc, &d, &lib), 0);
    cr_expect_null(lib);
    cr_expect_null(registry_find(&reg, "mem_step"));
    cr_expect(has_message(&d, why), "want '%s' in:\n%s", why, messages(&d));
}

Test(registry, the_descriptor_as_written_is_accepted) {
    sl_plugin desc = mem_plugin();
    const plugin_lib *lib = NULL;
    cr_assert_eq(registry_add(&reg, "mem.so", "mem.so", NULL, &desc, &d, &lib), 0);
    cr_expect_not_null(lib, "%s", messages(&d));
    cr_expect_not_null(registry_find(&reg, "mem_step"));
}

Test(registry, another_major_abi_is_refused) {
    sl_plugin desc = mem_plugin();
    desc.abi_version = (uint32_t)((SL_ABI_MAJOR + 1) << 16);
    abi_refused(desc, "rebuild it");
    desc.abi_version = (uint32_t)((SL_ABI_MAJOR - 1) << 16 | 9);
    abi_refused(desc, "rebuild it");
}

Test(registry, a_newer_minor_abi_is_refused) {
    sl_plugin desc = mem_plugin();
    desc.abi_version = SL_ABI_VERSION + 1;
    abi_refused(desc, "upgrade sluice");
}

Test(registry, a_descriptor_too_small_is_refused) {
    sl_plugin desc = mem_plugin();
    desc.size = 8;
    abi_refused(desc, "too small");
}

Test(registry, another_builds_signature_is_refused) {
    sl_plugin desc = mem_plugin();
    desc.signature = "sluice-abi-1/ptr4";
    abi_refused(desc, "not as this sluice's");
    desc.signature = NULL;
    abi_refused(desc, "built as");
}

Test(registry, a_descriptor_without_name_or_steps_is_refused) {
    sl_plugin desc = mem_plugin();
    desc.name = NULL;
    abi_refused(desc, "has no name");
    desc = mem_plugin();
    desc.n_steps = 0;
    abi_refused(desc, "declares no steps");
    desc = mem_plugin();
    desc.reserved0 = 1;
    abi_refused(desc, "reserved");
}

Test(registry, a_step_name_outside_the_rule_is_refused) {
    static const sl_step upper[] = {{"Bad Name", "1", NULL, NULL, NULL, NULL, ok_run}};
    sl_plugin desc = mem_plugin();
    desc.steps = upper;
    abi_refused(desc, "has a step named 'Bad Name'");
    static const sl_step unversioned[] = {{"mem_step", NULL, NULL, NULL, NULL, NULL, ok_run}};
    desc.steps = unversioned;
    abi_refused(desc, "has no version");
}

/* One step with these ports and parameters, refused for why. */
static void schema_refused(const sl_port *ins, const sl_port *outs, const sl_param *params,
                           const char *why) {
    const sl_step one[] = {{"mem_step", "1", NULL, ins, outs, params, ok_run}};
    sl_plugin desc = mem_plugin();
    desc.steps = one;
    abi_refused(desc, why);
}

Test(registry, ports_are_checked) {
    static const sl_port bad_name[] = {{"in put", "any", NULL, 0}, {NULL, NULL, NULL, 0}};
    schema_refused(bad_name, NULL, NULL, "has an input named 'in put'");
    static const sl_port bad_type[] = {{"out", "Bad Type", NULL, 0}, {NULL, NULL, NULL, 0}};
    schema_refused(NULL, bad_type, NULL, "output 'out' has no valid type");
    static const sl_port twice[] = {
        {"x", "any", NULL, 0}, {"x", "any", NULL, 0}, {NULL, NULL, NULL, 0}};
    schema_refused(twice, NULL, NULL, "declares input 'x' twice");
}

Test(registry, an_unterminated_array_is_refused_not_walked_off) {
    static sl_port many[300];
    for (size_t i = 0; i < 300; i++)
        many[i] = (sl_port){"p", "any", NULL, 0};
    schema_refused(many, NULL, NULL, "is its array terminated?");
    static sl_param params[300];
    for (size_t i = 0; i < 300; i++)
        params[i] = (sl_param){"p", SL_PARAM_INT, NULL, NULL, 0};
    schema_refused(NULL, NULL, params, "is its array terminated?");
}

Test(registry, parameters_and_their_defaults_are_checked) {
    static const sl_param bad_name[] = {{"9lives", SL_PARAM_INT, NULL, NULL, 0},
                                        {NULL, 0, NULL, NULL, 0}};
    schema_refused(NULL, NULL, bad_name, "has a parameter named '9lives'");
    static const sl_param bad_kind[] = {{"k", 99, NULL, NULL, 0}, {NULL, 0, NULL, NULL, 0}};
    schema_refused(NULL, NULL, bad_kind, "unknown kind 99");
    static const sl_param twice[] = {{"k", SL_PARAM_INT, NULL, NULL, 0},
                                     {"k", SL_PARAM_STRING, NULL, NULL, 0},
                                     {NULL, 0, NULL, NULL, 0}};
    schema_refused(NULL, NULL, twice, "declares parameter 'k' twice");
    static const sl_param not_yaml[] = {{"k", SL_PARAM_LIST, "[1, 2", NULL, 0},
                                        {NULL, 0, NULL, NULL, 0}};
    schema_refused(NULL, NULL, not_yaml, "is not YAML");
    static const sl_param wrong[] = {{"k", SL_PARAM_BOOL, "3", NULL, 0}, {NULL, 0, NULL, NULL, 0}};
    schema_refused(NULL, NULL, wrong, "the default '3' of parameter 'k' is not of kind");
    /* an integer fills a float; a scalar fills a string or a path */
    static const sl_param fine[] = {
        {"f", SL_PARAM_FLOAT, "3", NULL, 0},     {"s", SL_PARAM_STRING, "12", NULL, 0},
        {"p", SL_PARAM_PATH, "a/b", NULL, 0},    {"l", SL_PARAM_LIST, "[1, 2]", NULL, 0},
        {"j", SL_PARAM_JSON, "{a: 1}", NULL, 0}, {NULL, 0, NULL, NULL, 0}};
    const sl_step one[] = {{"mem_step", "1", NULL, NULL, NULL, fine, ok_run}};
    sl_plugin desc = mem_plugin();
    desc.steps = one;
    const plugin_lib *lib = NULL;
    cr_assert_eq(registry_add(&reg, "mem.so", "mem.so", NULL, &desc, &d, &lib), 0);
    cr_expect_not_null(lib, "%s", messages(&d));
    const plugin_step *ps = registry_find(&reg, "mem_step");
    cr_assert_not_null(ps);
    cr_expect_eq(ps->n_params, 5);
    for (size_t i = 0; i < 5; i++)
        cr_expect_not_null(ps->defaults[i], "default %zu parsed", i);
}

Test(registry, a_step_declared_twice_in_memory_is_refused) {
    static const sl_step two[] = {{"mem_step", "1", NULL, NULL, NULL, NULL, ok_run},
                                  {"mem_step", "2", NULL, NULL, NULL, NULL, ok_run}};
    sl_plugin desc = mem_plugin();
    desc.steps = two;
    desc.n_steps = 2;
    abi_refused(desc, "declares step 'mem_step' twice");
}

/* ---- the registry cache ---- */

static struct stat stat_of(const char *path) {
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return st;
}

/* A folder of the test's own with a copy of teststeps.so, which the test
 * may then change. */
static const char *own_plugins(void) {
    static char folder[128];
    char cmd[512];
    snprintf(folder, sizeof(folder), "%s/plugins", dir);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s/teststeps.so' '%s/'", folder, GOOD, folder);
    cr_assert_eq(system(cmd), 0);
    return folder;
}

Test(registry, a_plugin_checked_once_is_known_from_the_cache_without_opening_it) {
    const char *folder = own_plugins();
    cr_assert_eq(registry_load_dir(&reg, folder, 0, &d), 0);
    cr_assert_eq(reg.n_libs, 1);
    cr_expect_eq(reg.libs[0]->lazy, 0, "the first load opens the file");
    cr_expect_eq(access(cache_path, R_OK), 0, "the cache file is written");
    registry_free(&reg);

    reg = (plugin_registry)PLUGIN_REGISTRY_INIT(host_registry());
    cr_assert_eq(registry_load_dir(&reg, folder, 0, &d), 0);
    cr_assert_eq(reg.n_libs, 1, "%s", messages(&d));
    cr_expect_eq(reg.libs[0]->lazy, 1, "the second comes from the cache");
    cr_expect_null(reg.libs[0]->handle);
    const plugin_step *echo = registry_find(&reg, "echo");
    cr_assert_not_null(echo);
    cr_expect_null(echo->step->run, "a cached descriptor has no run function yet");
    cr_expect_not_null(plugin_step_param(echo, "prefix", NULL), "but its schema");

    char err[256] = "";
    cr_assert_eq(registry_materialize(echo, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(echo->lib->lazy, 0);
    cr_expect_not_null(echo->lib->handle);
    cr_expect_not_null(echo->step->run);
    /* its other steps are filled in by the same load */
    cr_expect_not_null(registry_find(&reg, "emit")->step->run);
    cr_expect_eq(registry_materialize(echo, err, sizeof(err)), 0, "a no-op the second time");
}

Test(registry, a_changed_plugin_file_is_loaded_and_checked_again) {
    const char *folder = own_plugins();
    cr_assert_eq(registry_load_dir(&reg, folder, 0, &d), 0);
    registry_free(&reg);

    /* Another plugin in the same file's place: other size, inode, mtime. */
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "cp '%s/faultsteps.so' '%s/teststeps.so.new' && "
             "mv '%s/teststeps.so.new' '%s/teststeps.so'",
             GOOD, folder, folder, folder);
    cr_assert_eq(system(cmd), 0);
    reg = (plugin_registry)PLUGIN_REGISTRY_INIT(host_registry());
    cr_assert_eq(registry_load_dir(&reg, folder, 0, &d), 0);
    cr_assert_eq(reg.n_libs, 1, "%s", messages(&d));
    cr_expect_eq(reg.libs[0]->lazy, 0, "a changed file is not trusted from the cache");
    cr_expect_str_eq(reg.libs[0]->desc.name, "faultsteps");
    cr_expect_null(registry_find(&reg, "echo"), "teststeps' steps are gone with it");
}

Test(registry, a_damaged_cache_file_is_no_cache_and_no_error) {
    const char *folder = own_plugins();
    FILE *f = fopen(cache_path, "w");
    cr_assert_not_null(f);
    fputs("{\"version\": [not json", f);
    fclose(f);
    cr_assert_eq(registry_load_dir(&reg, folder, 0, &d), 0);
    cr_expect_eq(d.n, 0, "%s", messages(&d));
    cr_assert_eq(reg.n_libs, 1);
    cr_expect_eq(reg.libs[0]->lazy, 0);
    registry_free(&reg);
    /* and it was rewritten whole: the next registry trusts it */
    reg = (plugin_registry)PLUGIN_REGISTRY_INIT(host_registry());
    cr_assert_eq(registry_load_dir(&reg, folder, 0, &d), 0);
    cr_expect_eq(reg.libs[0]->lazy, 1);
}

/* Loads folder once so that the cache holds it, edits the cache file with
 * sed_script, then loads it again: returns whether it came from the cache. */
static int lazy_after_edit(const char *folder, const char *sed_script) {
    cr_assert_eq(registry_load_dir(&reg, folder, 0, &d), 0);
    registry_free(&reg);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "sed -i -e '%s' '%s'", sed_script, cache_path);
    cr_assert_eq(system(cmd), 0);
    reg = (plugin_registry)PLUGIN_REGISTRY_INIT(host_registry());
    cr_assert_eq(registry_load_dir(&reg, folder, 0, &d), 0);
    cr_assert_eq(reg.n_libs, 1, "%s", messages(&d));
    cr_expect_eq(d.n, 0, "a damaged cache is never an error: %s", messages(&d));
    cr_expect_not_null(registry_find(&reg, "echo"));
    return reg.libs[0]->lazy;
}

Test(registry, the_unchanged_cache_file_is_trusted) {
    cr_expect_eq(lazy_after_edit(own_plugins(), "s/^//"), 1);
}

Test(registry, a_damaged_cache_entry_is_a_miss) {
    cr_expect_eq(lazy_after_edit(own_plugins(), "s/\"name\" : \"teststeps\"/\"name\" : 7/"), 0);
}

Test(registry, a_damaged_port_or_parameter_in_the_cache_is_a_miss) {
    cr_expect_eq(lazy_after_edit(own_plugins(), "s/\"type\" : \"any\"/\"type\" : []/"), 0);
}

Test(registry, a_cache_entry_without_steps_is_a_miss) {
    cr_expect_eq(lazy_after_edit(own_plugins(), "s/\"steps\" : \\[/\"steps_\" : [/"), 0);
}

/* A cache file written by another sluice binary is not trusted at all. */
Test(registry, a_cache_written_by_another_sluice_is_ignored) {
    cr_expect_eq(lazy_after_edit(own_plugins(), "s/\"exe_size\" : [0-9]*/\"exe_size\" : 1/"), 0);
}

Test(registry, the_cache_turned_off_opens_every_plugin) {
    setenv("SLUICE_PLUGIN_CACHE", "off", 1);
    const char *folder = own_plugins();
    cr_assert_null(registry_cache_open());
    cr_assert_eq(registry_load_dir(&reg, folder, 0, &d), 0);
    registry_free(&reg);
    reg = (plugin_registry)PLUGIN_REGISTRY_INIT(host_registry());
    cr_assert_eq(registry_load_dir(&reg, folder, 0, &d), 0);
    cr_expect_eq(reg.libs[0]->lazy, 0);
    cr_expect_neq(access(cache_path, F_OK), 0, "no file written");
}

/* A plugin refused is never cached: it is checked (and refused) again. */
Test(registry, only_accepted_plugins_are_cached) {
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s/p' && cp '%s/no_run.so' '%s/p/'", dir, BAD, dir);
    cr_assert_eq(system(cmd), 0);
    char folder[128];
    snprintf(folder, sizeof(folder), "%s/p", dir);
    for (int i = 0; i < 2; i++) {
        diag_clear(&d);
        registry_free(&reg);
        reg = (plugin_registry)PLUGIN_REGISTRY_INIT(host_registry());
        cr_assert_eq(registry_load_dir(&reg, folder, 0, &d), 0);
        cr_expect_eq(reg.n_libs, 0);
        cr_expect(has_message(&d, "no run function"), "load %d: %s", i + 1, messages(&d));
    }
}

/* The cache API alone: an entry is keyed by path and the file's identity. */
Test(registry, a_cache_entry_holds_only_while_the_file_is_the_same) {
    const char *folder = own_plugins();
    char path[256];
    snprintf(path, sizeof(path), "%s/teststeps.so", folder);
    struct stat st = stat_of(path);
    sl_plugin desc = mem_plugin();

    registry_cache *c = registry_cache_open();
    cr_assert_not_null(c);
    cr_assert_eq(registry_cache_put(c, path, &st, &desc), 0);
    registry_cache_close(c);

    c = registry_cache_open();
    cr_assert_not_null(c);
    arena a = ARENA_INIT;
    sl_plugin got;
    cr_expect_eq(registry_cache_get(c, path, &st, &a, &got), 1);
    cr_expect_str_eq(got.name, "mem");
    cr_expect_eq(got.n_steps, 1);
    cr_expect_str_eq(got.steps[0].name, "mem_step");
    cr_expect_null(got.steps[0].run);
    struct stat other = st;
    other.st_size++;
    cr_expect_eq(registry_cache_get(c, path, &other, &a, &got), 0, "another size");
    other = st;
    other.st_mtim.tv_sec++;
    cr_expect_eq(registry_cache_get(c, path, &other, &a, &got), 0, "another mtime");
    other = st;
    other.st_ino++;
    cr_expect_eq(registry_cache_get(c, path, &other, &a, &got), 0, "another inode");
    cr_expect_eq(registry_cache_get(c, "/elsewhere.so", &st, &a, &got), 0, "another path");
    registry_cache_close(c);
    registry_cache_close(NULL); /* allowed */
    arena_free(&a);
}

Test(registry, kind_names) {
    cr_expect_str_eq(sl_param_kind_name(SL_PARAM_STRING), "string");
    cr_expect_str_eq(sl_param_kind_name(SL_PARAM_INT), "integer");
    cr_expect_not_null(sl_param_kind_name(999));
}
