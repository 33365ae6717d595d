/* The plugin ABI held still: the layout of every public struct of
 * include/sluice/plugin.h, checked at compile time, and the loader's side
 * of the compatibility promise (element sizes, old status codes, user data)
 * through the registry and the host. A failing _Static_assert here means a
 * released layout changed: append instead, and bump SL_ABI_MINOR. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "registry.h"
#include "value.h"

#define AT(type, field, off) _Static_assert(offsetof(type, field) == (off), #type "." #field)
#define SIZE(type, n) _Static_assert(sizeof(type) == (n), "sizeof(" #type ")")

#if __SIZEOF_POINTER__ == 8 && __SIZEOF_LONG__ == 8
SIZE(sl_port, 32);
AT(sl_port, name, 0);
AT(sl_port, type, 8);
AT(sl_port, doc, 16);
AT(sl_port, optional, 24);

SIZE(sl_param, 40);
AT(sl_param, name, 0);
AT(sl_param, kind, 8);
AT(sl_param, default_value, 16);
AT(sl_param, doc, 24);
AT(sl_param, required, 32);

SIZE(sl_step, 56);
AT(sl_step, name, 0);
AT(sl_step, version, 8);
AT(sl_step, summary, 16);
AT(sl_step, inputs, 24);
AT(sl_step, outputs, 32);
AT(sl_step, params, 40);
AT(sl_step, run, 48);

SIZE(sl_plugin, 96);
AT(sl_plugin, abi_version, 0);
AT(sl_plugin, size, 4);
AT(sl_plugin, signature, 8);
AT(sl_plugin, name, 16);
AT(sl_plugin, version, 24);
AT(sl_plugin, steps, 32);
AT(sl_plugin, n_steps, 40);
AT(sl_plugin, init, 48);
AT(sl_plugin, teardown, 56);  /* the end of 1.0-1.2's descriptor: 64 bytes */
AT(sl_plugin, step_size, 64); /* 1.3 */
AT(sl_plugin, port_size, 68);
AT(sl_plugin, param_size, 72);
AT(sl_plugin, reserved0, 76);
AT(sl_plugin, init_data, 80);
AT(sl_plugin, teardown_data, 88);

SIZE(sl_host, 144);
AT(sl_host, size, 0);
AT(sl_host, abi_version, 4);
AT(sl_host, param_str, 8);
AT(sl_host, param_int, 16);
AT(sl_host, param_f64, 24);
AT(sl_host, param_bool, 32);
AT(sl_host, param_list_len, 40);
AT(sl_host, param_list_item, 48);
AT(sl_host, param_json, 56);
AT(sl_host, input_path, 64);
AT(sl_host, output_path, 72);
AT(sl_host, work_dir, 80);
AT(sl_host, vlog, 88);
AT(sl_host, progress, 96);
AT(sl_host, metric, 104);
AT(sl_host, cancelled, 112);
AT(sl_host, vfail, 120);
AT(sl_host, store_dir, 128); /* 1.1 */
AT(sl_host, user_data, 136); /* 1.3 */

SIZE(sl_ctx, 8);
AT(sl_ctx, host, 0);
#endif

/* The values plugins compiled in: never renumbered. */
_Static_assert(SL_ABI_MAJOR == 1 && SL_ABI_MINOR == 3, "a new version: add its row here");
_Static_assert(SL_PARAM_STRING == 1 && SL_PARAM_JSON == 6 && SL_PARAM_PATH == 7, "kinds");
_Static_assert(SL_LOG_DEBUG == 0 && SL_LOG_ERROR == 3, "log levels");
_Static_assert(SL_EFAIL == -20001 && SL_ECANCELLED == -20002 && SL_EINVAL == -20003 &&
                   SL_ENOMEM == -20004 && SL_EIO == -20005,
               "status codes");
_Static_assert(SL_EIO >= SL_ERANGE_END && SL_EFAIL <= SL_ERANGE_BEGIN && SL_ERANGE_BEGIN < -4095,
               "the codes sit in their range, apart from negated errno");

/* ---- a loader's view -------------------------------------------------- */

static int ok_run(sl_ctx *c) {
    (void)c;
    return SL_OK;
}

/* Elements of a layout from a future minor: each struct with a field
 * appended, which this sluice must skip by the descriptor's sizes. */
typedef struct {
    sl_port port;
    void *appended[3];
} future_port;
typedef struct {
    sl_param param;
    void *appended[2];
} future_param;
typedef struct {
    sl_step step;
    void *appended[5];
} future_step;

