/* module.h - sluice's own optional parts, loaded when first needed: shared
 * objects with heavy dependencies (mongo-c-driver and its SSL, SASL and ICU;
 * OpenBLAS) that most processes never use, so that they cost a process
 * nothing until it needs them. Loading one costs a `sluice exec` child or a
 * CLI command some milliseconds, which is why they are not linked in.
 *
 * A module NAME is the file NAME.so, looked for in order in:
 *   - the folders of $SLUICE_MODULE_PATH (colon-separated), for tests and
 *     unusual installs;
 *   - beside the object that holds this code (a step plugin, or a step
 *     family's program such as sluice-warehouse, as each links it
 *     statically): D/modules, D/../modules and D/../lib/sluice/modules,
 *     which are where the build tree and an install put them;
 *   - the folder configured at build time (SLUICE_MODULE_DIR).
 * Modules stay loaded until the process ends.
 *
 * Versions: a module's interface is sluice's internal one, so a module is
 * used only by the sluice build it came with. Like a plugin, each exports
 * one function, sluice_module_v1(), returning its stamp (module_stamp.c,
 * compiled into every module by sluice_module_library()): MODULE_ABI, the
 * stamp's size and a signature naming the sluice version, the module ABI and
 * the word size. module_symbol() refuses a module without a stamp (from a
 * sluice before modules had one) or with another, naming both, instead of
 * calling into a layout it does not know. Bump MODULE_ABI when an interface
 * between sluice and a module changes. */
#ifndef SLUICE_STEPS_MODULE_H
#define SLUICE_STEPS_MODULE_H

#include <stddef.h>
#include <stdint.h>

#ifndef SLUICE_MODULE_BUILD
#define SLUICE_MODULE_BUILD "0.0.0"
#endif
#define MODULE_ABI 1
#define MODULE_STR_(x) #x
#define MODULE_STR(x) MODULE_STR_(x)
#define MODULE_SIGNATURE                                                                           \
    "sluice-" SLUICE_MODULE_BUILD                                                                  \
    "/module-abi-" MODULE_STR(MODULE_ABI) "/ptr" MODULE_STR(__SIZEOF_POINTER__)
#define MODULE_ENTRY_NAME "sluice_module_v1"

typedef struct module_stamp {
    uint32_t abi;          /* MODULE_ABI */
    uint32_t size;         /* sizeof(module_stamp) */
    const char *signature; /* MODULE_SIGNATURE */
} module_stamp;

typedef const module_stamp *(*module_entry)(void);

/* The address of symbol in module name, into *sym. Returns 0, or -ENOENT
 * (no such module: err lists where it was looked for) or -EINVAL (it does
 * not load, its stamp is missing or another build's, or it lacks the
 * symbol: err says which, with the module's path). Thread-safe. */
int module_symbol(const char *name, const char *symbol, void **sym, char *err, size_t err_size);

#endif
