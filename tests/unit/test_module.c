/* module_symbol() checks a module's stamp before handing out its symbols:
 * one of this build loads, one of another build or without a stamp is
 * refused with its path and the reason (steps/module/module.h, "Versions"). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"

static void on_test_modules(void) {
    cr_assert_eq(setenv("SLUICE_MODULE_PATH", SLUICE_TEST_MODULES, 1), 0);
}

TestSuite(module, .init = on_test_modules);

Test(module, a_module_of_this_build_is_used) {
    void *sym = NULL;
    char err[512] = "";
    cr_assert_eq(module_symbol("mod_current", "module_answer", &sym, err, sizeof(err)), 0, "%s",
                 err);
    int (*answer)(void);
    memcpy(&answer, &sym, sizeof(answer));
    cr_expect_eq(answer(), 42);
}

static void refused(const char *name, const char *why) {
    void *sym = NULL;
    char err[512] = "";
    cr_expect_eq(module_symbol(name, "module_answer", &sym, err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, name) && strstr(err, why), "'%s' lacks the path or '%s'", err, why);
}

Test(module, a_module_of_another_build_is_refused) {
    refused("mod_other", "was built as 'sluice-0.0.1-other/module-abi-1/");
}

Test(module, a_module_without_a_stamp_is_refused) {
    refused("mod_unstamped", "exports no sluice_module_v1()");
}

Test(module, a_missing_module_says_where_it_looked) {
    void *sym = NULL;
    char err[1024] = "";
    cr_expect_eq(module_symbol("mod_absent", "module_answer", &sym, err, sizeof(err)), -ENOENT);
    cr_expect(strstr(err, SLUICE_TEST_MODULES), "%s", err);
}