static const future_port f_ins[] = {
    {{"first", "any", NULL, 0}, {(void *)1, (void *)2, (void *)3}},
    {{"second", "documents", NULL, 1}, {(void *)1, (void *)2, (void *)3}},
    {{NULL, NULL, NULL, 0}, {NULL, NULL, NULL}},
};
static const future_param f_params[] = {
    {{"alpha", SL_PARAM_INT, "3", NULL, 0}, {(void *)1, (void *)1}},
    {{"beta", SL_PARAM_STRING, NULL, NULL, 1}, {(void *)1, (void *)1}},
    {{NULL, 0, NULL, NULL, 0}, {NULL, NULL}},
};
static const future_step f_steps[] = {
    {{"fut_one", "1", NULL, &f_ins[0].port, NULL, &f_params[0].param, ok_run},
     {(void *)1, (void *)1, (void *)1, (void *)1, (void *)1}},
    {{"fut_two", "2", NULL, NULL, &f_ins[0].port, NULL, ok_run},
     {(void *)1, (void *)1, (void *)1, (void *)1, (void *)1}},
};

static sl_plugin future_plugin(void) {
    return (sl_plugin){.abi_version = SL_ABI_VERSION,
                       .size = sizeof(sl_plugin),
                       .signature = SL_BUILD_SIGNATURE,
                       .name = "future",
                       .version = "1",
                       .steps = &f_steps[0].step,
                       .n_steps = 2,
                       .step_size = sizeof(future_step),
                       .port_size = sizeof(future_port),
                       .param_size = sizeof(future_param)};
}

static const plugin_lib *add(plugin_registry *r, const sl_plugin *desc, diag_list *d) {
    const plugin_lib *lib = NULL;
    cr_assert_eq(registry_add(r, "mem.so", desc->name, NULL, desc, d, &lib), 0);
    return lib;
}

Test(plugin_abi, arrays_are_walked_by_the_descriptors_element_sizes) {
    plugin_registry r = PLUGIN_REGISTRY_INIT(host_registry());
    diag_list d = DIAG_LIST_INIT;
    sl_plugin desc = future_plugin();
    cr_assert_not_null(add(&r, &desc, &d), "%s", d.n ? d.items[0].msg : "");
    const plugin_step *one = registry_find(&r, "fut_one"), *two = registry_find(&r, "fut_two");
    cr_assert(one && two);
    cr_expect_eq(one->n_inputs, 2);
    cr_expect_eq(one->n_params, 2);
    const sl_port *second = plugin_step_input(one, "second");
    cr_assert_not_null(second);
    cr_expect_str_eq(second->type, "documents");
    cr_expect_eq(second->optional, 1);
    const sl_param *beta = plugin_step_param(one, "beta", NULL);
    cr_assert_not_null(beta);
    cr_expect_eq(beta->kind, SL_PARAM_STRING);
    cr_expect_eq(beta->required, 1);
    cr_expect_str_eq(two->step->version, "2");
    cr_expect_eq(two->n_outputs, 2);
    registry_free(&r);
    diag_clear(&d);
}

Test(plugin_abi, a_descriptor_of_abi_1_2_has_no_sizes_and_loads) {
    static const sl_port ins[] = {
        {"a", "any", NULL, 0}, {"b", "any", NULL, 0}, {NULL, NULL, NULL, 0}};
    static const sl_step steps[] = {{"old_one", "1", NULL, ins, NULL, NULL, ok_run},
                                    {"old_two", "1", NULL, NULL, ins, NULL, ok_run}};
    sl_plugin desc = {.abi_version = (1u << 16) | 2,
                      .size = (uint32_t)offsetof(sl_plugin, step_size),
                      .signature = SL_BUILD_SIGNATURE,
                      .name = "old",
                      .version = "1",
                      .steps = steps,
                      .n_steps = 2,
                      /* past .size: what a 1.2 plugin has there is not ours to read */
                      .step_size = 8,
                      .port_size = 8};
    plugin_registry r = PLUGIN_REGISTRY_INIT(host_registry());
    diag_list d = DIAG_LIST_INIT;
    cr_assert_not_null(add(&r, &desc, &d), "%s", d.n ? d.items[0].msg : "");
    cr_expect_eq(registry_find(&r, "old_two")->n_outputs, 2);
    registry_free(&r);
    diag_clear(&d);
}

static void expect_refused(sl_plugin *desc, const char *why) {
    plugin_registry r = PLUGIN_REGISTRY_INIT(host_registry());
    diag_list d = DIAG_LIST_INIT;
    cr_expect_null(add(&r, desc, &d));
    cr_assert_eq(d.n, 1);
    cr_expect(strstr(d.items[0].msg, why) != NULL, "'%s' lacks '%s'", d.items[0].msg, why);
    registry_free(&r);
    diag_clear(&d);
}

