/* module.h - sluice's own optional parts, loaded when first needed: shared
 * objects with heavy dependencies (mongo-c-driver and its SSL, SASL and ICU;
 * OpenBLAS) that most processes never use, so that they cost a process
 * nothing until it needs them. Loading one costs a `sluice exec` child or a
 * CLI command some milliseconds, which is why they are not linked in.
 *
 * A module NAME is the file NAME.so, looked for in order in:
 *   - the folders of $SLUICE_MODULE_PATH (colon-separated), for tests and
 *     unusual installs;
 *   - beside the object that holds this code (the sluice binary or a step
 *     plugin, as each links it statically): D/modules, D/../modules and
 *     D/../lib/sluice/modules, which are where the build tree and an install
 *     put them;
 *   - the folder configured at build time (SLUICE_MODULE_DIR).
 * Modules stay loaded until the process ends. */
#ifndef SLUICE_PLUGINS_MODULE_H
#define SLUICE_PLUGINS_MODULE_H

#include <stddef.h>

/* The address of symbol in module name, into *sym. Returns 0, or -ENOENT
 * (no such module: err lists where it was looked for) or -EINVAL (it does
 * not load, or lacks the symbol: err says dlerror's words). Thread-safe. */
int module_symbol(const char *name, const char *symbol, void **sym, char *err, size_t err_size);

#endif
