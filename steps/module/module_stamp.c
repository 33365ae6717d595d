/* module_stamp.c - compiled into every module (sluice_module_library): the
 * stamp module_symbol() checks before using it (module.h, "Versions"). */
#include "module.h"

__attribute__((visibility("default"))) const module_stamp *sluice_module_v1(void);
__attribute__((visibility("default"))) const module_stamp *sluice_module_v1(void) {
    static const module_stamp stamp = {MODULE_ABI, sizeof(module_stamp), MODULE_SIGNATURE};
    return &stamp;
}