Test(plugin_abi, an_element_size_smaller_than_1_2s_is_refused) {
    sl_plugin desc = future_plugin();
    desc.port_size = sizeof(sl_port) - sizeof(void *);
    expect_refused(&desc, "gives sizeof(sl_port) as 24 bytes");
    desc = future_plugin();
    desc.step_size = sizeof(future_step) + 1;
    expect_refused(&desc, "sizeof(sl_step)");
}

static int data_inited, data_torn;
static int plain_init(const sl_host *h, char *e, size_t n) {
    (void)h, (void)e, (void)n;
    return 0;
}
static int data_init(const sl_host *h, void **ud, char *e, size_t n) {
    (void)h, (void)e, (void)n;
    *ud = &data_inited;
    data_inited++;
    return 0;
}
static void data_teardown(void *ud) {
    cr_expect_eq(ud, &data_inited);
    data_torn++;
}

Test(plugin_abi, both_init_pairs_are_refused) {
    sl_plugin desc = future_plugin();
    desc.init = plain_init;
    desc.init_data = data_init;
    expect_refused(&desc, "gives both init/teardown and init_data/teardown_data");
    cr_expect_eq(data_inited, 0, "a refused plugin's init does not run");
}

/* ---- the host: user data and status codes ---------------------------- */

static int user_data_run(sl_ctx *c) {
    return sl_user_data(c) == &data_inited ? SL_OK : sl_fail(c, "user data %p", sl_user_data(c));
}
static int legacy_einval_run(sl_ctx *c) {
    (void)c;
    return -3; /* SL_EINVAL before 1.3 */
}
static int enoent_run(sl_ctx *c) {
    (void)c;
    return -ENOENT;
}
static int legacy_fail_run(sl_ctx *c) { return sl_fail(c, "said why"); }

static void sink_log(void *ud, int level, const char *msg) { (void)ud, (void)level, (void)msg; }
static void sink_progress(void *ud, uint64_t a, uint64_t b) { (void)ud, (void)a, (void)b; }
static void sink_metric(void *ud, const char *k, double v, int64_t i) {
    (void)ud, (void)k, (void)v, (void)i;
}

/* Runs step of r through the host; returns its status and why. */
static int host_run(const plugin_registry *r, const char *step, char *why, size_t size) {
    const plugin_step *ps = registry_find(r, step);
    cr_assert_not_null(ps);
    task t = {.step_id = step,
              .step_name = step,
              .plugin_path = "mem.so",
              .step = ps->step,
              .work_dir = "/nonexistent",
              .store_dir = ""};
    task_sink sink = {sink_log, sink_progress, sink_metric, NULL};
    host_ctx hc;
    cr_assert_eq(host_ctx_init(&hc, &t, &sink), 0);
    const char *w = NULL;
    int rc = host_ctx_run(&hc, &w);
    snprintf(why, size, "%s", w ? w : "");
    host_ctx_free(&hc);
    return rc;
}

Test(plugin_abi, init_datas_pointer_reaches_run_and_teardown) {
    static const sl_step steps[] = {{"ud", "1", NULL, NULL, NULL, NULL, user_data_run},
                                    {"enoent", "1", NULL, NULL, NULL, NULL, enoent_run},
                                    {"fails", "1", NULL, NULL, NULL, NULL, legacy_fail_run}};
    sl_plugin desc = future_plugin();
    desc.steps = steps;
    desc.n_steps = 3;
    desc.step_size = sizeof(sl_step);
    desc.init_data = data_init;
    desc.teardown_data = data_teardown;
    data_inited = data_torn = 0;
    plugin_registry r = PLUGIN_REGISTRY_INIT(host_registry());
    diag_list d = DIAG_LIST_INIT;
    cr_assert_not_null(add(&r, &desc, &d), "%s", d.n ? d.items[0].msg : "");
    cr_expect_eq(data_inited, 1);
    char why[256];
    cr_expect_eq(host_run(&r, "ud", why, sizeof(why)), SL_OK, "%s", why);
    /* A 1.3 plugin's -ENOENT is errno's, named as such. */
    cr_expect_eq(host_run(&r, "enoent", why, sizeof(why)), -ENOENT);
    cr_expect_str_eq(why, strerror(ENOENT));
    cr_expect_eq(host_run(&r, "fails", why, sizeof(why)), SL_EFAIL);
    cr_expect_str_eq(why, "said why");
    cr_expect_eq(data_torn, 0);
    registry_free(&r);
    cr_expect_eq(data_torn, 1, "teardown_data ran once, with the pointer");
    diag_clear(&d);
}

Test(plugin_abi, a_1_2_plugins_codes_read_as_the_sl_codes_they_were) {
    static const sl_step steps[] = {{"einval", "1", NULL, NULL, NULL, NULL, legacy_einval_run},
                                    {"fails", "1", NULL, NULL, NULL, NULL, legacy_fail_run}};
    sl_plugin desc = {.abi_version = (1u << 16) | 2,
                      .size = (uint32_t)offsetof(sl_plugin, step_size),
                      .signature = SL_BUILD_SIGNATURE,
                      .name = "old",
                      .version = "1",
                      .steps = steps,
                      .n_steps = 2};
    plugin_registry r = PLUGIN_REGISTRY_INIT(host_registry());
    diag_list d = DIAG_LIST_INIT;
    cr_assert_not_null(add(&r, &desc, &d));
    char why[256];
    cr_expect_eq(host_run(&r, "einval", why, sizeof(why)), SL_EINVAL);
    cr_expect_str_eq(why, "the step reported an invalid argument");
    cr_expect_eq(host_run(&r, "fails", why, sizeof(why)), SL_EFAIL);
    cr_expect_str_eq(why, "said why");
    registry_free(&r);
    diag_clear(&d);
}

/* The registry leaves parameter defaults to its host (registry_host): a
 * default comes back as the host's value, and both of the host's refusals
 * reach the plugin's diagnostic. */
static sl_plugin with_default(const sl_param *params, sl_step *step) {
    *step = (sl_step){"defaults", "1", NULL, NULL, NULL, params, ok_run};
    return (sl_plugin){.abi_version = (1u << 16) | 2,
                       .size = (uint32_t)offsetof(sl_plugin, step_size),
                       .signature = SL_BUILD_SIGNATURE,
                       .name = "defaults",
                       .version = "1",
                       .steps = step,
                       .n_steps = 1};
}

Test(plugin_abi, defaults_are_parsed_and_checked_by_the_host) {
    static const sl_param good[] = {{"n", SL_PARAM_INT, "42", NULL, 0},
                                    {"names", SL_PARAM_LIST, "[a, b]", NULL, 0},
                                    {"none", SL_PARAM_STRING, NULL, NULL, 0},
                                    {NULL, 0, NULL, NULL, 0}};
    sl_step step;
    sl_plugin desc = with_default(good, &step);
    plugin_registry r = PLUGIN_REGISTRY_INIT(host_registry());
    diag_list d = DIAG_LIST_INIT;
    cr_assert_not_null(add(&r, &desc, &d), "%s", d.n ? d.items[0].msg : "");
    const plugin_step *ps = registry_find(&r, "defaults");
    cr_assert_not_null(ps);
    const value *n = ps->defaults[0], *names = ps->defaults[1];
    cr_assert(n && names);
    cr_expect_eq(n->kind, VAL_INT);
    cr_expect_eq(n->u.integer, 42);
    cr_expect_eq(names->kind, VAL_LIST);
    cr_expect_eq(names->u.list.n, 2);
    cr_expect_null(ps->defaults[2]);
    registry_free(&r);
    diag_clear(&d);

    static const sl_param not_yaml[] = {{"n", SL_PARAM_LIST, "[a, b", NULL, 0},
                                        {NULL, 0, NULL, NULL, 0}};
    desc = with_default(not_yaml, &step);
    expect_refused(&desc, "the default of parameter 'n' is not YAML");
    static const sl_param wrong_kind[] = {{"n", SL_PARAM_INT, "many", NULL, 0},
                                          {NULL, 0, NULL, NULL, 0}};
    desc = with_default(wrong_kind, &step);
    expect_refused(&desc, "the default 'many' of parameter 'n' is not of kind integer");
}

Test(plugin_abi, sl_strerror_names_both_domains) {
    cr_expect_str_eq(sl_strerror(SL_OK), "success");
    cr_expect_str_eq(sl_strerror(SL_ECANCELLED), "cancelled");
    cr_expect_str_eq(sl_strerror(SL_EINVAL), "invalid argument");
    cr_expect_str_eq(sl_strerror(-ESRCH), strerror(ESRCH));
    cr_expect_str_eq(sl_strerror(-30000), "unknown error code");
    cr_expect_str_eq(sl_strerror(7), "unknown error code");
}
